"""Fast by default: `compile: auto` (CUDA graphs on a GPU for runs long enough to repay them,
eager on the CPU), torch.compile's caches in a lasting folder, and where the time goes before a
run's first training step (`--verbose`)."""

import json
from pathlib import Path

import pytest
import yaml

from srblock import startup
from srblock.config import AUTO_COMPILE_STEPS
from srblock.keys import config_from_mapping, make_config, parse_set
from srblock.train.compiling import COMPILE_CACHE, use_compile_cache

from .helpers import TINY, argv


@pytest.mark.parametrize(
    "sets,device,steps,mode",
    [
        ([], "cuda", AUTO_COMPILE_STEPS, "reduce-overhead"),  # the default: CUDA graphs on a GPU
        ([], "cuda", AUTO_COMPILE_STEPS - 1, None),  # too short to repay the compilation
        ([], "cpu", 10**6, None),  # never on the CPU by itself
        (["compile_mode=max-autotune"], "cuda", 10**6, "max-autotune"),
        (["compile=true"], "cpu", 1, "default"),  # forced, in its mode
        (["compile=false"], "cuda", 10**6, None),
    ],
)
def test_compile_auto_compiles_long_gpu_runs_only(sets, device, steps, mode):
    cfg = make_config("cifar100", parse_set(sets))
    assert cfg.compile_plan(device, steps) == mode


def test_a_run_s_steps_and_the_old_booleans():
    cfg = make_config("cifar100")  # 45,000 training images at batch 128, 200 epochs
    assert cfg.compile == "auto" and cfg.training_steps(45_000, 1) == 200 * 351
    assert (
        make_config("fashion_mnist_seg").training_steps(10_000, 1)
        == make_config("fashion_mnist_seg").iterations
    )
    old = config_from_mapping({"dataset": "cifar10", "compile": True}, "an old config.yaml")
    assert old.compile == "true"
    with pytest.raises(ValueError, match="compile must be one of auto, true, false, got 'sometimes'"):
        parse_set(["compile=sometimes"])


def test_the_compile_cache_lasts_unless_told_otherwise(monkeypatch, tmp_path):
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    assert use_compile_cache() == (COMPILE_CACHE, None)
    assert str(COMPILE_CACHE).endswith(".cache/srblock/inductor")
    # what importing torch._dynamo leaves in the variable (torch 2.14): its /tmp default, not a choice
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", default_cache_dir())
    assert use_compile_cache() == (COMPILE_CACHE, None)
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    assert use_compile_cache() == (tmp_path, None)


def test_a_home_that_cannot_hold_the_cache_compiles_with_torchs_own_or_trains_eager(monkeypatch, tmp_path):
    """A read-only home said "choose another path" of a path the user never chose."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    from srblock.train import compiling

    (tmp_path / "file").write_text("")  # a folder cannot be made under a file (as under a read-only home)
    monkeypatch.setattr(compiling, "COMPILE_CACHE", tmp_path / "file" / "inductor")
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    cache, note = use_compile_cache()
    assert cache == Path(default_cache_dir())
    assert note == (
        f"{tmp_path / 'file' / 'inductor'} cannot hold torch.compile's cache ({tmp_path / 'file'} is a file, "
        f"not a folder): compiling with the cache in {cache}; set TORCHINDUCTOR_CACHE_DIR to a folder you "
        "can write"
    )
    monkeypatch.setattr(compiling, "_torch_default_cache", lambda: str(tmp_path / "file" / "tmp"))
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    cache, note = use_compile_cache()
    assert cache is None and note.endswith(": training eager (uncompiled); set TORCHINDUCTOR_CACHE_DIR to a "
                                            "folder you can write")  # fmt: skip


@pytest.mark.parametrize(
    "command, cache",
    [(["table", "."], "afile"), (["recipes"], "afile"), (["recipes"], "/proc/srblock-cache")],
)
def test_a_cache_variable_torch_cannot_use_stops_no_command_that_does_not_compile(tmp_path, command, cache):
    """torch._dynamo makes the variable's folder when it is imported: a file there (or a place where
    no folder can be made, which root's permissions do not tell) made every command, `table`
    included, a 44-line traceback."""
    from .helpers import srblock_cli

    (tmp_path / "afile").write_text("")
    (tmp_path / "runs").mkdir()
    done = srblock_cli(*command, env_extra={"TORCHINDUCTOR_CACHE_DIR": str(tmp_path / cache)}, cwd=tmp_path)
    assert "Traceback" not in done.stderr and "FileExistsError" not in done.stderr
    assert done.returncode in (0, 2) and done.stderr.count("\n") <= 1, done.stderr


def test_the_startup_report_names_each_phase():
    startup.mark("a phase")
    text = startup.report("first step done")
    assert text.startswith("start-up: ") and "a phase " in text and "; first step done at " in text


@pytest.mark.slow
def test_verbose_says_where_the_time_went_and_auto_trains_eager_on_the_cpu(cifar, tmp_path, capsys):
    from srblock.cli import main

    line = "train cifar10 --data {data} --out {out} --set epochs=1 --verbose"
    try:
        assert main(argv(line, data=cifar, out=tmp_path) + TINY) == 0
    finally:
        startup.verbose = False
    err = capsys.readouterr().err
    [report] = [ln for ln in err.splitlines() if ln.startswith("start-up: ")]
    for phase in (
        "Fabric",
        "model",
        "data",
        "device, optimiser, checkpoint",
        "batches",
    ):
        assert f" {phase} " in report or report.startswith(f"start-up: {phase} ")
    [folder] = [p.parent for p in tmp_path.rglob("result.json")]
    assert yaml.safe_load((folder / "config.yaml").read_text())["compile"] == "auto"
    assert json.loads((folder / "result.json").read_text())["compiled"] is None  # eager on the CPU


def test_a_damaged_compile_cache_is_one_line_that_says_what_to_do(tmp_path, monkeypatch, capsys):
    """A cache file overwritten with other bytes made torch raise `InductorError: RuntimeError:
    Failed to import ...py` and a UnicodeDecodeError, with no advice (seen with a real damaged cache:
    the same exception, raised here at the run's first step)."""
    import torch._inductor.exc

    from srblock.cli import main
    from srblock.train import classify

    def damaged(*args, **kwargs):
        raise torch._inductor.exc.InductorError(RuntimeError(f"Failed to import {tmp_path}/cache/x.py"), None)

    monkeypatch.setattr(classify, "split_batches", damaged)  # where a compiled run meets its cache first
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["train", "fashion_mnist", "--set", "limit_train=64", "--out", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"srblock train: error: torch.compile failed (RuntimeError: Failed to import {tmp_path}/cache/x.py): "
        f"its cache {tmp_path / 'cache'} looks damaged: delete that folder and run again, or train eager "
        "with --set compile=false"
    )
    # another failure of compile's is not blamed on the cache: it stays as torch raised it

    def other(*args, **kwargs):
        raise torch._inductor.exc.InductorError(RuntimeError("an op it cannot lower"), None)

    monkeypatch.setattr(classify, "split_batches", other)
    with pytest.raises(torch._inductor.exc.InductorError, match="an op it cannot lower"):
        main(["train", "fashion_mnist", "--set", "limit_train=64", "--out", str(tmp_path / "b"), "--quiet"])


def test_a_cache_variable_set_aside_is_known_to_the_runs_the_command_starts(tmp_path):
    """--parallel runs inherit the environment without the variable: they say it was set aside too."""
    import subprocess
    import sys

    (tmp_path / "afile").write_text("")
    code = "from srblock import startup; print(startup.cache_set_aside)"
    env = {k: v for k, v in __import__("os").environ.items() if k != "SRBLOCK_CACHE_SET_ASIDE"}
    parent = subprocess.run(
        [sys.executable, "-c", code + "; import os; print(os.environ['SRBLOCK_CACHE_SET_ASIDE'])"],
        env={**env, "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "afile")},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    said, handed_on = parent.stdout.splitlines()
    child = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "SRBLOCK_CACHE_SET_ASIDE": handed_on},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert (
        said
        == child.stdout.strip()
        == str((str(tmp_path / "afile"), f"{tmp_path / 'afile'} is a file, not a folder"))
    )


LAZY_CHECK = """
import sys
import srblock
assert "torch" not in sys.modules, "import srblock imported torch"
from srblock.cli import SUBCOMMANDS, build_parser
for words in [["--help"], *([command.__name__.rsplit(".", 1)[1], "--help"] for command in SUBCOMMANDS)]:
    try:
        build_parser().parse_args(words)
    except SystemExit as done:
        assert done.code == 0, words
    assert "torch" not in sys.modules, f"srblock {' '.join(words)} imported torch"
print(len(SUBCOMMANDS))
import timm  # the zoo joins timm's registry once timm is imported, after srblock as before it
assert "srblock_resnet10s_cifar" in timm.list_models("srblock_*")
assert srblock.SqueezeRemember.__name__ == "SqueezeRemember" and callable(srblock.fit)
assert set(srblock.__all__) <= set(dir(srblock))
import srblock.fitting  # (its module: srblock.fit stays the function)
assert callable(srblock.fit) and srblock.models.ResNet and srblock.data.datasets.ImageSet  # submodules
"""


def test_help_and_import_srblock_import_no_torch_and_the_public_names_arrive_when_used():
    """`srblock --help` and every `srblock CMD --help` answer without torch (4 and 9 s before, as
    they imported torch, torchvision and timm); `import srblock` defers each public name to its
    first use, and the zoo still joins timm's registry."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", LAZY_CHECK], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.split()[-1]) >= 11  # every subcommand's help was asked


@pytest.mark.slow
def test_the_zoo_joins_timms_registry_whichever_is_imported_first():
    """timm imported before srblock, and after a probe for it (importlib.util.find_spec, as
    libraries that check whether timm is installed do), and the zoo imported first (it imports
    timm), through a module half imported meanwhile: the zoo is in timm's registry each time."""
    import subprocess
    import sys

    import timm

    for code in (
        "import timm, srblock",
        "import srblock, importlib.util; importlib.util.find_spec('timm'); import timm",
        "from srblock.factory import create_model; import timm",
    ):
        line = code + "; print(*timm.list_models('srblock_*'))"
        done = subprocess.run([sys.executable, "-c", line], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.split() == timm.list_models("srblock_*") and "srblock_resnet50" in done.stdout


def test_the_startup_benchmark_reads_the_verbose_line_phase_by_phase():
    """benchmarks/startup.py tables the seconds of each phase of `--verbose`'s line, whose phase
    names hold commas ("config, torch")."""
    import importlib.util

    path = Path(__file__).parents[1] / "benchmarks" / "startup.py"
    spec = importlib.util.spec_from_file_location("startup_benchmark", path)
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    startup.mark("config, a phase")
    startup.mark("device, another, phase")
    read = benchmark.phases(startup.report())
    assert list(read)[-3:] == ["config, a phase", "device, another, phase", "first step"]
    assert all(seconds >= 0 for seconds in read.values()) and read["first step"] >= read["config, a phase"]


REGISTRY_CHECK = """
import sys
from srblock import registry  # alone: it knows no model, and imports none
print(len(registry.list_models()), "srblock.models" in sys.modules)

import srblock

@registry.register_model  # (not srblock.register_model, which has the zoo in first)
def resnet18_cifar(**kwargs):
    return None

import timm  # timm imports; the zoo, which cannot register, says why at its next use
try:
    srblock.list_models()
except ValueError as err:
    print(err)
del registry._MODELS["resnet18_cifar"]  # renamed: the zoo registers, and answers with every model in
print(srblock.list_models is srblock.models.list_models, *srblock.list_models())
"""


def test_the_registry_knows_no_model_and_a_name_the_zoo_takes_is_named_when_the_zoo_comes():
    """registry.py holds what is registered and imports no model (the zoo imports it, not the other
    way round); srblock.models and srblock.list_models answer with the whole zoo registered. A model
    registered through the registry before the zoo under a name of the zoo is named, with what to
    do, when the zoo comes, and timm still imports."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", REGISTRY_CHECK], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    alone, clash, with_zoo = done.stdout.splitlines()
    assert alone == "0 False"
    assert "__main__ registered a model 'resnet18_cifar' before srblock's zoo was imported" in clash
    assert "rename yours" in clash
    same, *names = with_zoo.split()
    assert same == "True" and {"resnet18_cifar", "vgg16_bn_cifar", "fcn_r50_d8"} <= set(names)

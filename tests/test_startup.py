"""Fast by default: `compile: auto` (CUDA graphs on a GPU for runs long enough to repay them,
eager on the CPU), torch.compile's caches in a lasting folder, and where the time goes before a
run's first training step (`--verbose`)."""

import json

import pytest
import yaml

from srblock import startup
from srblock.config import AUTO_COMPILE_STEPS
from srblock.keys import config_from_mapping, make_config, parse_set
from srblock.train.fabric import COMPILE_CACHE, use_compile_cache

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
    assert use_compile_cache() == COMPILE_CACHE and str(COMPILE_CACHE).endswith(".cache/srblock/inductor")
    # what importing torch._dynamo leaves in the variable (torch 2.14): its /tmp default, not a choice
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", default_cache_dir())
    assert use_compile_cache() == COMPILE_CACHE
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    assert use_compile_cache() == tmp_path


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
        "config, training stack, Fabric",
        "model",
        "data",
        "device, optimiser, checkpoint",
        "batches",
    ):
        assert f" {phase} " in report or report.startswith(f"start-up: {phase} ")
    [folder] = [p.parent for p in tmp_path.rglob("result.json")]
    assert yaml.safe_load((folder / "config.yaml").read_text())["compile"] == "auto"
    assert json.loads((folder / "result.json").read_text())["compiled"] is None  # eager on the CPU

"""Configs from recipes and --set (checked, one class per task), the shipped recipes, and sweeps."""

import dataclasses
import re
import shutil

import pytest
import torch

from srblock.config import FilesConfig, SegmentConfig, TensorsConfig, with_seeds
from srblock.keys import KEYS, build_config, key_groups, make_config, parse_set, recipe_values
from srblock.recipes import group_name, list_recipe_files, load_yaml
from srblock.run_model import build_model
from srblock.sweeps import expand_sweep


def fields(cfg, expected: dict) -> dict:
    """The config's values of the keys in `expected`, to compare with it."""
    return {k: (cfg.crop_hw() if k == "crop_hw" else getattr(cfg, k)) for k in expected}


# the paper's recipes (its appendix VII), field by field
PAPER_RECIPES = {
    "cifar100": dict(lr=0.1, momentum=0.9, weight_decay=5e-4, batch_size=128, epochs=200, gamma=0.2),
    "cifar10": dict(lr=0.1, momentum=0.9, weight_decay=1e-4, batch_size=128, epochs=182, gamma=0.1),
    "imagenet": dict(lr=0.1, momentum=0.9, weight_decay=1e-4, batch_size=256, epochs=450, gamma=0.1),
    "cityscapes": dict(lr=0.01, momentum=0.9, weight_decay=5e-4, iterations=80_000, eval_interval=8_000),
}
PAPER_DETAILS = {
    "cifar100": dict(milestones=[60, 120, 160], val_fraction=0.1, crop_padding=4, flip=True),
    "cifar10": dict(milestones=[90, 136], val_fraction=0.1, crop_padding=4, flip=True),
    "imagenet": dict(milestones=[75, 150, 225, 300, 375], image_size=224, model="resnet50", val_fraction=0.0),
    "cityscapes": dict(crop_hw=(512, 1024), poly_power=0.9, min_lr=1e-4, aux_weight=0.4, ms_flip=True),
}


@pytest.mark.parametrize("recipe", PAPER_RECIPES)
def test_recipes_are_the_papers(recipe):
    expected = {**PAPER_RECIPES[recipe], **PAPER_DETAILS[recipe]}
    assert fields(make_config(recipe), expected) == expected


def test_each_task_has_its_own_fields():
    fashion, imagenet, city = make_config("fashion_mnist"), make_config("imagenet"), make_config("cityscapes")
    assert (type(fashion), type(imagenet), type(city)) == (TensorsConfig, FilesConfig, SegmentConfig)
    fashion_keys, imagenet_keys, city_keys = (
        set(fashion.identity()),
        set(imagenet.identity()),
        set(city.identity()),
    )
    assert {"crop_padding", "loader", "epochs"} <= fashion_keys
    assert not {"crop_size", "ms_scales", "image_size"} & fashion_keys
    assert {"image_size", "gpu_decode", "epochs"} <= imagenet_keys and not {
        "loader",
        "crop_size",
    } & imagenet_keys
    assert {"crop_size", "iterations", "ms_scales"} <= city_keys and not {
        "epochs",
        "attn",
        "loader",
    } & city_keys
    assert "data_dir" not in fashion.identity()  # where the data lies does not make another experiment
    groups = key_groups()
    assert set(KEYS) == {k for keys in groups.values() for k in keys} and "segmentation" in groups


@pytest.mark.parametrize(
    "recipe, item, message",
    [
        (
            "fashion_mnist",
            "crop_size=64",
            "crop_size does not apply to fashion_mnist runs (classification of images held in memory)",
        ),
        (
            "cityscapes",
            "epochs=3",
            "epochs does not apply to cityscapes runs (segmentation); their keys: dataset, model",
        ),
        ("cifar10", "gpu_decode=true", "gpu_decode does not apply to cifar10 runs"),
    ],
)
def test_a_key_of_another_task_is_refused(recipe, item, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make_config(recipe, parse_set([item]))


def test_a_dataset_override_picks_its_task():
    cfg = make_config("cifar100", parse_set(["dataset=fashion_mnist"]))
    assert isinstance(cfg, TensorsConfig) and cfg.input_size() == (1, 28, 28)
    with pytest.raises(
        ValueError, match="epochs, milestones, gamma, crop_padding do not apply to fashion_mnist_seg runs"
    ):
        make_config("cifar100", parse_set(["dataset=fashion_mnist_seg"]))  # a recipe of another task


@pytest.mark.parametrize(
    "recipe, sets, blocks",
    [
        ("cityscapes", ["sr_stage=2"], 2),  # DeepLabv3's own P
        ("cityscapes", ["sr_stage=2", "model=fcn_r50_d8"], 3),
        ("cityscapes", ["sr_stage=2", "sr_memory_blocks=5"], 5),
        ("fashion_mnist", ["sr_stage=3"], 4),
    ],
)
def test_default_p_is_the_models_own(recipe, sets, blocks):
    cfg = make_config(recipe, parse_set(sets))
    assert cfg.sr.memory_blocks == blocks
    if cfg.sr_stage is not None and recipe == "cityscapes":
        with torch.device("meta"):
            model = build_model(cfg)
        assert model.backbone.layer2.sr.memory_blocks == blocks


def test_set_overrides_and_errors(tmp_path):
    cfg = make_config(
        "cifar100",
        parse_set(["model=resnet34_cifar", "sr_stage=3", "lr=0.05", "milestones=[1, 2]", "attn=se"]),
    )
    assert (cfg.model, cfg.sr_stage, cfg.lr, cfg.milestones, cfg.attn) == (
        "resnet34_cifar",
        3,
        0.05,
        [1, 2],
        "se",
    )
    with pytest.raises(ValueError) as err:
        parse_set(["lrr=0.1"])
    assert "unknown key 'lrr' (did you mean 'lr'?); valid keys: " + ", ".join(KEYS) in str(err.value)
    with pytest.raises(ValueError, match="--set epochs=ten: epochs takes an int, got 'ten'"):
        parse_set(["epochs=ten"])
    with pytest.raises(ValueError, match="--set limit_train=1.5: limit_train takes an int or null"):
        parse_set(["limit_train=1.5"])
    with pytest.raises(ValueError, match="--set dataset=svhn: dataset must be one of cifar10, cifar100"):
        parse_set(["dataset=svhn"])
    with pytest.raises(ValueError, match="cifar100-table1 is a sweep, not a recipe"):
        make_config("cifar100-table1")
    own = tmp_path / "mine.yaml"
    own.write_text("dataset: cifar10\nmodel: resnet10s_cifar\nepochs: 3\n")
    assert make_config(str(own)).epochs == 3
    own.write_text("dataset: cifar10\nepoch: 3\n")
    with pytest.raises(ValueError, match="unknown key 'epoch' \\(did you mean 'epochs'\\?\\)"):
        make_config(str(own))


@pytest.mark.parametrize(
    "item, message",
    [
        ("iterations=0", r"iterations must be in \[1, inf\), got 0"),
        ("eval_interval=-5", r"eval_interval must be in \[1, inf\), got -5"),
        ("crop_size=512", None),
        ("crop_size=0x5", "crop_size must be HxW"),
        ("scale_range=[2.0, 0.5]", "scale_range must be"),
        ("ms_scales=[]", "ms_scales must be"),
    ],
)
def test_segmentation_keys_are_checked(item, message):
    if message is None:
        assert make_config("cityscapes", parse_set([item])).crop_hw() == (512, 512)
        return
    with pytest.raises(ValueError, match=message):
        parse_set([item])


def test_with_seeds_and_group_names():
    cfg = make_config("fashion_mnist")
    assert [c.seed for c in with_seeds(cfg, [3, 4])] == [3, 4] and with_seeds(cfg, None) == [cfg]
    assert (
        group_name("cifar100") == "cifar100"
        and group_name("my/own.yaml") == "own"
        and group_name("x.yml") == "x"
    )


def test_every_shipped_sweep_expands_to_its_recipes_configs():
    sweeps = [name for name in list_recipe_files() if "runs" in load_yaml(name)]
    assert {
        "cifar100-table1",
        "cifar100-table2",
        "cifar10-table5",
        "imagenet-table3",
        "cityscapes-table4",
    } <= set(sweeps)
    for name in sweeps:
        data = load_yaml(name)
        rows = expand_sweep(name)
        assert [r.name for r in rows] == [run["name"] for run in data["runs"]]
        assert all(r.config.dataset == make_config(data["recipe"]).dataset for r in rows)
        assert all(len(r.configs()) == len(data["seeds"]) for r in rows)


def test_sweep_rows_take_the_sweep_set_the_row_and_overrides_in_that_order():
    rows = expand_sweep("imagenet-table3", {"epochs": 2})
    sr = next(r for r in rows if r.config.sr_stage is not None)
    assert sr.config.sr.hidden == 16 and sr.config.epochs == 2  # the sweep's set, then the override
    assert sr.changes == {"epochs": 2}  # the override changed the row: it names the row and its folder
    assert sr.extra() == {
        "name": f"{sr.name} (epochs=2)",
        "row": sr.index,
        "table": "III",
        "paper": sr.paper,
        "M": sr.config.sr_stage,
        "P": sr.config.sr.memory_blocks,
    }
    assert [c.seed for c in sr.configs([7])] == [7] and dataclasses.replace(sr.config, seed=7) == sr.configs(
        [7]
    )[0]
    with pytest.raises(ValueError, match="cifar100 is a recipe, not a sweep"):
        expand_sweep("cifar100")


def test_recipe_files_and_errors(tmp_path):
    assert load_yaml("cifar100-table2")["table"] == "II"
    with pytest.raises(
        ValueError,
        match="no recipe 'nope': give a YAML file's path or one of: cifar10, cifar10-table5, cifar100, ",
    ):
        load_yaml("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ValueError, match="bad.yaml is not valid YAML"):
        load_yaml(bad)
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="must hold a YAML mapping"):
        load_yaml(bad)


@pytest.mark.parametrize(
    "body, message",
    [
        ("runs: []\n", "runs must be a list of rows, each a mapping"),
        ("runs: [plain]\n", "runs must be a list of rows, each a mapping"),
        ("seeds: 3\nruns: [{name: a}]\n", "seeds must be a list of non-negative ints"),
        ("set: [1]\nruns: [{name: a}]\n", "set must be a mapping"),
        (
            "runs: [{name: row a, crop_size: 64}]\n",
            "row 'row a': crop_size does not apply to fashion_mnist runs",
        ),
    ],
)
def test_a_malformed_sweep_is_a_one_line_error_naming_its_part(tmp_path, body, message):
    sweep = tmp_path / "mine.yaml"
    sweep.write_text("recipe: fashion_mnist\n" + body)
    with pytest.raises(ValueError, match=message):
        expand_sweep(str(sweep))


def test_deeplabv3_with_one_image_per_process_is_refused_by_the_config():
    """Before any run of a train, sweep or demo command starts: a sweep stops before its first row."""
    with pytest.raises(
        ValueError, match="batch_size=1 cannot train deeplabv3_r50_d8 .*set batch_size=2 or more"
    ):
        make_config("cityscapes", {"batch_size": 1})
    with pytest.raises(ValueError, match="cityscapes-table4 row 'DLv3': batch_size=1 cannot train"):
        expand_sweep("cityscapes-table4", {"batch_size": 1})
    assert make_config("cityscapes", {"batch_size": 1, "model": "fcn_r50_d8"}).batch_size == 1


@pytest.mark.parametrize(
    "item, message",
    [
        ("limit_train=0", r"limit_train must be in \[1, inf\), got 0"),
        ("limit_test=-5", r"limit_test must be in \[1, inf\), got -5"),
        ("gamma=0", r"gamma must be in \(0, inf\), got 0.0"),
        ("seed=-1", r"seed must be in \[0, 4294967295\], got -1"),
        ("crop_padding=-3", r"crop_padding must be in \[0, inf\), got -3"),
        ("momentum=1", r"momentum must be in \[0, 1\), got 1.0"),
        ("milestones=[10, 0]", r"milestones must be in \[1, inf\), got \[10, 0\]"),
        ("lr=nan", "lr takes a number, got 'nan'"),
        ("weight_decay=-1e-4", r"weight_decay must be in \[0, inf\)"),
    ],
)
def test_every_number_is_checked_against_its_range(item, message):
    with pytest.raises(ValueError, match=f"--set {re.escape(item)}: {message}"):
        parse_set([item])


def test_floats_as_a_user_types_them():
    """YAML 1.1 reads 1e-3 (no dot) as a string; a number field takes it as the number it is."""
    assert parse_set(["lr=1e-3", "weight_decay=5e-4", "min_lr=1E-6"]) == {
        "lr": 1e-3,
        "weight_decay": 5e-4,
        "min_lr": 1e-6,
    }


@pytest.mark.parametrize(
    "recipe, model, kind",
    [
        ("fashion_mnist", "fcn_resnet10s", "a segmentation model"),
        ("cityscapes", "resnet18_cifar", "a classification model"),
    ],
)
def test_a_model_of_another_task_is_refused(recipe, model, kind):
    with pytest.raises(ValueError, match=f"{model} is {kind}, but {recipe} runs are"):
        make_config(recipe, {"model": model})


def test_the_docs_key_table_is_the_code_s(capsys):
    """docs/keys.md is `srblock recipes --keys`: every key's facts, read from where it is declared."""
    from pathlib import Path

    from srblock.cli import main

    assert main(["recipes", "--keys"]) == 0
    table = capsys.readouterr().out.strip()
    docs = (Path(__file__).parents[1] / "docs" / "keys.md").read_text()
    assert docs.strip().endswith(table), "regenerate docs/keys.md with `srblock recipes --keys`"
    assert "`sr_memory_blocks`" in table and "[1, inf)" in table


def test_the_sr_block_is_one_spec_in_the_config_and_flat_keys_at_the_edges():
    """One copy of the SR settings: cfg.sr is an SRSpec; recipes, --set and config.yaml write its
    fields as sr_<field>, and the flat keys of a config build the same config again."""
    from srblock.config import CONFIGS, SegmentConfig
    from srblock.keys import config_from_mapping
    from srblock.spec import SPEC_KEYS, SRSpec

    assert all(["sr"] == [f.name for f in dataclasses.fields(cls) if f.name.startswith("sr") and
                          f.name not in ("sr_stage", "sr_bypass_every")] for cls in CONFIGS)  # fmt: skip
    cfg = make_config("fashion_mnist", parse_set(["sr_stage=3", "sr_memory_blocks=2", "sr_temperature=0.5"]))
    assert cfg.sr == SRSpec(memory_blocks=2, temperature=0.5)
    keys = cfg.keys()
    assert set(SPEC_KEYS) <= set(keys) and keys["sr_temperature"] == 0.5 and "sr" not in keys
    assert config_from_mapping(keys, "config.yaml") == cfg  # the flat keys are the whole config
    seg = make_config("cityscapes", {"sr_stage": 3})
    assert not {"sr_diversity", "sr_memory_init"} & set(seg.keys())  # the segmentation loop reads neither
    with pytest.raises(ValueError, match="sr_diversity does nothing in segmentation runs"):
        SegmentConfig(sr=SRSpec(diversity=0.1))
    with pytest.raises(ValueError, match="sr_diversity does not apply to cityscapes runs"):
        make_config("cityscapes", {"sr_stage": 3, "sr_diversity": 0.1})
    with pytest.raises(TypeError, match="sr is an SRSpec"):
        SegmentConfig(sr={"hidden": 4})
    with pytest.raises(ValueError, match="sr_memory_init_scale=0.5 does nothing with sr_memory_init=zeros"):
        make_config("fashion_mnist", {"sr_stage": 3, "sr_memory_init_scale": 0.5})  # the spec's own rule


def test_old_key_names_warn_once_and_old_run_configs_read_quietly():
    import warnings

    from srblock.keys import config_from_mapping

    with pytest.warns(FutureWarning, match="sr_blocks is now called sr_memory_blocks"):
        cfg = make_config("fashion_mnist", parse_set(["sr_stage=3", "sr_blocks=2"]))
    assert cfg.sr.memory_blocks == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        old = config_from_mapping(
            {"dataset": "fashion_mnist", "sr_stage": 3, "sr_blocks": 2, "sr_squeeze": 1}, "x"
        )
    assert (old.sr.memory_blocks, old.sr.squeeze_channels) == (2, 1)


def test_sr_settings_that_only_break_a_run_are_refused_when_set(capsys):
    from srblock.cli import main

    for key, value, interval in (
        ("sr_temperature", "1e-40", "[0.001, 1000]"),
        ("sr_memory_init_scale", "1e30", "(0, 100]"),
    ):
        assert main(["train", "fashion_mnist", "--set", "sr_stage=3", "--set", f"{key}={value}"]) == 2
        assert f"{key} must be in {interval}" in capsys.readouterr().err


@pytest.mark.parametrize(
    "sets, message",
    [
        (
            ["sr_temperature=0.5"],
            "sr_temperature=0.5 does nothing without an SR block: add one with sr_stage=M",
        ),
        (["sr_memory_blocks=2"], "sr_memory_blocks=2 does nothing without an SR block"),
        (["reg_rate=0.1"], "reg_rate=0.1 does nothing without a regulariser: set reg"),
        (["schedule=cosine", "gamma=0.5"], "gamma=0.5 does nothing with schedule=cosine: set schedule=step"),
        (
            ["epochs=3", "warmup_epochs=3"],
            "warmup_epochs=3 leaves no epoch at the full lr: set it below epochs",
        ),
        (["pretrained_partial=true"], "pretrained_partial=true does nothing without weights to load"),
        (
            ["optimizer=adamw", "momentum=0.5"],
            "momentum=0.5 does nothing with optimizer=adamw: set optimizer=sgd",
        ),
        (
            ["compile=false", "compile_mode=max-autotune"],
            "compile_mode=max-autotune does nothing with compile=false",
        ),
        (
            ["epochs=2", "milestones=[5]"],
            "milestones=[5] does nothing unless schedule=step and a milestone falls",
        ),
        (  # it named the run's folder (scale2) though the memory started at zero
            ["sr_stage=3", "sr_memory_init_scale=2"],
            "sr_memory_init_scale=2.0 does nothing with sr_memory_init=zeros (the paper's memory starts at "
            "zero): set sr_memory_init=normal or prototypes",
        ),
        (  # it was recorded in config.yaml though the fast loader starts no workers
            ["num_workers=4"],
            "num_workers=4 does nothing with loader=fast (the images on the device, no workers): set "
            "loader=dataloader",
        ),
    ],
)
def test_a_key_set_where_it_does_nothing_is_refused_in_one_line(sets, message, capsys):
    from srblock.cli import main

    assert main(["train", "fashion_mnist", *[w for s in sets for w in ("--set", s)]]) == 2
    err = capsys.readouterr().err
    assert message in err and f"or leave {sets[-1].split('=')[0]} out" in err and err.count("\n") == 1


def test_keys_that_act_are_taken_and_shared_keys_are_not_the_runs_choice(tmp_path):
    assert make_config("fashion_mnist", {"sr_stage": 3, "sr_temperature": 0.5}).sr.temperature == 0.5
    assert make_config("fashion_mnist", {"reg": "d", "reg_rate": 0.2}).reg_rate == 0.2
    # a recipe's warm-up serves every run of it: a shorter run cuts it (the schedule) rather than failing
    assert make_config("folder", {"epochs": 2}).warmup_epochs == 3
    # a key set to its default changes nothing: scripts that always pass it are not refused
    assert make_config("fashion_mnist", {"pretrained_partial": False, "reg_rate": None}).reg_rate is None
    # a sweep's --set is shared: refused only where it acts in no row
    with pytest.raises(
        ValueError, match="cifar100-table2 --set reg_rate, in every row: reg_rate=0.3 does nothing"
    ):
        expand_sweep("cifar100-table2", {"reg_rate": 0.3})
    # a recipe's P without an SR block: no block, no P
    assert (
        build_config({**recipe_values("fashion_mnist"), "sr_memory_blocks": 6}, "r").sr.memory_blocks is None
    )
    # a sweep's shared `set` and overrides reach its plain rows too; a row's own key is its choice
    plain = next(
        r for r in expand_sweep("cifar100-table2", {"sr_temperature": 2.0}) if r.config.sr_stage is None
    )
    assert plain.config.sr.hidden == 8
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("recipe: cifar100\nruns:\n  - {name: plain, sr_hidden: 4}\n")
    with pytest.raises(
        ValueError, match="sweep.yaml row 'plain': sr_hidden=4 does nothing without an SR block"
    ):
        expand_sweep(str(sweep))


def test_sr_keys_act_on_a_block_fit_was_given():
    from srblock.keys import check_applies

    cfg = make_config("folder")
    check_applies(cfg, {"sr_lr_mult": 10.0}, "srblock.fit", has_sr=True)  # the model holds a block
    with pytest.raises(ValueError, match="srblock.fit: sr_lr_mult=10.0 does nothing without an SR block"):
        check_applies(cfg, {"sr_lr_mult": 10.0}, "srblock.fit", has_sr=False)


def test_val_fraction_is_refused_where_the_folder_has_its_own_validation_split(tmp_path):
    for split in ("train", "val"):
        for name in ("boots", "shirts"):
            (tmp_path / split / name).mkdir(parents=True)
    refused = "val_fraction=0.2 does nothing: the data folder has its own validation split"
    with pytest.raises(ValueError, match=refused):
        make_config("folder", {"data_dir": str(tmp_path), "val_fraction": 0.2})
    (tmp_path / "val").rename(tmp_path / "validation")  # Hugging Face's and timm's name for it
    with pytest.raises(ValueError, match=refused):
        make_config("folder", {"data_dir": str(tmp_path), "val_fraction": 0.2})
    shutil.rmtree(tmp_path / "validation")
    assert make_config("folder", {"data_dir": str(tmp_path), "val_fraction": 0.2}).val_fraction == 0.2


def test_a_key_two_config_classes_declare_is_checked_by_the_runs_own_class(capsys):
    """crop_padding is CIFAR's pad-crop padding and the file pipeline's padcrop padding: a CIFAR run
    that sets it was checked by the file pipeline's rule (a traceback: no `augment` on a CIFAR config)."""
    from srblock.cli import main

    assert make_config("cifar100", {"crop_padding": 8}).crop_padding == 8
    assert main(["train", "cifar100", "--set", "crop_padding=8", "--data", "/nonexistent"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cifar-100-python lacks" in err  # the data's error, not a crash
    with pytest.raises(ValueError, match="crop_padding=8 does nothing with augment=rrc"):
        make_config("folder", {"crop_padding": 8})


@pytest.mark.parametrize(
    "words, message",
    [
        (
            ["train", "folder", "--set", "classes=[a,b]"],
            "--set classes=[a,b]: classes is not set but read from the data (a folder's train/<class>",
        ),
        (
            ["train", "fashion_mnist", "--set", "seed=5", "--seeds", "0", "1"],
            "--set seed=5 and --seeds 0 1 both choose the seeds: give --seeds 5 (and the others) instead",
        ),
        (
            ["sweep", "cifar100-table1", "--set", "seed=5"],
            "--set seed=5 and the sweep's seeds both choose the seeds",
        ),
    ],
)
def test_keys_srblock_fills_in_or_that_another_flag_decides_are_refused(words, message, capsys):
    from srblock.cli import main

    assert main(words) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_key_name_has_one_meaning_in_every_config_class():
    """crop_padding was declared twice, with two helps and rules: the flat key table kept one, so a
    CIFAR run was checked by the file pipeline's rule (a crash) and docs/keys.md gave its help."""
    import dataclasses

    from srblock.config import CONFIGS

    def meaning(field: dataclasses.Field) -> dict:
        facts = dict(field.metadata)
        if facts.get("needs"):  # the rule's code and words (each class holds its own function)
            facts["needs"] = (facts["needs"][0].__code__, facts["needs"][1])
        return {**facts, "default": field.default, "type": field.type}

    seen: dict[str, tuple[type, dict]] = {}
    for cls in CONFIGS:
        for key, field in cls.key_fields().items():
            first, before = seen.setdefault(key, (cls, meaning(field)))
            assert meaning(field) == before, f"{key}: two meanings in {first.__name__} and {cls.__name__}"


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "recipe: fashion_mnist\nseed: [5]\nruns:\n  - {name: a}\n",
            "unknown key 'seed' (did you mean 'seeds'?)",
        ),
        (
            "recipe: fashion_mnist\nsets: {lr: 0.01}\nruns:\n  - {name: a}\n",
            "unknown key 'sets' (did you mean 'set'?)",
        ),
        ("recipe: fashion_mnist\nrun:\n  - {name: a}\n", "unknown key 'run' (did you mean 'runs'?)"),
        ("runs:\n  - {name: a}\n", "a sweep needs recipe (what the rows start from)"),
    ],
)
def test_a_sweep_key_it_does_not_know_is_refused_not_ignored(tmp_path, text, message):
    """A misspelt `seeds` trained the recipe's seeds 0-4 instead of 5, and `sets` the default lr."""
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(text)
    with pytest.raises(ValueError, match=re.escape(message)):
        expand_sweep(str(sweep))

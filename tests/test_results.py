"""Results across seeds: mean ± sample std per configuration, the paper's layout (`srblock table`)."""

import json
import math
import statistics

import pytest

from srblock.cli import main
from srblock.results import collect_results, finished_results, summarize

from .helpers import fabricate_result


def test_table_mean_and_sample_std(tmp_path, capsys):
    for seed, acc in enumerate([76.0, 77.0, 78.0]):
        fabricate_result(
            tmp_path,
            "r18-se-sr",
            seed,
            acc,
            name="R18 + SE + SR",
            table="II",
            row=1,
            paper={"acc": 76.86, "std": 0.21, "oh": 1.09},
        )
    for seed, acc in enumerate([70.0, 71.0]):
        fabricate_result(tmp_path, "r18-se", seed, acc, name="R18 + SE", table="II", row=0)
    assert main(["table", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "R18 + SE " in lines[2] and "70.50 ± 0.71" in lines[2]
    assert (
        "R18 + SE + SR" in lines[3]
        and "77.00 ± 1.00" in lines[3]
        and "76.86 ± 0.21" in lines[3]
        and "1.09" in lines[3]
    )
    assert main(["table", str(tmp_path), "--format", "csv"]) == 0
    csv_lines = capsys.readouterr().out.splitlines()
    assert csv_lines[0].startswith("table,name,M,P,seeds,tested,test_acc_mean,test_acc_std")
    assert csv_lines[2].startswith("II,R18 + SE + SR,3,2,3,,77.0,1.0")  # (tested: empty, the test split)


def test_results_of_a_folder_without_finished_runs(tmp_path):
    assert finished_results(tmp_path) == [] and summarize([]) == []
    with pytest.raises(ValueError, match="no result.json under .*: no run there has finished yet"):
        collect_results(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist: give the --out folder"):
        finished_results(tmp_path / "nowhere")
    fabricate_result(tmp_path, "r18", 0, 70.0)
    (tmp_path / "r18" / "seed0" / "result.json").write_text("{")
    with pytest.raises(ValueError, match="result.json is not valid JSON"):
        collect_results(tmp_path)


def test_table_of_a_missing_folder_is_one_line(tmp_path, capsys):
    assert main(["table", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "does not exist" in err


PLAIN = [90.1, 90.5, 89.8, 90.3, 90.0]
GAINS = [0.2, 0.5, 0.1, 0.4, 0.3]


def _pair(root, gains, plain=PLAIN, sr_config=None):
    for seed, base in enumerate(plain):
        fabricate_result(root, "r18", seed, base, config={"model": "r18", "lr": 0.1, "sr_stage": None})
    for seed, (base, gain) in enumerate(zip(PLAIN, gains)):
        config = sr_config or {"model": "r18", "lr": 0.1, "sr_stage": 3, "sr_memory_blocks": 2}
        fabricate_result(root, "r18-sr", seed, base + gain, config=config)


def test_sr_against_plain_is_a_paired_t_test_over_the_shared_seeds(tmp_path, capsys):
    from scipy.stats import t as student

    _pair(tmp_path, GAINS)
    rows = summarize(collect_results(tmp_path))
    [sr] = [r for r in rows if r["M"] == 3]
    # by hand: differences 0.2 .. 0.5, mean 0.3, sample sd 0.1581, standard error sd / sqrt(5)
    n, mean = 5, 0.3
    se = statistics.stdev(GAINS) / math.sqrt(n)
    assert sr["vs_plain_mean"] == pytest.approx(mean)
    assert sr["vs_plain_ci_low"] == pytest.approx(mean - student.ppf(0.975, n - 1) * se)
    assert sr["vs_plain_ci_high"] == pytest.approx(mean + student.ppf(0.975, n - 1) * se)
    assert sr["vs_plain_p"] == pytest.approx(2 * student.sf(mean / se, n - 1))
    assert sr["vs_plain_seeds"] == 5 and sr["vs_plain"].endswith("5 seeds: better")
    assert not any(k.startswith("vs_plain") for k in next(r for r in rows if r["M"] is None))
    assert main(["table", str(tmp_path)]) == 0
    assert "vs_plain" in capsys.readouterr().out


def test_a_difference_inside_the_noise_reads_as_such_and_only_shared_seeds_pair(tmp_path):
    _pair(tmp_path, [0.5, -0.6, 0.3, -0.2, 0.1], plain=PLAIN[:3])
    [sr] = [r for r in summarize(collect_results(tmp_path)) if r["M"] == 3]
    assert sr["vs_plain_seeds"] == 3 and sr["vs_plain_mean"] == pytest.approx((0.5 - 0.6 + 0.3) / 3)
    assert (
        sr["vs_plain"].endswith("3 seeds: within noise")
        and sr["vs_plain_ci_low"] < 0 < sr["vs_plain_ci_high"]
    )


def test_sr_runs_of_another_recipe_have_no_plain_twin(tmp_path):
    _pair(tmp_path, GAINS, sr_config={"model": "r18", "lr": 0.05, "sr_stage": 3, "sr_memory_blocks": 2})
    assert not any(r.get("vs_plain") for r in summarize(collect_results(tmp_path)))


def test_no_spread_gives_no_interval_and_two_plain_twins_give_no_comparison(tmp_path):
    _pair(tmp_path / "same", [0.25] * 5)
    [sr] = [r for r in summarize(collect_results(tmp_path / "same")) if r["M"] == 3]
    assert (
        sr["vs_plain_p"] is None
        and sr["vs_plain"] == "+0.25 (5 seeds, the same difference on each: no interval)"
    )
    _pair(tmp_path / "twice", GAINS)
    for seed, base in enumerate(PLAIN):  # the plain configuration again, in another folder
        fabricate_result(
            tmp_path / "twice", "r18-copy", seed, base, config={"model": "r18", "lr": 0.1, "sr_stage": None}
        )
    assert not any(r.get("vs_plain") for r in summarize(collect_results(tmp_path / "twice")))


def test_small_statistics_keep_their_digits():
    from srblock.render import render

    table = render(
        [{"sr_mem_ratio": 0.0042, "test_acc": 91.404, "zero": 0.0}], ["sr_mem_ratio", "test_acc", "zero"]
    )
    assert [cell.strip() for cell in table.splitlines()[-1].split("|")[1:4]] == ["4.2e-03", "91.40", "0.00"]


def test_a_nan_or_a_text_in_a_result_is_left_out_of_the_statistics():
    from srblock.results import summarize

    results = [
        {"folder": "out/cfg/seed0", "seed": 0, "test_acc": 90.0, "sr_weight_entropy": float("nan")},
        {"folder": "out/cfg/seed1", "seed": 1, "test_acc": "n/a", "sr_weight_entropy": float("nan")},
        {"folder": "out/cfg/seed2", "seed": 2, "test_acc": 92.0},
    ]
    [row] = summarize(results)
    assert (
        row["test_acc_mean"] == 91.0 and row["seeds"] == 2 and "sr_weight_entropy_mean" not in row
    )  # (seeds: those the mean is over)


def test_a_seed_whose_score_is_not_a_number_is_named_beside_the_table(tmp_path, capsys):
    """A NaN test_acc left the mean over one seed of "seeds 2" without a word: the seeds column
    counts the seeds the mean is over, and the one left out is named."""
    fabricate_result(tmp_path, "cfg", 0, 90.0)
    folder = fabricate_result(tmp_path, "cfg", 1, 91.0)
    result = json.loads((folder / "result.json").read_text())
    (folder / "result.json").write_text(json.dumps({**result, "test_acc": float("nan")}))
    assert main(["table", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    row = captured.out.splitlines()[2]
    assert "90.00" in row and "|     1 |" in row and "|     2 |" not in row
    assert (
        captured.err.strip()
        == f"srblock table: {folder}'s test_acc is nan: left out of its configuration's mean"
    )


def test_a_table_of_runs_that_all_stopped_says_why_none_finished(tmp_path, capsys):
    """It said "no run there has finished yet", as if to wait for runs that never will."""
    folder = tmp_path / "cfg" / "seed0"
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text("dataset: fashion_mnist\n")
    (folder / "diverged.txt").write_text("training diverged in X at epoch 1: the training loss is nan\n")
    assert main(["table", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"no run under {tmp_path} finished: left out {folder}: training diverged in X" in err
    assert "\n" not in err

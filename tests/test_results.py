"""Results across seeds: mean ± sample std per configuration, the paper's layout (`srblock table`)."""

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
    assert csv_lines[0].startswith("table,name,M,P,seeds,test_acc_mean,test_acc_std")
    assert csv_lines[2].startswith("II,R18 + SE + SR,3,2,3,77.0,1.0")


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

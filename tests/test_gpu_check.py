"""benchmarks/gpu_check.py: the one command that measures everything on a GPU, here at toy size."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

GPU_CHECK = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
SECTIONS = [
    "block_profile",
    "paper_overhead_compiled",
    "paper_overhead",
    "step_profile",
    "r18_throughput",
    "cuda_tests",
    "step_throughput",
    "parallel",
    "deeplabv3",
    "syncs",
    "jpeg_decode",
    "startup",
    "end_to_end",
]


MEASURES = SECTIONS[:7]  # the block, the paper's settings, the step: one test
RUNS = SECTIONS[7:]  # whole runs, pipelines, start-up: another (two halves, for two test workers)


def run_tiny(tmp_path, sections: list[str], *extra: str) -> dict:
    command = [sys.executable, str(GPU_CHECK), "--out", str(tmp_path), "--tiny", "--only", *sections, *extra]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert list(report["sections"]) == sections
    assert {"gpu", "torch", "torchvision", "timm", "lightning"} <= set(report["machine"])
    assert "--tiny" in report["command"] and report["date"].startswith("20")
    return report


@pytest.mark.slow
def test_tiny_measures_the_block_the_papers_settings_and_the_step(tmp_path):
    report = run_tiny(tmp_path, MEASURES, "--block-variants", "reference", "lean")
    assert all(report["sections"][name]["status"] in ("ok", "skipped") for name in MEASURES), report
    throughput = report["sections"]["r18_throughput"]["result"]
    variants = [r["variant"].split(",")[0] for r in throughput["rows"]]
    assert variants == ["fast path"]  # tiny: on the CPU the fast-path variants are one
    assert all(r["train_images_per_s"] > 0 and r["200_epochs_min"] > 0 for r in throughput["rows"])
    paper = report["sections"]["paper_overhead"]["result"]["rows"]
    assert {r["setting"][:3] for r in paper} == {"(a)", "(b)", "(c)"} and all(r["sr_ms"] > 0 for r in paper)
    blocks = report["sections"]["block_profile"]["result"]["rows"]
    assert [(r["block"], r["setting"][:3]) for r in blocks][::2] == [
        ("reference", "(a)"),
        ("lean", "(a)"),
        ("reference", "(b)"),
        ("lean", "(b)"),
    ] or [(r["setting"][:3], r["block"]) for r in blocks][::2] == [
        ("(a)", "reference"),
        ("(a)", "lean"),
        ("(b)", "reference"),
        ("(b)", "lean"),
    ]
    # on the CPU the kernels are the dispatcher's ops: the lean block runs one fewer, forward
    ops = {(r["setting"][:3], r["block"], r["precision"]): r["forward_kernels"] for r in blocks}
    assert ops[("(a)", "lean", "float32")] == ops[("(a)", "reference", "float32")] - 1
    assert all(r["backward_kernels"] > 0 for r in blocks if r["setting"].startswith("(a)"))
    assert all(r["eager_us"] > 0 for r in blocks)
    steps = report["sections"]["step_profile"]["result"]["rows"]
    assert [r["compile"] for r in steps] == ["eager"] and steps[0]["images_per_s_profiled"] > 0
    compiled = report["sections"]["paper_overhead_compiled"]["result"]["rows"]
    assert [r["setting"][:3] for r in compiled] == ["(a)", "(b)"] and all(r["sr_ms"] > 0 for r in compiled)
    assert "## r18_throughput: ok" in (tmp_path / "gpu_check.md").read_text()


@pytest.mark.slow
def test_tiny_runs_the_rest_and_a_failing_section_does_not_stop_the_others(tmp_path):
    report = run_tiny(tmp_path, RUNS, "--fail", "deeplabv3")
    failed = report["sections"]["deeplabv3"]
    assert failed["status"] == "failed" and "forced failure (--fail deeplabv3)" in failed["error"]
    assert all(report["sections"][n]["status"] in ("ok", "skipped") for n in RUNS if n != "deeplabv3")
    assert all(r["images_per_s"] > 0 for r in report["sections"]["jpeg_decode"]["result"]["rows"])
    startup = report["sections"]["startup"]["result"]["rows"]
    assert [r["caches"] for r in startup] == ["eager"]  # on the CPU: no compile caches to warm
    assert all(r["first_step_s"] > 0 and "imports" in r["breakdown"] for r in startup)
    e2e = report["sections"]["end_to_end"]["result"]["rows"]
    assert [(r["seeds"], r["as"], r["epochs"]) for r in e2e] == [(2, "one stacked network", 1)]
    assert all(0 <= r["test_acc"] <= 100 and r["wall_min"] > 0 for r in e2e), e2e
    runs = report["sections"]["parallel"]["result"]["rows"]
    assert [(r["runs_at_once"], r["as"]) for r in runs] == [(2, "one stacked network")]
    assert all(r["images_per_s"] > 0 for r in runs)
    assert "## deeplabv3: failed" in (tmp_path / "gpu_check.md").read_text()


@pytest.mark.slow
def test_the_two_halves_are_every_section_in_order():
    done = subprocess.run(
        [sys.executable, str(GPU_CHECK), "--help"], capture_output=True, text=True, timeout=120
    )
    choices = done.stdout.split("--only {")[1].split("}")[0].split(",")
    assert choices == SECTIONS == MEASURES + RUNS

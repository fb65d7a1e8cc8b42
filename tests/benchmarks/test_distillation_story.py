"""benchmarks/distillation_story.py: the teacher/student table collected from run directories."""

import json
import os

import pytest

from benchmarks import distillation_story


def _run(directory, accuracies: dict[int, float], params: int) -> str:
    os.makedirs(os.path.join(directory, "metrics"))
    for step, value in accuracies.items():
        with open(os.path.join(directory, "metrics", f"step_{step}.json"), "w") as f:
            json.dump({"step": step, "val_accuracy": value}, f)
    with open(os.path.join(directory, "metrics.json"), "w") as f:
        json.dump({"step": max(accuracies), "student_params": params}, f)
    return str(directory)


def _tflite(directory) -> str:
    os.makedirs(directory)
    report = {"saved_model": "", "reference": {"accuracy": 0.8},
              "variants": [{"name": "tokens_float32", "size_bytes": 4_000_000, "accuracy": 0.8, "agreement": 1.0},
                           {"name": "tokens_dynamic_int8", "size_bytes": 1_000_000, "accuracy": 0.79,
                            "agreement": 0.99}]}
    with open(os.path.join(directory, "report.json"), "w") as f:
        json.dump(report, f)
    return str(directory)


def test_table_takes_best_and_last_per_seed_shares_and_latency(tmp_path):
    teacher = _run(tmp_path / "t", {1000: 0.90, 2000: 0.92}, 400)
    seeds = [_run(tmp_path / f"s{i}", {1000: a, 2000: b}, 100) for i, (a, b) in enumerate([(0.85, 0.88), (0.9, 0.87),
                                                                                             (0.86, 0.86)])]
    latency = {"summary": {"kid/tokens": {"float32": {"p50_ms": 2.0, "speedup_vs_reference": {"median": 2.5}},
                                          "dynamic_int8": {"p50_ms": 1.0, "speedup_vs_reference": {"median": 5.0}}}}}
    with open(tmp_path / "latency.json", "w") as f:
        json.dump(latency, f)
    out = tmp_path / "out"
    assert distillation_story.main(["--teacher=teacher", f"--group=teacher={teacher}",
                                    f"--group=student={','.join(seeds)}",
                                    f"--tflite=student={_tflite(tmp_path / 'tfl')}",
                                    f"--latency={tmp_path / 'latency.json'}",
                                    "--latency_name=student=kid", f"--results_dir={out}"]) == 0
    with open(out / "distillation.json") as f:
        rows = json.load(f)["rows"]
    student = rows["student"]
    assert [r["best"] for r in student["runs"]] == [0.88, 0.9, 0.86] and student["best_median"] == 0.88
    assert [r["final"] for r in student["runs"]] == [0.88, 0.87, 0.86] and student["final_median"] == 0.87
    assert student["best_share"] == pytest.approx(0.88 / 0.92) and student["params_share"] == 0.25
    assert student["latency"]["tokens_dynamic_int8"] == {"p50_ms": 1.0, "speedup_vs_teacher_float32": 5.0}
    page = (out / "distillation.md").read_text()
    assert "| student | 100 (25.00%) | 88.00% (88.00, 90.00, 86.00) |" in page and "1.00 MB" in page and "5.00x" in page
    assert os.path.getsize(out / "distillation.png") > 1000


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match="--teacher=nobody: not one of the --group names"):
        distillation_story.parse_args(["--teacher=nobody", f"--group=a={tmp_path}"])
    with pytest.raises(ValueError, match="expected NAME=VALUE"):
        distillation_story.parse_args(["--teacher=a", "--group=a"])
    with pytest.raises(FileNotFoundError, match="no evaluation"):
        distillation_story.run_accuracy(str(tmp_path))

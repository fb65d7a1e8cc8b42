"""run_all's command lines and the tokenizer benchmark's agreement measure."""

import sys

import pytest

from benchmarks import run_all
from benchmarks.tokenizer_throughput import agreement


def test_run_all_builds_one_command_per_benchmark(tmp_path):
    plan = run_all.commands(list(run_all.BENCHMARKS), quick=False, results_dir=str(tmp_path))
    assert [argv[2] for argv in plan] == [f"benchmarks.{name}" for name in run_all.BENCHMARKS]
    assert all(argv[0] == sys.executable and argv[-1] == f"--results_dir={tmp_path}" for argv in plan)
    quick = run_all.commands(["training_throughput"], quick=True, results_dir=str(tmp_path))
    assert "--sizes=tiny" in quick[0] and "--rounds=1" in quick[0]


def test_run_all_serving_only_with_a_model_dir_and_not_quick(tmp_path):
    with_serving = run_all.commands(["sst2_epoch"], quick=False, results_dir=str(tmp_path), serving_model_dir="m")
    assert with_serving[-1][2] == "benchmarks.serving" and "--model_dir=m" in with_serving[-1]
    assert len(run_all.commands(["sst2_epoch"], quick=True, results_dir=str(tmp_path), serving_model_dir="m")) == 1


def test_run_all_rejects_unknown_names(tmp_path):
    with pytest.raises(ValueError, match="unknown benchmark.*nope"):
        run_all.commands(["nope"], quick=False, results_dir=str(tmp_path))


def test_agreement_counts_identical_sentences():
    ours = {"token_ids": [[2, 5, 3], [2, 6, 3], [2, 7, 3]], "padding_mask": [3, 3, 3]}
    other = {"token_ids": [[2, 5, 3], [2, 9, 3], [2, 7, 3]], "padding_mask": [3, 3, 2]}
    result = agreement(ours, other)
    assert result["sentences"] == 3
    assert result["identical_token_ids"] == pytest.approx(2 / 3)
    assert result["identical_lengths"] == pytest.approx(2 / 3)

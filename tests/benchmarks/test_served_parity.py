"""benchmarks/served_parity.py: the served model's answers against the same SavedModel in process."""

import json
import os

import numpy as np
import pytest

from benchmarks import served_parity
from tests.conftest import SST2_SAMPLE


def test_compare_counts_differing_labels_and_accuracy():
    local = {"scores": np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]), "labels": np.array([b"0", b"1", b"0"])}
    served = [{"scores": [0.9, 0.1]}, {"scores": [0.2, 0.8]}, {"scores": [0.4, 0.6]}]
    result = served_parity.compare(served, local, ["0", "1", "1"], ["0", "1"])
    assert result["label_differences"] == 1 and result["label_agreement"] == pytest.approx(2 / 3)
    assert result["outputs"]["scores"]["max_abs_diff"] == pytest.approx(0.2)
    assert "labels" not in result["outputs"], "string outputs are compared through the scores"
    assert result["local_accuracy"] == pytest.approx(2 / 3) and result["served_accuracy"] == pytest.approx(1.0)


def test_a_served_export_answers_as_in_process(exported_version, tmp_path):
    base = os.path.dirname(exported_version)
    code = served_parity.main([f"--model_base_path={base}", f"--eval_data={SST2_SAMPLE / 'dev.tsv'}",
                               "--batch_size=4", f"--results_dir={tmp_path}"])
    with open(tmp_path / "served_parity.json", encoding="utf-8") as f:
        result = json.load(f)
    assert code == 0 and result["label_differences"] == 0 and result["count"] == 16 and result["requests"] == 4
    assert result["outputs"]["scores"]["max_abs_diff"] < 1e-5 and "label_ids" in result["outputs"]
    assert result["served_accuracy"] == result["local_accuracy"]


def test_a_base_path_without_versions_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model version"):
        served_parity.main([f"--model_base_path={tmp_path}", f"--results_dir={tmp_path}"])

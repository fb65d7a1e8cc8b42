"""Tests for llm_tf/data/schema.py."""

import pytest

from llm_tf.data import schema
from llm_tf.errors import DataError


def stats(labels, p50_tokens=10.0, task="classification"):
    total = sum(labels.values())
    return {
        "task": task,
        "count": total,
        "chars": {"min": 1, "max": 100, "p50": 50.0, "mean": 50.0},
        "tokens": {"min": 1, "max": 30, "p50": p50_tokens, "mean": p50_tokens},
        "labels": {k: {"count": v, "fraction": v / total} for k, v in labels.items()},
    }


TRAIN = stats({"neg": 50, "pos": 50})
SCHEMA = schema.infer_schema(TRAIN, ["text", "label"], ["neg", "pos"])


def test_schema_records_domain_and_bounds():
    assert SCHEMA["features"]["label"]["domain"] == ["neg", "pos"]
    assert SCHEMA["length"]["tokens"]["p50"] == 10.0
    assert SCHEMA["label_distribution"] == {"neg": 0.5, "pos": 0.5}


def test_conforming_split_has_no_anomalies():
    assert schema.validate(stats({"neg": 48, "pos": 52}), SCHEMA, features=["text", "label"]) == []


def test_unseen_label():
    found = schema.validate(stats({"neg": 50, "pos": 49, "meh": 1}), SCHEMA)
    assert [a.kind for a in found] == ["unseen_label"]
    assert "'meh' (1 rows)" in found[0].description


def test_label_drift_beyond_threshold():
    found = schema.validate(stats({"neg": 80, "pos": 20}), SCHEMA, schema.Thresholds(label_drift=0.2))
    assert [a.kind for a in found] == ["label_drift"]
    assert "0.300 > 0.2" in found[0].description
    assert schema.validate(stats({"neg": 80, "pos": 20}), SCHEMA, schema.Thresholds(label_drift=0.35)) == []


def test_length_drift():
    found = schema.validate(stats({"neg": 50, "pos": 50}, p50_tokens=25.0), SCHEMA)
    assert [a.kind for a in found] == ["length_drift"]
    assert "+150%" in found[0].description


def test_task_mismatch_and_missing_feature():
    assert [a.kind for a in schema.validate(stats({"O": 1}, task="token_classification"), SCHEMA)] == ["task_mismatch"]
    assert [a.kind for a in schema.validate(stats({"neg": 50, "pos": 50}), SCHEMA,
                                            features=["text"])] == ["missing_feature"]


def test_rejected_empty_text_is_an_anomaly():
    assert [a.kind for a in schema.rejected_anomalies({"empty text": 3, "blank line": 1})] == ["empty_text"]
    assert schema.rejected_anomalies({"wrong column count": 2}) == []


def test_foreign_schema_is_rejected():
    with pytest.raises(DataError, match="not an llm-tf schema"):
        schema.validate(TRAIN, {"fields": []})

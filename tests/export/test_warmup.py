"""Tests for llm_tf/export/warmup.py."""

import pytest
import tensorflow as tf

from llm_tf.export import warmup


def test_logs_round_trip_through_the_file(tmp_path):
    logs = warmup.warmup_logs("sst2", ["good", "bad"], with_classify=True)
    path = warmup.write_warmup(str(tmp_path), logs)
    assert path.endswith("assets.extra/tf_serving_warmup_requests")
    back = warmup.read_warmup(path)
    assert back == logs
    kinds = [log.WhichOneof("log_type") for log in back]
    assert kinds == ["predict_log", "predict_log", "classify_log"]
    single, batch = (tf.make_ndarray(log.predict_log.request.inputs["text"]) for log in back[:2])
    assert single.tolist() == [b"good"] and batch.tolist() == [b"good", b"bad"]
    assert back[0].predict_log.request.model_spec.name == "sst2"
    assert back[0].predict_log.request.model_spec.signature_name == "serving_default"
    examples = back[2].classify_log.request.input.example_list.examples
    assert [e.features.feature["text"].bytes_list.value[0] for e in examples] == [b"good", b"bad"]


def test_pairs_go_into_every_request():
    logs = warmup.warmup_logs("m", ["a", "b"], ["x", "y"], with_classify=True)
    assert tf.make_ndarray(logs[1].predict_log.request.inputs["text_pair"]).tolist() == [b"x", b"y"]
    assert (logs[2].classify_log.request.input.example_list.examples[1].features.feature["text_pair"]
            .bytes_list.value == [b"y"])


def test_bad_arguments():
    with pytest.raises(ValueError, match="at least one"):
        warmup.warmup_logs("m", [])
    with pytest.raises(ValueError, match="1 text pairs for 2 texts"):
        warmup.warmup_logs("m", ["a", "b"], ["x"])

"""Exporter's executor alone: the trained model's best checkpoint as version 1 of a model base
path, with warm-up requests naming the serving model; a bad model directory or checkpoint."""

import os

import pytest
import tensorflow as tf

from llm_tf.errors import DataError
from llm_tf.export.saved_model_eval import load_serving_signature
from llm_tf.export.warmup import WARMUP_FILE, read_warmup
from llm_tf.pipeline import artifacts
from llm_tf.pipeline.components import Exporter
from llm_tf.pipeline.components.exporter import version_dir
from tests.pipeline.components.harness import artifact, execute, ref

MODEL = ref(artifacts.MODEL, "Trainer", "model")


def test_the_best_checkpoint_becomes_version_1(exported, saved_model, trained_classifier):
    props = exported.props("saved_model")
    best = tf.train.latest_checkpoint(os.path.join(trained_classifier, "best"))     # what "best" names
    assert props["version"] == 1 and props["model_name"] == "sst2"
    assert props["checkpoint"] == os.path.basename(best) and props["step"] == int(best.rsplit("-", 1)[1])
    assert "serving_default" in props["signatures"] and props["signatures"] == sorted(props["signatures"])
    assert exported.result.metrics == {"step": props["step"], "signatures": len(props["signatures"])}
    version = version_dir(saved_model)
    assert version == os.path.join(exported.outputs["saved_model"], "1")
    assert os.listdir(exported.outputs["saved_model"]) == ["1"]
    _, serve = load_serving_signature(version)
    labels = serve(text=tf.constant(["a great movie", "dull"]))["labels"].numpy()
    assert {label.decode() for label in labels} <= {"0", "1"}


def test_the_warmup_requests_name_the_serving_model(saved_model):
    logs = read_warmup(os.path.join(version_dir(saved_model), WARMUP_FILE))
    predicts = [log.predict_log.request for log in logs if log.WhichOneof("log_type") == "predict_log"]
    assert [len(request.inputs["text"].string_val) for request in predicts] == [1, 2]   # batch 1, then 2 texts
    assert {log.predict_log.request.model_spec.name or log.classify_log.request.model_spec.name
            for log in logs} == {"sst2"}


def test_a_directory_that_is_not_a_training_run_is_named(tmp_path):
    with pytest.raises(DataError, match=r"/not_trained: not a training directory \(no params.yaml"):
        execute(Exporter(MODEL, "m"), tmp_path, {"model": artifact(artifacts.MODEL, tmp_path / "not_trained")})


def test_an_unknown_checkpoint_is_named(tmp_path, trained_classifier):
    with pytest.raises(DataError, match=r"ckpt-999: no such checkpoint \(expected best, latest or a checkpoint"):
        execute(Exporter(MODEL, "m", checkpoint="ckpt-999"), tmp_path,
                {"model": artifact(artifacts.MODEL, trained_classifier)})
    assert os.listdir(tmp_path / "out" / "saved_model") == []

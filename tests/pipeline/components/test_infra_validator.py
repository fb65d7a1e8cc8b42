"""InfraValidator's executor alone: the Exporter's SavedModel served by the embedded server and its
warm-up replayed (INFRA_BLESSED); one request without a warm-up file; a version that does not
load recorded as INFRA_NOT_BLESSED (not raised); a missing artifact directory raised. The replay
itself against a recording client."""

import json
import os
import shutil

import pytest
from tensorflow_serving.apis import prediction_log_pb2

from llm_tf.errors import ConfigError
from llm_tf.export.warmup import WARMUP_FILE, read_warmup, warmup_logs, write_warmup
from llm_tf.pipeline import artifacts
from llm_tf.pipeline.components import InfraValidator
from llm_tf.pipeline.components.infra_validator import INFRA_BLESSED_FILE, INFRA_NOT_BLESSED_FILE, replay_warmup
from tests.pipeline.components.harness import artifact, execute, ref

SAVED_MODEL = ref(artifacts.SAVED_MODEL, "Exporter", "saved_model")


def _verdict(run, marker: str) -> dict:
    with open(os.path.join(run.outputs["infra_blessing"], marker), encoding="utf-8") as f:
        return json.load(f)


def test_the_export_loads_and_answers_its_warmup_requests(tmp_path, saved_model):
    requests = len(read_warmup(os.path.join(saved_model.uri, "1", WARMUP_FILE)))
    assert requests == 3                                         # predict batch 1, predict batch 2, classify
    run = execute(InfraValidator(SAVED_MODEL, timeout_seconds=60), tmp_path, {"saved_model": saved_model})
    verdict = {"blessed": True, "requests": 3, "reason": "loaded and answered 3 requests"}
    assert run.props("infra_blessing") == verdict and _verdict(run, INFRA_BLESSED_FILE) == verdict
    assert os.listdir(run.outputs["infra_blessing"]) == [INFRA_BLESSED_FILE]
    assert run.result.metrics == {"requests": 3, "blessed": True}
    assert run.messages == ["INFRA BLESSED: loaded and answered 3 requests"]


def test_without_a_warmup_file_one_text_is_sent(tmp_path, saved_model):
    copy = shutil.copytree(saved_model.uri, tmp_path / "model")
    os.remove(os.path.join(copy, "1", WARMUP_FILE))
    run = execute(InfraValidator(SAVED_MODEL, timeout_seconds=60), tmp_path,
                  {"saved_model": artifact(artifacts.SAVED_MODEL, copy, **saved_model.properties)})
    assert run.props("infra_blessing") == {"blessed": True, "requests": 1, "reason": "loaded and answered 1 requests"}


def test_a_version_that_does_not_load_is_not_blessed(tmp_path):
    version = tmp_path / "broken" / "1"
    (version / "variables").mkdir(parents=True)
    (version / "saved_model.pb").write_bytes(b"\x08this is not a saved model\xff\xff\xff")
    run = execute(InfraValidator(SAVED_MODEL, timeout_seconds=30), tmp_path,
                  {"saved_model": artifact(artifacts.SAVED_MODEL, tmp_path / "broken", version=1, model_name="m")})
    props = run.props("infra_blessing")
    assert props["blessed"] is False and props["requests"] == 0
    assert props["reason"].startswith("ConfigError: model m: version 1 failed to load: ")
    assert _verdict(run, INFRA_NOT_BLESSED_FILE) == props
    assert os.listdir(run.outputs["infra_blessing"]) == [INFRA_NOT_BLESSED_FILE]
    assert run.result.metrics == {"requests": 0, "blessed": False}
    assert run.messages == ["INFRA NOT BLESSED: " + props["reason"]]


def test_a_missing_artifact_directory_fails_the_component_naming_it(tmp_path):
    with pytest.raises(ConfigError, match=r"/gone does not exist or is not a directory"):
        execute(InfraValidator(SAVED_MODEL), tmp_path,
                {"saved_model": artifact(artifacts.SAVED_MODEL, tmp_path / "gone")})
    assert os.listdir(tmp_path / "out" / "infra_blessing") == []


class RecordingClient:
    """Records the calls :func:`replay_warmup` makes."""

    def __init__(self):
        self.calls = []

    def predict(self, model, inputs, signature_name):
        self.calls.append(("predict", model, {k: v.tolist() for k, v in inputs.items()}, signature_name))

    def classify(self, model, examples, signature_name):
        self.calls.append(("classify", model, examples, signature_name))


def test_replay_sends_predict_and_classify_requests_and_skips_other_logs(tmp_path):
    logs = warmup_logs("m", ["good film", "bad"], with_classify=True)
    logs.insert(1, prediction_log_pb2.PredictionLog(regress_log=prediction_log_pb2.RegressLog()))
    logs[0].predict_log.request.model_spec.signature_name = ""          # the default signature
    path = write_warmup(str(tmp_path), logs)
    client = RecordingClient()
    assert replay_warmup(client, "served_name", path) == 3
    assert client.calls == [
        ("predict", "served_name", {"text": [b"good film"]}, "serving_default"),
        ("predict", "served_name", {"text": [b"good film", b"bad"]}, "serving_default"),
        ("classify", "served_name", [{"text": [b"good film"]}, {"text": [b"bad"]}], "classify"),
    ]

"""Tests for the serving benchmark's load generator (benchmarks/serving_load.py) and CPU meter.

The load generator runs against the session ``server`` (embedded, or the real binary with
``TF_SERVING_BIN``): its answers must be counted as results only when they check out.
"""

import json
import os
import time

import pytest

from benchmarks import serving_load
from tests.serving.conftest import MODEL_NAME

OUTPUTS = ["label_ids", "labels", "scores"]
SENTENCES = ["a fine movie", "dull", "an utterly charming and hilarious film"]


@pytest.fixture(scope="module")
def spec_path(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("load") / "spec.json")
    serving_load.write_spec(path, serving_load.make_spec(MODEL_NAME, SENTENCES, OUTPUTS))
    return path


def test_spec_holds_parseable_requests_and_bodies(spec_path):
    from tensorflow_serving.apis import predict_pb2

    with open(spec_path) as f:
        spec = json.load(f)
    request = predict_pb2.PredictRequest.FromString(serving_load.base64.b64decode(spec["grpc_requests"][2]))
    assert request.model_spec.name == MODEL_NAME
    assert list(request.inputs["text"].string_val) == [SENTENCES[2].encode()]
    assert json.loads(spec["rest_bodies"][1]) == {"instances": ["dull"]}
    # The load process parses responses without importing the TF Serving protos.
    assert serving_load._response_class(spec).DESCRIPTOR.full_name == "tensorflow.serving.PredictResponse"


def test_load_process_measures_grpc_and_rest_without_errors(server, spec_path):
    with serving_load.LoadProcess(spec_path) as load:
        grpc_result = load.run("grpc", server.target, concurrency=4, seconds=0.5)
        rest_result = load.run("rest", f"localhost:{server.rest_port}", concurrency=2, seconds=0.5)
    for result in (grpc_result, rest_result):
        assert result["errors"] == 0, result["first_error"]
        assert result["requests"] > 0 and result["qps"] > 0
        assert 0 < result["p50_ms"] <= result["p99_ms"]
        assert result["client_cpu_s"] >= 0


def test_wrong_answers_are_errors_not_results(server, tmp_path):
    path = str(tmp_path / "spec.json")
    serving_load.write_spec(path, serving_load.make_spec(MODEL_NAME, SENTENCES, ["scores", "not_an_output"]))
    result = serving_load.main_once(path, "grpc", server.target, concurrency=2, seconds=0.3)
    assert result["requests"] == 0 and result["errors"] > 0
    assert "expected ['not_an_output', 'scores']" in result["first_error"]


def test_bad_commands_are_reported(spec_path):
    with serving_load.LoadProcess(spec_path) as load:
        with pytest.raises(RuntimeError, match="target must be one of"):
            load.run("smtp", "localhost:1", concurrency=1, seconds=0.1)


def test_cpu_meter_splits_our_cpu_from_the_rest_of_the_machine():
    from benchmarks import serving

    with serving.CpuMeter([os.getpid()]) as meter:
        end = time.process_time() + 0.3
        while time.process_time() < end:  # burn 0.3 s of CPU in this process
            pass
    assert 0.25 <= meter.by_process["self"] < 5.0
    assert abs(meter.by_process[str(os.getpid())] - meter.by_process["self"]) < 0.05
    assert meter.others_cores >= 0.0

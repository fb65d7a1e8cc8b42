"""Tests for llm_tf/serving/rest_app.py and rest_server.py: TF Serving's REST API over an InferenceService.

Every route and error case runs through ``werkzeug.test.Client`` against a stub service that
returns canned protos; a few run through a real ``RestServer`` with ``requests``.
"""

import http.client
import socket
import threading
import time

import grpc
import numpy as np
import pytest
import requests
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    predict_pb2,
    regression_pb2,
)
from werkzeug.test import Client

from llm_tf.errors import ConfigError
from llm_tf.serving import tensors
from llm_tf.serving.config import MonitoringSpec
from llm_tf.serving.errors import ServingError, not_found
from llm_tf.serving.monitoring import ServingMetrics
from llm_tf.serving.rest_app import check_name, make_rest_app, model_spec_from_url
from llm_tf.serving.rest_server import RestServer

STRING, FLOAT, INT32 = types_pb2.DT_STRING, types_pb2.DT_FLOAT, types_pb2.DT_INT32


def _signature(inputs: dict, outputs: dict) -> meta_graph_pb2.SignatureDef:
    signature = meta_graph_pb2.SignatureDef(method_name="tensorflow/serving/predict")
    for name, dtype in inputs.items():
        signature.inputs[name].CopyFrom(meta_graph_pb2.TensorInfo(name=f"{name}:0", dtype=dtype))
    for name, dtype in outputs.items():
        signature.outputs[name].CopyFrom(meta_graph_pb2.TensorInfo(name=f"{name}:0", dtype=dtype))
    return signature


class StubService:
    """Answers model "m" (version 3) with canned protos; records every call it gets."""

    def __init__(self):
        self.calls: list[tuple[str, object]] = []
        self.fail_with: Exception | None = None
        self.signatures = {
            "serving_default": _signature({"text": STRING}, {"scores": FLOAT, "labels": STRING}),
            "multi": _signature({"a": FLOAT, "b": INT32}, {"sum": FLOAT}),
            "echo": _signature({"x_bytes": STRING}, {"x_bytes": STRING}),
        }

    def _enter(self, api: str, request) -> None:
        self.calls.append((api, request))
        if self.fail_with is not None:
            raise self.fail_with
        if request.model_spec.name != "m":
            raise not_found(f"Servable not found for request: Latest({request.model_spec.name})")

    def get_model_metadata(self, request):
        self._enter("metadata", request)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = "m"
        response.model_spec.version.value = 3
        signatures = get_model_metadata_pb2.SignatureDefMap()
        for key, value in self.signatures.items():
            signatures.signature_def[key].CopyFrom(value)
        response.metadata["signature_def"].Pack(signatures)
        return response

    def get_model_status(self, request):
        self._enter("status", request)
        response = get_model_status_pb2.GetModelStatusResponse()
        response.model_version_status.add(version=3, state=30)
        return response

    def predict(self, request):
        self._enter("predict", request)
        signature = request.model_spec.signature_name or "serving_default"
        inputs = {name: tensors.to_numpy(proto) for name, proto in request.inputs.items()}
        response = predict_pb2.PredictResponse()
        if signature == "serving_default":
            n = inputs["text"].shape[0]
            response.outputs["scores"].CopyFrom(tensors.to_proto(np.tile(np.float32([0.25, 0.75]), (n, 1))))
            response.outputs["labels"].CopyFrom(tensors.to_proto(np.array([b"pos"] * n, object)))
        elif signature == "multi":
            response.outputs["sum"].CopyFrom(tensors.to_proto((inputs["a"] + inputs["b"]).astype(np.float32)))
        else:
            response.outputs["x_bytes"].CopyFrom(tensors.to_proto(inputs["x_bytes"]))
        return response

    def _examples(self, request):
        return getattr(request.input, request.input.WhichOneof("kind")).examples

    def classify(self, request):
        self._enter("classify", request)
        response = classification_pb2.ClassificationResponse()
        for _ in self._examples(request):
            classes = response.result.classifications.add().classes
            classes.add(label="neg", score=0.25)
            classes.add(label="pos", score=0.75)
        return response

    def regress(self, request):
        self._enter("regress", request)
        response = regression_pb2.RegressionResponse()
        for _ in self._examples(request):
            response.result.regressions.add(value=0.5)
        return response


@pytest.fixture
def stub() -> StubService:
    return StubService()


@pytest.fixture
def client(stub) -> Client:
    return Client(make_rest_app(stub))


def _error(response) -> str:
    assert response.content_type == "application/json"
    body = response.get_json()
    assert list(body) == ["error"]
    return body["error"]


# ----------------------------------------------------------------------------- status / metadata


@pytest.mark.parametrize(
    "path, version, label",
    [("/v1/models/m", None, None), ("/v1/models/m/versions/3", 3, None),
     ("/v1/models/m/labels/stable", None, "stable")],
)
def test_status_routes_pass_the_model_spec(client, stub, path, version, label):
    response = client.get(path)
    assert response.status_code == 200
    assert response.get_json() == {
        "model_version_status": [
            {"version": "3", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        ]
    }
    api, request = stub.calls[-1]
    assert api == "status" and request.model_spec.name == "m"
    assert request.model_spec.WhichOneof("version_choice") == (
        "version" if version else "version_label" if label else None
    )
    if version:
        assert request.model_spec.version.value == version
    if label:
        assert request.model_spec.version_label == label


def test_metadata_route(client, stub):
    response = client.get("/v1/models/m/versions/3/metadata")
    assert response.status_code == 200
    body = response.get_json()
    assert body["model_spec"] == {"name": "m", "version": "3", "signature_name": ""}
    signatures = body["metadata"]["signature_def"]["signature_def"]
    assert signatures["multi"]["inputs"]["b"]["dtype"] == "DT_INT32"
    assert list(stub.calls[-1][1].metadata_field) == ["signature_def"]
    assert client.get("/v1/models/m/labels/canary/metadata").status_code == 200


def test_unknown_model_is_404_with_the_service_message(client):
    response = client.get("/v1/models/nope")
    assert response.status_code == 404
    assert _error(response) == "Servable not found for request: Latest(nope)"


def test_status_without_model_name(client):
    response = client.get("/v1/models")
    assert response.status_code == 400
    assert _error(response) == "Missing model name in request."


def test_version_beyond_int64(client, stub):
    response = client.get("/v1/models/m/versions/99999999999999999999")
    assert response.status_code == 400
    assert _error(response) == "Failed to convert version: 99999999999999999999 to numeric."
    assert stub.calls == []


# ----------------------------------------------------------------------------- predict


def test_predict_row_format(client, stub):
    response = client.post("/v1/models/m:predict", json={"instances": ["good", "bad"]})
    assert response.status_code == 200
    assert response.get_json() == {
        "predictions": [{"labels": "pos", "scores": [0.25, 0.75]}, {"labels": "pos", "scores": [0.25, 0.75]}]
    }
    request = stub.calls[-1][1]
    assert tensors.to_numpy(request.inputs["text"]).tolist() == [b"good", b"bad"]
    assert request.model_spec.signature_name == ""


def test_predict_columnar_format_with_signature_and_version(client, stub):
    doc = {"signature_name": "multi", "inputs": {"a": [[1.5, 2]], "b": [[1, 2]]}}
    response = client.post("/v1/models/m/versions/3:predict", json=doc)
    assert response.status_code == 200
    assert response.get_json() == {"outputs": [[2.5, 4.0]]}
    request = stub.calls[-1][1]
    assert request.model_spec.signature_name == "multi" and request.model_spec.version.value == 3
    assert tensors.to_numpy(request.inputs["b"]).dtype == np.int32  # dtype from the signature


def test_predict_b64_in_and_out(client):
    doc = {"signature_name": "echo", "instances": [{"b64": "AAE="}, {"b64": "/w=="}]}
    response = client.post("/v1/models/m/labels/stable:predict", json=doc)
    assert response.get_json() == {"predictions": [{"b64": "AAE="}, {"b64": "/w=="}]}


@pytest.mark.parametrize(
    "body, message",
    [
        ("", "JSON Parse error: The document is empty"),
        ("{not json", "JSON Parse error: Expecting property name enclosed in double quotes at offset: 1"),
        ('{"instances": [1], "inputs": [1]}', "Not formatted correctly expecting only one of 'inputs' or 'instances'"),
        ('{"instances": ["a", ["b"]]}', "Failed to process element: 1 of 'instances' list."),
        ('{"signature_name": "multi", "instances": [{"a": 1}]}', "keys must be equal to: a,b"),
        ('{"signature_name": "multi", "inputs": {"a": 1}}', "Missing named input: b in 'inputs' object."),
        ('{"signature_name": "nope", "inputs": 1}', 'Serving signature name: "nope" not found in signature def'),
        ('{"examples": []}', "Missing 'inputs' or 'instances' key"),
    ],
)
def test_predict_bad_requests_are_400(client, stub, body, message):
    response = client.post("/v1/models/m:predict", data=body, content_type="application/json")
    assert response.status_code == 400
    assert message in _error(response)
    assert all(api != "predict" for api, _ in stub.calls)  # rejected before predicting


@pytest.mark.parametrize(
    "error, status",
    [
        (ServingError(grpc.StatusCode.UNAVAILABLE, "no version loaded"), 503),
        (ServingError(grpc.StatusCode.RESOURCE_EXHAUSTED, "queue full"), 429),
        (ServingError(grpc.StatusCode.FAILED_PRECONDITION, "wrong signature"), 400),
        (ServingError(grpc.StatusCode.INTERNAL, "model failed"), 500),
        (ServingError(grpc.StatusCode.DEADLINE_EXCEEDED, "too slow"), 504),
        (ServingError(grpc.StatusCode.UNIMPLEMENTED, "no"), 501),
    ],
)
def test_service_errors_map_to_tf_serving_http_codes(client, stub, error, status):
    stub.fail_with = error
    response = client.post("/v1/models/m:predict", json={"instances": ["x"]})
    assert response.status_code == status
    assert _error(response) == error.message


def test_unexpected_exception_is_500(client, stub):
    stub.fail_with = RuntimeError("boom")
    response = client.get("/v1/models/m")
    assert response.status_code == 500
    assert _error(response) == "Internal error: RuntimeError: boom"


# ----------------------------------------------------------------------------- classify / regress


def test_classify_and_regress(client, stub):
    doc = {"signature_name": "classify", "context": {"lang": "en"}, "examples": [{"text": "good"}, {"text": "bad"}]}
    response = client.post("/v1/models/m:classify", json=doc)
    assert response.status_code == 200
    assert response.get_json() == {"results": [[["neg", 0.25], ["pos", 0.75]], [["neg", 0.25], ["pos", 0.75]]]}
    request = stub.calls[-1][1]
    assert request.model_spec.signature_name == "classify"
    assert len(request.input.example_list_with_context.examples) == 2

    response = client.post("/v1/models/m/versions/3:regress", json={"examples": [{"x": 1.5}]})
    assert response.get_json() == {"results": [0.5]}
    assert stub.calls[-1][1].input.example_list.examples[0].features.feature["x"].float_list.value == [1.5]


def test_classify_without_examples_is_400(client, stub):
    response = client.post("/v1/models/m:classify", json={"instances": [1]})
    assert response.status_code == 400
    assert "key 'examples' is expected and was not found" in _error(response)
    assert stub.calls == []


# ----------------------------------------------------------------------------- routing and names


@pytest.mark.parametrize(
    "path, status",
    [
        ("/v1/models/..:predict", 400),
        ("/v1/models/%2e%2e:predict", 400),
        ("/v1/models/a..b:predict", 400),
        ("/v1/models/bad$name:predict", 400),
        ("/v1/models/m/labels/..:predict", 400),
        ("/v1/models/m/labels/a%20b:predict", 400),
        ("/v1/models/a%2Fb:predict", 404),
        ("/v1/models/m/versions/x:predict", 404),
        ("/v1/models/m:explain", 400),
        ("/v2/models/m:predict", 404),
    ],
)
def test_bad_names_and_paths_never_reach_the_service(client, stub, path, status):
    response = client.post(path, json={"instances": ["x"]})
    assert response.status_code == status
    assert _error(response)
    assert stub.calls == []


def test_wrong_method_is_405(client):
    response = client.get("/v1/models/m:predict")
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert _error(response) == "Malformed request: GET /v1/models/m:predict"
    assert client.post("/v1/models/m/metadata").status_code == 405


def test_unknown_path_is_404(client):
    response = client.get("/healthz")
    assert response.status_code == 404
    assert _error(response) == "Malformed request: GET /healthz"


def test_check_name_and_model_spec_from_url():
    assert check_name("model name", "sst2-v1.2_x") == "sst2-v1.2_x"
    for bad in ["", ".", "..", "a/b", "a:b", "a..b"]:
        with pytest.raises(ServingError, match="Invalid model name"):
            check_name("model name", bad)
    spec = model_spec_from_url("m", version="7")
    assert spec.name == "m" and spec.version.value == 7
    assert model_spec_from_url("m", label="canary").version_label == "canary"


def test_body_larger_than_the_limit_is_413(stub):
    client = Client(make_rest_app(stub, max_body_bytes=100))
    response = client.post("/v1/models/m:predict", json={"instances": ["x" * 200]})
    assert response.status_code == 413
    assert "exceeds the limit of 100 bytes" in _error(response)
    assert stub.calls == []
    assert client.post("/v1/models/m:predict", json={"instances": ["x"]}).status_code == 200


# ----------------------------------------------------------------------------- monitoring


def test_monitoring_page_and_rejections_are_counted(stub):
    metrics = ServingMetrics()
    client = Client(make_rest_app(stub, metrics, MonitoringSpec(enable=True, path="/metrics")))
    assert client.post("/v1/models/m:predict", data="{").status_code == 400
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    text = response.get_data(as_text=True)
    assert ':tensorflow:serving:request_count{model_name="m",status="INVALID_ARGUMENT"} 1' in text


def test_monitoring_disabled_is_404(stub):
    metrics = ServingMetrics()
    client = Client(make_rest_app(stub, metrics, MonitoringSpec(enable=False, path="/metrics")))
    assert client.get("/metrics").status_code == 404
    assert Client(make_rest_app(stub, metrics)).get("/monitoring/prometheus/metrics").status_code == 404


# ----------------------------------------------------------------------------- RestServer


@pytest.fixture
def rest_server(stub):
    server = RestServer(make_rest_app(stub, max_body_bytes=1000), "localhost", 0)
    server.start()
    yield server
    server.stop()


def test_rest_server_serves_over_http(rest_server):
    base = f"http://localhost:{rest_server.port}"
    assert rest_server.port > 0
    response = requests.post(f"{base}/v1/models/m:predict", json={"instances": ["a"]}, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"predictions": [{"labels": "pos", "scores": [0.25, 0.75]}]}
    assert requests.get(f"{base}/v1/models/nope", timeout=10).status_code == 404


def test_rest_server_limits_chunked_bodies(rest_server):
    chunks = (b'{"instances": ["' + b"x" * 500, b"x" * 600 + b'"]}')
    response = requests.post(f"http://localhost:{rest_server.port}/v1/models/m:predict", data=iter(chunks), timeout=10)
    assert response.status_code == 413


def test_rest_server_refuses_a_huge_body(rest_server):
    response = requests.post(f"http://localhost:{rest_server.port}/v1/models/m:predict",
                             data=b"x" * 100_000, timeout=10)
    assert response.status_code == 413


def test_rest_server_keeps_connections_alive(rest_server):
    connection = http.client.HTTPConnection("127.0.0.1", rest_server.port, timeout=10)
    try:
        answers = []
        for _ in range(3):
            connection.request("POST", "/v1/models/m:predict", body=b'{"instances": ["a"]}',
                               headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            answers.append((response.status, response.getheader("Connection"), response.read()))
            if _ == 0:
                first_socket = connection.sock
            assert connection.sock is first_socket  # the same TCP connection every time
    finally:
        connection.close()
    assert [status for status, _, _ in answers] == [200, 200, 200]
    assert all(header is None or header.lower() != "close" for _, header, _ in answers)


def test_rest_server_serves_every_address_of_the_host_on_one_port(stub):
    server = RestServer(make_rest_app(stub), "localhost", 0)
    server.start()
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo("localhost", server.port, type=socket.SOCK_STREAM)}
        for address in addresses:
            url_host = f"[{address}]" if ":" in address else address
            assert requests.get(f"http://{url_host}:{server.port}/v1/models/m", timeout=10).status_code == 200
    finally:
        server.stop()


def test_rest_server_stop_finishes_the_request_in_flight_then_refuses(stub):
    started = threading.Event()
    answer = {}

    def slow_status(request):
        started.set()
        time.sleep(0.5)
        return StubService.get_model_status(stub, request)

    stub.get_model_status = slow_status
    server = RestServer(make_rest_app(stub), "127.0.0.1", 0)
    server.start()
    url = f"http://127.0.0.1:{server.port}/v1/models/m"

    def call():
        answer["response"] = requests.get(url, timeout=10)

    caller = threading.Thread(target=call)
    caller.start()
    assert started.wait(10)
    stop_began = time.monotonic()
    server.stop(grace=5)
    stopped_after = time.monotonic() - stop_began
    caller.join(10)
    assert answer["response"].status_code == 200
    assert answer["response"].json()["model_version_status"][0]["version"] == "3"
    assert 0.2 < stopped_after < 5  # waited for the request, not for the grace period
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=2)


def test_rest_server_stop_frees_the_port(stub):
    server = RestServer(make_rest_app(stub), "localhost", 0)
    server.start()
    port = server.port
    server.stop()
    server.stop()  # idempotent
    with socket.socket() as sock:
        sock.bind(("localhost", port))


def test_rest_server_port_in_use_is_a_config_error(stub):
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        sock.listen()
        with pytest.raises(ConfigError, match=f"localhost:{sock.getsockname()[1]}"):
            RestServer(make_rest_app(stub), "localhost", sock.getsockname()[1])


# ----------------------------------------------------------------------------- the real server
#
# These run against the session server of conftest.py (the embedded server, or the real
# tensorflow_model_server when TF_SERVING_BIN is set), so they only assert TF Serving's
# documented behaviour: REST answers equal gRPC answers for the same model and inputs.


def _grpc_predict(prediction_stub, inputs: dict, signature: str = "", version: int | None = None) -> dict:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "tiny"
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tensors.to_proto(value))
    response = prediction_stub.Predict(request, timeout=30)
    return {name: tensors.to_numpy(proto) for name, proto in response.outputs.items()}


def test_real_status_and_metadata(server):
    status = requests.get(f"{server.rest_url}/v1/models/tiny", timeout=30)
    assert status.status_code == 200
    versions = {s["version"]: s for s in status.json()["model_version_status"]}
    assert set(versions) == {"1", "2"}
    assert versions["2"]["state"] == "AVAILABLE"
    assert versions["2"]["status"] == {"error_code": "OK", "error_message": ""}

    metadata = requests.get(f"{server.rest_url}/v1/models/tiny/versions/1/metadata", timeout=30).json()
    assert metadata["model_spec"]["name"] == "tiny" and metadata["model_spec"]["version"] == "1"
    signatures = metadata["metadata"]["signature_def"]["signature_def"]
    assert signatures["classify"]["method_name"] == "tensorflow/serving/classify"
    assert signatures["serving_default"]["inputs"]["text"]["dtype"] == "DT_STRING"


@pytest.mark.parametrize("path, version", [("/v1/models/tiny", 2), ("/v1/models/tiny/labels/stable", 1),
                                           ("/v1/models/tiny/versions/1", 1)])
def test_real_predict_row_format_equals_grpc(server, prediction_stub, path, version):
    texts = ["short", "a rather long movie review", "ok ok"]
    response = requests.post(f"{server.rest_url}{path}:predict", json={"instances": texts}, timeout=30)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    expected = _grpc_predict(prediction_stub, {"text": np.array([t.encode() for t in texts], object)},
                             version=version)
    assert len(predictions) == len(texts)
    assert [p["labels"] for p in predictions] == [v.decode() for v in expected["labels"]]
    assert [p["label_ids"] for p in predictions] == expected["label_ids"].tolist()
    np.testing.assert_array_equal(np.array([p["scores"] for p in predictions], np.float32), expected["scores"])


def test_real_predict_columnar_with_named_int_inputs_equals_grpc(server, prediction_stub):
    ids = [[5, 6, 7, 0], [8, 9, 0, 0]]
    mask = [[1, 1, 1, 0], [1, 1, 0, 0]]
    doc = {"signature_name": "predict_tokens",
           "inputs": {"token_ids": ids, "segment_ids": [[0] * 4] * 2, "padding_mask": mask}}
    response = requests.post(f"{server.rest_url}/v1/models/tiny:predict", json=doc, timeout=30)
    assert response.status_code == 200, response.text
    outputs = response.json()["outputs"]
    expected = _grpc_predict(
        prediction_stub,
        {"token_ids": np.int32(ids), "segment_ids": np.zeros([2, 4], np.int32), "padding_mask": np.int32(mask)},
        signature="predict_tokens",
    )
    assert set(outputs) == set(expected)
    for name, value in expected.items():
        np.testing.assert_array_equal(np.array(outputs[name], value.dtype), value)

    rows = {"signature_name": "predict_tokens",
            "instances": [{"token_ids": i, "segment_ids": [0] * 4, "padding_mask": m} for i, m in zip(ids, mask)]}
    predictions = requests.post(f"{server.rest_url}/v1/models/tiny:predict", json=rows, timeout=30).json()
    assert [p["label_ids"] for p in predictions["predictions"]] == expected["label_ids"].tolist()


def test_real_classify_and_regress_equal_grpc(server, prediction_stub):
    texts = ["tiny", "a considerably longer text"]
    doc = {"signature_name": "classify", "examples": [{"text": t} for t in texts]}
    response = requests.post(f"{server.rest_url}/v1/models/tiny/versions/2:classify", json=doc, timeout=30)
    assert response.status_code == 200, response.text
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "tiny"
    request.model_spec.signature_name = "classify"
    request.model_spec.version.value = 2
    for text in texts:
        request.input.example_list.examples.add().features.feature["text"].bytes_list.value.append(text.encode())
    expected = prediction_stub.Classify(request, timeout=30).result.classifications
    results = response.json()["results"]
    assert [[label for label, _ in r] for r in results] == [[c.label for c in e.classes] for e in expected]
    assert [[np.float32(s) for _, s in r] for r in results] == [[np.float32(c.score) for c in e.classes]
                                                                for e in expected]

    doc["signature_name"] = "regress"
    response = requests.post(f"{server.rest_url}/v1/models/tiny/versions/2:regress", json=doc, timeout=30)
    assert response.status_code == 200, response.text
    regress = regression_pb2.RegressionRequest()
    regress.model_spec.CopyFrom(request.model_spec)
    regress.model_spec.signature_name = "regress"
    regress.input.CopyFrom(request.input)
    expected_values = [r.value for r in prediction_stub.Regress(regress, timeout=30).result.regressions]
    assert [np.float32(v) for v in response.json()["results"]] == [np.float32(v) for v in expected_values]
    assert response.json()["results"][0] > len(texts[0])  # version 2 has a bias


def test_real_errors(server):
    missing = requests.post(f"{server.rest_url}/v1/models/nope:predict", json={"instances": ["x"]}, timeout=30)
    assert missing.status_code == 404 and missing.json()["error"]
    mistyped = requests.post(f"{server.rest_url}/v1/models/tiny:predict", json={"instances": [1, 2]}, timeout=30)
    assert mistyped.status_code == 400
    assert "is not of expected type: string" in mistyped.json()["error"]
    unknown = requests.post(f"{server.rest_url}/v1/models/tiny:predict",
                            json={"signature_name": "nope", "instances": ["x"]}, timeout=30)
    assert unknown.status_code == 400
    assert unknown.json()["error"] == 'Serving signature name: "nope" not found in signature def'

"""Tests for llm_tf/serving/client.py against a small in-process fake of TF Serving's gRPC API."""

import concurrent.futures
import socket
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.example import example_pb2
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from llm_tf.errors import ConfigError, LlmTfError
from llm_tf.serving.client import RemoteError, ServerUnreachableError, ServingClient
from llm_tf.serving.client_values import decode_value, split_rows
from llm_tf.serving.errors import ServingError

LABELS = [b"negative", b"positive"]
TAGS = [b"O", b"B-PER", b"I-PER"]


def classify_texts(texts):
    """Canned classifier: 'bad' in the text is negative."""
    positive = np.array([0.1 if b"bad" in t else 0.9 for t in texts], dtype=np.float32)
    scores = np.stack([1 - positive, positive], axis=1)
    ids = scores.argmax(axis=1).astype(np.int64)
    return {"scores": scores, "label_ids": ids, "labels": np.array([LABELS[i] for i in ids], dtype=object)}


def tag_texts(texts):
    """Canned NER: capitalised words are B-PER; outputs padded like the exported signature."""
    words = [t.split() for t in texts]
    width = max([len(w) for w in words] + [0])
    out_words = np.full((len(texts), width), b"", dtype=object)
    tags = np.full((len(texts), width), b"", dtype=object)
    ids = np.full((len(texts), width), -1, dtype=np.int64)
    scores = np.zeros((len(texts), width), dtype=np.float32)
    for i, row in enumerate(words):
        for j, word in enumerate(row):
            tag = 1 if word[:1].isupper() else 0
            out_words[i, j], tags[i, j], ids[i, j], scores[i, j] = word, TAGS[tag], tag, 0.75
    return {"words": out_words, "tags": tags, "tag_ids": ids, "scores": scores}


class FakeServing(prediction_service_pb2_grpc.PredictionServiceServicer, model_service_pb2_grpc.ModelServiceServicer):
    """TF Serving look-alike: models 'sst2' (classifier) and 'conll' (NER), with failure knobs.

    Attributes:
        requests: Every request received, in order.
        unavailable_first: Answer this many next calls with UNAVAILABLE.
        delay: Sleep this long before answering Predict.
        available_after: GetModelStatus says LOADING for this many calls, then AVAILABLE.
        max_batch_size: Refuse Predict requests with more texts, as TF Serving's batching does.
    """

    def __init__(self):
        self.requests = []
        self.unavailable_first = 0
        self.delay = 0.0
        self.available_after = 0
        self.max_batch_size = 1000
        self.lock = threading.Lock()

    def _enter(self, request, context):
        with self.lock:
            self.requests.append(request)
            if self.unavailable_first > 0:
                self.unavailable_first -= 1
                context.abort(grpc.StatusCode.UNAVAILABLE, "server is warming up")
        name = request.model_spec.name
        if name not in ("sst2", "conll"):
            context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({name})")

    def Predict(self, request, context):
        self._enter(request, context)
        if self.delay:
            time.sleep(self.delay)
        if "text" not in request.inputs:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "input tensor alias not found in signature: tokens")
        texts = tf.make_ndarray(request.inputs["text"]).tolist()
        if len(texts) > self.max_batch_size:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"Task size {len(texts)} is larger than maximum input batch size {self.max_batch_size}")
        outputs = (classify_texts if request.model_spec.name == "sst2" else tag_texts)(texts)
        response = predict_pb2.PredictResponse()
        response.model_spec.CopyFrom(request.model_spec)
        for key, value in outputs.items():
            if not request.output_filter or key in request.output_filter:
                response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
        return response

    def Classify(self, request, context):
        self._enter(request, context)
        response = classification_pb2.ClassificationResponse()
        for example in request.input.example_list.examples:
            text = example.features.feature["text"].bytes_list.value[0]
            scores = classify_texts([text])["scores"][0]
            classification = response.result.classifications.add()
            for label, score in zip(LABELS, scores):
                classification.classes.add(label=label.decode(), score=float(score))
        return response

    def GetModelMetadata(self, request, context):
        self._enter(request, context)
        signatures = get_model_metadata_pb2.SignatureDefMap()
        signature = signatures.signature_def["serving_default"]
        signature.method_name = "tensorflow/serving/predict"
        signature.inputs["text"].dtype = types_pb2.DT_STRING
        signature.inputs["text"].tensor_shape.dim.add(size=-1)
        signature.outputs["scores"].dtype = types_pb2.DT_FLOAT
        signature.outputs["scores"].tensor_shape.dim.add(size=-1)
        signature.outputs["scores"].tensor_shape.dim.add(size=2)
        signatures.signature_def["__saved_model_init_op"].outputs["__saved_model_init_op"].name = "NoOp"
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = 3
        response.metadata["signature_def"].Pack(signatures)
        return response

    def GetModelStatus(self, request, context):
        self._enter(request, context)
        response = get_model_status_pb2.GetModelStatusResponse()
        status = response.model_version_status.add(version=3)
        with self.lock:
            loading = self.available_after > 0
            self.available_after -= 1
        states = get_model_status_pb2.ModelVersionStatus
        status.state = states.LOADING if loading else states.AVAILABLE
        return response


class FakeServer:
    """A gRPC server on a free localhost port running :class:`FakeServing`."""

    def __init__(self):
        self.servicer = FakeServing()
        self.server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=4))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(self.servicer, self.server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(self.servicer, self.server)
        self.port = self.server.add_insecure_port("localhost:0")
        self.target = f"localhost:{self.port}"
        self.server.start()

    def stop(self):
        self.server.stop(grace=None)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()


@pytest.fixture
def fake():
    server = FakeServer()
    yield server
    server.stop()


@pytest.fixture
def client(fake):
    with ServingClient(fake.target, timeout=5.0, retries=3, backoff_seconds=0.01) as c:
        yield c


def free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_predict_texts_splits_into_requests_and_decodes_classification(fake, client):
    texts = ["a great film", "a bad film", "fine", "bad bad", "ok"]
    results = client.predict_texts("sst2", texts, batch_size=2)
    sizes = [len(tf.make_ndarray(r.inputs["text"])) for r in fake.servicer.requests]
    assert sizes == [2, 2, 1]
    assert [r["labels"] for r in results] == ["positive", "negative", "positive", "negative", "positive"]
    assert results[1]["label_ids"] == 0 and isinstance(results[1]["label_ids"], int)
    assert results[0]["scores"] == pytest.approx([0.1, 0.9])
    assert all(r.model_spec.signature_name == "serving_default" for r in fake.servicer.requests)


def test_predict_texts_shrinks_requests_to_the_servers_max_batch_size(fake, client):
    fake.servicer.max_batch_size = 2
    results = client.predict_texts("sst2", ["a", "b bad", "c", "d", "e"], batch_size=4)
    assert [r["labels"] for r in results] == ["positive", "negative", "positive", "positive", "positive"]
    sizes = [len(r.inputs["text"].string_val) for r in fake.servicer.requests]
    assert sizes == [4, 2, 2, 1]
    client.predict_texts("sst2", ["f", "g", "h"], batch_size=4)  # the limit is remembered
    assert [len(r.inputs["text"].string_val) for r in fake.servicer.requests[4:]] == [2, 1]


def test_predict_texts_drops_the_padding_of_ner_outputs(client):
    results = client.predict_texts("conll", ["John lives here", "Hi", "Mary Ann Smith walks today"])
    assert results[1] == {"words": ["Hi"], "tags": ["B-PER"], "tag_ids": [1], "scores": [0.75]}
    assert results[0]["words"] == ["John", "lives", "here"]
    assert results[0]["tags"] == ["B-PER", "O", "O"]
    assert len(results[2]["tag_ids"]) == 5


def test_predict_sends_version_label_signature_filter_and_typed_inputs(fake, client):
    out = client.predict("sst2", {"text": ["x"]}, version=7, output_filter=["labels"])
    assert list(out) == ["labels"] and out["labels"].tolist() == [b"positive"]
    client.predict("sst2", {"text": np.array([b"y"], dtype=object)}, version_label="canary", signature_name="other")
    first, second = fake.servicer.requests
    assert first.model_spec.version.value == 7 and not first.model_spec.version_label
    assert second.model_spec.version_label == "canary" and not second.model_spec.HasField("version")
    assert second.model_spec.signature_name == "other"
    assert list(first.output_filter) == ["labels"]
    assert first.inputs["text"].dtype == types_pb2.DT_STRING


def test_numeric_inputs_keep_their_dtype(fake, client):
    with pytest.raises(RemoteError):
        client.predict("sst2", {"token_ids": np.zeros((2, 3), dtype=np.int32)}, signature_name="predict_tokens")
    sent = fake.servicer.requests[0].inputs["token_ids"]
    assert sent.dtype == types_pb2.DT_INT32
    assert [d.size for d in sent.tensor_shape.dim] == [2, 3]


def test_version_and_version_label_are_exclusive_and_checked_before_sending(fake, client):
    with pytest.raises(ConfigError, match="not both"):
        client.predict("sst2", {"text": ["x"]}, version=1, version_label="stable")
    assert fake.servicer.requests == []


def test_unavailable_is_retried_with_backoff_until_it_succeeds(fake, client):
    fake.servicer.unavailable_first = 2
    results = client.predict_texts("sst2", ["good"])
    assert results[0]["labels"] == "positive"
    assert len(fake.servicer.requests) == 3


def test_retries_are_bounded_and_the_error_carries_the_servers_code_and_message(fake):
    fake.servicer.unavailable_first = 5
    with ServingClient(fake.target, retries=1, backoff_seconds=0.01) as c:
        with pytest.raises(RemoteError) as e:
            c.predict_texts("sst2", ["good"])
    assert len(fake.servicer.requests) == 2
    assert not isinstance(e.value, ServerUnreachableError)
    assert e.value.code == grpc.StatusCode.UNAVAILABLE
    assert str(e.value) == "model 'sst2': UNAVAILABLE: server is warming up"


def test_other_errors_are_not_retried(fake, client):
    with pytest.raises(RemoteError) as e:
        client.predict_texts("nope", ["x"])
    assert len(fake.servicer.requests) == 1
    assert isinstance(e.value, ServingError) and isinstance(e.value, LlmTfError)
    assert e.value.code == grpc.StatusCode.NOT_FOUND
    assert e.value.message == "Servable not found for request: Latest(nope)"
    assert str(e.value) == "model 'nope': NOT_FOUND: Servable not found for request: Latest(nope)"


def test_every_call_has_a_deadline(fake):
    fake.servicer.delay = 2.0
    with ServingClient(fake.target, timeout=0.3) as c:
        start = time.monotonic()
        with pytest.raises(RemoteError) as e:
            c.predict_texts("sst2", ["slow"])
    assert e.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - start < 1.5


def test_an_unreachable_server_is_one_clear_error():
    target = f"localhost:{free_port()}"
    with ServingClient(target, retries=2, backoff_seconds=0.01, timeout=3) as c:
        with pytest.raises(ServerUnreachableError) as e:
            c.predict_texts("sst2", ["x"])
    assert e.value.code == grpc.StatusCode.UNAVAILABLE
    assert str(e.value).startswith(f"cannot reach {target}: ")
    assert "\n" not in str(e.value)


def test_classify_builds_examples_and_returns_label_score_pairs(fake, client):
    results = client.classify("sst2", [{"text": "a bad movie"}, {"text": "lovely", "id": 3, "w": [0.5, 1.0]}])
    assert [label for label, _ in results[0]] == ["negative", "positive"]
    assert results[0][0][1] == pytest.approx(0.9)
    request = fake.servicer.requests[0]
    assert request.model_spec.signature_name == "classify"
    example = request.input.example_list.examples[1]
    assert isinstance(example, example_pb2.Example)
    assert list(example.features.feature["id"].int64_list.value) == [3]
    assert list(example.features.feature["w"].float_list.value) == [0.5, 1.0]
    with pytest.raises(ConfigError, match="feature 'bad'"):
        client.classify("sst2", [{"bad": [1, "x"]}])


def test_metadata_decodes_signatures(client):
    metadata = client.metadata("sst2")
    assert metadata["name"] == "sst2" and metadata["version"] == 3
    assert list(metadata["signatures"]) == ["serving_default"]
    signature = metadata["signatures"]["serving_default"]
    assert signature["method_name"] == "tensorflow/serving/predict"
    assert signature["inputs"] == {"text": {"dtype": "DT_STRING", "shape": [-1]}}
    assert signature["outputs"]["scores"] == {"dtype": "DT_FLOAT", "shape": [-1, 2]}


def test_status_and_wait_until_available(fake, client):
    fake.servicer.available_after = 2
    assert client.status("sst2") == [{"version": 3, "state": "LOADING", "error_code": "OK", "error_message": ""}]
    fake.servicer.available_after = 2
    fake.servicer.unavailable_first = 1
    assert client.wait_until_available("sst2", timeout=5, poll_seconds=0.01) == 3
    fake.servicer.available_after = 1000
    with pytest.raises(RemoteError) as e:
        client.wait_until_available("sst2", timeout=0.2, poll_seconds=0.01)
    assert e.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "version 3 LOADING" in e.value.message


def test_decoding_helpers():
    assert decode_value(np.array([b"a", b"\xc3\xa9"], dtype=object)) == ["a", "é"]
    assert decode_value(np.float32(0.5)) == 0.5 and isinstance(decode_value(np.int64(2)), int)
    rows = split_rows({"x": np.array([[1, 2], [3, 4]]), "s": np.array([b"p", b"q"], dtype=object)}, 2)
    assert rows == [{"x": [1, 2], "s": "p"}, {"x": [3, 4], "s": "q"}]
    with pytest.raises(ServingError, match="expected 3 rows"):
        split_rows({"x": np.zeros(2)}, 3)

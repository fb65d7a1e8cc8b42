"""Tests for llm_tf.serving.grpc_server: every call and error over the official stubs.

They run against the ``server`` fixture: the embedded server, or tensorflow_model_server when
TF_SERVING_BIN is set (messages are only checked where they are TF Serving's own).
"""

import socket

import grpc
import pytest
import tensorflow as tf
from tensorflow.core.example import example_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    predict_pb2,
    regression_pb2,
)

from llm_tf.errors import ConfigError
from llm_tf.serving.grpc_server import make_grpc_server
from tests.serving.conftest import example_bytes

AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE


def predict_request(name="tiny", texts=(b"hello", b"a considerably longer text"), **spec):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    for key, value in spec.items():
        if key == "version":
            request.model_spec.version.value = value
        else:
            setattr(request.model_spec, key, value)
    request.inputs["text"].CopyFrom(tf.make_tensor_proto(list(texts), dtype=tf.string))
    return request


def expect_error(call, request, code, message=None):
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=30)
    assert info.value.code() == code, info.value.details()
    if message is not None:
        assert message in info.value.details()
    return info.value.details()


def test_predict_latest_specific_and_label(prediction_stub):
    response = prediction_stub.Predict(predict_request(), timeout=30)
    assert response.model_spec.name == "tiny" and response.model_spec.version.value == 2
    assert response.model_spec.signature_name == "serving_default"
    assert set(response.outputs) == {"scores", "label_ids", "labels"}
    assert tf.make_ndarray(response.outputs["scores"]).shape == (2, 2)
    v1 = prediction_stub.Predict(predict_request(version=1), timeout=30)
    assert v1.model_spec.version.value == 1
    assert tf.make_ndarray(v1.outputs["labels"]).tolist() == [b"negative", b"positive"]
    stable = prediction_stub.Predict(predict_request(version_label="stable"), timeout=30)
    assert stable.model_spec.version.value == 1
    assert stable.outputs["scores"] == v1.outputs["scores"]
    assert prediction_stub.Predict(predict_request(version_label="canary"), timeout=30).model_spec.version.value == 2
    assert prediction_stub.Predict(predict_request("tiny_latest"), timeout=30).model_spec.version.value == 2


def test_predict_output_filter_and_token_signature(prediction_stub):
    request = predict_request()
    request.output_filter.append("label_ids")
    assert list(prediction_stub.Predict(request, timeout=30).outputs) == ["label_ids"]
    tokens = predict_pb2.PredictRequest()
    tokens.model_spec.name = "tiny"
    tokens.model_spec.signature_name = "predict_tokens"
    for key in ("token_ids", "segment_ids", "padding_mask"):
        tokens.inputs[key].CopyFrom(tf.make_tensor_proto([[1, 1, 0]], dtype=tf.int32))
    response = prediction_stub.Predict(tokens, timeout=30)
    assert set(response.outputs) == {"logits", "scores", "label_ids"}


def test_predict_errors(prediction_stub):
    not_found = grpc.StatusCode.NOT_FOUND
    expect_error(prediction_stub.Predict, predict_request("nope"), not_found,
                 "Servable not found for request: Latest(nope)")
    expect_error(prediction_stub.Predict, predict_request(version=9), not_found,
                 "Servable not found for request: Specific(tiny, 9)")
    expect_error(prediction_stub.Predict, predict_request(version_label="beta"), grpc.StatusCode.INVALID_ARGUMENT,
                 "Unrecognized servable version label: beta")
    expect_error(prediction_stub.Predict, predict_request(signature_name="nope"), grpc.StatusCode.FAILED_PRECONDITION,
                 'Serving signature key "nope" not found.')
    wrong_key = predict_request()
    wrong_key.inputs["txt"].CopyFrom(wrong_key.inputs.pop("text"))
    expect_error(prediction_stub.Predict, wrong_key, grpc.StatusCode.INVALID_ARGUMENT, "Missing but required: {text}")
    wrong_dtype = predict_request()
    wrong_dtype.inputs["text"].CopyFrom(tf.make_tensor_proto([1.0, 2.0]))
    expect_error(prediction_stub.Predict, wrong_dtype, grpc.StatusCode.INVALID_ARGUMENT)
    wrong_shape = predict_request()
    wrong_shape.inputs["text"].CopyFrom(tf.make_tensor_proto([[b"a", b"b"]]))
    expect_error(prediction_stub.Predict, wrong_shape, grpc.StatusCode.INVALID_ARGUMENT)
    bad_filter = predict_request()
    bad_filter.output_filter.append("logits")
    expect_error(prediction_stub.Predict, bad_filter, grpc.StatusCode.INVALID_ARGUMENT,
                 "output tensor alias not found in signature: logits")


def classify_request(signature="classify", texts=("short", "a considerably longer text")):
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "tiny"
    request.model_spec.signature_name = signature
    for text in texts:
        request.input.example_list.examples.add().CopyFrom(example_pb2.Example.FromString(example_bytes(text)))
    return request


def test_classify(prediction_stub):
    response = prediction_stub.Classify(classify_request(), timeout=30)
    assert response.model_spec.version.value == 2
    labels = [[c.label for c in cl.classes] for cl in response.result.classifications]
    assert labels == [["negative", "positive"], ["negative", "positive"]]
    scores = [[c.score for c in cl.classes] for cl in response.result.classifications]
    assert all(abs(sum(row) - 1.0) < 1e-5 for row in scores)


def test_classify_errors(prediction_stub):
    expect_error(prediction_stub.Classify, classify_request("serving_default"), grpc.StatusCode.INVALID_ARGUMENT,
                 "Expected classification signature method_name to be tensorflow/serving/classify")
    expect_error(prediction_stub.Classify, classify_request("nope"), grpc.StatusCode.INVALID_ARGUMENT,
                 "No signature was found with the name: nope")
    expect_error(prediction_stub.Classify, classify_request(texts=()), grpc.StatusCode.INVALID_ARGUMENT,
                 "Input is empty.")


def test_regress_and_multi_inference(prediction_stub):
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = "tiny"
    request.model_spec.signature_name = "regress"
    request.model_spec.version.value = 1
    request.input.CopyFrom(classify_request(texts=("abcd",)).input)
    assert [r.value for r in prediction_stub.Regress(request, timeout=30).result.regressions] == [4.0]
    request.model_spec.signature_name = "classify"
    expect_error(prediction_stub.Regress, request, grpc.StatusCode.INVALID_ARGUMENT,
                 "Expected regression signature method_name to be tensorflow/serving/regress")
    multi = inference_pb2.MultiInferenceRequest()
    multi.input.CopyFrom(request.input)
    for signature, method in (("classify", "tensorflow/serving/classify"), ("regress", "tensorflow/serving/regress")):
        task = multi.tasks.add(method_name=method)
        task.model_spec.name = "tiny"
        task.model_spec.signature_name = signature
    results = prediction_stub.MultiInference(multi, timeout=30).results
    assert results[0].WhichOneof("result") == "classification_result"
    assert results[1].regression_result.regressions[0].value == 6.0
    multi.tasks[1].model_spec.name = "tiny_latest"
    expect_error(prediction_stub.MultiInference, multi, grpc.StatusCode.INVALID_ARGUMENT,
                 "All ModelSpecs in a MultiInferenceRequest must access the same model name.")


def test_metadata(prediction_stub):
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "tiny"
    request.model_spec.version.value = 1
    request.metadata_field.append("signature_def")
    response = prediction_stub.GetModelMetadata(request, timeout=30)
    assert response.model_spec.version.value == 1
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    assert {"serving_default", "classify", "predict_tokens", "regress"} <= set(signatures.signature_def)
    request.metadata_field[:] = ["graph"]
    expect_error(prediction_stub.GetModelMetadata, request, grpc.StatusCode.INVALID_ARGUMENT,
                 "Metadata field graph is not supported")
    request.metadata_field[:] = ["signature_def"]
    request.model_spec.name = "nope"
    expect_error(prediction_stub.GetModelMetadata, request, grpc.StatusCode.NOT_FOUND)


def test_model_status(model_stub):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "tiny"
    response = model_stub.GetModelStatus(request, timeout=30)
    assert sorted((s.version, s.state) for s in response.model_version_status) == [(1, AVAILABLE), (2, AVAILABLE)]
    request.model_spec.version.value = 1
    assert [s.version for s in model_stub.GetModelStatus(request, timeout=30).model_version_status] == [1]
    request.model_spec.version.value = 5
    expect_error(model_stub.GetModelStatus, request, grpc.StatusCode.NOT_FOUND,
                 "Could not find version 5 of model tiny")
    request.model_spec.name = "nope"
    request.model_spec.ClearField("version")
    expect_error(model_stub.GetModelStatus, request, grpc.StatusCode.NOT_FOUND,
                 "Could not find any versions of model nope")


def test_port_in_use_is_a_config_error():
    with socket.socket() as taken:
        taken.bind(("localhost", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"gRPC: cannot bind localhost:{port}: port in use"):
            make_grpc_server(None, "localhost", port)

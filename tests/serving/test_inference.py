"""Tests for llm_tf.serving.inference: the service on the official protos, without gRPC."""

import grpc
import pytest
import tensorflow as tf
from tensorflow.core.example import example_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    predict_pb2,
    regression_pb2,
)

from llm_tf.serving import errors
from llm_tf.serving.config import ModelSpec
from llm_tf.serving.inference import InferenceService
from llm_tf.serving.model_manager import ModelManager
from llm_tf.serving.monitoring import ServingMetrics
from llm_tf.serving.servable_calls import serialized_examples
from tests.serving.conftest import copy_version, example_bytes


@pytest.fixture(scope="module")
def service(model_store, tmp_path_factory):
    base = str(tmp_path_factory.mktemp("inference") / "tiny")
    copy_version(model_store, 1, base)
    copy_version(model_store, 2, base)
    manager = ModelManager([ModelSpec("tiny", base, version_policy="all", version_labels={"stable": 1})],
                           poll_seconds=0)
    assert manager.wait_until_ready(60)
    yield InferenceService(manager, ServingMetrics())
    manager.close()


def _examples(*texts):
    return [example_pb2.Example.FromString(example_bytes(t)) for t in texts]


def _raises(code, match, fn, *args):
    with pytest.raises(errors.ServingError, match=match) as info:
        fn(*args)
    assert info.value.code == code
    return info.value


def test_predict_latest_version_label_and_signature(service):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "tiny"
    request.inputs["text"].CopyFrom(tf.make_tensor_proto([b"hi", b"a much longer text"]))
    response = service.predict(request)
    assert response.model_spec.version.value == 2 and response.model_spec.signature_name == "serving_default"
    assert tf.make_ndarray(response.outputs["label_ids"]).tolist() == [1, 1]  # version 2 has bias 2
    request.model_spec.version_label = "stable"
    response = service.predict(request)
    assert response.model_spec.version.value == 1
    assert tf.make_ndarray(response.outputs["label_ids"]).tolist() == [0, 1]
    request.output_filter.append("labels")
    assert list(service.predict(request).outputs) == ["labels"]


def test_predict_errors(service):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "tiny"
    request.model_spec.signature_name = "nope"
    request.inputs["text"].CopyFrom(tf.make_tensor_proto([b"x"]))
    _raises(grpc.StatusCode.FAILED_PRECONDITION, 'Serving signature key "nope" not found', service.predict, request)
    request.model_spec.signature_name = ""
    request.model_spec.version.value = 9
    _raises(grpc.StatusCode.NOT_FOUND, r"Specific\(tiny, 9\)", service.predict, request)


def test_classify_example_list_and_context(service):
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "tiny"
    request.model_spec.signature_name = "classify"
    request.model_spec.version.value = 1
    request.input.example_list.examples.extend(_examples("short", "a considerably longer text"))
    result = service.classify(request).result
    assert [[c.label for c in cl.classes] for cl in result.classifications] == [["negative", "positive"]] * 2
    assert result.classifications[0].classes[0].score > 0.5 > result.classifications[1].classes[0].score
    request.ClearField("input")
    with_context = request.input.example_list_with_context
    with_context.context.CopyFrom(_examples("context text that is long")[0])
    with_context.examples.add()  # inherits the context's text
    with_context.examples.extend(_examples("tiny"))  # its own text wins
    scores = [cl.classes[1].score for cl in service.classify(request).result.classifications]
    assert scores[0] > 0.5 > scores[1]


def test_classify_errors(service):
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "tiny"
    request.input.example_list.examples.extend(_examples("x"))
    _raises(grpc.StatusCode.INVALID_ARGUMENT,
            "Expected classification signature method_name to be tensorflow/serving/classify. "
            "Was: tensorflow/serving/predict", service.classify, request)
    request.model_spec.signature_name = "missing"
    _raises(grpc.StatusCode.INVALID_ARGUMENT, "No signature was found with the name: missing",
            service.classify, request)
    request.model_spec.signature_name = "classify"
    request.ClearField("input")
    _raises(grpc.StatusCode.INVALID_ARGUMENT, "Input is empty.", service.classify, request)


def test_regress_and_multi_inference(service):
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = "tiny"
    request.model_spec.signature_name = "regress"
    request.model_spec.version.value = 1
    request.input.example_list.examples.extend(_examples("abc", "abcdef"))
    assert [r.value for r in service.regress(request).result.regressions] == [3.0, 6.0]
    request.model_spec.signature_name = "classify"
    _raises(grpc.StatusCode.INVALID_ARGUMENT, "Expected regression signature method_name", service.regress, request)

    multi = inference_pb2.MultiInferenceRequest()
    multi.input.example_list.examples.extend(_examples("abc"))
    for signature, method in (("classify", "tensorflow/serving/classify"), ("regress", "tensorflow/serving/regress")):
        task = multi.tasks.add(method_name=method)
        task.model_spec.name = "tiny"
        task.model_spec.signature_name = signature
    response = service.multi_inference(multi)
    assert len(response.results[0].classification_result.classifications[0].classes) == 2
    assert response.results[1].regression_result.regressions[0].value == 5.0  # version 2: bias 2
    assert response.results[1].model_spec.version.value == 2
    multi.tasks[1].model_spec.signature_name = "classify"
    _raises(grpc.StatusCode.INVALID_ARGUMENT, "Duplicate evaluation of signature: classify",
            service.multi_inference, multi)
    multi.tasks[1].model_spec.name = "other"
    _raises(grpc.StatusCode.INVALID_ARGUMENT, "must access the same model name", service.multi_inference, multi)
    del multi.tasks[1]
    multi.tasks[0].method_name = "tensorflow/serving/predict"
    _raises(grpc.StatusCode.UNIMPLEMENTED, "Unsupported signature method_name", service.multi_inference, multi)
    _raises(grpc.StatusCode.INVALID_ARGUMENT, "at least one task", service.multi_inference,
            inference_pb2.MultiInferenceRequest())


def test_metadata(service):
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    _raises(grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec", service.get_model_metadata, request)
    request.model_spec.name = "tiny"
    _raises(grpc.StatusCode.INVALID_ARGUMENT, "at least one metadata_field", service.get_model_metadata, request)
    request.metadata_field.append("graph")
    _raises(grpc.StatusCode.INVALID_ARGUMENT, "Metadata field graph is not supported",
            service.get_model_metadata, request)
    request.metadata_field[:] = ["signature_def"]
    response = service.get_model_metadata(request)
    assert (response.model_spec.name, response.model_spec.version.value) == ("tiny", 2)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signatures)
    assert signatures.signature_def["classify"].method_name == "tensorflow/serving/classify"
    assert signatures.signature_def["serving_default"].inputs["text"].dtype == tf.string.as_datatype_enum


def test_status(service):
    request = get_model_status_pb2.GetModelStatusRequest()
    _raises(grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec", service.get_model_status, request)
    request.model_spec.name = "tiny"
    response = service.get_model_status(request)
    assert [(s.version, s.state) for s in response.model_version_status] == [(2, 30), (1, 30)]
    assert response.model_version_status[0].status.error_code == 0
    request.model_spec.version.value = 7
    _raises(grpc.StatusCode.NOT_FOUND, "Could not find version 7 of model tiny", service.get_model_status, request)
    request.model_spec.name = "nope"
    request.model_spec.ClearField("version")
    _raises(grpc.StatusCode.NOT_FOUND, "Could not find any versions of model nope", service.get_model_status, request)


def test_reload_config_validation(service):
    request = model_management_pb2.ReloadConfigRequest()
    _raises(grpc.StatusCode.INVALID_ARGUMENT, "Only ModelConfigList is currently supported",
            service.reload_config, request)
    request.config.model_config_list.config.add(name="x", base_path="relative/path", model_platform="tensorflow")
    _raises(grpc.StatusCode.INVALID_ARGUMENT, "Expected model x to have an absolute path",
            service.reload_config, request)


def test_serialized_examples_and_metrics(service):
    from tensorflow_serving.apis import input_pb2

    assert serialized_examples(input_pb2.Input(example_list=input_pb2.ExampleList(
        examples=_examples("a")))).tolist() == [example_bytes("a")]
    body = service.metrics.exposition()[0].decode()
    assert 'model_name="tiny"' in body and "NOT_FOUND" in body

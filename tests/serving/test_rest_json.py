"""Tests for the REST JSON codecs (llm_tf/serving/rest_json_base.py, rest_predict_request.py,
rest_predict_response.py, rest_classify_regress.py, rest_status_metadata.py): TF Serving's REST JSON
<-> serving protos."""

import json
import math

import grpc
import numpy as np
import pytest
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    input_pb2,
    predict_pb2,
    regression_pb2,
)

from llm_tf.serving import tensors
from llm_tf.serving.errors import ServingError
from llm_tf.serving.rest_classify_regress import (
    classification_result_to_json,
    fill_example_input,
    regression_result_to_json,
)
from llm_tf.serving.rest_json_base import debug_string, dumps, parse_json_object, signature_name_from_json
from llm_tf.serving.rest_predict_request import PredictFormat, fill_predict_inputs
from llm_tf.serving.rest_predict_response import predict_outputs_to_json
from llm_tf.serving.rest_status_metadata import model_metadata_to_json, model_status_to_json


def _infos(**dtypes: int) -> dict[str, meta_graph_pb2.TensorInfo]:
    return {name: meta_graph_pb2.TensorInfo(name=f"{name}:0", dtype=dtype) for name, dtype in dtypes.items()}


def _fill(doc: dict, **dtypes: int) -> tuple[PredictFormat, dict[str, np.ndarray]]:
    request = predict_pb2.PredictRequest()
    fmt = fill_predict_inputs(doc, _infos(**dtypes), request)
    return fmt, {name: tensors.to_numpy(proto) for name, proto in request.inputs.items()}


def _fill_error(doc: dict, **dtypes: int) -> ServingError:
    with pytest.raises(ServingError) as info:
        fill_predict_inputs(doc, _infos(**dtypes), predict_pb2.PredictRequest())
    return info.value


STRING, FLOAT, INT32, INT64, BOOL = (
    types_pb2.DT_STRING, types_pb2.DT_FLOAT, types_pb2.DT_INT32, types_pb2.DT_INT64, types_pb2.DT_BOOL
)


# ----------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    "body, message",
    [
        (b"", "JSON Parse error: The document is empty"),
        (b"  \n", "JSON Parse error: The document is empty"),
        (b'{"a": ', "JSON Parse error: Expecting value at offset: 6"),
        (b'{"a": "\xff"}', "JSON Parse error: Invalid encoding in string. at offset: 7"),
        (b"[1, 2]", "JSON Value: [1,2] Is not object"),
    ],
)
def test_parse_json_object_rejects_bad_bodies(body, message):
    with pytest.raises(ServingError) as info:
        parse_json_object(body)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.message == message


def test_parse_json_object_accepts_nan_and_infinity():
    doc = parse_json_object(b'{"inputs": [NaN, Infinity, -Infinity]}')
    values = doc["inputs"]
    assert math.isnan(values[0]) and values[1] == math.inf and values[2] == -math.inf


def test_parse_json_object_rejects_absurdly_long_integers():
    with pytest.raises(ServingError, match="JSON Parse error"):
        parse_json_object(b'{"inputs": [' + b"9" * 5000 + b"]}")


def test_signature_name_must_be_a_string():
    assert signature_name_from_json({}) == ""
    assert signature_name_from_json({"signature_name": "cls"}) == "cls"
    with pytest.raises(ServingError, match="'signature_name' key must be a string value"):
        signature_name_from_json({"signature_name": 3})


def test_debug_string_is_compact_and_truncated():
    assert debug_string({"a": [1, "x"]}) == '{"a":[1,"x"]}'
    assert len(debug_string(list(range(10000)))) == 256


# ----------------------------------------------------------------------------- predict: row format


def test_row_format_single_input_strings():
    fmt, inputs = _fill({"instances": ["good film", "bad film"]}, text=STRING)
    assert fmt is PredictFormat.ROW
    assert inputs["text"].tolist() == [b"good film", b"bad film"]


def test_row_format_nested_numbers_stack_along_a_new_axis():
    _, inputs = _fill({"instances": [[[1, 2]], [[3, 4.5]]]}, x=FLOAT)
    assert inputs["x"].shape == (2, 1, 2)
    np.testing.assert_allclose(inputs["x"], [[[1, 2]], [[3, 4.5]]])
    assert inputs["x"].dtype == np.float32


def test_row_format_named_inputs_as_objects():
    doc = {"instances": [{"ids": [1, 2, 3], "flag": True}, {"ids": [4, 5, 6], "flag": False}]}
    _, inputs = _fill(doc, ids=INT64, flag=BOOL)
    assert inputs["ids"].tolist() == [[1, 2, 3], [4, 5, 6]] and inputs["ids"].dtype == np.int64
    assert inputs["flag"].tolist() == [True, False]


def test_row_format_b64_strings():
    _, inputs = _fill({"instances": [{"b64": "aGVsbG8="}, {"b64": "d29ybGQ"}]}, x_bytes=STRING)
    assert inputs["x_bytes"].tolist() == [b"hello", b"world"]


@pytest.mark.parametrize(
    "doc, dtypes, message",
    [
        (
            {"instances": [1, 2]},
            {"a": FLOAT, "b": FLOAT},
            "instances is a plain list, but expecting list of objects as multiple input tensors "
            "required as per tensorinfo_map",
        ),
        (
            {"instances": [[1, 2], [3]]},
            {"x": FLOAT},
            "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: "
            "Expecting tensor size: 2 but got: 1",
        ),
        (
            {"instances": [[[1, 2]], [[3], [4]]]},
            {"x": FLOAT},
            "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: "
            "Expecting shape [1,2] but got: [2,1]",
        ),
        (
            {"instances": [[[1, 2], [3]]]},
            {"x": FLOAT},
            "Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: "
            "Encountered list at unexpected size: 1 at level: 1 expected size: 2",
        ),
        (
            {"instances": [[[1], 2]]},
            {"x": FLOAT},
            "Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: "
            "JSON Value: 2 found at incorrect level: 2 in the JSON DOM. Expected at level: 2",
        ),
        (
            {"instances": [[1, [2]]]},
            {"x": FLOAT},
            "Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: "
            "Encountered list at unexpected level: 1 expected < 1",
        ),
        (
            {"instances": [{"a": 1}, [2]]},
            {"a": FLOAT},
            "Expecting object but got list at item 1 of input list",
        ),
        (
            {"instances": [1, {"a": 2}]},
            {"a": FLOAT},
            "Expecting value/list but got object at item 1 of input list",
        ),
        (
            {"instances": [{"a": 1}]},
            {"a": FLOAT, "b": FLOAT},
            "Failed to process element: 0 of 'instances' list. JSON object: {\"a\":1} keys must be equal to: a,b",
        ),
        (
            {"instances": [{"a": 1, "c": 2}]},
            {"a": FLOAT, "b": FLOAT},
            "Failed to process element: 0 key: c of 'instances' list. Error: INVALID_ARGUMENT: "
            "JSON object: does not have named input: c",
        ),
        (
            {"instances": "abc"},
            {"a": STRING},
            "JSON Value: {\"instances\":\"abc\"} Expecting 'instances' to be an list/array",
        ),
        ({"instances": []}, {"a": STRING}, "JSON Value: {\"instances\":[]} No values in 'instances' array"),
        (
            {"instances": [1], "inputs": [1]},
            {"a": FLOAT},
            "JSON Value: {\"instances\":[1],\"inputs\":[1]} Not formatted correctly expecting only one of "
            "'inputs' or 'instances' keys to exist ",
        ),
        ({"signature_name": "x"}, {"a": FLOAT}, "Missing 'inputs' or 'instances' key"),
    ],
)
def test_row_format_errors_carry_tf_serving_messages(doc, dtypes, message):
    error = _fill_error(doc, **dtypes)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.message == message


@pytest.mark.parametrize(
    "value, dtype, type_name",
    [
        (True, FLOAT, "Number"),  # booleans are not numbers
        ("1.5", FLOAT, "Number"),
        (1.5, INT32, "int32"),
        (2**31, INT32, "int32"),  # out of range
        (2**63, INT64, "int64"),
        (1, BOOL, "bool"),
        (3, STRING, "string"),
        ({"x": 1}, FLOAT, "float"),
        (None, FLOAT, "float"),
    ],
)
def test_mistyped_values_are_rejected(value, dtype, type_name):
    error = _fill_error({"inputs": [value]}, x=dtype)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "is not of expected type" in error.message or "not formatted correctly" in error.message
    if type_name != "Number":
        assert error.message.endswith(f"is not of expected type: {type_name}")


def test_bad_base64_is_rejected():
    assert _fill_error({"inputs": [{"b64": "!!!"}]}, x=STRING).message == "Unable to base64 decode"
    error = _fill_error({"inputs": [{"b64": "aa", "extra": 1}]}, x=STRING)
    assert error.message.endswith("not formatted correctly for base64 data")


def test_integers_are_accepted_for_float_inputs():
    _, inputs = _fill({"inputs": [1, 2.5, 10**30]}, x=FLOAT)
    np.testing.assert_allclose(inputs["x"], [1.0, 2.5, 1e30], rtol=1e-6)


def test_unsupported_input_dtype_is_unimplemented():
    error = _fill_error({"inputs": [1]}, x=types_pb2.DT_COMPLEX64)
    assert error.code == grpc.StatusCode.UNIMPLEMENTED
    assert error.message == "Conversion of JSON Value: 1 to type: complex64"


def test_no_signature_inputs():
    request = predict_pb2.PredictRequest()
    with pytest.raises(ServingError, match="Failed to get input map for signature: DEFAULT"):
        fill_predict_inputs({"inputs": [1]}, {}, request)


# ----------------------------------------------------------------------------- predict: columnar


def test_columnar_single_value_and_scalar():
    fmt, inputs = _fill({"inputs": ["a", "b", "c"]}, text=STRING)
    assert fmt is PredictFormat.COLUMNAR and inputs["text"].tolist() == [b"a", b"b", b"c"]
    _, inputs = _fill({"inputs": 7}, n=INT32)
    assert inputs["n"].shape == () and int(inputs["n"]) == 7


def test_columnar_named_inputs_may_have_different_first_dimensions():
    _, inputs = _fill({"inputs": {"a": [[1, 2]], "b": [1, 2, 3], "ignored": 1}}, a=FLOAT, b=INT32)
    assert inputs["a"].shape == (1, 2) and inputs["b"].shape == (3,)
    assert set(inputs) == {"a", "b"}


def test_columnar_errors():
    assert _fill_error({"inputs": {"a": [1]}}, a=FLOAT, b=FLOAT).message == "Missing named input: b in 'inputs' object."
    assert _fill_error({"inputs": [1]}, a=FLOAT, b=FLOAT).message == (
        "inputs is a plain value/list, but expecting an object as multiple input tensors required as per "
        "tensorinfo_map"
    )
    assert "Encountered list at unexpected size" in _fill_error({"inputs": [[1, 2], [3]]}, a=FLOAT).message


# ----------------------------------------------------------------------------- predict: response


def _outputs(**arrays) -> dict:
    return {name: tensors.to_proto(value) for name, value in arrays.items()}


def test_row_response_single_output_is_a_list_per_instance():
    outputs = _outputs(scores=np.array([[0.1, 0.9], [0.7, 0.3]], np.float32))
    assert predict_outputs_to_json(outputs, PredictFormat.ROW) == {"predictions": [[0.1, 0.9], [0.7, 0.3]]}


def test_row_response_several_outputs_are_objects():
    outputs = _outputs(
        labels=np.array([b"pos", b"neg"], object), label_ids=np.array([1, 0], np.int64),
        tags=np.array([[b"B-PER", b""], [b"O", b"O"]], object),
    )
    assert predict_outputs_to_json(outputs, PredictFormat.ROW) == {
        "predictions": [
            {"label_ids": 1, "labels": "pos", "tags": ["B-PER", ""]},
            {"label_ids": 0, "labels": "neg", "tags": ["O", "O"]},
        ]
    }


def test_columnar_response():
    one = _outputs(scores=np.array([0.5], np.float32))
    assert predict_outputs_to_json(one, PredictFormat.COLUMNAR) == {"outputs": [0.5]}
    two = _outputs(a=np.array(1.5, np.float64), b=np.array([[True]]))
    assert predict_outputs_to_json(two, PredictFormat.COLUMNAR) == {"outputs": {"a": 1.5, "b": [[True]]}}


def test_bytes_outputs_are_base64_and_other_strings_utf8():
    outputs = _outputs(image_bytes=np.array([b"\xff\x00"], object), text=np.array(["é".encode(), b"\xff"], object))
    result = predict_outputs_to_json(outputs, PredictFormat.COLUMNAR)
    assert result == {"outputs": {"image_bytes": [{"b64": "/wA="}], "text": ["é", "\ufffd"]}}


def test_float32_outputs_use_the_shortest_round_trip_decimal():
    values = np.array([0.1, 1 / 3, 16777216.0, 1e-7], np.float32)
    out = predict_outputs_to_json(_outputs(x=values), PredictFormat.COLUMNAR)["outputs"]
    assert json.dumps(out) == "[0.1, 0.33333334, 16777216.0, 1e-07]"
    assert np.array_equal(np.array(out, np.float32), values)


def test_row_response_errors():
    with pytest.raises(ServingError, match="Cannot convert empty tensor map to JSON"):
        predict_outputs_to_json({}, PredictFormat.ROW)
    with pytest.raises(ServingError, match="Tensor name: s has no shape information"):
        predict_outputs_to_json(_outputs(s=np.array(1.0, np.float32)), PredictFormat.ROW)
    mixed = _outputs(a=np.zeros([2], np.float32), b=np.zeros([3], np.float32))
    with pytest.raises(ServingError, match="Tensor name: b has inconsistent batch size: 3 expecting: 2"):
        predict_outputs_to_json(mixed, PredictFormat.ROW)


def test_non_finite_floats_are_written_as_tf_serving_does():
    out = predict_outputs_to_json(_outputs(x=np.array([np.nan, np.inf, -np.inf], np.float32)),
                                            PredictFormat.COLUMNAR)
    assert dumps(out) == b'{"outputs": [NaN, Infinity, -Infinity]}\n'


# ----------------------------------------------------------------------------- classify / regress


def test_examples_become_tf_examples_with_inferred_kinds():
    request = classification_pb2.ClassificationRequest()
    doc = {"examples": [{"text": "nice", "n": 3, "w": [0.5, 1], "flag": True, "raw": {"b64": "AQI="}, "empty": []}]}
    fill_example_input(doc, request.input)
    assert request.input.WhichOneof("kind") == "example_list"
    feature = request.input.example_list.examples[0].features.feature
    assert feature["text"].bytes_list.value == [b"nice"]
    assert feature["n"].int64_list.value == [3]
    assert list(feature["w"].float_list.value) == [0.5, 1.0]  # the first value decides: float
    assert feature["flag"].int64_list.value == [1]
    assert feature["raw"].bytes_list.value == [b"\x01\x02"]
    assert feature["empty"].WhichOneof("kind") is None


def test_context_gives_example_list_with_context():
    request = regression_pb2.RegressionRequest()
    fill_example_input({"context": {"lang": "en"}, "examples": [{"text": "a"}, {"text": "b"}]},
                                 request.input)
    with_context = request.input.example_list_with_context
    assert with_context.context.features.feature["lang"].bytes_list.value == [b"en"]
    assert len(with_context.examples) == 2


@pytest.mark.parametrize(
    "doc, message",
    [
        ({}, "JSON Value: {} When method is classify, key 'examples' is expected and was not found"),
        ({"examples": {}}, "JSON Value: {\"examples\":{}} Expecting 'examples' value to be an list/array"),
        ({"examples": []}, "JSON Value: {\"examples\":[]} 'examples' value is an empty array"),
        ({"examples": [1]}, "Example must be JSON object but got JSON Number"),
        ({"examples": [{"a": None}]}, "Feature: a has element with unexpected JSON type: Null"),
        ({"examples": [{"a": [[1]]}]}, "Feature: a has element with unexpected JSON type: Array"),
        ({"examples": [{"a": {"x": 1}}]}, "Feature: a has element with unexpected JSON type: Object"),
        ({"examples": [{"a": [1, "x"]}]}, "Unexpected element type in feature: a expecting type: int64"),
        ({"examples": [{"a": ["x", 1.5]}]}, "Unexpected element type in feature: a expecting type: bytes"),
        ({"examples": [{"a": 2**63}]}, "Feature: a has uint64_t element. Only int64_t is supported."),
        ({"context": [1], "examples": [{"a": 1}]}, "Example must be JSON object but got JSON Array"),
    ],
)
def test_example_errors(doc, message):
    with pytest.raises(ServingError) as info:
        fill_example_input(doc, input_pb2.Input())
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.message == message


def test_classification_and_regression_results():
    result = classification_pb2.ClassificationResult()
    classes = result.classifications.add().classes
    classes.add(label="neg", score=0.1)
    classes.add(label="pos", score=0.9)
    assert classification_result_to_json(result) == {"results": [[["neg", 0.1], ["pos", 0.9]]]}
    regression = regression_pb2.RegressionResult()
    regression.regressions.add(value=0.7)
    assert regression_result_to_json(regression) == {"results": [0.7]}
    with pytest.raises(ServingError, match="Cannot convert empty ClassificationResults to JSON"):
        classification_result_to_json(classification_pb2.ClassificationResult())
    with pytest.raises(ServingError, match="Cannot convert empty RegressionResults to JSON"):
        regression_result_to_json(regression_pb2.RegressionResult())


# ----------------------------------------------------------------------------- status / metadata


def test_model_status_prints_every_field():
    response = get_model_status_pb2.GetModelStatusResponse()
    status = response.model_version_status.add(version=2, state=30)  # AVAILABLE, status left unset
    del status
    assert model_status_to_json(response) == {
        "model_version_status": [
            {"version": "2", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        ]
    }


def test_model_metadata_keeps_proto_field_names():
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = "sst2"
    response.model_spec.version.value = 1
    signatures = get_model_metadata_pb2.SignatureDefMap()
    signature = signatures.signature_def["serving_default"]
    signature.method_name = "tensorflow/serving/predict"
    signature.inputs["text"].dtype = STRING
    signature.inputs["text"].tensor_shape.dim.add(size=-1)
    response.metadata["signature_def"].Pack(signatures)
    out = model_metadata_to_json(response)
    assert out["model_spec"] == {"name": "sst2", "version": "1", "signature_name": ""}
    sig = out["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert sig["method_name"] == "tensorflow/serving/predict"
    assert sig["inputs"]["text"]["dtype"] == "DT_STRING"
    assert sig["inputs"]["text"]["tensor_shape"] == {"dim": [{"size": "-1", "name": ""}], "unknown_rank": False}


def test_model_metadata_without_signature_def_is_internal():
    with pytest.raises(ServingError) as info:
        model_metadata_to_json(get_model_metadata_pb2.GetModelMetadataResponse())
    assert info.value.code == grpc.StatusCode.INTERNAL


def test_dumps_escapes_lone_surrogates():
    body = dumps({"error": "bad \ud800"})
    assert json.loads(body) == {"error": "bad \ud800"}

"""Tests for llm_tf.serving.tensors."""

import grpc
import ml_dtypes
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2

from llm_tf.serving import errors, tensors

ARRAYS = [
    np.array([[1.5, -2.0]], np.float32),
    np.array([1.25], np.float64),
    np.array([0.5, 1.5], np.float16),
    np.array([0.5, 2.0], ml_dtypes.bfloat16),
    np.array([1, -2], np.int8),
    np.array([[1, 2], [3, 4]], np.int32),
    np.array([2**40], np.int64),
    np.array([255], np.uint8),
    np.array([2**31], np.uint32),
    np.array([2**63], np.uint64),
    np.array([True, False]),
    np.array([b"a", b"\xff\x00"], dtype=object),
    np.array([1 + 2j], np.complex64),
    np.array([3 - 1j], np.complex128),
]


@pytest.mark.parametrize("array", ARRAYS, ids=lambda a: str(a.dtype))
def test_round_trip_and_agreement_with_tensorflow(array):
    proto = tensors.to_proto(array)
    assert not proto.tensor_content  # typed *_val fields, as TF Serving answers
    back = tensors.to_numpy(proto)
    assert back.dtype == array.dtype and back.shape == array.shape and (back == array).all()
    assert (tf.make_ndarray(proto) == array).all()
    assert (tensors.to_numpy(tf.make_tensor_proto(array)) == array).all()  # tensor_content path


def test_strings_are_utf8_encoded_and_scalars_have_no_dims():
    proto = tensors.to_proto(np.array(["héllo"], dtype=object))
    assert proto.dtype == types_pb2.DT_STRING and proto.string_val == ["héllo".encode()]
    scalar = tensors.to_proto(np.float32(2.5))
    assert list(scalar.tensor_shape.dim) == [] and tensors.to_numpy(scalar) == np.float32(2.5)


def test_fewer_values_repeat_the_last_and_none_means_zeros():
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_INT32, int_val=[7, 8])
    proto.tensor_shape.dim.add(size=4)
    assert tensors.to_numpy(proto).tolist() == [7, 8, 8, 8]
    empty = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING)
    empty.tensor_shape.dim.add(size=2)
    assert tensors.to_numpy(empty).tolist() == [b"", b""]


@pytest.mark.parametrize("mutate, match", [
    (lambda p: p.int_val.extend([1, 2, 3]), "3 values in int_val do not fit"),
    (lambda p: setattr(p.tensor_shape, "unknown_rank", True), "unknown rank"),
    (lambda p: setattr(p, "tensor_content", b"\x00" * 3), "tensor_content has 3 bytes"),
    (lambda p: setattr(p, "dtype", types_pb2.DT_RESOURCE), "unsupported tensor dtype resource"),
])
def test_bad_protos_are_invalid_argument_naming_the_field(mutate, match):
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_INT32)
    proto.tensor_shape.dim.add(size=2)
    mutate(proto)
    with pytest.raises(errors.ServingError, match=match) as info:
        tensors.to_numpy(proto, 'inputs["x"]')
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.message.startswith('inputs["x"]')


def test_check_dtype_and_shape():
    tensors.check_dtype("text", np.array([b"a"], dtype=object), types_pb2.DT_STRING)
    with pytest.raises(errors.ServingError, match="Expects arg 'text' to be string but float is provided"):
        tensors.check_dtype("text", np.array([1.0], np.float32), types_pb2.DT_STRING)
    tensors.check_shape("ids", np.zeros((2, 5)), (-1, -1))
    tensors.check_shape("ids", np.zeros((2, 5, 1)), None)
    with pytest.raises(errors.ServingError, match=r"input 'ids' has shape \[2\], incompatible .* \[\?,\?\]"):
        tensors.check_shape("ids", np.zeros((2,)), (-1, -1))
    with pytest.raises(errors.ServingError, match=r"\[\?,3\]"):
        tensors.check_shape("ids", np.zeros((2, 4)), (-1, 3))


def test_batch_size():
    assert tensors.batch_size({"a": np.zeros((3, 2)), "b": np.zeros(3)}) == 3
    assert tensors.batch_size({"a": np.float32(1)}) is None
    assert tensors.batch_size({}) is None
    with pytest.raises(errors.ServingError, match="a: 3, b: 2"):
        tensors.batch_size({"a": np.zeros(3), "b": np.zeros(2)})


def test_dtype_helpers():
    assert tensors.dtype_name(types_pb2.DT_STRING) == "string"
    assert tensors.numpy_dtype(types_pb2.DT_HALF) == np.float16
    assert tensors.data_type_of(np.array(["x"])) == types_pb2.DT_STRING
    with pytest.raises(errors.ServingError, match="no TensorFlow counterpart"):
        tensors.data_type_of(np.array(["2020-01-01"], dtype="datetime64[D]"))
    assert tensors.shape_of(tensors.to_proto(np.zeros((2, 3))).tensor_shape) == (2, 3)


def test_to_proto_fills_a_given_proto_in_place():
    from tensorflow_serving.apis import predict_pb2

    response = predict_pb2.PredictResponse()
    array = np.array([[0.25, 0.75]], np.float32)
    returned = tensors.to_proto(array, out=response.outputs["scores"])
    assert returned is response.outputs["scores"]
    assert response.outputs["scores"] == tensors.to_proto(array)
    assert (tensors.to_numpy(response.outputs["scores"]) == array).all()

"""Tests for llm_tf.serving.errors."""

import grpc
import pytest

from llm_tf.errors import LlmTfError
from llm_tf.serving import errors


@pytest.mark.parametrize("factory, code, http", [
    (errors.invalid_argument, grpc.StatusCode.INVALID_ARGUMENT, 400),
    (errors.not_found, grpc.StatusCode.NOT_FOUND, 404),
    (errors.unavailable, grpc.StatusCode.UNAVAILABLE, 503),
    (errors.failed_precondition, grpc.StatusCode.FAILED_PRECONDITION, 400),
    (errors.resource_exhausted, grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
    (errors.internal, grpc.StatusCode.INTERNAL, 500),
    (errors.unimplemented, grpc.StatusCode.UNIMPLEMENTED, 501),
])
def test_factories_set_code_message_and_http_status(factory, code, http):
    error = factory("model 'x': why")
    assert isinstance(error, errors.ServingError) and isinstance(error, LlmTfError)
    assert error.code == code and error.code_name == code.name
    assert error.message == "model 'x': why" and str(error) == "model 'x': why"
    assert error.http_status == http == errors.http_status(code)


def test_ok_is_not_an_error():
    with pytest.raises(ValueError, match="non-OK"):
        errors.ServingError(grpc.StatusCode.OK, "fine")


def test_from_code_maps_tensorflow_codes():
    assert errors.from_code(3, "bad").code == grpc.StatusCode.INVALID_ARGUMENT
    assert errors.from_code(5, "gone").code == grpc.StatusCode.NOT_FOUND
    assert errors.from_code(0, "?").code == grpc.StatusCode.UNKNOWN
    assert errors.from_code(999, "?").code == grpc.StatusCode.UNKNOWN
    assert "INVALID_ARGUMENT" in repr(errors.from_code(3, "bad"))

"""Request-level serving errors carrying a gRPC status code, as TF Serving reports them.

Every serving module raises :class:`ServingError` for a failure that belongs to one request
(unknown model, bad input, overload...). The gRPC layer turns it into ``context.abort(code,
message)``; the REST layer into an HTTP status and ``{"error": message}``.
"""

import grpc

from llm_tf.errors import LlmTfError

# HTTP status TF Serving's REST API uses for each canonical code (tensorflow_serving's
# http_rest_api_handler maps absl status codes to HTTP the same way).
_HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}


class ServingError(LlmTfError):
    """A request failed with a canonical status code and a TF Serving-like message.

    Attributes:
        code: The ``grpc.StatusCode`` of the failure.
        message: The message, naming the request field (model, version, input key...) and why.
    """

    def __init__(self, code: grpc.StatusCode, message: str):
        """Creates the error.

        Args:
            code: The ``grpc.StatusCode``; must not be ``OK``.
            message: Human readable reason.

        Raises:
            ValueError: ``code`` is ``grpc.StatusCode.OK``.
        """
        if code == grpc.StatusCode.OK:
            raise ValueError("ServingError needs a non-OK status code")
        self.code = code
        self.message = message
        super().__init__(message)

    @property
    def code_name(self) -> str:
        """The code's canonical name, e.g. ``"INVALID_ARGUMENT"``."""
        return self.code.name

    @property
    def http_status(self) -> int:
        """The HTTP status TF Serving's REST API answers for this code."""
        return _HTTP_STATUS.get(self.code, 500)

    def __repr__(self) -> str:
        return f"ServingError({self.code.name}, {self.message!r})"


def http_status(code: grpc.StatusCode) -> int:
    """Returns the HTTP status TF Serving's REST API uses for ``code``.

    Args:
        code: A ``grpc.StatusCode``.

    Returns:
        The HTTP status (200 for ``OK``, 500 for an unmapped code).
    """
    return _HTTP_STATUS.get(code, 500)


def invalid_argument(msg: str) -> ServingError:
    """Returns an ``INVALID_ARGUMENT`` error (bad request field or input)."""
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, msg)


def not_found(msg: str) -> ServingError:
    """Returns a ``NOT_FOUND`` error (unknown model, version or label)."""
    return ServingError(grpc.StatusCode.NOT_FOUND, msg)


def unavailable(msg: str) -> ServingError:
    """Returns an ``UNAVAILABLE`` error (no version loaded yet, queue full, shutting down)."""
    return ServingError(grpc.StatusCode.UNAVAILABLE, msg)


def failed_precondition(msg: str) -> ServingError:
    """Returns a ``FAILED_PRECONDITION`` error (request does not fit the servable's state)."""
    return ServingError(grpc.StatusCode.FAILED_PRECONDITION, msg)


def resource_exhausted(msg: str) -> ServingError:
    """Returns a ``RESOURCE_EXHAUSTED`` error (message or batch too large)."""
    return ServingError(grpc.StatusCode.RESOURCE_EXHAUSTED, msg)


def internal(msg: str) -> ServingError:
    """Returns an ``INTERNAL`` error (the model failed while running)."""
    return ServingError(grpc.StatusCode.INTERNAL, msg)


def unimplemented(msg: str) -> ServingError:
    """Returns an ``UNIMPLEMENTED`` error (a call or field this server does not support)."""
    return ServingError(grpc.StatusCode.UNIMPLEMENTED, msg)


def from_code(code: int, message: str) -> ServingError:
    """Returns a ServingError for a canonical code number (TensorFlow's ``OpError.error_code``).

    Args:
        code: The canonical code number (3 = INVALID_ARGUMENT...); 0 and unknown numbers give
            ``UNKNOWN``.
        message: The message.

    Returns:
        The error.
    """
    for status in grpc.StatusCode:
        if status.value[0] == code and status != grpc.StatusCode.OK:
            return ServingError(status, message)
    return ServingError(grpc.StatusCode.UNKNOWN, message)

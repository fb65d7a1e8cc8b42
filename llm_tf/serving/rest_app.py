"""TF Serving's REST API over an :class:`~llm_tf.serving.inference.InferenceService`, as a WSGI app.

A thin translation: each route parses the URL and the JSON body (with the ``rest_*`` codecs:
:mod:`~llm_tf.serving.rest_json_base`, :mod:`~llm_tf.serving.rest_predict_request`,
:mod:`~llm_tf.serving.rest_predict_response`, :mod:`~llm_tf.serving.rest_classify_regress`,
:mod:`~llm_tf.serving.rest_status_metadata`), calls the same proto method the gRPC server calls,
and renders the proto response as TF Serving's JSON. Failures are ``{"error": "..."}`` with the
HTTP status TF Serving gives their canonical code (INVALID_ARGUMENT and FAILED_PRECONDITION
400, NOT_FOUND 404, RESOURCE_EXHAUSTED 429, UNAVAILABLE 503, INTERNAL 500...).
:class:`~llm_tf.serving.rest_server.RestServer` serves the app over HTTP.

Routes (``{v}`` a version number, ``{l}`` a version label)::

    GET  /v1/models/{name}[/versions/{v} | /labels/{l}]            model status
    GET  /v1/models/{name}[/versions/{v} | /labels/{l}]/metadata   signature defs
    POST /v1/models/{name}[/versions/{v} | /labels/{l}]:predict    (also :classify, :regress)
    GET  <monitoring path>                                         Prometheus metrics
"""

import contextlib
import logging
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    predict_pb2,
    regression_pb2,
)
from werkzeug.exceptions import MethodNotAllowed, NotFound, RequestEntityTooLarge
from werkzeug.routing import BaseConverter, Map, Rule
from werkzeug.wrappers import Request, Response

from llm_tf.serving import inference
from llm_tf.serving.config import MonitoringSpec
from llm_tf.serving.errors import ServingError, invalid_argument
from llm_tf.serving.inference import InferenceService
from llm_tf.serving.monitoring import ServingMetrics
from llm_tf.serving.rest_classify_regress import (
    classification_result_to_json,
    fill_example_input,
    regression_result_to_json,
)
from llm_tf.serving.rest_json_base import dumps, error_to_json, parse_json_object, signature_name_from_json
from llm_tf.serving.rest_predict_request import fill_predict_inputs
from llm_tf.serving.rest_predict_response import predict_outputs_to_json
from llm_tf.serving.rest_status_metadata import model_metadata_to_json, model_status_to_json, signature_def_map

logger = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
DEFAULT_SIGNATURE = "serving_default"
JSON_CONTENT_TYPE = "application/json"

_NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]+")
_MAX_VERSION = 2**63 - 1
_METHODS = ("predict", "classify", "regress")


class _SegmentConverter(BaseConverter):
    """One path segment up to a ``/`` or ``:`` (TF Serving's ``[^/:]+``)."""

    regex = r"[^/:]+"


class _DigitsConverter(BaseConverter):
    """A version number as digits (range-checked by the handler)."""

    regex = r"\d+"


def _build_map(monitoring_path: str | None) -> Map:
    prefixes = {
        "": "/v1/models/<seg:name>",
        "version": "/v1/models/<seg:name>/versions/<num:version>",
        "label": "/v1/models/<seg:name>/labels/<seg:label>",
    }
    rules = [Rule("/v1/models", endpoint="no_model", methods=["GET"])]
    for prefix in prefixes.values():
        rules.append(Rule(prefix, endpoint="status", methods=["GET"]))
        rules.append(Rule(prefix + "/metadata", endpoint="metadata", methods=["GET"]))
        rules.append(Rule(prefix + ":<seg:method>", endpoint="inference", methods=["POST"]))
    if monitoring_path:
        rules.append(Rule(monitoring_path, endpoint="monitoring", methods=["GET"]))
    return Map(
        rules,
        converters={"seg": _SegmentConverter, "num": _DigitsConverter},
        strict_slashes=False,
        merge_slashes=False,
        redirect_defaults=False,
    )


def check_name(kind: str, value: str) -> str:
    """Checks a model name or version label taken from a URL.

    Args:
        kind: ``"model name"`` or ``"model version label"`` (for the message).
        value: The URL-decoded path segment.

    Returns:
        ``value``.

    Raises:
        ServingError: INVALID_ARGUMENT unless ``value`` matches ``[A-Za-z0-9_.-]+`` and is
            no path traversal (``.``, or containing ``..``).
    """
    if not _NAME_PATTERN.fullmatch(value) or value == "." or ".." in value:
        raise invalid_argument(
            f"Invalid {kind}: {value!r} (must match [A-Za-z0-9_.-]+ and contain no '..')"
        )
    return value


def model_spec_from_url(name: str, version: str | None = None, label: str | None = None) -> model_pb2.ModelSpec:
    """Builds the ``ModelSpec`` a REST URL names.

    Args:
        name: The model name segment.
        version: The ``/versions/{v}`` segment, if any.
        label: The ``/labels/{l}`` segment, if any.

    Returns:
        The model spec (no signature name).

    Raises:
        ServingError: INVALID_ARGUMENT for a bad name or label, or a version beyond int64.
    """
    spec = model_pb2.ModelSpec(name=check_name("model name", name))
    if version is not None:
        number = int(version)
        if number > _MAX_VERSION:
            raise invalid_argument(f"Failed to convert version: {version} to numeric.")
        spec.version.value = number
    if label is not None:
        spec.version_label = check_name("model version label", label)
    return spec


class RestApp:
    """The WSGI application serving TF Serving's REST API.

    Args:
        service: The ``InferenceService`` that answers every call.
        metrics: Metrics whose page is served at the monitoring path; requests rejected
            here, before reaching the service, are counted in it too.
        monitoring: The monitoring spec (path, enable); no metrics page when None.
        max_body_bytes: Largest request body accepted (413 beyond).
    """

    def __init__(self, service: InferenceService, metrics: ServingMetrics | None = None,
                 monitoring: MonitoringSpec | None = None, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES):
        self.service = service
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        path = None
        if monitoring is not None and monitoring.enable and metrics is not None:
            path = monitoring.path
        self.monitoring_path = path
        self.url_map = _build_map(path)
        self._handlers: dict[str, Callable[..., Response]] = {
            "no_model": self._no_model,
            "status": self._status,
            "metadata": self._metadata,
            "inference": self._inference,
            "monitoring": self._monitoring,
        }

    def __call__(self, environ: dict, start_response: Callable) -> Any:
        """Serves one WSGI request."""
        request = Request(environ)
        # One byte of slack: werkzeug stops a chunked body quietly at the limit, so reading
        # max + 1 bytes is how a body over the limit shows (see _read_body).
        request.max_content_length = self.max_body_bytes + 1
        with inference.entrypoint("REST"):  # metrics label the service's calls as REST
            response = self._dispatch(request)
        return response(environ, start_response)

    # ------------------------------------------------------------------ dispatch

    def _dispatch(self, request: Request) -> Response:
        adapter = self.url_map.bind_to_environ(request.environ)
        try:
            endpoint, args = adapter.match()
        except NotFound:
            return _error_response(404, f"Malformed request: {request.method} {request.path}")
        except MethodNotAllowed as e:
            response = _error_response(405, f"Malformed request: {request.method} {request.path}")
            response.headers["Allow"] = ", ".join(sorted(e.valid_methods or []))
            return response
        try:
            return self._handlers[endpoint](request, **args)
        except ServingError as e:
            return _error_response(e.http_status, e.message)
        except RequestEntityTooLarge:
            return _error_response(
                413, f"Request body of {request.content_length or 'more than ' + str(self.max_body_bytes)} "
                f"bytes exceeds the limit of {self.max_body_bytes} bytes"
            )
        except Exception as e:  # a bug, not a bad request: log it, answer 500 as TF Serving would
            logger.exception("REST %s %s failed", request.method, request.path)
            return _error_response(500, f"Internal error: {type(e).__name__}: {e}")

    # ------------------------------------------------------------------ handlers

    def _no_model(self, request: Request) -> Response:
        raise invalid_argument("Missing model name in request.")

    def _status(self, request: Request, name: str, version: str | None = None, label: str | None = None) -> Response:
        call = get_model_status_pb2.GetModelStatusRequest()
        call.model_spec.CopyFrom(model_spec_from_url(name, version, label))
        response = self.service.get_model_status(call)
        return _json_response(model_status_to_json(response), indent=1)

    def _metadata(self, request: Request, name: str, version: str | None = None, label: str | None = None) -> Response:
        call = get_model_metadata_pb2.GetModelMetadataRequest()
        call.model_spec.CopyFrom(model_spec_from_url(name, version, label))
        call.metadata_field.append("signature_def")
        response = self.service.get_model_metadata(call)
        return _json_response(model_metadata_to_json(response), indent=1)

    def _inference(self, request: Request, name: str, method: str,
                   version: str | None = None, label: str | None = None) -> Response:
        if method not in _METHODS:
            raise invalid_argument(f"Malformed request: {request.method} {request.path}")
        start = time.monotonic()
        with self._counting_rejections(name, method, start):
            spec = model_spec_from_url(name, version, label)
            doc = parse_json_object(self._read_body(request))
            spec.signature_name = signature_name_from_json(doc)
        if method == "predict":
            call = predict_pb2.PredictRequest()
            call.model_spec.CopyFrom(spec)
            with self._counting_rejections(name, method, start):
                fmt = fill_predict_inputs(doc, self._signature_inputs(spec), call)
            return _json_response(predict_outputs_to_json(self.service.predict(call).outputs, fmt))
        if method == "classify":
            call = classification_pb2.ClassificationRequest()
        else:
            call = regression_pb2.RegressionRequest()
        call.model_spec.CopyFrom(spec)
        with self._counting_rejections(name, method, start):
            fill_example_input(doc, call.input)
        if method == "classify":
            return _json_response(classification_result_to_json(self.service.classify(call).result))
        return _json_response(regression_result_to_json(self.service.regress(call).result))

    @contextlib.contextmanager
    def _counting_rejections(self, model: str, api: str, start: float) -> Iterator[None]:
        """Counts a ServingError raised in the block: a request the service never saw."""
        try:
            yield
        except ServingError as e:
            if self.metrics is not None:
                self.metrics.record_request(model, api, e.code.name, time.monotonic() - start, entrypoint="REST")
            raise

    def _signature_inputs(self, spec: model_pb2.ModelSpec) -> Any:
        """Returns the inputs (alias -> TensorInfo) of the signature a predict request names.

        Read from the servable the model spec resolves to, through the service's model
        manager (as TF Serving reads it from its ServerCore: no extra request is counted);
        a service without a manager is asked for its metadata instead.
        """
        manager = getattr(self.service, "manager", None)
        if manager is not None and hasattr(manager, "handle"):
            version = spec.version.value if spec.WhichOneof("version_choice") == "version" else None
            label = spec.version_label if spec.WhichOneof("version_choice") == "version_label" else None
            with manager.handle(spec.name, version, label) as servable:
                signatures = dict(servable.signature_defs)
        else:
            call = get_model_metadata_pb2.GetModelMetadataRequest()
            call.model_spec.CopyFrom(spec)
            call.model_spec.ClearField("signature_name")
            call.metadata_field.append("signature_def")
            signatures = signature_def_map(self.service.get_model_metadata(call)).signature_def
        signature = spec.signature_name or DEFAULT_SIGNATURE
        if signature not in signatures:
            raise invalid_argument(f'Serving signature name: "{signature}" not found in signature def')
        return signatures[signature].inputs

    def _monitoring(self, request: Request) -> Response:
        body, content_type = self.metrics.exposition()
        return Response(body, status=200, content_type=content_type)

    def _read_body(self, request: Request) -> bytes:
        length = request.content_length
        if length is not None and length > self.max_body_bytes:
            raise RequestEntityTooLarge()
        body = request.get_data(cache=False)
        if len(body) > self.max_body_bytes:
            raise RequestEntityTooLarge()
        return body


def _json_response(obj: Any, status: int = 200, indent: int | None = None) -> Response:
    return Response(dumps(obj, indent=indent), status=status, content_type=JSON_CONTENT_TYPE)


def _error_response(status: int, message: str) -> Response:
    return _json_response(error_to_json(message), status=status, indent=1)


def make_rest_app(service: InferenceService, metrics: ServingMetrics | None = None,
                  monitoring: MonitoringSpec | None = None, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> RestApp:
    """Builds the WSGI app of TF Serving's REST API.

    Args:
        service: The ``InferenceService`` (``predict``, ``classify``, ``regress``,
            ``get_model_metadata``, ``get_model_status``).
        metrics: A ``ServingMetrics``: serves its page at the monitoring path and counts
            requests rejected by the REST layer itself.
        monitoring: A ``MonitoringSpec``; the metrics page is served when it is enabled.
        max_body_bytes: Largest request body accepted; larger ones get 413.

    Returns:
        The WSGI application.
    """
    return RestApp(service, metrics=metrics, monitoring=monitoring, max_body_bytes=max_body_bytes)


__all__ = ["RestApp", "check_name", "make_rest_app", "model_spec_from_url"]

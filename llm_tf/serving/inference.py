"""TF Serving's PredictionService and ModelService, in one place: :class:`InferenceService`.

Predict, Classify, Regress, MultiInference, GetModelMetadata, GetModelStatus and
HandleReloadConfigRequest on the official protos. The gRPC servicers and the REST handlers are
thin translations onto :class:`InferenceService`; it resolves each request's model spec to a
servable and runs it there (:mod:`llm_tf.serving.servable_calls`). Every failure is a
:class:`~llm_tf.serving.errors.ServingError` with TF Serving's code and (where TF Serving has
one) its message.
"""

import contextlib
import contextvars
import os
import time
from collections.abc import Callable

from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_pb2,
    predict_pb2,
    regression_pb2,
)

from llm_tf.errors import ConfigError
from llm_tf.serving import config, errors
from llm_tf.serving.servable import Servable
from llm_tf.serving.servable_calls import (
    check_tasks,
    classify_on,
    multi_inference_on,
    predict_on,
    regress_on,
)

SIGNATURE_DEF_FIELD = "signature_def"

#: Which front end a call came in through (``GRPC`` or ``REST``), for the metrics' ``entrypoint``
#: label. The REST layer sets it around its calls with :func:`entrypoint`.
ENTRYPOINT: contextvars.ContextVar[str] = contextvars.ContextVar("llm_tf_serving_entrypoint", default="GRPC")


@contextlib.contextmanager
def entrypoint(name: str):
    """Marks the calls made inside the block as coming through ``name`` (e.g. ``REST``)."""
    token = ENTRYPOINT.set(name)
    try:
        yield
    finally:
        ENTRYPOINT.reset(token)


def spec_choice(model_spec: model_pb2.ModelSpec) -> tuple[str, int | None, str | None]:
    """Splits a request's ``ModelSpec`` into (name, version or None, label or None)."""
    choice = model_spec.WhichOneof("version_choice")
    version = model_spec.version.value if choice == "version" else None
    label = model_spec.version_label if choice == "version_label" else None
    return model_spec.name, version, label


class InferenceService:
    """TF Serving's PredictionService and ModelService semantics over a :class:`ModelManager`.

    Args:
        manager: The model manager that resolves model specs to servables.
        metrics: A ``ServingMetrics``; every call is recorded with its API, status and latency.
    """

    def __init__(self, manager, metrics=None):
        self.manager = manager
        self.metrics = metrics

    def _call(self, api: str, model: str, fn: Callable):
        entry = ENTRYPOINT.get()
        started = time.monotonic()
        status = "OK"
        try:
            return fn()
        except errors.ServingError as e:
            status = e.code.name
            raise
        except Exception:
            status = "INTERNAL"
            raise
        finally:
            if self.metrics is not None:
                self.metrics.record_request(model, api, status, time.monotonic() - started, entrypoint=entry)

    def _on_servable(self, model_spec: model_pb2.ModelSpec, run: Callable):
        name, version, label = spec_choice(model_spec)
        with self.manager.handle(name, version, label) as servable:
            return run(servable)

    def predict(self, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
        """Predict: runs a signature on tensors.

        Args:
            request: ``model_spec`` (name, version or version_label, signature_name),
                ``inputs``, ``output_filter``.

        Returns:
            The outputs and the model spec that answered (with its version).

        Raises:
            ServingError: NOT_FOUND (model/version), INVALID_ARGUMENT (label, inputs, filter),
                FAILED_PRECONDITION (unknown signature), the model's errors.
        """
        return self._call("predict", request.model_spec.name,
                          lambda: self._on_servable(request.model_spec, lambda s: predict_on(s, request)))

    def classify(self, request: classification_pb2.ClassificationRequest) -> classification_pb2.ClassificationResponse:
        """Classify: runs a ``tensorflow/serving/classify`` signature on ``tf.Example`` s.

        Args:
            request: ``model_spec`` and ``input`` (``example_list`` or
                ``example_list_with_context``).

        Returns:
            One ``Classifications`` per example (label and score per class).

        Raises:
            ServingError: NOT_FOUND (model/version), INVALID_ARGUMENT (signature, method name,
                empty input, bad examples).
        """
        return self._call("classify", request.model_spec.name,
                          lambda: self._on_servable(request.model_spec, lambda s: classify_on(s, request)))

    def regress(self, request: regression_pb2.RegressionRequest) -> regression_pb2.RegressionResponse:
        """Regress: runs a ``tensorflow/serving/regress`` signature on ``tf.Example`` s.

        Args:
            request: ``model_spec`` and ``input``.

        Returns:
            One ``Regression`` per example.

        Raises:
            ServingError: As :meth:`classify` (our exported models have no regress signature:
                INVALID_ARGUMENT naming the method it has).
        """
        return self._call("regress", request.model_spec.name,
                          lambda: self._on_servable(request.model_spec, lambda s: regress_on(s, request)))

    def multi_inference(self, request: inference_pb2.MultiInferenceRequest) -> inference_pb2.MultiInferenceResponse:
        """MultiInference: several classify/regress tasks of one model on one input.

        Args:
            request: ``tasks`` (model spec + method name each) and ``input``.

        Returns:
            One result per task.

        Raises:
            ServingError: INVALID_ARGUMENT (no tasks, different models, repeated or unknown
                signature), UNIMPLEMENTED (other methods), NOT_FOUND (model/version).
        """
        model = request.tasks[0].model_spec.name if request.tasks else ""

        def run():
            check_tasks(request)
            return self._on_servable(request.tasks[0].model_spec, lambda s: multi_inference_on(s, request))

        return self._call("multi_inference", model, run)

    def get_model_metadata(
            self, request: get_model_metadata_pb2.GetModelMetadataRequest
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        """GetModelMetadata: the ``signature_def`` map of the version a model spec names.

        Args:
            request: ``model_spec`` and ``metadata_field`` (only ``signature_def`` is supported).

        Returns:
            ``model_spec`` (name, version) and ``metadata["signature_def"]``, an ``Any``
            holding a ``SignatureDefMap``.

        Raises:
            ServingError: INVALID_ARGUMENT (no model spec, no or unsupported field),
                NOT_FOUND (model/version).
        """

        def run():
            if not request.HasField("model_spec"):
                raise errors.invalid_argument("Missing ModelSpec")
            if not request.metadata_field:
                raise errors.invalid_argument("GetModelMetadataRequest must specify at least one metadata_field")
            for field in request.metadata_field:
                if field != SIGNATURE_DEF_FIELD:
                    raise errors.invalid_argument(f"Metadata field {field} is not supported")
            return self._on_servable(request.model_spec, self._metadata_of)

        return self._call("metadata", request.model_spec.name, run)

    @staticmethod
    def _metadata_of(servable: Servable) -> get_model_metadata_pb2.GetModelMetadataResponse:
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, signature in servable.signature_defs.items():
            signature_map.signature_def[key].CopyFrom(signature)
        response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_map)
        return response

    def get_model_status(
            self, request: get_model_status_pb2.GetModelStatusRequest) -> get_model_status_pb2.GetModelStatusResponse:
        """GetModelStatus: the state of one version, or of every version the server has seen.

        Args:
            request: ``model_spec`` (name, optional version; a label is ignored as in TF Serving).

        Returns:
            ``model_version_status`` entries, highest version first; ``status.error_code`` is
            the load error of a version that failed (state ``END``).

        Raises:
            ServingError: INVALID_ARGUMENT (no model spec); NOT_FOUND (model or version never
                seen).
        """

        def run():
            if not request.HasField("model_spec"):
                raise errors.invalid_argument("Missing ModelSpec")
            name = request.model_spec.name
            statuses = self.manager.version_statuses(name)
            response = get_model_status_pb2.GetModelStatusResponse()
            if request.model_spec.WhichOneof("version_choice") == "version":
                version = request.model_spec.version.value
                if version not in statuses:
                    raise errors.not_found(f"Could not find version {version} of model {name}")
                selected = {version: statuses[version]}
            else:
                if not statuses:
                    raise errors.not_found(f"Could not find any versions of model {name}")
                selected = statuses
            for version in sorted(selected, reverse=True):
                status = selected[version]
                entry = response.model_version_status.add(version=version, state=status.state)
                if status.error is not None:
                    entry.status.error_code = status.error.code.value[0]
                    entry.status.error_message = status.error.message
            return response

        return self._call("status", request.model_spec.name, run)

    def reload_config(
            self, request: model_management_pb2.ReloadConfigRequest) -> model_management_pb2.ReloadConfigResponse:
        """HandleReloadConfigRequest: replaces the served model list (``model_config_list``).

        Returns once new versions are loaded and removed models unloaded.

        Args:
            request: ``config``, a ``ModelServerConfig`` with a ``model_config_list``.

        Returns:
            The response, ``status`` OK.

        Raises:
            ServingError: INVALID_ARGUMENT (not a model_config_list, invalid or relative paths,
                duplicate names); FAILED_PRECONDITION (a label naming a version not available).
        """
        if request.config.WhichOneof("config") != "model_config_list":
            raise errors.invalid_argument(
                "ServerModelConfig type not supported by HandleReloadConfigRequest. Only ModelConfigList is "
                "currently supported")
        for model in request.config.model_config_list.config:
            if not os.path.isabs(model.base_path) and "://" not in model.base_path:
                raise errors.invalid_argument(
                    f"Expected model {model.name} to have an absolute path or URI; got base_path()={model.base_path}")
        try:
            specs = config.model_specs_from_proto(request.config, "ReloadConfigRequest.config")
        except ConfigError as e:
            raise errors.invalid_argument(str(e)) from None
        self.manager.reload_config(specs)
        response = model_management_pb2.ReloadConfigResponse()
        response.status.error_code = 0
        return response

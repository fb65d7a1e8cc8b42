"""TF Serving's request semantics, in one place: Predict, Classify, Regress, MultiInference,
GetModelMetadata, GetModelStatus and HandleReloadConfigRequest on the official protos.

The gRPC servicers and the REST handlers are thin translations onto :class:`InferenceService`;
every failure is a :class:`~llm_tf.serving.errors.ServingError` with TF Serving's code and
(where TF Serving has one) its message.
"""

import contextlib
import contextvars
import os
import time
from typing import Callable

import numpy as np
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    input_pb2,
    model_management_pb2,
    model_pb2,
    predict_pb2,
    prediction_log_pb2,
    regression_pb2,
)

from llm_tf.errors import ConfigError
from llm_tf.serving import errors, tensors
from llm_tf.serving.servable import (
    CLASSIFY_METHOD,
    DEFAULT_SIGNATURE,
    REGRESS_METHOD,
    Servable,
)

SIGNATURE_DEF_FIELD = "signature_def"
CLASSIFY_INPUTS = "inputs"
CLASSIFY_CLASSES = "classes"
CLASSIFY_SCORES = "scores"
REGRESS_INPUTS = "inputs"
REGRESS_OUTPUTS = "outputs"


# --------------------------------------------------------------------------- model specs
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


def make_model_spec(out: model_pb2.ModelSpec, name: str, signature_name: str | None, version: int) -> None:
    """Fills a response's ``model_spec`` as TF Serving does (empty signature -> serving_default)."""
    out.Clear()
    out.name = name
    if signature_name is not None:
        out.signature_name = signature_name or DEFAULT_SIGNATURE
    out.version.value = version


# ------------------------------------------------------------------------------- inputs
def serialized_examples(request_input: input_pb2.Input) -> np.ndarray:
    """Turns a Classify/Regress ``Input`` into the serialized ``tf.Example`` strings to feed.

    ``ExampleListWithContext`` examples are the context's bytes followed by the example's: as
    protobuf merges concatenated messages, each example sees the context's features (its own
    win on a clash), exactly as TF Serving feeds them.

    Args:
        request_input: The request's ``input``.

    Returns:
        A 1-D object array of ``bytes``.

    Raises:
        ServingError: INVALID_ARGUMENT ``Input is empty.`` when there are no examples.
    """
    kind = request_input.WhichOneof("kind")
    if kind == "example_list":
        values = [e.SerializeToString() for e in request_input.example_list.examples]
    elif kind == "example_list_with_context":
        listed = request_input.example_list_with_context
        context = listed.context.SerializeToString()
        values = [context + e.SerializeToString() for e in listed.examples]
    else:
        values = []
    if not values:
        raise errors.invalid_argument("Input is empty.")
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


# --------------------------------------------------------------------------- predict
def predict_on(servable: Servable, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
    """Runs a PredictRequest on one servable (no model lookup).

    Args:
        servable: The model version.
        request: The request (``model_spec.signature_name``, ``inputs``, ``output_filter``).

    Returns:
        The response, outputs as typed ``*_val`` tensors.

    Raises:
        ServingError: See :meth:`Servable.run`.
    """
    signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
    servable.predict_signature(signature_name)
    inputs = {key: tensors.to_numpy(proto, f'inputs["{key}"]') for key, proto in request.inputs.items()}
    outputs = servable.run(signature_name, inputs, list(request.output_filter))
    response = predict_pb2.PredictResponse()
    make_model_spec(response.model_spec, request.model_spec.name or servable.name, signature_name, servable.version)
    for alias, value in outputs.items():
        tensors.to_proto(value, out=response.outputs[alias])
    return response


# -------------------------------------------------------------------- classify / regress
def _task_signature(servable: Servable, signature_name: str, method: str, kind: str):
    name = signature_name or DEFAULT_SIGNATURE
    signature = servable.signature_defs.get(name)
    if signature is None:
        raise errors.invalid_argument(f"No signature was found with the name: {name}")
    if signature.method_name != method:
        raise errors.invalid_argument(
            f"Expected {kind} signature method_name to be {method}. Was: {signature.method_name}")
    if len(signature.inputs) != 1:
        raise errors.invalid_argument("Expected one input Tensor.")
    return name, signature


def _classification_signature(servable: Servable, signature_name: str):
    name, signature = _task_signature(servable, signature_name, CLASSIFY_METHOD, "classification")
    if len(signature.outputs) not in (1, 2):
        raise errors.invalid_argument(f"Expected one or two output Tensors, found {len(signature.outputs)}")
    if CLASSIFY_INPUTS not in signature.inputs:
        raise errors.invalid_argument(f"No classification inputs found in SignatureDef: {signature_name or name} "
                                      f"(expected an input named {CLASSIFY_INPUTS!r})")
    if CLASSIFY_CLASSES not in signature.outputs and CLASSIFY_SCORES not in signature.outputs:
        raise errors.invalid_argument(
            f'Expected classification signature outputs to contain at least one of "{CLASSIFY_CLASSES}" or '
            f'"{CLASSIFY_SCORES}". Signature was: {name}')
    return name, signature


def _regression_signature(servable: Servable, signature_name: str):
    name, signature = _task_signature(servable, signature_name, REGRESS_METHOD, "regression")
    if len(signature.outputs) != 1:
        raise errors.invalid_argument("Expected one output Tensor.")
    if REGRESS_INPUTS not in signature.inputs:
        raise errors.invalid_argument(f"No regression inputs found in SignatureDef: {name}")
    if REGRESS_OUTPUTS not in signature.outputs:
        raise errors.invalid_argument(f"No regression outputs found in SignatureDef: {name}")
    return name, signature


def _classification_result(outputs: dict[str, np.ndarray], num_examples: int,
                           result: classification_pb2.ClassificationResult) -> None:
    classes, scores = outputs.get(CLASSIFY_CLASSES), outputs.get(CLASSIFY_SCORES)
    for alias, value, kind in ((CLASSIFY_CLASSES, classes, "O"), (CLASSIFY_SCORES, scores, "f")):
        if value is None:
            continue
        if value.ndim != 2:
            raise errors.invalid_argument(f"Expected Tensor shape: [batch_size num_classes] but got {list(value.shape)}")
        if kind == "O" and value.dtype.kind not in "OSU":
            raise errors.invalid_argument(f"Expected classes Tensor of DT_STRING. Got: {value.dtype}")
        if kind == "f" and value.dtype != np.float32:
            raise errors.invalid_argument(f"Expected scores Tensor of DT_FLOAT. Got: {value.dtype}")
        if value.shape[0] != num_examples:
            raise errors.invalid_argument(
                f"Expected {alias} output batch size of {num_examples}. Got: {value.shape[0]}")
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise errors.invalid_argument(
            f"Tensors class and score should match in dim_size(1). Got {classes.shape[1]} vs. {scores.shape[1]}")
    num_classes = (classes if classes is not None else scores).shape[1]
    for i in range(num_examples):
        classifications = result.classifications.add()
        for c in range(num_classes):
            item = classifications.classes.add()
            if classes is not None:
                label = classes[i, c]
                item.label = label.decode("utf-8", "replace") if isinstance(label, bytes) else str(label)
            if scores is not None:
                item.score = float(scores[i, c])


def _regression_result(outputs: dict[str, np.ndarray], num_examples: int,
                       result: regression_pb2.RegressionResult) -> None:
    values = outputs[REGRESS_OUTPUTS]
    if not (values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1)):
        raise errors.invalid_argument(
            f"Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got {list(values.shape)}")
    if values.shape[0] != num_examples:
        raise errors.invalid_argument(
            f"Input batch size did not match output batch size: {num_examples} vs. {values.shape[0]}")
    if values.dtype != np.float32:
        raise errors.invalid_argument(f"Expected output Tensor of DT_FLOAT.  Got: {values.dtype}")
    for value in values.reshape(-1):
        result.regressions.add(value=float(value))


def classify_on(servable: Servable,
                request: classification_pb2.ClassificationRequest) -> classification_pb2.ClassificationResponse:
    """Runs a ClassificationRequest on one servable.

    Args:
        servable: The model version.
        request: The request; the signature must have method ``tensorflow/serving/classify``.

    Returns:
        The response with one ``Classifications`` per example.

    Raises:
        ServingError: INVALID_ARGUMENT for an unknown or non-classify signature, an empty
            input, or outputs of the wrong shape or dtype; the model's own errors.
    """
    name, _ = _classification_signature(servable, request.model_spec.signature_name)
    examples = serialized_examples(request.input)
    outputs = servable.run(name, {CLASSIFY_INPUTS: examples})
    response = classification_pb2.ClassificationResponse()
    make_model_spec(response.model_spec, request.model_spec.name or servable.name,
                    request.model_spec.signature_name, servable.version)
    _classification_result(outputs, len(examples), response.result)
    return response


def regress_on(servable: Servable, request: regression_pb2.RegressionRequest) -> regression_pb2.RegressionResponse:
    """Runs a RegressionRequest on one servable.

    Args:
        servable: The model version.
        request: The request; the signature must have method ``tensorflow/serving/regress``.

    Returns:
        The response with one ``Regression`` per example.

    Raises:
        ServingError: INVALID_ARGUMENT for an unknown or non-regress signature, an empty input
            or a badly shaped output; the model's own errors.
    """
    name, _ = _regression_signature(servable, request.model_spec.signature_name)
    examples = serialized_examples(request.input)
    outputs = servable.run(name, {REGRESS_INPUTS: examples})
    response = regression_pb2.RegressionResponse()
    make_model_spec(response.model_spec, request.model_spec.name or servable.name,
                    request.model_spec.signature_name, servable.version)
    _regression_result(outputs, len(examples), response.result)
    return response


def _check_tasks(request: inference_pb2.MultiInferenceRequest) -> str:
    """Validates a MultiInferenceRequest's tasks; returns the model name they share."""
    if not request.tasks:
        raise errors.invalid_argument("MultiInferenceRequest must specify at least one task.")
    model_name = ""
    seen = set()
    for task in request.tasks:
        if not task.model_spec.name:
            raise errors.invalid_argument("Found ModelSpec with an empty model name.")
        if model_name and task.model_spec.name != model_name:
            raise errors.invalid_argument("All ModelSpecs in a MultiInferenceRequest must access the same model name.")
        model_name = task.model_spec.name
        signature_name = task.model_spec.signature_name or DEFAULT_SIGNATURE
        if signature_name in seen:
            raise errors.invalid_argument(f"Duplicate evaluation of signature: {signature_name}")
        seen.add(signature_name)
    return model_name


def multi_inference_on(servable: Servable,
                       request: inference_pb2.MultiInferenceRequest) -> inference_pb2.MultiInferenceResponse:
    """Runs a MultiInferenceRequest's classify/regress tasks on one servable, one shared input.

    Args:
        servable: The model version.
        request: The request; every task names the same model.

    Returns:
        One ``InferenceResult`` per task, in task order.

    Raises:
        ServingError: INVALID_ARGUMENT for no tasks, tasks naming different models, a repeated
            or unknown signature; UNIMPLEMENTED for a method other than classify/regress.
    """
    _check_tasks(request)
    plans = []
    for task in request.tasks:
        signature_name = task.model_spec.signature_name or DEFAULT_SIGNATURE
        if signature_name not in servable.signature_defs:
            raise errors.invalid_argument(f"Requested signature not found in model graph: {signature_name}")
        if task.method_name == CLASSIFY_METHOD:
            plans.append((task, _classification_signature(servable, signature_name)[0]))
        elif task.method_name == REGRESS_METHOD:
            plans.append((task, _regression_signature(servable, signature_name)[0]))
        else:
            raise errors.unimplemented(f"Unsupported signature method_name: {task.method_name}")
    examples = serialized_examples(request.input)
    response = inference_pb2.MultiInferenceResponse()
    for task, signature_name in plans:
        outputs = servable.run(signature_name, {CLASSIFY_INPUTS: examples})
        result = response.results.add()
        if task.method_name == CLASSIFY_METHOD:
            _classification_result(outputs, len(examples), result.classification_result)
        else:
            _regression_result(outputs, len(examples), result.regression_result)
        make_model_spec(result.model_spec, task.model_spec.name, task.model_spec.signature_name, servable.version)
    return response


def replay_warmup(servable: Servable, record: prediction_log_pb2.PredictionLog) -> None:
    """Replays one warm-up ``PredictionLog`` on a servable that is not yet AVAILABLE.

    Args:
        servable: The version being loaded.
        record: A record of ``assets.extra/tf_serving_warmup_requests``.

    Raises:
        ServingError: The request failed (the load fails with it), or UNIMPLEMENTED for a log
            type other than predict/classify/regress/multi_inference.
    """
    kind = record.WhichOneof("log_type")
    if kind == "predict_log":
        predict_on(servable, record.predict_log.request)
    elif kind == "classify_log":
        classify_on(servable, record.classify_log.request)
    elif kind == "regress_log":
        regress_on(servable, record.regress_log.request)
    elif kind == "multi_inference_log":
        multi_inference_on(servable, record.multi_inference_log.request)
    else:
        raise errors.unimplemented(f"Unsupported log_type for warmup: {kind}")


# ------------------------------------------------------------------------------ service
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
            _check_tasks(request)
            return self._on_servable(request.tasks[0].model_spec, lambda s: multi_inference_on(s, request))

        return self._call("multi_inference", model, run)

    def get_model_metadata(
            self, request: get_model_metadata_pb2.GetModelMetadataRequest) -> get_model_metadata_pb2.GetModelMetadataResponse:
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
        from llm_tf.serving import config

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

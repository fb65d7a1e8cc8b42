"""TF Serving's Predict, Classify, Regress and MultiInference semantics on one loaded servable.

:class:`~llm_tf.serving.inference.InferenceService` resolves a request's model spec to a
:class:`~llm_tf.serving.servable.Servable` and runs these on it; model loading replays warm-up
records through :func:`replay_warmup`. Every failure is a
:class:`~llm_tf.serving.errors.ServingError` with TF Serving's code and (where TF Serving has
one) its message.
"""

import numpy as np
from tensorflow_serving.apis import (
    classification_pb2,
    inference_pb2,
    input_pb2,
    model_pb2,
    predict_pb2,
    prediction_log_pb2,
    regression_pb2,
)

from llm_tf.serving import errors, tensors
from llm_tf.serving.servable import (
    CLASSIFY_METHOD,
    DEFAULT_SIGNATURE,
    REGRESS_METHOD,
    Servable,
)

CLASSIFY_INPUTS = "inputs"
CLASSIFY_CLASSES = "classes"
CLASSIFY_SCORES = "scores"
REGRESS_INPUTS = "inputs"
REGRESS_OUTPUTS = "outputs"


# --------------------------------------------------------------------------- model specs
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
            raise errors.invalid_argument(
                f"Expected Tensor shape: [batch_size num_classes] but got {list(value.shape)}")
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


def check_tasks(request: inference_pb2.MultiInferenceRequest) -> str:
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
    check_tasks(request)
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

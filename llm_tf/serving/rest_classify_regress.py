"""TF Serving's REST classify and regress: ``"examples"`` (and ``"context"``) -> ``tf.Example`` s, results -> JSON.

Requests become an ``Input`` of ``tf.Example`` protos; results are written as
``{"results": ...}``, as TF Serving writes them.
"""

import math
from typing import Any

import numpy as np
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow_serving.apis import classification_pb2, input_pb2, regression_pb2

from llm_tf.serving.errors import ServingError, invalid_argument
from llm_tf.serving.rest_json_base import (
    decode_b64_object,
    encode_utf8,
    format_error,
    is_b64_object,
    json_type_name,
)

CONTEXT_KEY = "context"
EXAMPLES_KEY = "examples"


def _feature_kind_error(name: str, feature: feature_pb2.Feature) -> ServingError:
    kind = {"bytes_list": "bytes", "float_list": "float", "int64_list": "int64"}.get(
        feature.WhichOneof("kind") or "", "UNKNOWN"
    )
    return invalid_argument(f"Unexpected element type in feature: {name} expecting type: {kind}")


def _add_feature_value(value: Any, name: str, feature: feature_pb2.Feature) -> None:
    kind = feature.WhichOneof("kind")

    def require(wanted: str) -> None:
        if kind not in (None, wanted):
            raise _feature_kind_error(name, feature)

    if value is None or isinstance(value, list) or (isinstance(value, dict) and not is_b64_object(value)):
        raise invalid_argument(
            f"Feature: {name} has element with unexpected JSON type: {json_type_name(value)}"
        )
    if isinstance(value, bool):
        require("int64_list")
        feature.int64_list.value.append(int(value))
    elif isinstance(value, dict):
        require("bytes_list")
        feature.bytes_list.value.append(decode_b64_object(value))
    elif isinstance(value, str):
        require("bytes_list")
        feature.bytes_list.value.append(encode_utf8(value))
    elif isinstance(value, float) or value >= 2**64 or value < -(2**63):
        # Like rapidjson, integers beyond 64 bits are read as doubles.
        require("float_list")
        try:
            feature.float_list.value.append(float(value))
        except OverflowError:
            feature.float_list.value.append(math.copysign(math.inf, value))
    else:
        require("int64_list")
        if value >= 2**63:
            raise invalid_argument(f"Feature: {name} has uint64_t element. Only int64_t is supported.")
        feature.int64_list.value.append(value)


def _mixes_ints_and_floats(items: list) -> bool:
    """True for a list of numbers (no booleans) with both integers and decimals."""
    numbers = [isinstance(i, (int, float)) and not isinstance(i, bool) for i in items]
    return all(numbers) and any(isinstance(i, float) for i in items) and any(isinstance(i, int) for i in items)


def example_from_json(value: Any, example: example_pb2.Example) -> None:
    """Fills a ``tf.Example`` from a JSON object of feature name -> value or list of values.

    Strings and ``{"b64": ...}`` become ``bytes_list``, integers and booleans ``int64_list``,
    other numbers ``float_list``; the values of one feature must share a kind, except that a
    list of numbers with any decimal among them is a ``float_list`` (TF Serving rejects such a
    list; ``[0.5, 1]`` is accepted here).

    Args:
        value: The parsed JSON object.
        example: The proto to fill.

    Raises:
        ServingError: INVALID_ARGUMENT for a non-object, a null/nested/object value, mixed
            kinds or an integer above the int64 range.
    """
    if not isinstance(value, dict):
        raise invalid_argument(f"Example must be JSON object but got JSON {json_type_name(value)}")
    for name, content in value.items():
        feature = feature_pb2.Feature()
        items = content if isinstance(content, list) else [content]
        if _mixes_ints_and_floats(items):
            try:
                items = [float(item) for item in items]
            except OverflowError:
                pass  # an integer beyond any double: reported below as a kind mismatch
        for item in items:
            _add_feature_value(item, name, feature)
        example.features.feature[name].CopyFrom(feature)


def fill_example_input(doc: dict, input_proto: input_pb2.Input) -> None:
    """Fills the ``Input`` of a Classify/Regress request from ``examples`` (and ``context``).

    Args:
        doc: The parsed request object.
        input_proto: ``request.input``; an ``example_list``, or ``example_list_with_context``
            when ``context`` is given.

    Raises:
        ServingError: INVALID_ARGUMENT with TF Serving's message when ``examples`` is
            missing, not a list or empty, or an example or the context is malformed.
    """
    context = doc.get(CONTEXT_KEY)
    has_context = CONTEXT_KEY in doc
    if has_context:
        example_from_json(context, input_proto.example_list_with_context.context)
    if EXAMPLES_KEY not in doc:
        raise format_error(doc, "When method is classify, key 'examples' is expected and was not found")
    examples = doc[EXAMPLES_KEY]
    if not isinstance(examples, list):
        raise format_error(doc, "Expecting 'examples' value to be an list/array")
    if not examples:
        raise format_error(doc, "'examples' value is an empty array")
    target = input_proto.example_list_with_context.examples if has_context else input_proto.example_list.examples
    for value in examples:
        example_from_json(value, target.add())


def _float32(value: float) -> float:
    return float(str(np.float32(value)))


def classification_result_to_json(result: classification_pb2.ClassificationResult) -> dict:
    """Renders a ``ClassificationResult`` as ``{"results": [[[label, score], ...], ...]}``.

    Args:
        result: ``ClassificationResponse.result``.

    Returns:
        The JSON-ready response object (one list of ``[label, score]`` per example).

    Raises:
        ServingError: INVALID_ARGUMENT when there are no classifications.
    """
    if not result.classifications:
        raise invalid_argument("Cannot convert empty ClassificationResults to JSON")
    return {
        "results": [
            [[c.label, _float32(c.score)] for c in classifications.classes]
            for classifications in result.classifications
        ]
    }


def regression_result_to_json(result: regression_pb2.RegressionResult) -> dict:
    """Renders a ``RegressionResult`` as ``{"results": [value, ...]}``.

    Args:
        result: ``RegressionResponse.result``.

    Returns:
        The JSON-ready response object (one number per example).

    Raises:
        ServingError: INVALID_ARGUMENT when there are no regressions.
    """
    if not result.regressions:
        raise invalid_argument("Cannot convert empty RegressionResults to JSON")
    return {"results": [_float32(r.value) for r in result.regressions]}

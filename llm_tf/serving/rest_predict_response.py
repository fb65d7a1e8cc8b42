"""TF Serving's REST predict response: ``PredictResponse.outputs`` -> ``"predictions"`` / ``"outputs"``.

Row requests get ``"predictions"``, columnar ones ``"outputs"``; string outputs whose names
end in ``_bytes`` are written as ``{"b64": "..."}``; float32 values are written with the
shortest decimal that round-trips to the same float32.
"""

import base64
from collections.abc import Mapping
from typing import Any

import numpy as np
from tensorflow.core.framework import tensor_pb2, types_pb2

from llm_tf.serving import tensors
from llm_tf.serving.errors import invalid_argument
from llm_tf.serving.rest_json_base import BASE64_KEY
from llm_tf.serving.rest_predict_request import PredictFormat

BYTES_SUFFIX = "_bytes"


def _float32_values(flat: np.ndarray) -> list[float]:
    """float32/float16 values as Python floats with the shortest decimal that round-trips."""
    return [float(text) for text in flat.astype(str)]


def _string_value(value: bytes, as_bytes: bool) -> Any:
    if as_bytes:
        return {BASE64_KEY: base64.b64encode(value).decode("ascii")}
    return value.decode("utf-8", errors="replace")


def array_to_json(array: np.ndarray, as_bytes: bool = False) -> Any:
    """Converts a tensor value to nested JSON lists (a scalar for rank 0).

    Args:
        array: The tensor value as numpy (strings as ``object`` arrays of bytes).
        as_bytes: Write strings as ``{"b64": ...}`` (outputs named ``*_bytes``); otherwise
            they are decoded as UTF-8 (undecodable bytes become U+FFFD).

    Returns:
        JSON-ready nested lists of numbers, booleans, strings or b64 objects.

    Raises:
        ServingError: INVALID_ARGUMENT for a dtype JSON cannot express (complex numbers).
    """
    kind = array.dtype.kind
    if kind in ("i", "u", "b") or array.dtype == np.float64:
        return array.tolist()
    flat = array.reshape(-1)
    if array.dtype in (np.float32, np.float16):
        values: list = _float32_values(flat)
    elif kind in ("O", "S"):
        values = [_string_value(bytes(v), as_bytes) for v in flat]
    elif kind == "U":
        values = [str(v) for v in flat]
    elif kind == "c":
        raise invalid_argument(f"Failed to write JSON value for tensor type: {array.dtype}")
    else:  # bfloat16 and other float-like extension types
        values = _float32_values(flat.astype(np.float32))
    boxed = np.empty(len(values), dtype=object)
    boxed[:] = values
    return boxed.reshape(array.shape).tolist()


def _output_arrays(outputs: Mapping[str, tensor_pb2.TensorProto]) -> dict[str, tuple[np.ndarray, bool]]:
    if not outputs:
        raise invalid_argument("Cannot convert empty tensor map to JSON")
    arrays = {}
    for name in sorted(outputs):
        proto = outputs[name]
        as_bytes = proto.dtype == types_pb2.DT_STRING and name.endswith(BYTES_SUFFIX)
        arrays[name] = (tensors.to_numpy(proto, f"outputs[{name!r}]"), as_bytes)
    return arrays


def predict_outputs_to_json(outputs: Mapping[str, tensor_pb2.TensorProto], fmt: PredictFormat) -> dict:
    """Renders ``PredictResponse.outputs`` as TF Serving's REST response.

    Row format: ``{"predictions": [...]}``, one entry per batch element; an entry is the
    value itself with one output, an object keyed by output name with several. Columnar:
    ``{"outputs": value}`` with one output, ``{"outputs": {name: value}}`` with several.

    Args:
        outputs: The response tensors by name.
        fmt: The format the request used.

    Returns:
        The JSON-ready response object.

    Raises:
        ServingError: INVALID_ARGUMENT for no outputs, a scalar output or outputs with
            different batch sizes in row format, or an output dtype JSON cannot express.
    """
    arrays = _output_arrays(outputs)
    if fmt is PredictFormat.COLUMNAR:
        values = {name: array_to_json(array, as_bytes) for name, (array, as_bytes) in arrays.items()}
        return {"outputs": next(iter(values.values())) if len(values) == 1 else values}
    batch = -1
    for name, (array, _) in arrays.items():
        if array.ndim == 0:
            raise invalid_argument(f"Tensor name: {name} has no shape information ")
        if batch >= 0 and array.shape[0] != batch:
            raise invalid_argument(
                f"Tensor name: {name} has inconsistent batch size: {array.shape[0]} expecting: {batch}"
            )
        batch = array.shape[0]
    columns = {name: array_to_json(array, as_bytes) for name, (array, as_bytes) in arrays.items()}
    if len(columns) == 1:
        return {"predictions": next(iter(columns.values()))}
    return {"predictions": [{name: column[i] for name, column in columns.items()} for i in range(batch)]}

"""TF Serving's REST predict request: ``"instances"`` (row) or ``"inputs"`` (columnar) -> tensors.

Row format is one value, nested list or object per instance; columnar format a value or an
object of named values. The input dtypes come from the signature; binary strings are
``{"b64": "..."}``. Errors carry TF Serving's texts.
"""

import enum
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow.core.protobuf import meta_graph_pb2

from llm_tf.serving import tensors
from llm_tf.serving.errors import ServingError, invalid_argument, unimplemented
from llm_tf.serving.rest_json_base import (
    debug_string,
    decode_b64_object,
    encode_utf8,
    format_error,
    is_b64_object,
    json_type_name,
)

INSTANCES_KEY = "instances"
INPUTS_KEY = "inputs"

# TensorFlow's limit on the rank of a tensor (TensorShape::MaxDimensions).
_MAX_RANK = 254

_INT_RANGES = {
    types_pb2.DT_INT8: (-(2**7), 2**7 - 1),
    types_pb2.DT_UINT8: (0, 2**8 - 1),
    types_pb2.DT_INT16: (-(2**15), 2**15 - 1),
    types_pb2.DT_UINT16: (0, 2**16 - 1),
    types_pb2.DT_INT32: (-(2**31), 2**31 - 1),
    types_pb2.DT_INT64: (-(2**63), 2**63 - 1),
    types_pb2.DT_UINT32: (0, 2**32 - 1),
    types_pb2.DT_UINT64: (0, 2**64 - 1),
}
_INT_FIELDS = {
    types_pb2.DT_INT8: "int_val",
    types_pb2.DT_UINT8: "int_val",
    types_pb2.DT_INT16: "int_val",
    types_pb2.DT_UINT16: "int_val",
    types_pb2.DT_INT32: "int_val",
    types_pb2.DT_INT64: "int64_val",
    types_pb2.DT_UINT32: "uint32_val",
    types_pb2.DT_UINT64: "uint64_val",
}


class PredictFormat(enum.Enum):
    """How the tensors of a predict request were written, and so how the response is."""

    ROW = "row"  # "instances" in, "predictions" out
    COLUMNAR = "columnar"  # "inputs" in, "outputs" out


def _type_error(value: Any, dtype: int) -> ServingError:
    return invalid_argument(
        f"JSON Value: {debug_string(value)} Type: {json_type_name(value)} "
        f"is not of expected type: {tensors.dtype_name(dtype)}"
    )


def _status_text(error: ServingError) -> str:
    """Formats an error the way absl's Status::ToString does ("CODE: message")."""
    return f"{error.code.name}: {error.message}"


def _is_named_object(value: Any) -> bool:
    return isinstance(value, dict) and not is_b64_object(value)


def _value_converter(dtype: int) -> Callable[[Any], Any]:
    """Returns a function that converts one JSON leaf value to what ``dtype``'s field holds."""
    if dtype in (types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE):

        def to_float(value: Any) -> float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise _type_error(value, dtype)
            try:
                return float(value)
            except OverflowError:
                raise _type_error(value, dtype) from None

        return to_float
    if dtype in _INT_RANGES:
        low, high = _INT_RANGES[dtype]

        def to_int(value: Any) -> int:
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise _type_error(value, dtype)
            return value

        return to_int
    if dtype == types_pb2.DT_BOOL:

        def to_bool(value: Any) -> bool:
            if not isinstance(value, bool):
                raise _type_error(value, dtype)
            return value

        return to_bool
    if dtype == types_pb2.DT_STRING:

        def to_bytes(value: Any) -> bytes:
            if isinstance(value, str):
                return encode_utf8(value)
            if isinstance(value, dict):
                return decode_b64_object(value)
            raise _type_error(value, dtype)

        return to_bytes

    def unsupported(value: Any) -> Any:
        raise unimplemented(
            f"Conversion of JSON Value: {debug_string(value)} to type: {tensors.dtype_name(dtype)}"
        )

    return unsupported


def _dense_shape(value: Any) -> list[int]:
    """Returns the shape of a nested list, following the first element of each level."""
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _flatten(value: Any, shape: list[int], convert: Callable[[Any], Any]) -> list:
    """Checks that ``value`` is a dense nested list of ``shape`` and returns its converted leaves."""
    if len(shape) > _MAX_RANK:
        raise invalid_argument(f"JSON Value nests lists {len(shape)} deep; tensors have at most {_MAX_RANK} dimensions")
    rank = len(shape)
    out: list = []
    stack = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if not isinstance(item, list):
            if level != rank:
                raise invalid_argument(
                    f"JSON Value: {debug_string(item)} found at incorrect level: {level + 1} "
                    f"in the JSON DOM. Expected at level: {rank}"
                )
            out.append(convert(item))
            continue
        if level >= rank:
            raise invalid_argument(f"Encountered list at unexpected level: {level} expected < {rank}")
        if len(item) != shape[level]:
            raise invalid_argument(
                f"Encountered list at unexpected size: {len(item)} at level: {level} "
                f"expected size: {shape[level]}"
            )
        stack.extend((child, level + 1) for child in reversed(item))
    return out


def _leaf_converter(dtype: int) -> Callable[[Any], Any]:
    """Like :func:`_value_converter`, but objects are only valid (as base64) for strings."""
    convert = _value_converter(dtype)
    if dtype == types_pb2.DT_STRING:
        return convert

    def checked(value: Any) -> Any:
        if isinstance(value, dict):
            raise _type_error(value, dtype)
        return convert(value)

    return checked


def _make_tensor(dtype: int, shape: list[int], values: list) -> tensor_pb2.TensorProto:
    proto = tensor_pb2.TensorProto(dtype=dtype)
    for size in shape:
        proto.tensor_shape.dim.add(size=size)
    if dtype == types_pb2.DT_FLOAT:
        proto.float_val.extend(values)
    elif dtype == types_pb2.DT_DOUBLE:
        proto.double_val.extend(values)
    elif dtype == types_pb2.DT_BOOL:
        proto.bool_val.extend(values)
    elif dtype == types_pb2.DT_STRING:
        proto.string_val.extend(values)
    elif dtype in _INT_FIELDS:
        getattr(proto, _INT_FIELDS[dtype]).extend(values)
    return proto


class _Column:
    """The values one named input collects over the instances of a row-format request."""

    def __init__(self, dtype: int):
        self.dtype = dtype
        self.convert = _leaf_converter(dtype)
        self.shape: list[int] | None = None
        self.values: list = []

    def add(self, item: Any) -> None:
        shape = _dense_shape(item)
        values = _flatten(item, shape, self.convert)
        if self.shape is not None:
            expected_size = int(np.prod(self.shape, dtype=np.int64))
            if expected_size != len(values):
                raise invalid_argument(f"Expecting tensor size: {expected_size} but got: {len(values)}")
            if shape != self.shape:
                raise invalid_argument(f"Expecting shape {_shape_text(self.shape)} but got: {_shape_text(shape)}")
        else:
            self.shape = shape
        self.values.extend(values)


def _shape_text(shape: list[int]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def _instances_to_tensors(
    instances: list, infos: Mapping[str, meta_graph_pb2.TensorInfo]
) -> dict[str, tensor_pb2.TensorProto]:
    names = sorted(infos)
    if not isinstance(instances[0], dict) and len(names) > 1:
        raise invalid_argument(
            "instances is a plain list, but expecting list of objects as multiple input tensors "
            "required as per tensorinfo_map"
        )
    objects = _is_named_object(instances[0])
    columns: dict[str, _Column] = {}
    for index, element in enumerate(instances):
        if objects:
            if not _is_named_object(element):
                raise invalid_argument(f"Expecting object but got list at item {index} of input list")
            for key, item in element.items():
                try:
                    if key not in infos:
                        raise invalid_argument(f"JSON object: does not have named input: {key}")
                    columns.setdefault(key, _Column(infos[key].dtype)).add(item)
                except ServingError as e:
                    raise invalid_argument(
                        f"Failed to process element: {index} key: {key} of 'instances' list. "
                        f"Error: {_status_text(e)}"
                    ) from None
            if set(element) != set(names):
                raise invalid_argument(
                    f"Failed to process element: {index} of 'instances' list. JSON object: "
                    f"{debug_string(element)} keys must be equal to: {','.join(names)}"
                )
        else:
            if _is_named_object(element):
                raise invalid_argument(f"Expecting value/list but got object at item {index} of input list")
            name = names[0]
            try:
                columns.setdefault(name, _Column(infos[name].dtype)).add(element)
            except ServingError as e:
                raise invalid_argument(
                    f"Failed to process element: {index} of 'instances' list. Error: {_status_text(e)}"
                ) from None
    return {
        name: _make_tensor(column.dtype, [len(instances)] + (column.shape or []), column.values)
        for name, column in columns.items()
    }


def _value_to_tensor(value: Any, dtype: int) -> tensor_pb2.TensorProto:
    shape = _dense_shape(value)
    return _make_tensor(dtype, shape, _flatten(value, shape, _leaf_converter(dtype)))


def _inputs_to_tensors(
    inputs: Any, infos: Mapping[str, meta_graph_pb2.TensorInfo]
) -> dict[str, tensor_pb2.TensorProto]:
    names = sorted(infos)
    if not _is_named_object(inputs):
        if len(names) > 1:
            raise invalid_argument(
                "inputs is a plain value/list, but expecting an object as multiple input tensors "
                "required as per tensorinfo_map"
            )
        return {names[0]: _value_to_tensor(inputs, infos[names[0]].dtype)}
    out = {}
    for name in names:
        if name not in inputs:
            raise invalid_argument(f"Missing named input: {name} in 'inputs' object.")
        out[name] = _value_to_tensor(inputs[name], infos[name].dtype)
    return out


def fill_predict_inputs(
    doc: dict, infos: Mapping[str, meta_graph_pb2.TensorInfo], request: Any
) -> PredictFormat:
    """Fills ``request.inputs`` from the ``instances`` or ``inputs`` of a predict request.

    Args:
        doc: The parsed request object.
        infos: The signature's inputs (alias -> ``TensorInfo``); their dtypes decide how JSON
            values are converted.
        request: A ``predict_pb2.PredictRequest`` whose ``inputs`` are replaced.

    Returns:
        The format the tensors were given in (and the response must use).

    Raises:
        ServingError: INVALID_ARGUMENT with TF Serving's message for a missing or doubled
            tensor key, an empty ``instances`` list, ragged or mis-typed values, unknown or
            missing named inputs; UNIMPLEMENTED for an input dtype JSON cannot express.
    """
    if not infos:
        signature = request.model_spec.signature_name or "DEFAULT"
        raise invalid_argument(f"Failed to get input map for signature: {signature}")
    has_instances, has_inputs = INSTANCES_KEY in doc, INPUTS_KEY in doc
    if has_instances and has_inputs:
        raise format_error(
            doc, "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist "
        )
    if has_instances:
        instances = doc[INSTANCES_KEY]
        if not isinstance(instances, list):
            raise format_error(doc, "Expecting 'instances' to be an list/array")
        if not instances:
            raise format_error(doc, "No values in 'instances' array")
        converted = _instances_to_tensors(instances, infos)
        fmt = PredictFormat.ROW
    elif has_inputs:
        converted = _inputs_to_tensors(doc[INPUTS_KEY], infos)
        fmt = PredictFormat.COLUMNAR
    else:
        raise invalid_argument("Missing 'inputs' or 'instances' key")
    request.ClearField("inputs")
    for name, tensor in converted.items():
        request.inputs[name].CopyFrom(tensor)
    return fmt

"""TF Serving's REST JSON <-> the ``tensorflow-serving-api`` protos.

The formats are the documented ones (https://www.tensorflow.org/tfx/serving/api_rest), with
TF Serving's own error texts, so a client sees the same JSON from ``tensorflow_model_server``
and from the embedded server:

- Predict requests in row format (``"instances"``: one value, nested list or object per
  instance) or columnar format (``"inputs"``: a value or an object of named values); the
  input dtypes come from the signature. Binary strings are ``{"b64": "..."}``.
- Predict responses as ``"predictions"`` (row) or ``"outputs"`` (columnar); string outputs
  whose names end in ``_bytes`` are written as ``{"b64": "..."}``; float32 values are
  written with the shortest decimal that round-trips to the same float32.
- Classify/Regress requests (``"examples"``, optional ``"context"``) as ``tf.Example``
  protos; results as ``{"results": ...}``.
- Model status and metadata as TF Serving prints those protos.

Every request-level failure raises :class:`llm_tf.serving.errors.ServingError`.
"""

import base64
import binascii
import enum
import json
import math
from typing import Any, Callable, Mapping

import numpy as np
from google.protobuf import json_format
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    input_pb2,
    regression_pb2,
)

from llm_tf.serving import tensors
from llm_tf.serving.errors import ServingError, internal, invalid_argument, unimplemented

SIGNATURE_KEY = "signature_name"
INSTANCES_KEY = "instances"
INPUTS_KEY = "inputs"
CONTEXT_KEY = "context"
EXAMPLES_KEY = "examples"
BASE64_KEY = "b64"
BYTES_SUFFIX = "_bytes"

# TensorFlow's limit on the rank of a tensor (TensorShape::MaxDimensions).
_MAX_RANK = 254
# Error messages quote at most this much of the offending JSON value (as TF Serving does).
_MAX_DEBUG_CHARS = 256

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


# ----------------------------------------------------------------------------- helpers


def json_type_name(value: Any) -> str:
    """Returns the JSON type of a parsed value as TF Serving names it ("Number", "Array"...).

    Args:
        value: A value produced by ``json.loads``.

    Returns:
        One of Null, False, True, Object, Array, String, Number.
    """
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def debug_string(value: Any) -> str:
    """Returns compact JSON for ``value``, cut after 256 characters (for error messages).

    Args:
        value: A value produced by ``json.loads``.

    Returns:
        The (possibly truncated) JSON text.
    """
    out: list[str] = []
    size = 0
    encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=True)
    for chunk in encoder.iterencode(value):
        out.append(chunk)
        size += len(chunk)
        if size >= _MAX_DEBUG_CHARS:
            break
    return "".join(out)[:_MAX_DEBUG_CHARS]


def _format_error(doc: Any, *parts: str) -> ServingError:
    return invalid_argument(f"JSON Value: {debug_string(doc)} " + "".join(parts))


def _type_error(value: Any, dtype: int) -> ServingError:
    return invalid_argument(
        f"JSON Value: {debug_string(value)} Type: {json_type_name(value)} "
        f"is not of expected type: {tensors.dtype_name(dtype)}"
    )


def _status_text(error: ServingError) -> str:
    """Formats an error the way absl's Status::ToString does ("CODE: message")."""
    return f"{error.code.name}: {error.message}"


def parse_json_object(body: bytes) -> dict:
    """Parses a request body that must be one JSON object.

    ``NaN``, ``Infinity`` and ``-Infinity`` are accepted as numbers (as TF Serving does).

    Args:
        body: The raw HTTP request body (UTF-8).

    Returns:
        The parsed object.

    Raises:
        ServingError: INVALID_ARGUMENT "JSON Parse error: ..." for an empty, undecodable or
            malformed body, or "... Is not object" when the document is not an object.
    """
    if not body.strip():
        raise invalid_argument("JSON Parse error: The document is empty")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise invalid_argument(f"JSON Parse error: Invalid encoding in string. at offset: {e.start}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise invalid_argument(f"JSON Parse error: {e.msg} at offset: {e.pos}") from None
    except (ValueError, RecursionError) as e:  # over-long integers, too deep nesting
        raise invalid_argument(f"JSON Parse error: {e}") from None
    if not isinstance(doc, dict):
        raise _format_error(doc, "Is not object")
    return doc


def signature_name_from_json(doc: dict) -> str:
    """Returns the optional ``signature_name`` of a request ("" when absent).

    Args:
        doc: The parsed request object.

    Returns:
        The signature name, or "" (the server's default signature).

    Raises:
        ServingError: INVALID_ARGUMENT when ``signature_name`` is not a string.
    """
    value = doc.get(SIGNATURE_KEY, "")
    if not isinstance(value, str):
        raise invalid_argument(
            f"JSON Value: {debug_string(doc)} not formatted correctly. "
            "'signature_name' key must be a string value."
        )
    return value


def _is_b64_object(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(BASE64_KEY), str)


def _is_named_object(value: Any) -> bool:
    return isinstance(value, dict) and not _is_b64_object(value)


def decode_b64_object(value: Any) -> bytes:
    """Decodes ``{"b64": "<base64>"}`` (standard alphabet, padding optional).

    Args:
        value: A parsed JSON value.

    Returns:
        The decoded bytes.

    Raises:
        ServingError: INVALID_ARGUMENT when ``value`` is not such an object or not base64.
    """
    if not _is_b64_object(value):
        raise _format_error(value, "not formatted correctly for base64 data")
    text = value[BASE64_KEY]
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise invalid_argument("Unable to base64 decode") from None


def _utf8(value: str) -> bytes:
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise invalid_argument(
            f"JSON Value: {debug_string(value)} is not valid Unicode (lone surrogate escape)"
        ) from None


# ----------------------------------------------------------------------------- predict request


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
                return _utf8(value)
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
        raise _format_error(
            doc, "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist "
        )
    if has_instances:
        instances = doc[INSTANCES_KEY]
        if not isinstance(instances, list):
            raise _format_error(doc, "Expecting 'instances' to be an list/array")
        if not instances:
            raise _format_error(doc, "No values in 'instances' array")
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


# ----------------------------------------------------------------------------- predict response


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


# ----------------------------------------------------------------------------- classify / regress


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

    if value is None or isinstance(value, list) or (isinstance(value, dict) and not _is_b64_object(value)):
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
        feature.bytes_list.value.append(_utf8(value))
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
        raise _format_error(doc, "When method is classify, key 'examples' is expected and was not found")
    examples = doc[EXAMPLES_KEY]
    if not isinstance(examples, list):
        raise _format_error(doc, "Expecting 'examples' value to be an list/array")
    if not examples:
        raise _format_error(doc, "'examples' value is an empty array")
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


# ----------------------------------------------------------------------------- status / metadata


def model_status_to_json(response: get_model_status_pb2.GetModelStatusResponse) -> dict:
    """Renders a ``GetModelStatusResponse`` as TF Serving does (fields with defaults included).

    Every version gets a ``status`` object (``{"error_code": "OK", "error_message": ""}``
    when the service left it unset).

    Args:
        response: The service's response.

    Returns:
        ``{"model_version_status": [{"version": "1", "state": "AVAILABLE", "status": {...}}]}``.
    """
    copy = get_model_status_pb2.GetModelStatusResponse()
    copy.CopyFrom(response)
    for version_status in copy.model_version_status:
        version_status.status.SetInParent()
    return json_format.MessageToDict(copy, always_print_fields_with_no_presence=True)


def signature_def_map(response: get_model_metadata_pb2.GetModelMetadataResponse) -> Any:
    """Unpacks the ``signature_def`` metadata of a ``GetModelMetadataResponse``.

    Args:
        response: The service's response.

    Returns:
        The ``SignatureDefMap`` proto.

    Raises:
        ServingError: INTERNAL when the metadata has no (or an unreadable) ``signature_def``.
    """
    if "signature_def" not in response.metadata:
        raise internal("Failed to find 'signature_def' key in the GetModelMetadataResponse metadata map.")
    out = get_model_metadata_pb2.SignatureDefMap()
    if not response.metadata["signature_def"].Unpack(out):
        raise internal("Failed to unpack 'Any' object to 'SignatureDefMap'.")
    return out


def model_metadata_to_json(response: get_model_metadata_pb2.GetModelMetadataResponse) -> dict:
    """Renders a ``GetModelMetadataResponse`` as TF Serving's REST API does.

    Args:
        response: The service's response (with ``signature_def`` metadata).

    Returns:
        ``{"model_spec": {...}, "metadata": {"signature_def": {"signature_def": {...}}}}``
        with proto field names preserved.

    Raises:
        ServingError: INTERNAL when the ``signature_def`` metadata is missing.
    """
    options = {"always_print_fields_with_no_presence": True, "preserving_proto_field_name": True}
    return {
        "model_spec": json_format.MessageToDict(response.model_spec, **options),
        "metadata": {"signature_def": json_format.MessageToDict(signature_def_map(response), **options)},
    }


def error_to_json(message: str) -> dict:
    """Returns TF Serving's error body ``{"error": message}``."""
    return {"error": message}


def dumps(obj: Any, indent: int | None = None) -> bytes:
    """Encodes a response object as UTF-8 JSON (``NaN``/``Infinity`` as TF Serving writes them).

    Args:
        obj: A JSON-ready object.
        indent: Pretty-print with this indent (None: one line).

    Returns:
        The encoded body, ending in a newline.
    """
    text = json.dumps(obj, ensure_ascii=False, allow_nan=True, indent=indent)
    # A lone surrogate (only possible when echoing request text) becomes a JSON \u escape.
    return text.encode("utf-8", errors="backslashreplace") + b"\n"

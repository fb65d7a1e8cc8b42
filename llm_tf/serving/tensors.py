"""TensorProto <-> numpy conversion and the input checks TF Serving applies to request tensors.

Strings are numpy ``object`` arrays of ``bytes``; ``DT_HALF`` is ``float16`` and
``DT_BFLOAT16`` is ``ml_dtypes.bfloat16`` (what ``tf.bfloat16.as_numpy_dtype`` is). Responses
are written the way TF Serving writes them by default: typed ``*_val`` fields, not
``tensor_content``.
"""

from collections.abc import Sequence

import ml_dtypes
import numpy as np
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

from llm_tf.serving.errors import ServingError, invalid_argument

# DataType -> (numpy dtype, TensorProto field holding the values).
_DTYPES: dict[int, tuple[np.dtype, str]] = {
    types_pb2.DT_FLOAT: (np.dtype(np.float32), "float_val"),
    types_pb2.DT_DOUBLE: (np.dtype(np.float64), "double_val"),
    types_pb2.DT_HALF: (np.dtype(np.float16), "half_val"),
    types_pb2.DT_BFLOAT16: (np.dtype(ml_dtypes.bfloat16), "half_val"),
    types_pb2.DT_INT8: (np.dtype(np.int8), "int_val"),
    types_pb2.DT_INT16: (np.dtype(np.int16), "int_val"),
    types_pb2.DT_INT32: (np.dtype(np.int32), "int_val"),
    types_pb2.DT_INT64: (np.dtype(np.int64), "int64_val"),
    types_pb2.DT_UINT8: (np.dtype(np.uint8), "int_val"),
    types_pb2.DT_UINT16: (np.dtype(np.uint16), "int_val"),
    types_pb2.DT_UINT32: (np.dtype(np.uint32), "uint32_val"),
    types_pb2.DT_UINT64: (np.dtype(np.uint64), "uint64_val"),
    types_pb2.DT_BOOL: (np.dtype(np.bool_), "bool_val"),
    types_pb2.DT_STRING: (np.dtype(object), "string_val"),
    types_pb2.DT_COMPLEX64: (np.dtype(np.complex64), "scomplex_val"),
    types_pb2.DT_COMPLEX128: (np.dtype(np.complex128), "dcomplex_val"),
}

_NUMPY_TO_DTYPE: dict[np.dtype, int] = {
    np_dtype: dtype for dtype, (np_dtype, _) in _DTYPES.items() if dtype != types_pb2.DT_STRING
}


def dtype_name(dtype: int) -> str:
    """Returns TF's short name of a ``DataType`` enum value, e.g. ``"string"`` for ``DT_STRING``.

    Args:
        dtype: A ``tensorflow.DataType`` enum value.

    Returns:
        The lower-case name without ``DT_`` (``"DT_INVALID"`` style names for unknown values).
    """
    try:
        return types_pb2.DataType.Name(dtype)[3:].lower()
    except ValueError:
        return f"unknown dtype {dtype}"


def numpy_dtype(dtype: int) -> np.dtype:
    """Returns the numpy dtype used for a ``DataType``.

    Args:
        dtype: A ``tensorflow.DataType`` enum value.

    Returns:
        The numpy dtype (``object`` for strings).

    Raises:
        ServingError: INVALID_ARGUMENT for a dtype TF Serving cannot carry.
    """
    if dtype not in _DTYPES:
        raise invalid_argument(f"unsupported tensor dtype: {dtype_name(dtype)}")
    return _DTYPES[dtype][0]


def data_type_of(array: np.ndarray) -> int:
    """Returns the ``DataType`` of a numpy array.

    Args:
        array: A numpy array; ``object``, ``bytes_`` and ``str_`` arrays are strings.

    Returns:
        The ``tensorflow.DataType`` enum value.

    Raises:
        ServingError: INVALID_ARGUMENT for a numpy dtype with no TF counterpart.
    """
    if array.dtype.kind in ("O", "S", "U"):
        return types_pb2.DT_STRING
    try:
        return _NUMPY_TO_DTYPE[array.dtype]
    except KeyError:
        raise invalid_argument(f"numpy dtype {array.dtype} has no TensorFlow counterpart") from None


def shape_of(proto: tensor_shape_pb2.TensorShapeProto) -> tuple[int, ...] | None:
    """Returns a shape proto as a tuple (-1 for unknown dimensions), or None for unknown rank."""
    if proto.unknown_rank:
        return None
    return tuple(int(d.size) for d in proto.dim)


def to_numpy(proto: tensor_pb2.TensorProto, name: str = "tensor") -> np.ndarray:
    """Converts a ``TensorProto`` to a numpy array.

    Values come from ``tensor_content`` when set (not for strings), else from the typed
    ``*_val`` field. As in TensorFlow, no values means zeros and fewer values than elements
    repeats the last one.

    Args:
        proto: The tensor.
        name: The request field it came from (for messages), e.g. ``inputs["text"]``.

    Returns:
        A numpy array of the proto's shape and dtype.

    Raises:
        ServingError: INVALID_ARGUMENT for an unsupported dtype, an unknown or negative
            dimension, or a value count that does not fit the shape.
    """
    entry = _DTYPES.get(proto.dtype)
    if entry is None:
        raise invalid_argument(f"{name}: unsupported tensor dtype {dtype_name(proto.dtype)}")
    np_dtype, field = entry
    tensor_shape = proto.tensor_shape
    if tensor_shape.unknown_rank:
        raise invalid_argument(f"{name}: tensor_shape has unknown rank")
    shape = tuple([d.size for d in tensor_shape.dim])
    count = 1  # a Python product: np.prod costs more than the rest of a small request's conversion
    for size in shape:
        if size < 0:
            raise invalid_argument(f"{name}: tensor_shape {list(shape)} has a negative dimension")
        count *= size
    if proto.tensor_content and proto.dtype != types_pb2.DT_STRING:
        if len(proto.tensor_content) != count * np_dtype.itemsize:
            raise invalid_argument(
                f"{name}: tensor_content has {len(proto.tensor_content)} bytes; shape {list(shape)} of "
                f"{dtype_name(proto.dtype)} needs {count * np_dtype.itemsize}"
            )
        return np.frombuffer(proto.tensor_content, dtype=np_dtype).reshape(shape).copy()
    values = _field_values(proto, field, np_dtype)
    if len(values) > count:
        raise invalid_argument(
            f"{name}: {len(values)} values in {field} do not fit tensor_shape {list(shape)} ({count} elements)"
        )
    if len(values) == count:
        return values.reshape(shape)
    if count and proto.dtype == types_pb2.DT_STRING and len(values) == 0:
        out = np.empty(shape, dtype=object)
        out.fill(b"")
        return out
    out = np.zeros(shape, dtype=np_dtype) if len(values) == 0 else np.full(shape, values[-1], dtype=np_dtype)
    if len(values):
        out.reshape(-1)[: len(values)] = values
    return out


def _field_values(proto: tensor_pb2.TensorProto, field: str, np_dtype: np.dtype) -> np.ndarray:
    """Returns the typed values of ``proto`` as a flat numpy array of ``np_dtype``."""
    raw = getattr(proto, field)
    if field == "string_val":
        out = np.empty(len(raw), dtype=object)
        out[:] = list(raw)
        return out
    if field == "half_val":
        return np.asarray(raw, dtype=np.uint16).view(np_dtype)
    if field in ("scomplex_val", "dcomplex_val"):
        pairs = np.asarray(raw, dtype=np.float32 if field == "scomplex_val" else np.float64)
        return (pairs[0::2] + 1j * pairs[1::2]).astype(np_dtype)
    return np.asarray(raw, dtype=np_dtype)


def to_proto(array, dtype: int | None = None, out: tensor_pb2.TensorProto | None = None) -> tensor_pb2.TensorProto:
    """Converts a numpy array (or array-like) to a ``TensorProto`` with typed ``*_val`` fields.

    Args:
        array: The values; ``str`` elements are UTF-8 encoded.
        dtype: Force this ``DataType``; by default it follows the array's dtype.
        out: Fill this (empty) proto in place, e.g. ``response.outputs["scores"]``, instead of
            building a new one to copy in.

    Returns:
        The tensor proto (``out`` when given).

    Raises:
        ServingError: INVALID_ARGUMENT for a dtype TF Serving cannot carry.
    """
    array = np.asarray(array)
    if dtype is None:
        dtype = data_type_of(array)
    np_dtype, field = _DTYPES.get(dtype, (None, None))
    if field is None:
        raise invalid_argument(f"unsupported tensor dtype: {dtype_name(dtype)}")
    proto = tensor_pb2.TensorProto() if out is None else out
    proto.dtype = dtype
    dims = proto.tensor_shape.dim
    for size in array.shape:
        dims.add(size=int(size))
    flat = array.reshape(-1)
    if field == "string_val":
        proto.string_val.extend(v if isinstance(v, bytes) else str(v).encode("utf-8") for v in flat.tolist())
    elif field == "half_val":
        proto.half_val.extend(flat.astype(np_dtype).view(np.uint16).astype(np.int32).tolist())
    elif field in ("scomplex_val", "dcomplex_val"):
        values = flat.astype(np_dtype)
        pairs = np.stack([values.real, values.imag], axis=-1).reshape(-1)
        getattr(proto, field).extend(pairs.tolist())
    else:
        getattr(proto, field).extend((flat if flat.dtype == np_dtype else flat.astype(np_dtype)).tolist())
    return proto


def check_dtype(name: str, array: np.ndarray, expected: int) -> None:
    """Checks that ``array`` has the ``DataType`` a signature input expects.

    Args:
        name: The input alias (named in the message).
        array: The request value.
        expected: The signature's ``DataType``.

    Raises:
        ServingError: INVALID_ARGUMENT naming the input, the expected and the given dtype.
    """
    got = data_type_of(array)
    if got != expected:
        raise invalid_argument(
            f"Expects arg {name!r} to be {dtype_name(expected)} but {dtype_name(got)} is provided"
        )


def check_shape(name: str, array: np.ndarray, expected: tuple[int, ...] | None) -> None:
    """Checks ``array``'s shape against a signature shape (-1 = any size, None = any rank).

    Args:
        name: The input alias (named in the message).
        array: The request value.
        expected: The signature's shape from :func:`shape_of`.

    Raises:
        ServingError: INVALID_ARGUMENT naming the input, the expected and the given shape.
    """
    if expected is None:
        return
    if len(array.shape) != len(expected) or any(e not in (-1, g) for e, g in zip(expected, array.shape)):
        shown = "[" + ",".join("?" if d == -1 else str(d) for d in expected) + "]"
        raise invalid_argument(
            f"input {name!r} has shape {list(array.shape)}, incompatible with the signature's shape {shown}"
        )


def batch_size(inputs: dict[str, np.ndarray], names: Sequence[str] | None = None) -> int | None:
    """Returns the common size of axis 0 of ``inputs`` (all of them, or ``names``).

    Args:
        inputs: Arrays by name.
        names: Only these (default: all).

    Returns:
        The shared batch size, or None when there are no such arrays or a scalar is among them.

    Raises:
        ServingError: INVALID_ARGUMENT when the batch sizes differ.
    """
    sizes = {}
    for key in names if names is not None else inputs:
        value = inputs[key]
        if value.ndim == 0:
            return None
        sizes[key] = value.shape[0]
    if not sizes:
        return None
    if len(set(sizes.values())) > 1:
        shown = ", ".join(f"{k}: {v}" for k, v in sorted(sizes.items()))
        raise invalid_argument(f"inputs have different batch sizes (axis 0): {shown}")
    return next(iter(sizes.values()))


__all__ = [
    "ServingError",
    "batch_size",
    "check_dtype",
    "check_shape",
    "data_type_of",
    "dtype_name",
    "numpy_dtype",
    "shape_of",
    "to_numpy",
    "to_proto",
]

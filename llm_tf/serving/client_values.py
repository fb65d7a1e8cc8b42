"""Python values <-> the protos of TF Serving's API, for :class:`~llm_tf.serving.client.ServingClient`.

Inputs become ``TensorProto`` s and ``tf.train.Example`` s; outputs come back as plain Python
values, one dict per input row.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.example import example_pb2, feature_pb2

from llm_tf.errors import ConfigError
from llm_tf.serving.errors import ServingError


def to_tensor_proto(name: str, value: Any):
    """Converts an array-like to a TensorProto; python/numpy strings become UTF-8 DT_STRING."""
    array = value if isinstance(value, np.ndarray) else np.asarray(value)
    if array.dtype.kind == "U" or (array.dtype.kind == "O" and any(isinstance(v, str) for v in array.ravel().tolist())):
        encoded = [v.encode("utf-8") if isinstance(v, str) else v for v in array.ravel().tolist()]
        array = np.array(encoded, dtype=object).reshape(array.shape)
    try:
        return tf.make_tensor_proto(array)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"input '{name}': cannot convert to a tensor: {e}") from e


def decode_value(value: Any) -> Any:
    """Converts a numpy value to plain python: bytes -> str (UTF-8), arrays -> (nested) lists.

    Args:
        value: A numpy array, numpy scalar, bytes or python value.

    Returns:
        The same data as python ``str``/``int``/``float``/``bool`` or lists of them.
    """
    if isinstance(value, np.ndarray):
        return [decode_value(v) for v in value] if value.ndim else decode_value(value.item())
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.generic):
        return decode_value(value.item())
    return value


def split_rows(outputs: Mapping[str, np.ndarray], count: int) -> list[dict[str, Any]]:
    """Splits batched outputs into one python dict per input row.

    Token-level outputs of NER models (``words``, ``tags``, ``tag_ids``, per-token ``scores``)
    are cut to the row's real words: the ``""`` padding of ``words`` and what lines up with it
    is dropped.

    Args:
        outputs: Output name to an array whose axis 0 has ``count`` rows.
        count: The number of input rows.

    Returns:
        ``count`` dicts of output name to decoded value.

    Raises:
        ServingError: An output has a number of rows other than ``count`` (``INTERNAL``).
    """
    for name, array in outputs.items():
        if np.ndim(array) == 0 or np.shape(array)[0] != count:
            raise ServingError(grpc.StatusCode.INTERNAL,
                               f"output '{name}' has shape {np.shape(array)}, expected {count} rows")
    rows = []
    for i in range(count):
        row = {name: decode_value(array[i]) for name, array in outputs.items()}
        words = row.get("words")
        if isinstance(words, list) and all(isinstance(w, str) for w in words):
            real = len(words)
            while real and words[real - 1] == "":
                real -= 1
            for name, value in row.items():
                if isinstance(value, list) and len(value) == len(words):
                    row[name] = value[:real]
        rows.append(row)
    return rows


def _feature(name: str, value: Any) -> feature_pb2.Feature:
    """One tf.train.Feature from a str/bytes/int/float or a list of one kind of them."""
    values = list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value]
    if all(isinstance(v, (str, bytes)) for v in values):
        encoded = [v.encode("utf-8") if isinstance(v, str) else v for v in values]
        return feature_pb2.Feature(bytes_list=feature_pb2.BytesList(value=encoded))
    if all(isinstance(v, (bool, int, np.integer)) for v in values):
        return feature_pb2.Feature(int64_list=feature_pb2.Int64List(value=[int(v) for v in values]))
    if all(isinstance(v, (float, int, np.floating, np.integer)) for v in values):
        return feature_pb2.Feature(float_list=feature_pb2.FloatList(value=[float(v) for v in values]))
    raise ConfigError(f"example feature '{name}': values must all be strings, all integers or all floats, "
                      f"got {value!r}")


def make_example(features: Mapping[str, Any]) -> example_pb2.Example:
    """Builds a ``tf.train.Example`` from a dict of feature name to value(s).

    Args:
        features: Name to a str/bytes (bytes_list), int (int64_list), float (float_list) or a
            list of one of those kinds.

    Returns:
        The ``tensorflow.Example`` proto.

    Raises:
        ConfigError: A feature mixes kinds or has an unsupported type.
    """
    example = example_pb2.Example()
    for name, value in features.items():
        example.features.feature[name].CopyFrom(_feature(name, value))
    return example

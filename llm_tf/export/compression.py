"""How small an exported model compresses: gzip size of its weights and their share of zeros.

Pruned weights are stored dense (zeros included), so a pruned SavedModel or ``.tflite`` file
is as large as a dense one; the gain shows when it is compressed for shipping, which is what
these figures measure (TF-MOT measures pruning the same way).
"""

import os
import zlib

import numpy as np
import tensorflow as tf

from llm_tf import io_utils
from llm_tf.errors import DataError

#: zlib level of the measurement (gzip's default).
GZIP_LEVEL = 6
_CHUNK = 1 << 20


def gzip_size(paths: list[str], level: int = GZIP_LEVEL) -> int:
    """Bytes of one gzip stream over the files' contents, concatenated in the order given.

    Streams the files (nothing is held whole or written).

    Args:
        paths: Files to compress.
        level: zlib compression level (1-9).

    Returns:
        The compressed size in bytes, gzip header and trailer included.
    """
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)  # wbits 16 + 15: a gzip container
    size = 0
    for path in paths:
        with io_utils.storage_errors(path), tf.io.gfile.GFile(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                size += len(compressor.compress(chunk))
    return size + len(compressor.flush())


def file_report(path: str) -> dict:
    """``bytes`` and ``gzip_bytes`` of one file (e.g. a ``.tflite`` model)."""
    return {"bytes": file_size(path), "gzip_bytes": gzip_size([path])}


def file_size(path: str) -> int:
    """Bytes of file ``path`` (local or ``scheme://``)."""
    if not io_utils.is_remote(path):
        return os.path.getsize(path)
    with io_utils.storage_errors(path):
        return tf.io.gfile.stat(path).length


def variables_report(saved_model_dir: str) -> dict:
    """Size and sparsity of a SavedModel's variables (``variables/variables.*``).

    Args:
        saved_model_dir: A SavedModel directory.

    Returns:
        ``variables_bytes`` and ``variables_gzip_bytes`` (the variables files, gzipped as one
        stream in name order), ``float_params`` (entries of floating-point variables),
        ``zero_params`` (those exactly 0) and ``sparsity`` (their ratio).

    Raises:
        DataError: No variables in the directory.
    """
    with io_utils.storage_errors(saved_model_dir):
        files = sorted(tf.io.gfile.glob(os.path.join(saved_model_dir, "variables", "variables.*")))
    if not files:
        raise DataError(f"{saved_model_dir}: no variables/variables.* (not a SavedModel with weights)")
    # Not tf.train.load_checkpoint: it takes a prefix that some file systems (ram://) call a directory
    # for the directory's latest checkpoint.
    reader = tf.compat.v1.train.NewCheckpointReader(os.path.join(saved_model_dir, "variables", "variables"))
    params = zeros = 0
    for key, dtype in reader.get_variable_to_dtype_map().items():
        if not dtype.is_floating or key.startswith("_CHECKPOINTABLE_OBJECT_GRAPH"):
            continue
        values = reader.get_tensor(key)
        params += int(values.size)
        zeros += int(values.size - np.count_nonzero(values))
    return {
        "variables_bytes": sum(file_size(f) for f in files),
        "variables_gzip_bytes": gzip_size(files),
        "float_params": params,
        "zero_params": zeros,
        "sparsity": zeros / params if params else 0.0,
    }

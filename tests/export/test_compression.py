"""Tests for llm_tf/export/compression.py: gzip sizes and zeros of SavedModel variables."""

import gzip
import os

import numpy as np
import pytest
import tensorflow as tf

from llm_tf.errors import DataError
from llm_tf.export import compression


def test_gzip_size_is_the_size_of_a_real_gzip_of_the_concatenation(tmp_path):
    rng = np.random.default_rng(0)
    parts = [rng.normal(size=5000).astype("float32").tobytes(), bytes(30000), b"tail"]
    paths = []
    for i, data in enumerate(parts):
        paths.append(str(tmp_path / f"part{i}"))
        open(paths[-1], "wb").write(data)
    size = compression.gzip_size(paths)
    whole = b"".join(parts)
    assert gzip.decompress(gzip.compress(whole, compresslevel=6)) == whole
    assert abs(size - len(gzip.compress(whole, compresslevel=6))) <= 16  # same deflate stream, header may differ
    assert compression.file_report(paths[1]) == {"bytes": 30000, "gzip_bytes": compression.gzip_size([paths[1]])}
    assert compression.gzip_size([paths[1]]) < 100  # zeros compress to almost nothing


def test_variables_report_counts_zeros_and_compresses_sparse_weights_better(tmp_path):
    rng = np.random.default_rng(0)
    dense = rng.normal(size=(256, 64)).astype("float32")
    sparse = dense * (rng.random(size=dense.shape) > 0.8)  # about 80% zeros
    sizes = {}
    for name, kernel in (("dense", dense), ("sparse", sparse)):
        module = tf.Module()
        module.kernel = tf.Variable(kernel)
        module.bias = tf.Variable(np.ones(64, "float32"))
        module.steps = tf.Variable(7, dtype=tf.int64)  # not a float: not counted
        tf.saved_model.save(module, str(tmp_path / name))
        sizes[name] = compression.variables_report(str(tmp_path / name))
    assert sizes["sparse"]["float_params"] == sizes["dense"]["float_params"] == 256 * 64 + 64
    assert sizes["sparse"]["zero_params"] == int((sparse == 0).sum()) and sizes["dense"]["zero_params"] == 0
    assert sizes["sparse"]["sparsity"] == pytest.approx(int((sparse == 0).sum()) / (256 * 64 + 64))
    # Stored dense, so the raw bytes are the same; gzipped, the sparse weights are much smaller.
    assert sizes["sparse"]["variables_bytes"] == sizes["dense"]["variables_bytes"]
    assert sizes["sparse"]["variables_gzip_bytes"] < 0.5 * sizes["dense"]["variables_gzip_bytes"]


def test_a_directory_without_variables_is_a_clear_error(tmp_path):
    os.makedirs(tmp_path / "empty")
    with pytest.raises(DataError, match="no variables/variables"):
        compression.variables_report(str(tmp_path / "empty"))

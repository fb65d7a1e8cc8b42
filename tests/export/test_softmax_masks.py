"""Tests for llm_tf/export/softmax_masks.py: same probabilities, no select ops, patch undone."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from llm_tf.export.softmax_masks import additive_softmax_masks

SCORES = np.random.default_rng(0).normal(0, 3, (2, 3, 5)).astype("float32")
#: Every row keeps at least one position (as a padding mask keeps [CLS]).
MASK = np.array([[[1, 1, 1, 0, 0]] * 3, [[1, 0, 1, 0, 1], [1, 1, 1, 1, 1], [0, 0, 1, 0, 0]]], dtype=bool)


def _traced_ops(layer, mask):
    function = tf.function(lambda x, m: layer(x, mask=m)).get_concrete_function(
        tf.TensorSpec(SCORES.shape, tf.float32), tf.TensorSpec(mask.shape, tf.as_dtype(mask.dtype)))
    return {op.type for op in function.graph.get_operations()}


@pytest.mark.parametrize("mask", [MASK, MASK.astype("float32")])
def test_same_probabilities_without_select_ops(mask):
    layer = keras.layers.Softmax(axis=-1)
    want = layer(SCORES, mask=mask).numpy()
    assert "SelectV2" in _traced_ops(layer, mask)
    with additive_softmax_masks():
        got = layer(SCORES, mask=mask).numpy()
        ops = _traced_ops(layer, mask)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert np.all(got[~MASK] == 0.0) and np.allclose(got.sum(-1), 1.0)
    assert "SelectV2" not in ops and "Select" not in ops
    assert np.array_equal(layer(SCORES).numpy(), keras.layers.Softmax()(SCORES).numpy())  # no mask: untouched


def test_the_patch_is_undone_even_on_error():
    original = keras.layers.Softmax.call
    with pytest.raises(RuntimeError):
        with additive_softmax_masks():
            assert keras.layers.Softmax.call is not original
            raise RuntimeError("boom")
    assert keras.layers.Softmax.call is original

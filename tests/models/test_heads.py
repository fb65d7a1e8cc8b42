"""Tests for llm_tf/models/heads.py."""

import keras
import numpy as np

from llm_tf.models.heads import logits_layer


def test_float32_logits_on_any_rank():
    for shape in ((4, 8), (4, 5, 8)):
        inputs = keras.Input(shape=shape[1:], dtype="bfloat16")
        model = keras.Model(inputs, logits_layer(inputs, 3, dropout=0.1))
        out = model(np.ones(shape, "float32"))
        assert tuple(out.shape) == shape[:-1] + (3,) and out.dtype == "float32"

"""Tests for llm_tf/models/classifier.py."""

import keras
import numpy as np

from llm_tf.models.classifier import build_classifier
from llm_tf.models.encoder import build_encoder
from llm_tf.training.configs import ModelConfig


def test_logits_are_float32_even_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build_classifier(build_encoder(ModelConfig(size="tiny"), vocabulary_size=50), num_classes=3)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    inputs = {"token_ids": np.ones((2, 8), "int32"), "segment_ids": np.zeros((2, 8), "int32"),
              "padding_mask": np.ones((2, 8), "int32")}
    logits = model(inputs)
    assert tuple(logits.shape) == (2, 3) and logits.dtype == "float32"
    config = model.get_config()
    assert keras.Model.from_config(config)(inputs).shape == (2, 3)

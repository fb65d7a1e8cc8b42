"""Tests for llm_tf/models/encoder.py."""

import numpy as np

from llm_tf.models.encoder import build_encoder
from llm_tf.training.configs import ModelConfig


def test_sizes_and_outputs():
    encoder = build_encoder(ModelConfig(size="tiny", max_sequence_length=64), vocabulary_size=100)
    assert (encoder.num_layers, encoder.hidden_dim, encoder.num_heads, encoder.intermediate_dim) == (2, 128, 2, 512)
    inputs = {"token_ids": np.ones((3, 10), "int32"), "segment_ids": np.zeros((3, 10), "int32"),
              "padding_mask": np.ones((3, 10), "int32")}
    outputs = encoder(inputs)
    assert tuple(outputs["sequence_output"].shape) == (3, 10, 128)
    assert tuple(outputs["pooled_output"].shape) == (3, 128)
    mini = build_encoder(ModelConfig(size="mini"), vocabulary_size=100)
    assert (mini.num_layers, mini.hidden_dim) == (4, 256)

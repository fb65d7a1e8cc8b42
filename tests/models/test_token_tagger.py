"""Tests for llm_tf/models/token_tagger.py."""

import numpy as np

from llm_tf.models.encoder import build_encoder
from llm_tf.models.token_tagger import build_token_tagger
from llm_tf.training.configs import ModelConfig


def test_per_token_logits_and_no_trainable_pooler():
    model = build_token_tagger(build_encoder(ModelConfig(size="tiny"), vocabulary_size=50), num_tags=9)
    inputs = {"token_ids": np.ones((2, 12), "int32"), "segment_ids": np.zeros((2, 12), "int32"),
              "padding_mask": np.ones((2, 12), "int32")}
    logits = model(inputs)
    assert tuple(logits.shape) == (2, 12, 9) and logits.dtype == "float32"
    assert not any("pooled_dense" in v.path for v in model.trainable_variables)

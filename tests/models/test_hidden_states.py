"""Tests for llm_tf/models/hidden_states.py."""

import numpy as np
import pytest
import tensorflow as tf

from llm_tf.errors import ConfigError
from llm_tf.models.classifier import build_classifier
from llm_tf.models.encoder import ENCODER_NAME, build_encoder
from llm_tf.models.hidden_states import classifier_with_hidden_states, resolve_layers
from llm_tf.training.configs import ModelConfig


def test_view_shares_the_classifier_and_returns_layer_outputs():
    classifier = build_classifier(build_encoder(ModelConfig(size="tiny", num_layers=3), 50), 3)
    view = classifier_with_hidden_states(classifier, [0, 2])
    assert len(view.weights) == len(classifier.weights)  # no variables of its own
    inputs = {"token_ids": tf.constant([[2, 7, 9, 3, 0], [2, 11, 3, 0, 0]]), "segment_ids": tf.zeros([2, 5], tf.int32),
              "padding_mask": tf.constant([[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]])}
    out = view(inputs, training=False)
    np.testing.assert_allclose(out["logits"].numpy(), classifier(inputs, training=False).numpy(), atol=1e-6)
    last = classifier.get_layer(ENCODER_NAME)(inputs, training=False)["sequence_output"]
    np.testing.assert_allclose(out["hidden_states"][1].numpy(), last.numpy(), atol=1e-6)
    assert out["hidden_states"][0].shape == (2, 5, 128)
    assert not np.allclose(out["hidden_states"][0].numpy(), last.numpy())


def test_resolve_layers():
    assert resolve_layers([0, -1, -2], 4, "f") == [0, 3, 2]
    with pytest.raises(ConfigError, match=r"f: layer 4 does not exist \(the encoder has 4 layers: 0..3, or -1"):
        resolve_layers([4], 4, "f")
    with pytest.raises(ConfigError, match="layer -5 does not exist"):
        resolve_layers([-5], 4, "f")

"""Tests for llm_tf/models/lora.py."""

import numpy as np
import pytest

from llm_tf.errors import ConfigError
from llm_tf.models.classifier import build_classifier
from llm_tf.models.encoder import build_encoder
from llm_tf.models.lora import apply_lora, merge_lora
from llm_tf.training.configs import ModelConfig

INPUTS = {"token_ids": np.arange(24, dtype="int32").reshape(2, 12) % 50, "segment_ids": np.zeros((2, 12), "int32"),
          "padding_mask": np.ones((2, 12), "int32")}


def classifier():
    return build_classifier(build_encoder(ModelConfig(size="tiny"), vocabulary_size=50), num_classes=2)


def test_only_lora_factors_and_head_are_trainable():
    model = classifier()
    count = apply_lora(model.get_layer("encoder"), rank=4, alpha=8, targets=["query", "value"],
                       keep_trainable=["pooled_dense"])
    assert count == 4  # query and value in each of 2 layers
    trainable = {v.path for v in model.trainable_weights}
    assert all("lora_kernel" in p or p.startswith(("pooled_dense", "logits")) for p in trainable), trainable
    assert sum("lora_kernel" in p for p in trainable) == 8


def test_merged_model_gives_the_same_outputs():
    model = classifier()
    apply_lora(model.get_layer("encoder"), rank=4, alpha=8, targets=["query", "value"])
    for v in model.weights:  # make the low-rank update non-zero (B starts at zero)
        if "lora_kernel_b" in v.path:
            v.assign(np.random.default_rng(0).normal(0, 0.1, v.shape).astype("float32"))
    merged = merge_lora(model, classifier)
    assert not any("lora" in v.path for v in merged.weights)
    np.testing.assert_allclose(merged(INPUTS).numpy(), model(INPUTS).numpy(), rtol=1e-5, atol=1e-5)
    unmerged_base = classifier()
    assert not np.allclose(unmerged_base(INPUTS).numpy(), model(INPUTS).numpy())


def test_bad_rank_and_targets():
    with pytest.raises(ConfigError, match="lora_rank must be >= 1"):
        apply_lora(classifier().get_layer("encoder"), rank=0, alpha=0, targets=["query"])
    with pytest.raises(ConfigError, match="match no layer of the encoder"):
        apply_lora(classifier().get_layer("encoder"), rank=2, alpha=0, targets=["q_proj"])


def test_token_embedding_lora_trains_low_rank_rows_and_merges():
    model = classifier()
    count = apply_lora(model.get_layer("encoder"), rank=4, alpha=8, targets=["query", "value", "token_embedding"],
                       keep_trainable=["pooled_dense"])
    assert count == 5  # the token embedding plus query and value in each of 2 layers
    trainable = {v.path: v for v in model.trainable_weights}
    assert {p for p in trainable if p.startswith("token_embedding")} == {"token_embedding/lora_embeddings_a",
                                                                       "token_embedding/lora_embeddings_b"}
    assert tuple(trainable["token_embedding/lora_embeddings_a"].shape) == (50, 4)
    for v in model.weights:
        if v.path.endswith(("lora_kernel_b", "lora_embeddings_b")):
            v.assign(np.random.default_rng(1).normal(0, 0.1, v.shape).astype("float32"))
    merged = merge_lora(model, classifier)
    assert not any("lora" in v.path for v in merged.weights)
    np.testing.assert_allclose(merged(INPUTS).numpy(), model(INPUTS).numpy(), rtol=1e-5, atol=1e-5)


def test_embedding_rank_sets_the_tables_own_rank_at_the_same_scale():
    model = classifier()
    apply_lora(model.get_layer("encoder"), rank=8, alpha=16, targets=["query", "token_embedding"], embedding_rank=2)
    encoder = model.get_layer("encoder")
    table = encoder.get_layer("token_embedding")
    assert (table.lora_rank, tuple(table.lora_embeddings_a.shape)) == (2, (50, 2))
    query = next(layer for layer in encoder._flatten_layers() if layer.name == "query")
    assert query.lora_rank == 8
    assert table.lora_alpha / table.lora_rank == query.lora_alpha / query.lora_rank == 2.0
    with pytest.raises(ConfigError, match="lora_embedding_rank must be >= 0"):
        apply_lora(classifier().get_layer("encoder"), rank=8, alpha=0, targets=["token_embedding"], embedding_rank=-1)

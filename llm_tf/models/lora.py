"""LoRA (low-rank adaptation) on the encoder, using keras-hub's and Keras's own LoRA support.

``Backbone.enable_lora`` freezes the encoder and adds trainable low-rank factors to the target
projections; Keras computes ``kernel = frozen + (alpha / rank) * A @ B`` and, when saving
weights, stores that merged kernel, so every exported weights file and :func:`merge_lora`'s
model are plain dense weights with no LoRA variables left.
"""

import os
import tempfile
from collections.abc import Callable, Sequence

import keras

from llm_tf import compat
from llm_tf.errors import ConfigError


def apply_lora(encoder: keras.Model, rank: int, alpha: float, targets: Sequence[str],
               keep_trainable: Sequence[str] = (), embedding_rank: int = 0) -> int:
    """Freezes the encoder and enables LoRA on the ``targets`` layers.

    Args:
        encoder: A keras-hub backbone.
        rank: LoRA rank (> 0).
        alpha: Scale numerator (the update is scaled by ``alpha / rank``); 0 means ``rank``.
        targets: Layer names inside the encoder (keras-hub BERT: ``query``, ``key``, ``value``,
            ``attention_output``, ``feedforward_intermediate_dense``, ``feedforward_output_dense``,
            and the embedding table ``token_embedding``).
        keep_trainable: Encoder layers that stay trainable as part of the task head
            (``pooled_dense`` for classification).
        embedding_rank: Rank of an embedding target (``token_embedding``); 0 means ``rank``.
            Its update has the same scale ``alpha / rank`` as the others.

    Returns:
        The number of layers given LoRA factors.

    Raises:
        ConfigError: Bad rank, or no target matches a layer.

    Example:
        >>> apply_lora(model.get_layer("encoder"), rank=8, alpha=16, targets=["query", "value", "token_embedding"],
        ...            keep_trainable=["pooled_dense"], embedding_rank=4)  # doctest: +SKIP
        5
    """
    if rank < 1:
        raise ConfigError(f"task.lora_rank must be >= 1 to enable LoRA, got {rank}")
    if embedding_rank < 0:
        raise ConfigError(f"task.lora_embedding_rank must be >= 0 (0: task.lora_rank), got {embedding_rank}")
    layers = [layer for layer in compat.sublayers(encoder) if layer.weights]
    embeddings = [layer for layer in layers if layer.name in targets and isinstance(layer, keras.layers.Embedding)]
    embedding_names = {layer.name for layer in embeddings}
    encoder.enable_lora(rank, target_layer_names=[t for t in targets if t not in embedding_names])
    for layer in embeddings:  # after the backbone's enable_lora, which freezes every layer first
        layer.trainable = True
        layer.enable_lora(embedding_rank or rank)
    enabled = [layer for layer in layers if getattr(layer, "lora_enabled", False)]
    if not enabled:
        raise ConfigError(
            f"task.lora_targets {list(targets)} match no layer of the encoder "
            "(keras-hub BERT has query, key, value, attention_output, feedforward_intermediate_dense, "
            "feedforward_output_dense, token_embedding)"
        )
    for layer in enabled:
        layer.lora_alpha = (alpha or rank) * layer.lora_rank / rank  # the same alpha / rank scale everywhere
        if getattr(layer, "bias", None) is not None:
            layer.bias.trainable = False  # Keras leaves the bias of a LoRA layer trainable; LoRA trains A and B only
    for name in keep_trainable:
        encoder.get_layer(name).trainable = True
    return len(enabled)


def merge_lora(model: keras.Model, build_plain: Callable[[], keras.Model]) -> keras.Model:
    """Returns a copy of ``model`` without LoRA variables, the factors merged into the kernels.

    Args:
        model: A model whose encoder has LoRA enabled.
        build_plain: Builds the same architecture without LoRA (e.g. ``task.build_model``).
    """
    plain = build_plain()
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "merged.weights.h5")
        model.save_weights(path)  # Keras stores LoRA layers' merged kernels
        plain.load_weights(path)
    return plain

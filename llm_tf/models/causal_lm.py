"""Decoder-only language model: a keras-hub ``GPT2Backbone`` with a weight-tied output projection.

The backbone (causal self-attention, learned positions, pre-LayerNorm blocks) is sized from a
:class:`llm_tf.training.configs.ModelConfig` like the encoders, and is named ``encoder`` inside
the task model (the name every task model gives its backbone, so checkpoints, weight export,
``task.init_checkpoint`` and LoRA find it). The output projection is the transposed token
embedding (``ReversibleEmbedding(reverse=True)``): no separate vocabulary matrix.

Example:
    >>> backbone = build_decoder(ModelConfig(size="tiny"), vocabulary_size=8000)
    >>> model = build_causal_lm(backbone)
    >>> logits = model({"token_ids": ids, "padding_mask": mask})  # [batch, seq, 8000]
"""

import keras
import keras_hub

from llm_tf.errors import ConfigError
from llm_tf.models.encoder import ENCODER_NAME, backbone_arguments


def build_decoder(model_config, vocabulary_size: int) -> keras_hub.models.GPT2Backbone:
    """Builds a randomly initialised GPT-2-style decoder.

    Args:
        model_config: A :class:`llm_tf.training.configs.ModelConfig` (size and overrides;
            ``max_sequence_length`` is the number of learned positions).
        vocabulary_size: Rows of the token embedding (the tokenizer's vocabulary size).

    Returns:
        A ``keras_hub.models.GPT2Backbone`` named ``encoder``, taking ``token_ids`` and
        ``padding_mask`` and returning the final hidden states [batch, seq, hidden].

    Raises:
        ConfigError: Unknown size, heads that do not divide the hidden size, or a vocabulary
            smaller than 1.
    """
    if vocabulary_size < 1:
        raise ConfigError(f"vocabulary_size must be >= 1, got {vocabulary_size}")
    return keras_hub.models.GPT2Backbone(**backbone_arguments(model_config, vocabulary_size))


def build_causal_lm(backbone: keras_hub.models.GPT2Backbone) -> keras.Model:
    """Puts the weight-tied language-model head on a decoder backbone.

    Args:
        backbone: A keras-hub ``GPT2Backbone`` (see :func:`build_decoder`).

    Returns:
        A functional model from ``{"token_ids", "padding_mask"}`` (int32 [batch, seq]) to
        float32 next-token logits [batch, seq, vocabulary]: position ``i`` scores token
        ``i + 1``. The logits are float32 also under mixed precision.
    """
    inputs = backbone.input
    hidden = backbone(inputs)
    logits = backbone.token_embedding(hidden, reverse=True)
    logits = keras.layers.Activation("linear", dtype="float32", name="logits")(logits)
    return keras.Model(inputs, logits, name="causal_lm")


def decoder_of(model: keras.Model) -> keras_hub.models.GPT2Backbone:
    """The decoder backbone of a causal LM built by :func:`build_causal_lm` (or the backbone itself).

    Args:
        model: A causal LM model, or a ``GPT2Backbone``.

    Returns:
        The backbone.

    Raises:
        ConfigError: ``model`` holds no GPT-2 backbone named ``encoder``.
    """
    if isinstance(model, keras_hub.models.GPT2Backbone):
        return model
    try:
        backbone = model.get_layer(ENCODER_NAME)
    except ValueError:
        backbone = None
    if not isinstance(backbone, keras_hub.models.GPT2Backbone):
        raise ConfigError(f"model '{model.name}' is not a causal LM (no GPT2Backbone named '{ENCODER_NAME}')")
    return backbone

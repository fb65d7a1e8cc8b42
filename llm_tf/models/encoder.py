"""The encoder: a keras-hub ``BertBackbone`` sized from a :class:`ModelConfig`."""

import keras_hub

#: Layer name of the encoder inside every task model (used to export and load its weights).
ENCODER_NAME = "encoder"


def build_encoder(model_config, vocabulary_size: int) -> keras_hub.models.BertBackbone:
    """Builds a randomly initialised BERT encoder.

    Args:
        model_config: A :class:`llm_tf.training.configs.ModelConfig` (size and overrides).
        vocabulary_size: Rows of the token embedding (the tokenizer's vocabulary size).

    Returns:
        A ``keras_hub.models.BertBackbone`` taking ``token_ids``, ``segment_ids`` and
        ``padding_mask`` and returning ``sequence_output`` and ``pooled_output``.

    Example:
        >>> encoder = build_encoder(ModelConfig(size="tiny"), vocabulary_size=8000)
        >>> encoder.num_layers
        2
    """
    return keras_hub.models.BertBackbone(**backbone_arguments(model_config, vocabulary_size))


def backbone_arguments(model_config, vocabulary_size: int) -> dict:
    """Keyword arguments shared by the keras-hub backbones we build (BERT, GPT-2), by size.

    Args:
        model_config: A ``ModelConfig`` (size, dropout, max_sequence_length).
        vocabulary_size: Rows of the token embedding.
    """
    dims = model_config.dimensions()
    return {
        "vocabulary_size": vocabulary_size,
        "num_layers": dims["num_layers"],
        "num_heads": dims["num_heads"],
        "hidden_dim": dims["hidden_dim"],
        "intermediate_dim": dims["intermediate_dim"],
        "dropout": model_config.dropout,
        "max_sequence_length": model_config.max_sequence_length,
        "name": ENCODER_NAME,
    }

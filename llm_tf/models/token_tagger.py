"""Token classification head: dropout + dense over every position of the encoder's output."""

import keras

from llm_tf.models.heads import logits_layer


def build_token_tagger(encoder: keras.Model, num_tags: int, dropout: float = 0.1) -> keras.Model:
    """Puts a per-token tagging head on an encoder.

    Args:
        encoder: A keras-hub backbone with a ``sequence_output``.
        num_tags: Number of tags (e.g. the 9 IOB2 tags of CoNLL-2003).
        dropout: Dropout before the output layer.

    Returns:
        A functional model from the encoder's inputs to float32 ``logits``
        [batch, seq_length, num_tags].
    """
    # The pooler ([CLS] dense) feeds nothing here: freeze it so it is not a trainable weight
    # without a gradient.
    encoder.get_layer("pooled_dense").trainable = False
    inputs = encoder.input
    logits = logits_layer(encoder(inputs)["sequence_output"], num_tags, dropout)
    return keras.Model(inputs, logits, name="token_tagger")

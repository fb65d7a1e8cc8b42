"""Sequence classification head: dropout + dense over the encoder's pooled ``[CLS]`` output."""

import keras

from llm_tf.models.heads import logits_layer


def build_classifier(encoder: keras.Model, num_classes: int, dropout: float = 0.1) -> keras.Model:
    """Puts a classification head on an encoder.

    Args:
        encoder: A keras-hub backbone with a ``pooled_output``.
        num_classes: Number of labels.
        dropout: Dropout before the output layer.

    Returns:
        A functional model from the encoder's inputs to float32 ``logits`` [batch, num_classes].
    """
    inputs = encoder.input
    logits = logits_layer(encoder(inputs)["pooled_output"], num_classes, dropout)
    return keras.Model(inputs, logits, name="classifier")

"""Sequence classification head: dropout + dense over the encoder's pooled ``[CLS]`` output."""

import keras


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
    pooled = encoder(inputs)["pooled_output"]
    pooled = keras.layers.Dropout(dropout, name="head_dropout")(pooled)
    logits = keras.layers.Dense(
        num_classes,
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
        dtype="float32",
        name="logits",
    )(pooled)
    return keras.Model(inputs, logits, name="classifier")

"""The output layer every task head shares: dropout, then float32 logits."""

import keras


def logits_layer(features, num_outputs: int, dropout: float):
    """Applies dropout and a dense layer to logits kept in float32 (also under mixed precision).

    Args:
        features: The encoder features the head reads ([batch, hidden] or [batch, seq, hidden]).
        num_outputs: Classes or tags.
        dropout: Dropout rate before the dense layer.

    Returns:
        float32 logits with ``num_outputs`` on the last axis.
    """
    features = keras.layers.Dropout(dropout, name="head_dropout")(features)
    return keras.layers.Dense(
        num_outputs,
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
        dtype="float32",
        name="logits",
    )(features)

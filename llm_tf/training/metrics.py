"""Losses and metrics shared by tasks whose labels mark unscored positions with -1."""

import keras

from llm_tf.text.alignment import IGNORE_ID


class MaskedAccuracy(keras.metrics.Metric):
    """Accuracy over positions whose label is not :data:`IGNORE_ID` (-1).

    Used for NER (first sub-words only) and masked-LM (masked positions only).
    """

    def __init__(self, name: str = "accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.correct = self.add_variable(shape=(), initializer="zeros", name="correct")
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = keras.ops.cast(y_true, "int32")
        mask = keras.ops.cast(y_true != IGNORE_ID, "float32")
        hits = keras.ops.cast(keras.ops.cast(keras.ops.argmax(y_pred, axis=-1), "int32") == y_true, "float32")
        self.correct.assign_add(keras.ops.sum(hits * mask))
        self.total.assign_add(keras.ops.sum(mask))

    def result(self):
        return self.correct / keras.ops.maximum(self.total, 1.0)

    def reset_state(self):
        self.correct.assign(0.0)
        self.total.assign(0.0)


def masked_loss() -> keras.losses.Loss:
    """Cross-entropy on logits averaged over positions whose label is not :data:`IGNORE_ID`."""
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=IGNORE_ID)

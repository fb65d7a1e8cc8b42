"""Keras's masked softmax as an additive mask, for functions traced inside a block.

``keras.layers.Softmax`` (the attention softmax of keras-hub's encoders) applies a mask with
two ``where``s: masked scores become a large negative number before the softmax and masked
probabilities zero after it. In a TFLite model those are ``SELECT_V2`` ops, which XNNPACK does
not run, so every attention layer splits XNNPACK's graph in three. Inside
:func:`additive_softmax_masks` the mask is added instead: ``scores + (1 - mask) * -1e9``, then
the plain softmax. For every row that keeps at least one position the result is the same
(masked scores end at about -1e9 either way and their probabilities underflow to exactly 0), and
a padding mask always keeps the ``[CLS]`` position. The TFLite encoder then runs in one XNNPACK
partition (measured on the tiny SST-2 classifier at batch 1: float32 0.274 -> 0.257 ms, dynamic
int8 0.141 -> 0.124 ms).

``llm_export`` traces a classifier's token function a second time inside it and saves that as
``predict_tokens_additive_masks``, a function of the SavedModel (not a serving signature: TF
Serving's graphs keep Keras's masking); ``llm_quantize`` converts it for the float and
dynamic-range variants. Full int8 keeps the selected masks: an added -1e9 would share the int8
range of the attention scores.
"""

import contextlib
from collections.abc import Iterator

import keras


def _large_negative(dtype) -> float:
    """The masking value Keras uses for ``dtype`` (float16 cannot hold -1e9)."""
    return -3e4 if keras.backend.standardize_dtype(dtype) == "float16" else -1e9


@contextlib.contextmanager
def additive_softmax_masks() -> Iterator[None]:
    """Makes every ``keras.layers.Softmax`` apply its mask by addition until the block ends.

    Trace the functions inside the block (and keep their concrete functions: a tf.function
    traced again later, e.g. by ``tf.saved_model.save``, would trace Keras's own masking); the
    patch is process-wide while it lasts, so nothing else should build Keras graphs meanwhile.

    Example:
        >>> with additive_softmax_masks():  # doctest: +SKIP
        ...     fast = serving_module.tokens_function().get_concrete_function()
    """
    original = keras.layers.Softmax.call

    def call(self, inputs, mask=None):
        if mask is not None:
            keep = mask if keras.backend.standardize_dtype(mask.dtype) == "bool" else keras.ops.greater(mask, 0.5)
            inputs = inputs + (1.0 - keras.ops.cast(keep, inputs.dtype)) * _large_negative(inputs.dtype)
        return original(self, inputs)

    keras.layers.Softmax.call = call
    try:
        yield
    finally:
        keras.layers.Softmax.call = original

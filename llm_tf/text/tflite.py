"""Converts the in-graph tokenizer to a TFLite model (tensorflow-text custom ops).

The model has one signature, ``serving_default`` (TFLite's name for the single signature of a
converted function), taking ``text`` (and ``text_pair`` when
``pair=True``) as a batch of strings and returning ``token_ids``, ``segment_ids`` and
``padding_mask`` of shape [batch, seq_length]. Run it with
:func:`llm_tf.export.tflite_runtime.make_interpreter`.
"""

import tensorflow as tf

from llm_tf.errors import LlmTfError


def tokenizer_module(tokenizer, pair: bool = False, seq_length: int | None = None) -> tf.Module:
    """Wraps a :class:`~llm_tf.text.tokenizer.TextTokenizer` in a module whose ``tokenize`` function
    takes ``text`` (and ``text_pair``) and returns the packed inputs."""
    seq_length = seq_length or tokenizer.max_seq_length
    module = tf.Module()
    module.tokenizer = tokenizer
    if pair:
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text"),
                                      tf.TensorSpec([None], tf.string, name="text_pair")])
        def tokenize(text, text_pair):
            return tokenizer(text, text_pair, seq_length=seq_length)
    else:
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def tokenize(text):
            return tokenizer(text, seq_length=seq_length)
    module.tokenize = tokenize
    return module


def convert_tokenizer(tokenizer, pair: bool = False, seq_length: int | None = None) -> bytes:
    """Converts the tokenizer to a TFLite flatbuffer.

    Args:
        tokenizer: A :class:`~llm_tf.text.tokenizer.TextTokenizer`.
        pair: Take two strings per example.
        seq_length: Packed length (default: the tokenizer's).

    Returns:
        The ``.tflite`` bytes; needs the tensorflow-text custom ops at run time.

    Raises:
        LlmTfError: The converter rejects the graph (its reason is included).
    """
    module = tokenizer_module(tokenizer, pair, seq_length)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.tokenize.get_concrete_function()], module)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.allow_custom_ops = True
    try:
        return converter.convert()
    except Exception as e:  # the converter raises ConverterError and others
        raise LlmTfError(f"cannot convert the tokenizer to TFLite: {str(e).strip().splitlines()[0]}") from None

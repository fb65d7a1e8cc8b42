"""Running TFLite models that may hold tensorflow-text ops.

tensorflow-text ops (tokenizers, normalisers) are TFLite custom ops; the interpreter needs
``tensorflow_text.tflite_registrar.SELECT_TFTEXT_OPS`` to resolve them. This module builds
such an interpreter with ``ai_edge_litert`` (falling back to ``tf.lite``).
"""

from llm_tf.errors import LlmTfError


def make_interpreter(model_content: bytes | None = None, model_path: str | None = None, num_threads: int | None = None):
    """Returns an allocated TFLite interpreter with the tensorflow-text custom ops registered.

    Args:
        model_content: The ``.tflite`` flatbuffer bytes.
        model_path: Or the path of a ``.tflite`` file.
        num_threads: Interpreter threads (None: the runtime's default).

    Raises:
        LlmTfError: The model cannot be loaded (the runtime's reason is included).

    Example:
        >>> runner = make_interpreter(model_path="tokenizer.tflite").get_signature_runner()
    """
    from tensorflow_text import tflite_registrar

    try:
        from ai_edge_litert import interpreter as litert

        interpreter_class = litert.InterpreterWithCustomOps
    except ImportError:  # pragma: no cover - ai_edge_litert is a dependency; tf.lite is the fallback
        import tensorflow as tf

        interpreter_class = tf.lite.experimental.InterpreterWithCustomOps  # type: ignore[attr-defined]
    try:
        interpreter = interpreter_class(
            custom_op_registerers=tflite_registrar.SELECT_TFTEXT_OPS,
            model_content=model_content,
            model_path=model_path,
            num_threads=num_threads,
        )
        interpreter.allocate_tensors()
    except (RuntimeError, ValueError) as e:
        where = model_path or "model"
        raise LlmTfError(f"{where}: cannot load TFLite model: {str(e).strip().splitlines()[0]}") from None
    return interpreter

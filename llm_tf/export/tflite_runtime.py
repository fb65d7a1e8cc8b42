"""Running TFLite models that may hold tensorflow-text ops, the way an app should run them.

tensorflow-text ops (tokenizers, normalisers) are TFLite custom ops; the interpreter needs
``tensorflow_text.tflite_registrar.SELECT_TFTEXT_OPS`` to resolve them. This module builds
such an interpreter with ``ai_edge_litert`` (falling back to ``tf.lite``).

Interpreter settings (:data:`INTERPRETER_SETTINGS`, recorded in ``llm_quantize``'s report): the
builtin op resolver with the default delegate, XNNPACK (``OpResolverType.AUTO``), at a fixed
thread count. XNNPACK runs the float ops and, for ``dynamic_int8``, the ``FULLY_CONNECTED``
ops with int8 weights as dynamically quantized GEMMs (int8 weights, activations quantized per
row at run time: XNNPACK's ``qd8`` kernels); ``BATCH_MATMUL`` in attention multiplies two
activations and stays float in every variant. Measured on the SST-2 models
(``benchmarks/results/tflite_variants.md``): without XNNPACK every variant is 3-8x slower;
XNNPACK's "latest features" flag changes nothing for these models. An app gets the same
kernels from LiteRT's default CPU path with XNNPACK on (the default of the builtin op
resolver) and the same number of threads.

Token inputs of a dynamic-length file (``llm_quantize --dynamic_length``: ``shape_signature``
``[batch, -1]``) take any length up to ``seq_length``; :func:`fit_token_inputs` cuts packed
inputs to their real length for such a file and leaves them as they are for a fixed-length one.
"""

import collections

import numpy as np

from llm_tf import compat
from llm_tf.errors import LlmTfError

#: How :func:`make_interpreter` configures the interpreter (besides ``num_threads``).
INTERPRETER_SETTINGS = {
    "op_resolver": "AUTO (builtin kernels + the default XNNPACK delegate)",
    "xnnpack": True,
    "xnnpack_latest_features": False,
    "custom_ops": "tensorflow_text.tflite_registrar.SELECT_TFTEXT_OPS",
}
#: The ``tokens`` form's inputs, int32 [batch, length] each.
TOKEN_INPUTS = ("token_ids", "segment_ids", "padding_mask")


def has_dynamic_length(input_details: dict) -> bool:
    """Whether a signature's token inputs take any length (``shape_signature`` ``[batch, -1]``).

    Args:
        input_details: ``SignatureRunner.get_input_details()``: input name -> details.

    Returns:
        True when every one of :data:`TOKEN_INPUTS` is there, 2-D, with a -1 length; False
        otherwise (a fixed-length file, or a signature taking text).
    """
    shapes = [input_details[name]["shape_signature"] for name in TOKEN_INPUTS if name in input_details]
    return len(shapes) == len(TOKEN_INPUTS) and all(len(s) == 2 and int(s[1]) == -1 for s in shapes)


def trim_token_inputs(inputs: dict) -> dict:
    """Cuts packed token inputs to the longest real sequence of the batch (the sum of ``padding_mask``, >= 1).

    The NumPy form of the cut the SavedModel's text signature makes in its graph
    (``llm_tf.export.signatures.trim_to_longest``), for apps and evaluation code that feed a
    dynamic-length file without TensorFlow.

    Args:
        inputs: ``token_ids``, ``segment_ids``, ``padding_mask`` [batch, length] (other keys pass through).

    Returns:
        The same keys; the token inputs as [batch, longest] views.
    """
    mask = np.asarray(inputs["padding_mask"])
    length = max(int(mask.sum(axis=1).max(initial=0)), 1)
    return {k: (np.asarray(v)[:, :length] if k in TOKEN_INPUTS else v) for k, v in inputs.items()}


def fit_token_inputs(input_details: dict, inputs: dict) -> dict:
    """Packed inputs as a signature takes them: cut to their real length when its length is dynamic.

    Args:
        input_details: The signature's ``get_input_details()``.
        inputs: Its inputs by name (``tokens`` form: packed to ``seq_length``).

    Returns:
        ``inputs`` trimmed by :func:`trim_token_inputs` for a dynamic-length signature, else as given.

    Example:
        >>> runner = make_interpreter(model_path="tokens_float32.tflite").get_signature_runner()  # doctest: +SKIP
        >>> out = runner(**fit_token_inputs(runner.get_input_details(), packed))  # doctest: +SKIP
    """
    return trim_token_inputs(inputs) if "padding_mask" in inputs and has_dynamic_length(input_details) else inputs


def runtime_version() -> str:
    """The TFLite runtime :func:`make_interpreter` uses, e.g. ``ai_edge_litert 2.3.0``."""
    from importlib import metadata

    try:
        return f"ai_edge_litert {metadata.version('ai-edge-litert')}"
    except metadata.PackageNotFoundError:  # pragma: no cover - the tf.lite fallback
        import tensorflow as tf

        return f"tf.lite (tensorflow {tf.__version__})"


def make_interpreter(model_content: bytes | None = None, model_path: str | None = None, num_threads: int | None = None):
    """Returns an allocated TFLite interpreter with the tensorflow-text custom ops registered.

    The builtin op resolver with XNNPACK as default delegate (:data:`INTERPRETER_SETTINGS`).

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
        resolver = litert.OpResolverType.AUTO
    except ImportError:  # pragma: no cover - ai_edge_litert is a dependency; tf.lite is the fallback
        import tensorflow as tf

        interpreter_class = tf.lite.experimental.InterpreterWithCustomOps  # type: ignore[attr-defined]
        resolver = tf.lite.experimental.OpResolverType.AUTO
    try:
        interpreter = interpreter_class(
            custom_op_registerers=tflite_registrar.SELECT_TFTEXT_OPS,
            model_content=model_content,
            model_path=model_path,
            num_threads=num_threads,
            experimental_op_resolver_type=resolver,
        )
        interpreter.allocate_tensors()
    except (RuntimeError, ValueError) as e:
        where = model_path or "model"
        raise LlmTfError(f"{where}: cannot load TFLite model: {str(e).strip().splitlines()[0]}") from None
    return interpreter


def kernel_placement(interpreter) -> dict | None:
    """Which nodes of the main subgraph (subgraph 0) run in a delegate and which in TFLite kernels.

    Call it after an invoke: the default delegate is applied on the first one. Each delegate
    node stands for a partition of the original nodes; a partition is found by walking back
    from the delegate node's outputs to its inputs.

    Args:
        interpreter: An interpreter from :func:`make_interpreter`, invoked at least once.

    Returns:
        ``nodes`` (original operators), ``delegated_nodes``, ``delegate_partitions`` and
        ``tflite_kernels`` (op type -> count of nodes left to TFLite's own kernels), or None
        when the runtime does not expose its nodes.
    """
    wrapper = compat.interpreter_wrapper(interpreter)
    if wrapper is None or not all(hasattr(wrapper, a) for a in ("NumNodes", "NodeName", "NodeInputs", "NodeOutputs")):
        return None
    count = wrapper.NumNodes()
    names = [wrapper.NodeName(i) for i in range(count)]
    delegates = [i for i in range(count) if names[i] == "DELEGATE"]
    producer = {int(t): i for i in range(count) if names[i] != "DELEGATE" for t in wrapper.NodeOutputs(i)}
    delegated: set[int] = set()
    for node in delegates:
        inputs = {int(t) for t in wrapper.NodeInputs(node)}
        stack = [int(t) for t in wrapper.NodeOutputs(node)]
        while stack:
            tensor = stack.pop()
            if tensor in inputs or tensor not in producer or producer[tensor] in delegated:
                continue
            delegated.add(producer[tensor])
            stack.extend(int(t) for t in wrapper.NodeInputs(producer[tensor]))
    left = collections.Counter(names[i] for i in range(count) if names[i] != "DELEGATE" and i not in delegated)
    return {"nodes": count - len(delegates), "delegated_nodes": len(delegated), "delegate_partitions": len(delegates),
            "tflite_kernels": dict(sorted(left.items()))}

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
"""

import collections

from llm_tf import compat
from llm_tf.errors import LlmTfError

#: How :func:`make_interpreter` configures the interpreter (besides ``num_threads``).
INTERPRETER_SETTINGS = {
    "op_resolver": "AUTO (builtin kernels + the default XNNPACK delegate)",
    "xnnpack": True,
    "xnnpack_latest_features": False,
    "custom_ops": "tensorflow_text.tflite_registrar.SELECT_TFTEXT_OPS",
}


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

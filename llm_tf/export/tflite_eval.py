"""Runs every TFLite variant over an eval set, compares it with the SavedModel, gates accuracy.

For each variant: accuracy on the eval labels, agreement of its predicted labels with the
SavedModel's ``serving_default``, the largest absolute score and logit differences, the file
size (raw and gzipped) and what its bytes are, the interpreter's invoke time at batch 1
(p50/p99 over a fixed number of runs, after warm-up) and which nodes XNNPACK ran. A
dynamic-length ``tokens`` file gets each text at its real length (its inputs resized per text,
the resize timed with the invoke), as an app would run it. ``text``
variants are also checked token by token: their ``tokenize`` signature against the
SavedModel's tokenizer. :func:`apply_gate` marks a variant failed
when its accuracy is more than ``max_accuracy_drop`` points below the SavedModel's.
"""

import dataclasses
import json
import os
import platform
import time

import numpy as np
import tensorflow as tf

from llm_tf import compat, io_utils
from llm_tf.errors import ConfigError, DataError
from llm_tf.export import compression, export_dir, tflite_convert, tflite_metadata
from llm_tf.export.tflite_runtime import fit_token_inputs, has_dynamic_length, kernel_placement, make_interpreter


@dataclasses.dataclass
class VariantResult:
    """What one variant measured.

    Attributes:
        name: ``<form>_<variant>``.
        form: ``text`` or ``tokens``.
        variant: Precision (``float32``, ``float16``, ``dynamic_int8``, ``full_int8``).
        file: The ``.tflite`` file name.
        size_bytes: Its size.
        gzip_bytes: Its size gzipped (:func:`llm_tf.export.compression.gzip_size`, level 6):
            what a download or an app package compressing it costs.
        accuracy: Accuracy on the eval labels (0-1).
        agreement: Fraction of eval texts where its label equals the SavedModel's.
        max_abs_score_diff: Largest |score - SavedModel score| over texts and classes.
        max_abs_logit_diff: Largest |logit - SavedModel logit|.
        latency_ms_p50: Median interpreter invoke time at batch 1, milliseconds (a
            dynamic-length ``tokens`` file: with the resize to each text's length).
        latency_ms_p99: 99th percentile of the same.
        tokenizer_mismatches: ``text`` form: eval texts whose token ids differ from the
            SavedModel tokenizer's (None for ``tokens``).
        notes: Conversion notes.
        size_vs_float32: ``size_bytes`` over the same form's float32 file (None when float32
            was not converted); set by :func:`size_ratios`.
        size_breakdown: What the bytes are (:func:`llm_tf.export.tflite_metadata.size_breakdown`).
        kernels: Nodes of the classifier's subgraph run by XNNPACK and by TFLite kernels
            (:func:`llm_tf.export.tflite_runtime.kernel_placement`; None if not exposed).
        dynamic_length: Whether the file runs at any length up to ``seq_length`` (its
            embedded ``dynamic_length``, or token inputs of length -1).
        accuracy_drop_points: SavedModel accuracy minus this one, in percentage points.
        gated: Whether the gate counts this variant.
        passed: Gate verdict (True when not gated or within the allowed drop).
    """

    name: str
    form: str
    variant: str
    file: str
    size_bytes: int
    accuracy: float
    agreement: float
    max_abs_score_diff: float
    max_abs_logit_diff: float
    latency_ms_p50: float
    latency_ms_p99: float
    tokenizer_mismatches: int | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    gzip_bytes: int = 0
    size_vs_float32: float | None = None
    size_breakdown: dict = dataclasses.field(default_factory=dict)
    kernels: dict | None = None
    dynamic_length: bool = False
    accuracy_drop_points: float = 0.0
    gated: bool = True
    passed: bool = True


@dataclasses.dataclass
class Reference:
    """The SavedModel's predictions on the eval set.

    Attributes:
        scores: ``serving_default`` scores [n, classes].
        label_ids: ``serving_default`` label ids [n].
        logits: ``predict_tokens`` logits [n, classes] (inputs packed to ``seq_length``).
        tokens: Packed token inputs per text (int32 [n, seq_length] each).
        accuracy: Accuracy on the eval labels.
    """

    scores: np.ndarray
    label_ids: np.ndarray
    logits: np.ndarray
    tokens: dict
    accuracy: float


def label_ids_of(labels: list[str], names: list[str], source: str) -> np.ndarray:
    """Maps label names to the model's ids.

    Args:
        labels: Label names, one per text.
        names: The model's label names in id order.
        source: Where the labels came from (for the message).

    Returns:
        int64 ids.

    Raises:
        DataError: A label the model does not know (the first few are named).
    """
    index = {name: i for i, name in enumerate(names)}
    unknown = sorted({label for label in labels if label not in index})
    if unknown:
        raise DataError(f"{source}: label(s) {', '.join(map(repr, unknown[:5]))} not among the model's labels "
                        f"({', '.join(names)})")
    return np.array([index[label] for label in labels], dtype=np.int64)


def reference_predictions(exported: export_dir.ExportedModel, texts: list[str], truth: np.ndarray,
                          batch_size: int = 64) -> Reference:
    """Runs the SavedModel over the eval texts.

    Args:
        exported: The loaded export.
        texts: Eval texts.
        truth: Their label ids.
        batch_size: Texts per SavedModel call.

    Returns:
        A :class:`Reference`.
    """
    scores, label_ids, logits, tokens = [], [], [], []
    for start in range(0, len(texts), batch_size):
        batch = texts[start:start + batch_size]
        served = exported.serve(batch)
        scores.append(served["scores"])
        label_ids.append(served["label_ids"])
        packed = exported.tokenize(batch)
        tokens.append(packed)
        logits.append(exported.predict_tokens(**{k: tf.constant(v) for k, v in packed.items()})["logits"].numpy())
    label_ids_all = np.concatenate(label_ids)
    packed_all = {k: np.concatenate([t[k] for t in tokens]) for k in tokens[0]}
    return Reference(np.concatenate(scores), label_ids_all, np.concatenate(logits), packed_all,
                     float(np.mean(label_ids_all == truth)))


class InvokeTimer:
    """Runs one signature and times the interpreter's invoke (and the resize that precedes it).

    It drives the signature runner's own interpreter wrapper (what ``SignatureRunner.__call__``
    does: resize, allocate, set, invoke, get) so the timer brackets ``Invoke`` alone, plus the
    resize and allocation when the input shapes changed since the last call (what an app
    feeding a dynamic-length file pays per text; at a fixed shape it happens once). Token inputs
    of a dynamic-length signature are cut to their real length first
    (:func:`llm_tf.export.tflite_runtime.fit_token_inputs`), so packed inputs can be given as
    they are. If a runtime lacks those internals, the whole call is timed instead.

    Args:
        interpreter: A loaded interpreter (:func:`llm_tf.export.tflite_runtime.make_interpreter`).
        signature: The signature to run.

    Example:
        >>> interpreter = make_interpreter(model_path="tokens_float32.tflite")  # doctest: +SKIP
        >>> timer = InvokeTimer(interpreter, "serving_default")  # doctest: +SKIP
        >>> outputs, seconds = timer(**tokens)  # doctest: +SKIP
    """

    def __init__(self, interpreter, signature: str):
        self.runner = interpreter.get_signature_runner(signature)
        self.inputs = self.runner.get_input_details()
        self.outputs = self.runner.get_output_details()
        self.wrapper, self.subgraph = compat.signature_runner_internals(self.runner)
        self.shapes: dict = {}
        #: Whether the token inputs take any length (then they are trimmed per call).
        self.dynamic_length = has_dynamic_length(self.inputs)

    def __call__(self, **inputs) -> tuple[dict, float]:
        """Runs the signature on ``inputs``; returns its outputs and the seconds of its (resize and) invoke."""
        inputs = fit_token_inputs(self.inputs, inputs)
        if self.wrapper is None or self.subgraph is None:
            start = time.perf_counter()
            out = self.runner(**inputs)
            return out, time.perf_counter() - start
        # SetTensor takes C-contiguous data (a trimmed view is not): copy before the clock starts.
        inputs = {k: np.ascontiguousarray(v) for k, v in inputs.items()}
        shapes = {k: tuple(v.shape) for k, v in inputs.items()}
        start = time.perf_counter()
        if shapes != self.shapes:
            for name, value in inputs.items():
                self.wrapper.ResizeInputTensor(self.inputs[name]["index"], np.array(value.shape, dtype=np.int32),
                                               False, self.subgraph)
            self.wrapper.AllocateTensors(self.subgraph)
            self.shapes = shapes
        elapsed = time.perf_counter() - start
        for name, value in inputs.items():
            self.wrapper.SetTensor(self.inputs[name]["index"], value, self.subgraph)
        start = time.perf_counter()
        self.wrapper.Invoke(self.subgraph)
        elapsed += time.perf_counter() - start
        return {name: self.wrapper.GetTensor(d["index"], self.subgraph) for name, d in self.outputs.items()}, elapsed


def example_inputs(form: str, texts: list[str], tokens: dict[str, np.ndarray], i: int) -> dict:
    """The inputs of text ``i`` at batch 1 for a form's classifying signature.

    Args:
        form: ``text`` or ``tokens``.
        texts: The texts.
        tokens: Their packed token arrays (``ExportedModel.tokenize``), read by the ``tokens`` form.
        i: Which text.

    Returns:
        Input name -> array with a batch of one (``tokens`` form: packed to ``seq_length``;
        :class:`InvokeTimer` cuts them for a dynamic-length file).
    """
    if form == "text":
        return {"text": np.array([texts[i].encode("utf-8")], dtype=object)}
    return {k: v[i:i + 1] for k, v in tokens.items()}


def evaluate_variant(path: str, form: str, variant: str, texts: list[str], truth: np.ndarray, reference: Reference,
                     latency_runs: int = 100, num_threads: int | None = 1,
                     notes: list[str] | None = None) -> VariantResult:
    """Runs one ``.tflite`` variant over the eval texts, one at a time.

    Args:
        path: The ``.tflite`` file.
        form: ``text`` or ``tokens``.
        variant: Its precision name.
        texts: Eval texts.
        truth: Their label ids.
        reference: The SavedModel's predictions (:func:`reference_predictions`).
        latency_runs: Timed invokes at batch 1 (cycling through the eval texts), after 5
            untimed ones.
        num_threads: Interpreter threads (None: the runtime's default).
        notes: Conversion notes to carry into the result.

    Returns:
        A :class:`VariantResult` (gate fields at their defaults).

    Raises:
        LlmTfError: The model does not load.
        ConfigError: ``latency_runs`` < 1.
    """
    if latency_runs < 1:
        raise ConfigError(f"latency runs must be >= 1, got {latency_runs}")
    # A local file is mapped by the interpreter; a bucket's is read into memory (the runtime opens local files only).
    content = io_utils.read_bytes(path)
    model = {"model_content": content} if io_utils.is_remote(path) else {"model_path": path}
    interpreter = make_interpreter(**model, num_threads=num_threads)
    run = InvokeTimer(interpreter, tflite_convert.classify_signature(form))
    scores, logits, label_ids = [], [], []
    for i in range(len(texts)):
        out, _ = run(**example_inputs(form, texts, reference.tokens, i))
        scores.append(out["scores"][0])
        logits.append(out["logits"][0])
        label_ids.append(int(out["label_ids"][0]))
    for i in range(5):
        run(**example_inputs(form, texts, reference.tokens, i % len(texts)))
    times = np.array([run(**example_inputs(form, texts, reference.tokens, i % len(texts)))[1]
                      for i in range(latency_runs)]) * 1000
    kernels = kernel_placement(interpreter) if run.subgraph in (None, 0) else None
    mismatches = None
    if form == "text":
        tokenize = make_interpreter(**model, num_threads=num_threads).get_signature_runner(
            tflite_convert.TEXT_SIGNATURES[1])
        fixed_batch = tokenize.get_input_details()["text"]["shape_signature"][0]  # -1: any batch size
        step = max(len(texts), 1) if fixed_batch < 1 else int(fixed_batch)
        chunks = [tokenize(text=np.array([t.encode("utf-8") for t in texts[i:i + step]], dtype=object))
                  for i in range(0, len(texts), step)]
        got = {key: np.concatenate([c[key] for c in chunks]) for key in chunks[0]}
        differs = np.zeros(len(texts), dtype=bool)
        for key, want in reference.tokens.items():
            differs |= np.any(got[key] != want, axis=1)
        mismatches = int(differs.sum())
    predicted = np.array(label_ids)
    breakdown = tflite_metadata.size_breakdown(content)
    info = json.loads(tflite_metadata.read_metadata(content).get(tflite_metadata.INFO_ENTRY) or b"{}")
    return VariantResult(
        name=f"{form}_{variant}", form=form, variant=variant, file=os.path.basename(path),
        size_bytes=len(content), gzip_bytes=compression.gzip_size([path]), size_breakdown=breakdown,
        kernels=kernels, dynamic_length=bool(info.get("dynamic_length") or run.dynamic_length),
        accuracy=float(np.mean(predicted == truth)),
        agreement=float(np.mean(predicted == reference.label_ids)),
        max_abs_score_diff=float(np.max(np.abs(np.array(scores) - reference.scores))),
        max_abs_logit_diff=float(np.max(np.abs(np.array(logits) - reference.logits))),
        latency_ms_p50=float(np.percentile(times, 50)), latency_ms_p99=float(np.percentile(times, 99)),
        tokenizer_mismatches=mismatches, notes=list(notes or []))


def size_ratios(results: list[VariantResult]) -> None:
    """Sets each result's ``size_vs_float32``: its size over its form's float32 file.

    Args:
        results: Variant results (updated in place); a form without float32 gets None.
    """
    float32 = {r.form: r.size_bytes for r in results if r.variant == "float32"}
    for result in results:
        base = float32.get(result.form)
        result.size_vs_float32 = result.size_bytes / base if base else None


def gate_selection(names: list[str], selectors: list[str] | None) -> set[str]:
    """The variant names a gate counts.

    Args:
        names: All variant names (``<form>_<variant>``).
        selectors: Names, precisions (``full_int8`` selects both forms) or forms (``text``);
            None or empty: all.

    Returns:
        The selected names.

    Raises:
        ConfigError: A selector matches nothing.
    """
    if not selectors:
        return set(names)
    chosen: set[str] = set()
    for selector in selectors:
        matched = {n for n in names if selector in (n, n.split("_", 1)[1], n.split("_", 1)[0])}
        if not matched:
            raise ConfigError(f"--gate_variants: '{selector}' matches no variant (have: {', '.join(names)})")
        chosen |= matched
    return chosen


def apply_gate(results: list[VariantResult], reference_accuracy: float, max_accuracy_drop: float,
               gated: set[str]) -> list[str]:
    """Marks each variant passed or failed; returns the names of the failed ones.

    Args:
        results: Variant results (updated in place).
        reference_accuracy: The SavedModel's accuracy (0-1).
        max_accuracy_drop: Allowed drop in percentage points (1.0: 80.0% -> 79.0% passes).
        gated: Names the gate counts; the others are reported but always pass.

    Returns:
        Failed variant names, in result order.
    """
    failed = []
    for result in results:
        result.accuracy_drop_points = round((reference_accuracy - result.accuracy) * 100, 6)
        result.gated = result.name in gated
        result.passed = not result.gated or result.accuracy_drop_points <= max_accuracy_drop + 1e-9
        if not result.passed:
            failed.append(result.name)
    return failed


#: CPU features that decide how fast int8 matrix products are (x86 VNNI/AMX, Arm dot product).
INT8_CPU_FEATURES = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")


def cpu_info(path: str = "/proc/cpuinfo") -> dict:
    """The CPU's model name and which of :data:`INT8_CPU_FEATURES` it has (Linux; empty elsewhere).

    XNNPACK's int8 kernels use VNNI/AMX (x86) or the dot-product instructions (Arm) when
    present; with AVX2 alone an int8 matrix product is barely faster than a float one, so the
    latency ratios of a report depend on these flags.

    Args:
        path: The cpuinfo file.

    Returns:
        ``cpu_model`` and ``cpu_features`` (present ones, in :data:`INT8_CPU_FEATURES` order),
        or an empty dict when the file is unreadable.
    """
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip().lower(), value.strip())
    flags = set((fields.get("flags") or fields.get("features") or "").split())
    model = fields.get("model name") or fields.get("cpu model") or fields.get("hardware") or ""
    return {"cpu_model": model, "cpu_features": [f for f in INT8_CPU_FEATURES if f in flags]}


def machine() -> dict:
    """Where the numbers were taken.

    Returns:
        Platform, processor, CPU count, CPU model and int8-relevant features, Python,
        TensorFlow and TFLite runtime versions.
    """
    from llm_tf.export.tflite_runtime import runtime_version

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version(), "tensorflow": tf.__version__,
            "tflite_runtime": runtime_version(), **cpu_info()}

"""An exported SavedModel to TFLite variants: two input forms, four numeric precisions.

Forms:

* ``text``: raw strings in (the tokenizer inside, as tensorflow-text custom ops; run with
  :func:`llm_tf.export.tflite_runtime.make_interpreter`). Signatures ``classify`` (``text``
  [batch] -> ``scores``, ``logits``, ``label_ids``, ``labels``) and ``tokenize`` (``text`` ->
  ``token_ids``, ``segment_ids``, ``padding_mask``, int32 [batch, seq_length]).
* ``tokens``: token ids in, for runtimes without the tensorflow-text ops. One signature,
  ``serving_default``: ``token_ids``, ``segment_ids``, ``padding_mask`` (int32
  [batch, seq_length]) -> ``scores``, ``logits``, ``label_ids``.

Variants: ``float32``; ``float16`` (weights stored as float16); ``dynamic_int8`` (int8
weights, float activations); ``full_int8`` (int8 weights and activations calibrated on a
representative dataset; inputs and outputs stay int32/float32 and strings, and the tokenizer
stays as it is: only the model part is quantized).

``batch`` is any size by default; a conversion with ``batch_size=1`` fixes it at one example
(faster at batch 1: the shape arithmetic folds into constants). The length is ``seq_length``
by default; a conversion with ``dynamic_length=True`` takes any length from 1 to
``seq_length``: the ``tokens`` form's inputs are ``[batch, -1]`` (the app resizes them to the
text's real length before each call), the ``text`` form cuts each batch to its longest text
before the encoder (``tokenize`` still returns ``[batch, seq_length]``).

The model part is the SavedModel's own ``predict_tokens`` function; the tokenizer of the
``text`` form is rebuilt from the SavedModel's vocabulary asset and checked against the
SavedModel's ``serving_default`` on sample texts before conversion.
"""

import dataclasses
import json
import re

import numpy as np
import tensorflow as tf

from llm_tf import compat, io_utils
from llm_tf.errors import ConfigError, DataError, LlmTfError
from llm_tf.export import export_dir, tflite_runtime
from llm_tf.export.signatures import trim_to_longest

FORMS = ("text", "tokens")
VARIANTS = ("float32", "float16", "dynamic_int8", "full_int8")
#: TFLite signature names of each form (the first is the classifier).
TEXT_SIGNATURES = ("classify", "tokenize")
#: The tokens form's one signature (the SavedModel's token signature is ``signatures.TOKENS_SIGNATURE``).
TFLITE_TOKENS_SIGNATURE = "serving_default"
#: Batch sizes a conversion takes: 0 (any) or 1 (fixed at one example).
BATCH_SIZES = (0, 1)


def classify_signature(form: str) -> str:
    """The signature that classifies in a form's ``.tflite`` file (``classify`` or ``serving_default``)."""
    return TEXT_SIGNATURES[0] if form == "text" else TFLITE_TOKENS_SIGNATURE
#: ``float_ops`` presets. ``attention``: the self-attention path (scores, mask, softmax, head
#: reshapes) and the position-embedding broadcast stay float32; measured on the tiny SST-2
#: model it takes full_int8 from -7 points to +0.1 at 2% more bytes (docs/quantize.md).
FLOAT_OPS_PRESETS = {"attention": ("BATCH_MATMUL", "SOFTMAX", "SELECT_V2", "TRANSPOSE", "RESHAPE", "BROADCAST_TO")}


class UnsupportedOpsError(LlmTfError):
    """The converter cannot express some ops of the graph in TFLite.

    Attributes:
        ops: The op names the converter named.
    """

    def __init__(self, message: str, ops: list[str]):
        super().__init__(message)
        self.ops = ops


def _functions(exported: export_dir.ExportedModel, form: str, batch_size: int = 0, additive_masks: bool = True,
               dynamic_length: bool = False) -> list:
    """The concrete functions of a form, batch size and length, traced once per export (tracing costs seconds)."""
    key = (form, batch_size, additive_masks, dynamic_length)
    if key not in exported.traced_functions:
        exported.traced_functions[key] = _trace_functions(exported, form, batch_size, additive_masks, dynamic_length)
    return exported.traced_functions[key]


def _trace_functions(exported: export_dir.ExportedModel, form: str, batch_size: int, additive_masks: bool,
                     dynamic_length: bool = False) -> list:
    length = exported.seq_length
    batch = batch_size or None  # a fixed batch lets the converter fold the shape arithmetic into constants
    label_names = tf.constant(exported.labels)
    predict = exported.predict_tokens_additive_masks if additive_masks else exported.predict_tokens

    def classify_tokens(inputs: dict) -> dict:
        out = predict(inputs["token_ids"], inputs["segment_ids"], inputs["padding_mask"])
        label_ids = tf.cast(out["label_ids"], tf.int32)
        return {"scores": out["scores"], "logits": out["logits"], "label_ids": label_ids}

    if form == "tokens":
        specs = [tf.TensorSpec([batch, None if dynamic_length else length], tf.int32, name=n)
                 for n in tflite_runtime.TOKEN_INPUTS]

        @tf.function(input_signature=specs)
        def serving_default(token_ids, segment_ids, padding_mask):
            return classify_tokens({"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask})

        return [serving_default.get_concrete_function()]

    text_spec = [tf.TensorSpec([batch], tf.string, name="text")]

    def packed(text):
        inputs = exported.tokenizer(text, seq_length=length)
        out = {k: tf.cast(v, tf.int32) for k, v in inputs.items()}
        if batch:  # the tokenizer's ragged ops lose the static batch; restating it keeps the encoder static
            out = {k: tf.reshape(v, [batch, length]) for k, v in out.items()}
        return out

    def trimmed(text):
        # The SavedModel's text signature cuts the same way: padding past the batch's longest text costs compute.
        out = trim_to_longest(packed(text))
        return {k: tf.reshape(v, [batch, -1]) for k, v in out.items()} if batch else out

    @tf.function(input_signature=text_spec)
    def classify(text):
        out = classify_tokens(trimmed(text) if dynamic_length else packed(text))
        out["labels"] = tf.gather(label_names, out["label_ids"])
        return out

    @tf.function(input_signature=text_spec)
    def tokenize(text):
        return packed(text)

    # The classifier first: it becomes subgraph 0, what a single-signature runtime runs.
    return [classify.get_concrete_function(), tokenize.get_concrete_function()]


def representative_dataset(exported: export_dir.ExportedModel, form: str, texts: list[str],
                           dynamic_length: bool = False):
    """A converter ``representative_dataset``: one example a step, keyed by signature input name.

    Args:
        exported: The loaded export (its tokenizer packs the texts for the ``tokens`` form).
        form: ``text`` or ``tokens``.
        texts: Calibration texts.
        dynamic_length: ``tokens`` form: feed each text at its own length (what a
            dynamic-length file runs) instead of packed to ``seq_length``.

    Returns:
        A generator function yielding input dicts (``(signature, dict)`` for the ``text`` form).

    Raises:
        DataError: ``texts`` is empty.
    """
    if not texts:
        raise DataError("representative dataset is empty: no texts to calibrate full_int8 with")

    def generate():
        for text in texts:
            if form == "text":
                # Two signatures: the calibrator needs to know which one each sample feeds.
                yield TEXT_SIGNATURES[0], {"text": np.array([text.encode("utf-8")], dtype=object)}
            elif dynamic_length:
                yield tflite_runtime.trim_token_inputs(exported.tokenize([text]))
            else:
                yield exported.tokenize([text])

    return generate


_OPS_PATTERNS = (
    re.compile(r"'tf\.(\w+)' op is neither a custom op nor a flex op"),
    re.compile(r"Some ops are not supported by the native TFLite runtime[^\n]*\n?(?:.*?)tf\.(\w+)"),
    re.compile(r"unresolved custom ops?: \[([^\]]+)\]"),
    re.compile(r"Encountered unresolved custom op: (\w+)"),
    re.compile(r"(?:Flex|TF Select|select TF|Custom) ops?: ([\w, ]+)"),
    re.compile(r"Op type not registered '(\w+)'"),
    re.compile(r"'tfl\.(\w+)' op (?:is not|isn't) (?:supported|quantizable)"),
)


def unsupported_ops(message: str) -> list[str]:
    """The op names a TFLite converter/calibrator error message complains about.

    Args:
        message: The converter's or calibrator's error text.

    Returns:
        Op names, sorted and unique (empty when none is recognised).
    """
    found: set[str] = set()
    for pattern in _OPS_PATTERNS:
        for match in pattern.findall(message):
            for name in re.split(r"[,\s]+", match):
                if name and name not in ("tf", "and"):
                    found.add(name.split(".")[-1])
    return sorted(found)


def _converter(exported: export_dir.ExportedModel, form: str, variant: str, texts: list[str] | None,
               strict_int8: bool, batch_size: int = 0, dynamic_length: bool = False) -> tf.lite.TFLiteConverter:
    from tensorflow_text import tflite_registrar

    # Full int8 keeps the selected masks: an added -1e9 would share the int8 range of the attention
    # scores (the SELECT_V2s stay float with --int8_float_ops=attention; an ADD cannot be singled out).
    functions = _functions(exported, form, batch_size, variant != "full_int8", dynamic_length)
    converter = tf.lite.TFLiteConverter.from_concrete_functions(functions, exported.loaded)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.allow_custom_ops = form == "text"
    if variant == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "dynamic_int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif variant == "full_int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset(exported, form, texts or [], dynamic_length)
        converter.target_spec.supported_ops = (
            [tf.lite.OpsSet.TFLITE_BUILTINS_INT8] if strict_int8
            else [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS])
        # The calibrator runs the model in an interpreter: it needs the tensorflow-text ops
        # too (TF reads this private list when it builds the calibrator; no public API).
        compat.set_calibration_custom_ops(converter, tflite_registrar.SELECT_TFTEXT_OPS)
    return converter


def expand_float_ops(float_ops: list[str]) -> list[str]:
    """Expands presets (:data:`FLOAT_OPS_PRESETS`) in a list of op types.

    Args:
        float_ops: Op type names and preset names.

    Returns:
        Op type names in order of first appearance, without repeats.
    """
    out: list[str] = []
    for op in float_ops:
        for name in FLOAT_OPS_PRESETS.get(op, (op,)):
            if name not in out:
                out.append(name)
    return out


def _selective_int8(exported: export_dir.ExportedModel, form: str, texts: list[str], float_ops: list[str], name: str,
                    batch_size: int = 0, dynamic_length: bool = False) -> bytes:
    """Full-int8 with some op types left in float: calibrate, then quantize with a denylist.

    This is what ``tf.lite.experimental.QuantizationDebugger.get_nondebug_quantized_model``
    does with ``denylisted_ops``, without the debugger's float/quantized interpreters (which
    cannot load the tensorflow-text custom ops).
    """
    float_ops = expand_float_ops(float_ops)
    bad = [op for op in float_ops if not re.fullmatch(r"[A-Z][A-Z0-9_]*", op)]
    if bad:
        raise ConfigError("float ops must be TFLite op type names such as SOFTMAX or BATCH_MATMUL, "
                          f"got {', '.join(bad)}")
    converter = _converter(exported, form, "full_int8", texts, False, batch_size, dynamic_length)
    compat.set_calibrate_only(converter)
    calibrated = run_converter(converter, name)
    try:
        return compat.mlir_quantize(calibrated, float_ops)
    except Exception as e:
        first = next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)
        raise LlmTfError(f"{name}: quantization with float ops {', '.join(float_ops)} failed: {first[:300]}") from None


def run_converter(converter: tf.lite.TFLiteConverter, name: str) -> bytes:
    """Runs a TFLite converter; its failures become one-line errors naming the unsupported ops.

    Args:
        converter: A configured converter.
        name: What is converted (starts the error message).

    Returns:
        The ``.tflite`` bytes.

    Raises:
        UnsupportedOpsError: The message names ops the converter or calibrator cannot handle.
        LlmTfError: Any other conversion failure (the converter's first line).
    """
    try:
        return converter.convert()
    except Exception as e:  # ConverterError, RuntimeError/ValueError from the calibrator, ...
        message = str(e)
        ops = unsupported_ops(message)
        first = next((line.strip() for line in message.splitlines() if line.strip()), type(e).__name__)
        if ops:
            raise UnsupportedOpsError(f"{name}: the TFLite converter does not support op(s) {', '.join(ops)} "
                                      "(neither TFLite builtins nor the tensorflow-text custom ops)", ops) from None
        raise LlmTfError(f"{name}: TFLite conversion failed: {first[:300]}") from None


@dataclasses.dataclass
class Conversion:
    """One converted variant.

    Attributes:
        name: ``<form>_<variant>``, e.g. ``tokens_full_int8``.
        form: ``text`` or ``tokens``.
        variant: One of :data:`VARIANTS`.
        content: The ``.tflite`` bytes (before metadata).
        notes: What the conversion had to settle for, in words (empty: nothing).
        batch_size: The fixed batch size of its inputs; 0: any batch size.
        dynamic_length: Whether it runs at any length up to ``seq_length`` (see
            :func:`convert_variant`); False: at ``seq_length`` only.
    """

    name: str
    form: str
    variant: str
    content: bytes
    notes: list[str] = dataclasses.field(default_factory=list)
    batch_size: int = 0
    dynamic_length: bool = False


def convert_variant(exported: export_dir.ExportedModel, form: str, variant: str, texts: list[str] | None = None,
                    float_ops: list[str] | None = None, batch_size: int = 0,
                    dynamic_length: bool = False) -> Conversion:
    """Converts one form and precision to TFLite.

    ``full_int8`` of the ``tokens`` form is tried with int8-only builtins first; if an op has
    no int8 kernel it falls back to int8 with float kernels where needed (said in ``notes``).
    The ``text`` form always keeps its string and tokenizer ops as they are.

    Args:
        exported: From :func:`~llm_tf.export.export_dir.load_exported`.
        form: ``text`` or ``tokens``.
        variant: One of :data:`VARIANTS`.
        texts: Representative texts (``full_int8`` only).
        float_ops: ``full_int8`` only: TFLite op types (``SOFTMAX``, ``BATCH_MATMUL``, ...) or
            presets (``attention``) to keep in float32; the rest is int8 (selective
            quantization). None: none.
        batch_size: 0 (default): the inputs take any batch size. 1: the inputs are fixed at
            batch 1 (what an app classifying one text at a time runs); the converter then
            folds the dynamic-shape arithmetic into constants, so XNNPACK runs the encoder in
            fewer, larger partitions and batch-1 invokes are faster.
        dynamic_length: False (default): the model runs at ``seq_length``. True: at any length
            from 1 to ``seq_length``, so a short text costs what its own tokens cost. The
            ``tokens`` form's inputs become ``[batch, -1]``: the caller resizes them to the
            text's real length (``tflite_runtime.fit_token_inputs`` trims packed inputs); the
            ``text`` form cuts each batch to its longest text before the encoder, as the
            SavedModel's ``serving_default`` does. The length's shape arithmetic stays in
            the graph (XNNPACK runs the encoder in more partitions; docs/quantize.md).

    Returns:
        A :class:`Conversion`.

    Raises:
        ConfigError: Unknown form or variant, or a batch size other than 0 or 1.
        DataError: ``full_int8`` without representative texts.
        UnsupportedOpsError: The converter cannot express some ops (named in the message).
    """
    if form not in FORMS:
        raise ConfigError(f"unknown form '{form}' (expected one of: {', '.join(FORMS)})")
    if variant not in VARIANTS:
        raise ConfigError(f"unknown variant '{variant}' (expected one of: {', '.join(VARIANTS)})")
    if batch_size not in BATCH_SIZES:
        raise ConfigError(f"batch size must be 0 (any) or 1 (fixed at one example), got {batch_size}")
    if variant == "full_int8" and not texts:
        raise DataError("representative dataset is empty: full_int8 needs calibration texts")
    name = f"{form}_{variant}"
    notes: list[str] = []
    if variant == "full_int8" and float_ops:
        content = _selective_int8(exported, form, texts or [], float_ops, name, batch_size, dynamic_length)
        notes.append(f"op types kept in float32: {', '.join(expand_float_ops(float_ops))}")
    elif variant == "full_int8" and form == "tokens":
        try:
            content = run_converter(_converter(exported, form, variant, texts, True, batch_size, dynamic_length), name)
        except LlmTfError as e:
            ops = getattr(e, "ops", [])
            notes.append("int8-only builtins failed" + (f" ({', '.join(ops)})" if ops else "")
                         + "; float kernels allowed where int8 has none")
            content = run_converter(_converter(exported, form, variant, texts, False, batch_size, dynamic_length),
                                    name)
    else:
        content = run_converter(_converter(exported, form, variant, texts, False, batch_size, dynamic_length), name)
    if form == "text" and variant == "full_int8":
        notes.append("model part int8; tokenizer (tensorflow-text custom ops) and string input/output kept as is")
    return Conversion(name, form, variant, content, notes, batch_size, dynamic_length)


def export_info_json(exported: export_dir.ExportedModel, conversion: Conversion) -> str:
    """The JSON embedded in a variant's metadata: what it is and where it came from.

    Args:
        exported: The loaded export.
        conversion: The converted variant.

    Returns:
        Indented, key-sorted JSON text.
    """
    info = exported.info
    signatures = ({"classify": {"inputs": ["text"], "outputs": ["label_ids", "labels", "logits", "scores"]},
                   "tokenize": {"inputs": ["text"], "outputs": ["padding_mask", "segment_ids", "token_ids"]}}
                  if conversion.form == "text" else
                  {TFLITE_TOKENS_SIGNATURE: {"inputs": ["padding_mask", "segment_ids", "token_ids"],
                                      "outputs": ["label_ids", "logits", "scores"]}})
    return json.dumps({
        "name": conversion.name, "form": conversion.form, "variant": conversion.variant,
        "labels": exported.labels, "seq_length": exported.seq_length,
        "batch_size": conversion.batch_size or None,  # None: any batch size
        # True: any length up to seq_length (tokens form: resize the inputs to the text's length).
        "dynamic_length": conversion.dynamic_length,
        "tokenizer": {"kind": exported.tokenizer.kind, "lower_case": bool(exported.tokenizer.lower_case),
                      "cls_id": exported.tokenizer.cls_id, "sep_id": exported.tokenizer.sep_id,
                      "pad_id": exported.tokenizer.pad_id, "unk_id": exported.tokenizer.unk_id},
        "signatures": signatures,
        "needs_tensorflow_text_ops": conversion.form == "text",
        "saved_model": io_utils.abspath(exported.path),
        "checkpoint": info.get("checkpoint"), "step": info.get("step"), "model_dir": info.get("model_dir"),
        "notes": conversion.notes,
    }, indent=2, sort_keys=True)

"""``llm_export --tflite_model``: the token form as ``model.tflite`` in the version directory, for TF Serving.

``tensorflow_model_server --prefer_tflite_model`` (EXPERIMENTAL there) loads ``<version>/model.tflite``
instead of ``saved_model.pb`` (``llm_serve`` does the same: ``llm_tf.serving.tflite_servable``). Its
interpreter resolves builtin ops only (plus ``ParseExample``), so the file is the ``tokens`` form
of :mod:`llm_tf.export.tflite_convert` (the ``text`` form needs tensorflow-text's custom ops).

TF Serving takes a TFLite model's signatures from the ``signature_defs_metadata`` metadata entry
(TFLite's ``SetSignatureDefMap`` format: a flexbuffer map of name -> serialized ``SignatureDef``
naming TFLite tensors), not from the flatbuffer's own signature list; without that entry it
generates ``serving_default`` keyed by raw tensor names. We write the entry so that the file
serves the SavedModel's token signature under its name and aliases: ``predict_tokens``,
``token_ids``/``segment_ids``/``padding_mask`` int32 [batch, seq_length] -> ``logits``,
``scores``, ``label_ids`` (int32 here, int64 in the SavedModel).
"""

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2

from llm_tf import compat, io_utils
from llm_tf.errors import ConfigError, LlmTfError
from llm_tf.export import export_dir, signatures, tflite_convert, tflite_metadata, tflite_runtime

#: ``--tflite_model`` values: ``none`` or a ``tokens``-form variant (``full_int8`` needs calibration: llm_quantize).
TFLITE_MODEL_CHOICES = ("none", "float32", "float16", "dynamic_int8")
#: TFLite's ``kSignatureDefsMetadataName`` (``tensorflow/lite/tools/signature/signature_def_util.h``).
SIGNATURE_DEFS_ENTRY = "signature_defs_metadata"


def check_choice(variant: str) -> None:
    """Raises ConfigError (one line naming ``--tflite_model``) for a value not in :data:`TFLITE_MODEL_CHOICES`."""
    if variant not in TFLITE_MODEL_CHOICES:
        raise ConfigError(f"--tflite_model: unknown value '{variant}' "
                          f"(expected one of: {', '.join(TFLITE_MODEL_CHOICES)})")


def tokens_signature_def(content: bytes) -> meta_graph_pb2.SignatureDef:
    """The ``predict_tokens`` SignatureDef of a ``tokens``-form file, naming its TFLite tensors.

    Args:
        content: The ``.tflite`` bytes (one signature, ``serving_default``).

    Returns:
        The SignatureDef (method predict; shapes from the file, -1 for a dynamic batch).
    """
    interpreter = tflite_runtime.make_interpreter(model_content=content)
    runner = interpreter.get_signature_runner(tflite_convert.TFLITE_TOKENS_SIGNATURE)
    signature = meta_graph_pb2.SignatureDef(method_name=signatures.PREDICT_METHOD)
    for found, target in ((runner.get_input_details(), signature.inputs),
                          (runner.get_output_details(), signature.outputs)):
        for alias, d in sorted(found.items()):
            info = target[alias]
            info.name = d["name"]
            info.dtype = tf.as_dtype(d["dtype"]).as_datatype_enum
            for size in d["shape_signature"]:
                info.tensor_shape.dim.add(size=int(size))
    return signature


def with_signature_defs(content: bytes, defs: dict[str, meta_graph_pb2.SignatureDef]) -> bytes:
    """Returns ``content`` with the ``signature_defs_metadata`` entry TF Serving reads.

    Args:
        content: A ``.tflite`` flatbuffer (no appended archive yet).
        defs: Signature name -> SignatureDef.

    Returns:
        The new bytes.

    Raises:
        LlmTfError: A serialized SignatureDef holds a NUL byte: TFLite's reader copies each value
            as a C string (``AsString().c_str()``) and would cut it there.
    """
    serialized = {name: signature.SerializeToString(deterministic=True) for name, signature in defs.items()}
    for name, data in serialized.items():
        if b"\0" in data:
            raise LlmTfError(f"signature {name}: its serialized SignatureDef holds a NUL byte, which TFLite's "
                             "signature reader would cut")
    return tflite_metadata.embed_metadata(content, {SIGNATURE_DEFS_ENTRY: compat.flexbuffer_string_map(serialized)})


def serving_model(exported: export_dir.ExportedModel, variant: str) -> tuple[bytes, dict]:
    """Converts the export's token form and makes it a TF Serving TFLite model.

    The file takes any length up to the export's ``seq_length`` (``dynamic_length``): TF
    Serving's TFLite session and the embedded server resize the interpreter to each request's
    shape, so a client that sends ids cut to its longest text pays for that length only; ids
    padded to ``seq_length`` work too.

    Args:
        exported: The loaded version directory.
        variant: ``float32``, ``float16`` or ``dynamic_int8``.

    Returns:
        (the ``model.tflite`` bytes, facts: variant, bytes, signature, max_abs_logit_diff and
        label agreement against the SavedModel's ``predict_tokens`` on check texts).

    Raises:
        ConfigError: Unknown variant.
        LlmTfError: The conversion failed, or the file does not load with builtin ops only.
    """
    check_choice(variant)
    conversion = tflite_convert.convert_variant(exported, "tokens", variant, dynamic_length=True)
    defs = {signatures.TOKENS_SIGNATURE: tokens_signature_def(conversion.content)}
    content = with_signature_defs(conversion.content, defs)
    content = tflite_metadata.with_model_files(content, exported.labels, io_utils.read_bytes(exported.vocab_path),
                                               tflite_convert.export_info_json(exported, conversion))
    packed = exported.tokenize(list(export_dir.CHECK_TEXTS))
    out = exported.predict_tokens(**{k: tf.constant(v) for k, v in packed.items()})
    reference = {k: v.numpy() for k, v in out.items()}
    runner = tflite_runtime.make_interpreter(model_content=content, num_threads=1).get_signature_runner(
        tflite_convert.TFLITE_TOKENS_SIGNATURE)
    got = runner(**tflite_runtime.fit_token_inputs(runner.get_input_details(), packed))
    facts = {"variant": variant, "bytes": len(content), "signature": signatures.TOKENS_SIGNATURE,
             "check_texts": len(export_dir.CHECK_TEXTS),
             "max_abs_logit_diff": float(np.max(np.abs(got["logits"] - reference["logits"]))),
             "label_agreement": float(np.mean(got["label_ids"].astype(np.int64) == reference["label_ids"]))}
    return content, facts


def load_for_tflite(version_dir: str, prepared_dir: str | None = None) -> export_dir.ExportedModel:
    """Loads a version directory to convert (``export_dir.load_exported``), refusals naming ``--tflite_model``.

    Args:
        version_dir: The SavedModel version directory (published or not yet).
        prepared_dir: The prepared data directory, if it moved (the tokenizer's settings).

    Returns:
        The loaded export.

    Raises:
        ConfigError: The model is not a single-text classifier.
        DataError: Not an ``llm_export`` directory.
    """
    try:
        return export_dir.load_exported(version_dir, prepared_dir)
    except ConfigError as e:
        raise ConfigError(f"--tflite_model: {e}") from None


def place_tflite_model(exported: export_dir.ExportedModel, variant: str) -> dict:
    """Writes ``<exported.path>/model.tflite`` (call it on the unpublished directory, before it becomes visible).

    Args:
        exported: From :func:`load_for_tflite` on the version directory being written.
        variant: ``float32``, ``float16`` or ``dynamic_int8``.

    Returns:
        The facts of :func:`serving_model` plus ``file``.

    Raises:
        ConfigError: Unknown variant.
        LlmTfError: The conversion failed.
    """
    content, facts = serving_model(exported, variant)
    io_utils.atomic_write_bytes(f"{exported.path.rstrip('/')}/{export_dir.MODEL_TFLITE_FILE}", content)
    return dict(facts, file=export_dir.MODEL_TFLITE_FILE)

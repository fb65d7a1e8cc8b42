"""``llm_quantize``'s library call: a SavedModel version to TFLite variants, evaluated and gated.

Writes into ``output_dir``: ``<form>_<variant>.tflite`` per variant (labels, vocabulary and
model facts embedded, see :mod:`llm_tf.export.tflite_metadata`) and the report
(:mod:`llm_tf.export.tflite_report`). The directory appears only when everything was written;
both directories may be on a bucket (``gs://...``).
Progress goes to stderr (:class:`llm_tf.progress.StepProgress`): the SavedModel's reference
predictions, then each variant's conversion and its evaluation with timing.
"""

import dataclasses
import os
from collections.abc import Callable

from llm_tf import io_utils
from llm_tf.errors import ConfigError, DataError
from llm_tf.export import (
    export_dir,
    representative,
    tflite_convert,
    tflite_eval,
    tflite_metadata,
    tflite_report,
    tflite_runtime,
)
from llm_tf.io_utils import atomic_directory, atomic_write_bytes
from llm_tf.progress import StepProgress


@dataclasses.dataclass
class QuantizeConfig:
    """What to convert and how to judge it.

    Attributes:
        saved_model_dir: ``llm_export`` version directory.
        output_dir: Where the variants and report go.
        forms: Input forms (``text``, ``tokens``).
        variants: Precisions (``float32``, ``float16``, ``dynamic_int8``, ``full_int8``).
        representative_count: Calibration texts for ``full_int8``.
        representative_data: A TSV/text file of calibration texts (default: the prepared
            train split).
        int8_float_ops: TFLite op types ``full_int8`` keeps in float32 (empty: all int8).
        batch_size: 0: the variants take any batch size; 1: their inputs are fixed at one
            example (faster at batch 1, see :func:`llm_tf.export.tflite_convert.convert_variant`).
        dynamic_length: The variants run at any length up to ``seq_length`` (a short text costs
            its own tokens; ``tokens`` form: the app resizes the inputs per call); False: at
            ``seq_length`` only.
        eval_data: A labelled TSV (default: the prepared eval split).
        eval_count: Use at most this many eval texts (0: all).
        latency_runs: Timed invokes per variant.
        num_threads: Interpreter threads for evaluation.
        max_accuracy_drop: Allowed accuracy drop in points (negative: the variant must beat the
            SavedModel by that much; a way to check that the gate bites).
        gate_variants: What the gate counts (names, precisions or forms; empty: all).
        prepared_dir: Prepared data directory, if it moved since export.
        overwrite: Replace an existing ``output_dir``.
        command: The command line, recorded in the report.
        progress: A progress bar on stderr (None: when stderr is a terminal); without one, a
            plain line per step.
        log: Where the plain lines go (default: stderr); the pipeline's Quantizer logs them
            under its own line.
    """

    saved_model_dir: str
    output_dir: str
    forms: list[str] = dataclasses.field(default_factory=lambda: list(tflite_convert.FORMS))
    variants: list[str] = dataclasses.field(default_factory=lambda: list(tflite_convert.VARIANTS))
    representative_count: int = 200
    representative_data: str | None = None
    int8_float_ops: list[str] = dataclasses.field(default_factory=list)
    batch_size: int = 0
    dynamic_length: bool = False
    eval_data: str | None = None
    eval_count: int = 0
    latency_runs: int = 200
    num_threads: int | None = 1
    max_accuracy_drop: float = 1.0
    gate_variants: list[str] = dataclasses.field(default_factory=list)
    prepared_dir: str | None = None
    overwrite: bool = False
    command: str = ""
    progress: bool | None = None
    log: Callable[[str], None] | None = None


#: What the report's latency measures, by ``dynamic_length``.
_LATENCY_WHAT = {
    False: "interpreter invoke only (inputs set beforehand), after 5 warm-up runs",
    True: "interpreter invoke, after resizing the tokens form's inputs to each text's length (resize and allocation "
          "timed too; the text form cuts inside the graph), after 5 warm-up runs",
}


@dataclasses.dataclass
class QuantizeResult:
    """What :func:`quantize` wrote and decided.

    Attributes:
        output_dir: The output directory.
        files: Variant name -> ``.tflite`` path.
        report: The report dict.
        failed: Variants that failed the gate.
    """

    output_dir: str
    files: dict[str, str]
    report: dict
    failed: list[str]


def _validate(config: QuantizeConfig) -> None:
    for form in config.forms:
        if form not in tflite_convert.FORMS:
            raise ConfigError(f"--forms: unknown form '{form}' (expected: {', '.join(tflite_convert.FORMS)})")
    for variant in config.variants:
        if variant not in tflite_convert.VARIANTS:
            raise ConfigError(f"--variants: unknown variant '{variant}' "
                              f"(expected: {', '.join(tflite_convert.VARIANTS)})")
    if not config.forms or not config.variants:
        raise ConfigError("nothing to convert: --forms and --variants must name at least one each")
    if config.eval_count < 0 or config.latency_runs < 1 or config.representative_count < 1:
        raise ConfigError("--eval_count must be >= 0, --latency_runs and --representative_count >= 1")
    if config.batch_size not in tflite_convert.BATCH_SIZES:
        raise ConfigError(f"--batch_size must be 0 (any batch size) or 1 (fixed at one example), "
                          f"got {config.batch_size}")


def quantize(config: QuantizeConfig) -> QuantizeResult:
    """Converts, embeds metadata, evaluates every variant and applies the accuracy gate.

    Args:
        config: A :class:`QuantizeConfig`.

    Returns:
        A :class:`QuantizeResult`; ``failed`` non-empty means the gate failed (the files
        and report are written either way).

    Raises:
        ConfigError: Bad options, or a SavedModel without the expected signatures.
        DataError: Missing/empty representative or eval data, unknown eval labels.
        UnsupportedOpsError: The converter rejects ops (named).
    """
    _validate(config)
    exported = export_dir.load_exported(config.saved_model_dir, config.prepared_dir)
    eval_set = (representative.read_text_file(config.eval_data, config.eval_count or None) if config.eval_data
                else representative.read_prepared_split(exported.prepared_dir or "", "eval", config.eval_count or None))
    if not eval_set.texts:
        raise DataError(f"eval data is empty: {eval_set.source}")
    if eval_set.labels is None:
        raise DataError(f"{eval_set.source}: eval data has no labels (a TSV with a label column is needed)")
    truth = tflite_eval.label_ids_of(eval_set.labels, exported.labels, eval_set.source)
    calibration = None
    if "full_int8" in config.variants:
        calibration = representative.representative_texts(config.representative_count, config.representative_data,
                                                          exported.prepared_dir)
    names = [f"{form}_{variant}" for form in config.forms for variant in config.variants]
    gated = tflite_eval.gate_selection(names, config.gate_variants)
    with StepProgress(1 + 2 * len(names), config.progress, config.log) as progress:
        progress.start(f"SavedModel: predicting {len(eval_set.texts)} eval texts")
        reference = tflite_eval.reference_predictions(exported, eval_set.texts, truth)
        progress.done(f"SavedModel: accuracy {reference.accuracy:.2%} on {len(eval_set.texts)} eval texts")
        return _convert_all(config, exported, eval_set, truth, calibration, reference, gated, progress)


def _convert_all(config: QuantizeConfig, exported, eval_set, truth, calibration, reference, gated: set[str],
                 progress: StepProgress) -> QuantizeResult:
    """Converts and evaluates every variant into the output directory; writes the report."""
    texts = eval_set.texts
    vocab = io_utils.read_bytes(exported.vocab_path)
    files: dict[str, str] = {}
    results = []
    final = io_utils.abspath(config.output_dir)
    with atomic_directory(final, overwrite=config.overwrite) as tmp:
        for form in config.forms:
            for variant in config.variants:
                name = f"{form}_{variant}"
                progress.start(f"{name}: converting" + (f", calibrated on {len(calibration.texts)} texts"
                                                        if variant == "full_int8" and calibration else ""))
                conversion = tflite_convert.convert_variant(exported, form, variant,
                                                            calibration.texts if calibration else None,
                                                            config.int8_float_ops or None, config.batch_size,
                                                            config.dynamic_length)
                content = tflite_metadata.with_model_files(conversion.content, exported.labels, vocab,
                                                           tflite_convert.export_info_json(exported, conversion))
                path = os.path.join(tmp, conversion.name + ".tflite")
                atomic_write_bytes(path, content)
                progress.done(f"{name}: converted, {len(content) / 1e6:.2f} MB")
                progress.start(f"{name}: evaluating {len(texts)} texts, timing {config.latency_runs} invokes")
                result = tflite_eval.evaluate_variant(path, form, variant, texts, truth, reference,
                                                      config.latency_runs, config.num_threads, conversion.notes)
                progress.done(f"{name}: accuracy {result.accuracy:.2%} (agreement {result.agreement:.2%}), "
                              f"p50 {result.latency_ms_p50:.3f} ms")
                results.append(result)
                files[conversion.name] = os.path.join(final, conversion.name + ".tflite")
        tflite_eval.size_ratios(results)
        failed = tflite_eval.apply_gate(results, reference.accuracy, config.max_accuracy_drop, gated)
        report = {
            "saved_model": io_utils.abspath(config.saved_model_dir),
            "export": {k: exported.info.get(k) for k in ("model_dir", "checkpoint", "step", "seq_length", "labels")},
            "eval_data": {"source": eval_set.source, "count": len(eval_set.texts)},
            "representative_data": ({"source": calibration.source, "count": len(calibration.texts)} if calibration
                                    else {"source": None, "count": 0}),
            "int8_float_ops": list(config.int8_float_ops),
            "batch_size": config.batch_size or None,
            "dynamic_length": config.dynamic_length,
            "reference": {"accuracy": reference.accuracy, "signature": "serving_default"},
            "latency": {"runs": config.latency_runs, "batch_size": 1, "num_threads": config.num_threads,
                        "what": _LATENCY_WHAT[config.dynamic_length],
                        "interpreter": dict(tflite_runtime.INTERPRETER_SETTINGS,
                                            runtime=tflite_runtime.runtime_version())},
            "gate": {"max_accuracy_drop": config.max_accuracy_drop, "variants": sorted(gated),
                     "passed": not failed, "failed": failed},
            "variants": [dataclasses.asdict(r) for r in results],
            "command": config.command,
            "machine": tflite_eval.machine(),
        }
        tflite_report.write_report(report, tmp)
    return QuantizeResult(final, files, report, failed)

"""Quantizer: ``llm_quantize``'s library call: TFLite variants, accuracy report and gate."""

import os

from llm_tf.pipeline import artifacts
from llm_tf.pipeline.component import Component, ExecutionContext, ExecutionResult, OutputRef
from llm_tf.pipeline.components.exporter import version_dir


class Quantizer(Component):
    """Converts the SavedModel to TFLite variants and evaluates them against it.

    The gate's outcome is recorded (``gate_passed``, ``failed``); it does not block pushing
    the SavedModel (the ``.tflite`` files are handed to app teams separately).

    Args:
        saved_model: Exporter's ``saved_model``.
        forms: Input forms (``text``, ``tokens``).
        variants: Precisions (``float32``, ``float16``, ``dynamic_int8``, ``full_int8``).
        max_accuracy_drop: Gate: allowed accuracy drop in points.
        eval_count: Eval texts (0: all).
        latency_runs: Timed invokes per variant.
        representative_count: Calibration texts for ``full_int8``.
        gate_variants: What the gate counts (names such as ``tokens_full_int8``, precisions or
            forms; empty: every variant). The others are reported and never fail.
        int8_float_ops: TFLite op types ``full_int8`` keeps in float32 (e.g. ``attention``).
        name: Component name.
    """

    INPUTS = {"saved_model": artifacts.SAVED_MODEL}
    OUTPUTS = {"tflite_models": artifacts.TFLITE_MODELS}

    def __init__(self, saved_model: OutputRef, forms: tuple[str, ...] = ("text",),
                 variants: tuple[str, ...] = ("float32", "dynamic_int8"), max_accuracy_drop: float = 1.0,
                 eval_count: int = 0, latency_runs: int = 20, representative_count: int = 100,
                 gate_variants: tuple[str, ...] = (), int8_float_ops: tuple[str, ...] = (), name: str | None = None):
        super().__init__(name, {"saved_model": saved_model}, {
            "forms": list(forms), "variants": list(variants), "max_accuracy_drop": max_accuracy_drop,
            "eval_count": eval_count, "latency_runs": latency_runs, "representative_count": representative_count,
            "gate_variants": list(gate_variants), "int8_float_ops": list(int8_float_ops)})

    def execute(self, context: ExecutionContext) -> ExecutionResult:
        """Runs ``quantize`` into the ``tflite_models`` directory; its progress lines go to the run's output."""
        import tensorflow as tf

        from llm_tf.export.tflite_quantize import QuantizeConfig, quantize
        from llm_tf.export.tflite_report import REPORT_PNG

        props = context.properties
        out = context.output_dirs["tflite_models"]
        result = quantize(QuantizeConfig(
            saved_model_dir=version_dir(context.inputs["saved_model"]), output_dir=out, forms=props["forms"],
            variants=props["variants"], max_accuracy_drop=props["max_accuracy_drop"], eval_count=props["eval_count"],
            latency_runs=props["latency_runs"], representative_count=props["representative_count"],
            gate_variants=props.get("gate_variants", []), int8_float_ops=props.get("int8_float_ops", []),
            overwrite=True, command="llm_pipeline Quantizer", progress=False, log=context.log))
        files = {name: os.path.basename(path) for name, path in result.files.items()}
        passed = not result.failed
        context.log(f"gate {'passed' if passed else 'FAILED for ' + ', '.join(result.failed)}; "
                    f"files: {', '.join(files.values())}")
        sizes = {name: tf.io.gfile.stat(os.path.join(out, f)).length for name, f in files.items()}
        return ExecutionResult({"tflite_models": {"files": files, "sizes": sizes, "gate_passed": passed,
                                                  "failed": result.failed, artifacts.PLOTS: [REPORT_PNG]}},
                               {"variants": len(files), "gate_passed": passed})

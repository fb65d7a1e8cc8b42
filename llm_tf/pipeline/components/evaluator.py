"""Evaluator: sliced metrics of the exported candidate on the eval split, and the blessing."""

import os

from llm_tf.export.exporter import existing_versions
from llm_tf.io_utils import atomic_write_json
from llm_tf.pipeline import artifacts, blessing, model_eval
from llm_tf.pipeline.component import Component, ExecutionContext, ExecutionResult, OutputRef
from llm_tf.pipeline.components.exporter import version_dir

BLESSED_FILE, NOT_BLESSED_FILE = "BLESSED", "NOT_BLESSED"


class Evaluator(Component):
    """Scores the candidate SavedModel and the currently served one on the same eval split.

    Blessing: the candidate's metric (accuracy, or entity F1 for NER) is at least
    ``threshold`` AND at most ``max_drop`` below the served model's (the latest version under
    ``baseline_model_base_path``; no baseline when nothing is served there).

    Args:
        saved_model: Exporter's ``saved_model``.
        examples: ExampleGen's ``examples`` (the eval split).
        threshold: Absolute minimum of the metric.
        max_drop: Allowed drop against the served model.
        baseline_model_base_path: The serving model base path (the served model is its latest version).
        length_buckets: Word-count bucket bounds for the length slices.
        eval_count: At most this many eval examples (0: all).
        name: Component name.
    """

    INPUTS = {"saved_model": artifacts.SAVED_MODEL, "examples": artifacts.EXAMPLES}
    OUTPUTS = {"evaluation": artifacts.MODEL_EVALUATION, "blessing": artifacts.MODEL_BLESSING}

    def __init__(self, saved_model: OutputRef, examples: OutputRef, threshold: float = 0.0, max_drop: float = 0.01,
                 baseline_model_base_path: str = "", length_buckets: tuple[int, ...] = model_eval.DEFAULT_BUCKETS,
                 eval_count: int = 0, name: str | None = None):
        super().__init__(name, {"saved_model": saved_model, "examples": examples}, {
            "threshold": threshold, "max_drop": max_drop,
            "baseline_model_base_path": os.path.abspath(baseline_model_base_path) if baseline_model_base_path else "",
            "length_buckets": list(length_buckets), "eval_count": eval_count})

    def execute(self, context: ExecutionContext) -> ExecutionResult:
        """Writes ``evaluation.json`` and ``BLESSED`` or ``NOT_BLESSED``."""
        props = context.properties
        task = context.inputs["examples"].properties.get("task", "classification")
        texts, gold = model_eval.read_eval_split(context.inputs["examples"].uri, task, props["eval_count"] or None)
        buckets = tuple(props["length_buckets"])
        candidate = model_eval.evaluate_saved_model(version_dir(context.inputs["saved_model"]), texts, gold, task, buckets)
        context.log(f"candidate {candidate['metric']} {candidate['value']:.4f} on {candidate['count']} examples")
        baseline, baseline_dir = None, ""
        base = props["baseline_model_base_path"]
        versions = existing_versions(base) if base else []
        if versions:
            baseline_dir = os.path.join(base, str(versions[-1]))
            baseline = model_eval.evaluate_saved_model(baseline_dir, texts, gold, task, buckets)
            context.log(f"served version {versions[-1]}: {baseline['metric']} {baseline['value']:.4f}")
        decision = blessing.decide(candidate["metric"], candidate["value"], baseline["value"] if baseline else None,
                                   props["threshold"], props["max_drop"])
        atomic_write_json(os.path.join(context.output_dirs["evaluation"], "evaluation.json"),
                          {"candidate": candidate, "baseline": baseline, "baseline_dir": baseline_dir})
        marker = BLESSED_FILE if decision.blessed else NOT_BLESSED_FILE
        atomic_write_json(os.path.join(context.output_dirs["blessing"], marker), vars(decision))
        context.log(("BLESSED: " if decision.blessed else "NOT BLESSED: ") + decision.reason)
        eval_props = {"metric": candidate["metric"], "value": candidate["value"], "count": candidate["count"],
                      "by_label": {k: v["value"] for k, v in candidate["by_label"].items()},
                      "by_length": {k: v["value"] for k, v in candidate["by_length"].items()},
                      "baseline_value": baseline["value"] if baseline else None, "baseline_dir": baseline_dir}
        return ExecutionResult({"evaluation": eval_props, "blessing": {"blessed": decision.blessed, "reason": decision.reason}},
                               {candidate["metric"]: candidate["value"], "blessed": decision.blessed})

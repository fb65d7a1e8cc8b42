"""Evaluator: sliced metrics of the exported candidate on the eval split, and the blessing."""

import os

from llm_tf import io_utils
from llm_tf.errors import ConfigError
from llm_tf.export import evaluation_plots, saved_model_eval
from llm_tf.export.export_dir import existing_versions
from llm_tf.io_utils import atomic_write_json
from llm_tf.pipeline import artifacts, blessing
from llm_tf.pipeline.component import Component, ExecutionContext, ExecutionResult, OutputRef
from llm_tf.pipeline.components.exporter import version_dir
from llm_tf.pipeline.errors import PipelineError

BLESSED_FILE, NOT_BLESSED_FILE = "BLESSED", "NOT_BLESSED"
#: In the ``evaluation`` artifact: the candidate's (and served model's) sliced metrics and confusion
#: counts, and the candidate's charts.
EVALUATION_FILE = "evaluation.json"
CONFUSION_MATRIX_PNG = "confusion_matrix.png"
SLICED_METRICS_PNG = "sliced_metrics.png"


def _short(path: str, parts: int = 4) -> str:
    path = path.rstrip("/") if io_utils.is_remote(path) else os.path.normpath(path)
    return "…/" + "/".join(path.split("/")[-parts:])


class Evaluator(Component):
    """Scores the candidate SavedModel and the currently served one on the same eval split.

    Blessing (:func:`llm_tf.pipeline.blessing.decide`): the candidate's metric (accuracy, or
    entity F1 for NER) is at least ``threshold`` AND at most ``max_drop`` below the served
    model's (the latest version under ``baseline_model_base_path``; no baseline when nothing
    is served there) AND, with a ``reference_evaluation`` (another Evaluator's, e.g. the
    teacher's of a distilled student), at least ``min_share_of_reference`` times the
    reference's value.

    Args:
        saved_model: Exporter's ``saved_model``.
        examples: ExampleGen's ``examples`` (the eval split).
        threshold: Absolute minimum of the metric.
        max_drop: Allowed drop against the served model.
        baseline_model_base_path: The serving model base path (the served model is its latest version).
        length_buckets: Word-count bucket bounds for the length slices.
        eval_count: At most this many eval examples (0: all).
        reference_evaluation: Another Evaluator's ``evaluation`` of a model on the same eval
            data (same metric, same number of examples; checked when the Evaluator runs).
        min_share_of_reference: With a reference: the share of its value the candidate must reach.
        name: Component name.

    Raises:
        PipelineError: A negative ``min_share_of_reference``, or ``length_buckets`` that are not
            increasing positive word counts.
    """

    INPUTS = {"saved_model": artifacts.SAVED_MODEL, "examples": artifacts.EXAMPLES,
              "reference_evaluation": artifacts.MODEL_EVALUATION}
    OPTIONAL_INPUTS = frozenset({"reference_evaluation"})
    OUTPUTS = {"evaluation": artifacts.MODEL_EVALUATION, "blessing": artifacts.MODEL_BLESSING}

    def __init__(self, saved_model: OutputRef, examples: OutputRef, threshold: float = 0.0, max_drop: float = 0.01,
                 baseline_model_base_path: str = "", length_buckets: tuple[int, ...] = saved_model_eval.DEFAULT_BUCKETS,
                 eval_count: int = 0, reference_evaluation: OutputRef | None = None,
                 min_share_of_reference: float = blessing.DEFAULT_MIN_SHARE, name: str | None = None):
        label = name or "Evaluator"
        if min_share_of_reference < 0:
            raise PipelineError(f"component {label}: min_share_of_reference must be >= 0, got {min_share_of_reference}")
        try:
            saved_model_eval.check_buckets(length_buckets, "length_buckets")
        except ConfigError as e:
            raise PipelineError(f"component {label}: {e}") from None
        baseline = io_utils.abspath(baseline_model_base_path) if baseline_model_base_path else ""
        properties = {"threshold": threshold, "max_drop": max_drop, "baseline_model_base_path": baseline,
                      "length_buckets": list(length_buckets), "eval_count": eval_count}
        if reference_evaluation is not None:  # without a reference the cache key stays as it was
            properties["min_share_of_reference"] = min_share_of_reference
        super().__init__(name, {"saved_model": saved_model, "examples": examples,
                                "reference_evaluation": reference_evaluation}, properties)

    def _reference(self, context: ExecutionContext, candidate: dict) -> float | None:
        """The reference's value of the candidate's metric (None without a reference).

        Raises:
            PipelineError: The reference measured another metric or on another number of examples.
        """
        reference = context.inputs.get("reference_evaluation")
        if reference is None:
            return None
        props = reference.properties
        if props.get("metric") != candidate["metric"] or props.get("value") is None:
            raise PipelineError(f"component {self.name}: reference_evaluation {reference.uri} measured "
                                f"'{props.get('metric')}', the candidate '{candidate['metric']}'")
        if props.get("count") != candidate["count"]:
            raise PipelineError(f"component {self.name}: reference_evaluation {reference.uri} scored "
                                f"{props.get('count')} examples, the candidate {candidate['count']}: not the same "
                                "eval data")
        context.log(f"reference {props['metric']} {props['value']:.4f} ({reference.uri})")
        return float(props["value"])

    def execute(self, context: ExecutionContext) -> ExecutionResult:
        """Writes ``evaluation.json``, the confusion matrix and sliced metrics charts, and ``BLESSED``
        or ``NOT_BLESSED``."""
        props = context.properties
        examples = context.inputs["examples"]
        task = examples.properties.get("task", "classification")
        if task not in saved_model_eval.OUTPUTS:
            raise PipelineError(f"component {self.name}: examples {examples.uri} are for task '{task}'; the "
                                f"Evaluator scores {' and '.join(saved_model_eval.OUTPUTS)}")
        texts, gold = saved_model_eval.read_eval_split(examples.uri, task, props["eval_count"] or None)
        buckets = tuple(props["length_buckets"])
        candidate_dir = version_dir(context.inputs["saved_model"])
        candidate = saved_model_eval.evaluate_saved_model(candidate_dir, texts, gold, task, buckets)
        context.log(f"candidate {candidate['metric']} {candidate['value']:.4f} on {candidate['count']} examples")
        reference = self._reference(context, candidate)
        baseline, baseline_dir = None, ""
        base = props["baseline_model_base_path"]
        versions = existing_versions(base) if base else []
        if versions:
            baseline_dir = os.path.join(base, str(versions[-1]))
            baseline = saved_model_eval.evaluate_saved_model(baseline_dir, texts, gold, task, buckets)
            context.log(f"served version {versions[-1]}: {baseline['metric']} {baseline['value']:.4f}")
        min_share = props.get("min_share_of_reference", blessing.DEFAULT_MIN_SHARE)
        decision = blessing.decide(candidate["metric"], candidate["value"], baseline["value"] if baseline else None,
                                   props["threshold"], props["max_drop"], reference, min_share)
        reference_uri = context.inputs["reference_evaluation"].uri if reference is not None else ""
        out = context.output_dirs["evaluation"]
        atomic_write_json(os.path.join(out, EVALUATION_FILE),
                          {"candidate": candidate, "baseline": baseline, "baseline_dir": baseline_dir,
                           "reference_value": reference, "reference_evaluation": reference_uri})
        title = f"candidate {_short(candidate_dir)}"
        evaluation_plots.render_confusion_matrix(candidate["confusion_matrix"], os.path.join(out, CONFUSION_MATRIX_PNG),
                                                 title)
        evaluation_plots.render_sliced_metrics(candidate, os.path.join(out, SLICED_METRICS_PNG), baseline, title)
        marker = BLESSED_FILE if decision.blessed else NOT_BLESSED_FILE
        atomic_write_json(os.path.join(context.output_dirs["blessing"], marker), vars(decision))
        context.log(("BLESSED: " if decision.blessed else "NOT BLESSED: ") + decision.reason)
        eval_props = {"metric": candidate["metric"], "value": candidate["value"], "count": candidate["count"],
                      "by_label": {k: v["value"] for k, v in candidate["by_label"].items()},
                      "by_length": {k: v["value"] for k, v in candidate["by_length"].items()},
                      "baseline_value": baseline["value"] if baseline else None, "baseline_dir": baseline_dir,
                      artifacts.PLOTS: [CONFUSION_MATRIX_PNG, SLICED_METRICS_PNG]}
        metrics = {candidate["metric"]: candidate["value"], "blessed": decision.blessed}
        if reference is not None:
            eval_props.update({"reference_value": reference, "reference_evaluation": reference_uri,
                               "share_of_reference": candidate["value"] / reference if reference else None})
            metrics["share_of_reference"] = eval_props["share_of_reference"]
        verdict = {"blessed": decision.blessed, "reason": decision.reason}
        return ExecutionResult({"evaluation": eval_props, "blessing": verdict}, metrics)

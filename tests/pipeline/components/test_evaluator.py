"""Evaluator's executor alone, with SavedModels whose predictions are known (tests/pipeline/saved_models.py)
on the prepared samples: the sliced metrics, the records it writes, the blessing against a threshold and
against the latest served version, NER's entity F1; what it refuses.

On the SST-2 sample's 16 eval texts, predicting "1" for texts of more than 3 words is right for 9 (every
"1" and the 3-word "0"), more than 8 words for 7.
"""

import json
import os

import pytest

from llm_tf.errors import DataError
from llm_tf.pipeline import artifacts
from llm_tf.pipeline.components import Evaluator
from llm_tf.pipeline.components.evaluator import (
    BLESSED_FILE,
    CONFUSION_MATRIX_PNG,
    EVALUATION_FILE,
    NOT_BLESSED_FILE,
    SLICED_METRICS_PNG,
)
from llm_tf.pipeline.errors import PipelineError
from tests.pipeline.components.harness import artifact, execute, ref
from tests.pipeline.saved_models import save_capital_tagger, save_length_classifier
from tests.plot_checks import assert_png

SAVED_MODEL = ref(artifacts.SAVED_MODEL, "Exporter", "saved_model")
EXAMPLES = ref(artifacts.EXAMPLES, "ExampleGen", "examples")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, str]:
    """Model base paths holding version 1: ``good`` (more than 3 words -> "1", accuracy 0.5625) and
    ``poor`` (more than 8 words, 0.4375)."""
    root = tmp_path_factory.mktemp("candidates")
    return {name: os.path.dirname(save_length_classifier(str(root / name / "1"), max_words))
            for name, max_words in (("good", 3), ("poor", 8))}


def _inputs(model_base: str, examples: str, task: str = "classification") -> dict:
    return {"saved_model": artifact(artifacts.SAVED_MODEL, model_base, version=1),
            "examples": artifact(artifacts.EXAMPLES, examples, task=task)}


def _record(run, output: str, name: str) -> dict:
    with open(os.path.join(run.outputs[output], name), encoding="utf-8") as f:
        return json.load(f)


def test_sliced_accuracy_is_recorded_and_a_candidate_above_the_threshold_is_blessed(tmp_path, models,
                                                                                   prepared_sample):
    run = execute(Evaluator(SAVED_MODEL, EXAMPLES, threshold=0.5), tmp_path, _inputs(models["good"], prepared_sample))
    evaluation = run.props("evaluation")
    assert evaluation == {"metric": "accuracy", "value": 0.5625, "count": 16,
                          "by_label": {"0": 0.125, "1": 1.0},
                          "by_length": {"<=8": pytest.approx(8 / 13), "9-16": pytest.approx(1 / 3)},
                          "baseline_value": None, "baseline_dir": "",
                          "plots": [CONFUSION_MATRIX_PNG, SLICED_METRICS_PNG]}
    reason = "accuracy 0.5625 >= threshold 0.5000 (no served model)"
    assert run.props("blessing") == {"blessed": True, "reason": reason}
    assert os.listdir(run.outputs["blessing"]) == [BLESSED_FILE]
    assert _record(run, "blessing", BLESSED_FILE) == {"blessed": True, "reason": reason, "metric": "accuracy",
                                                      "candidate": 0.5625, "baseline": None, "reference": None,
                                                      "min_share": None}
    record = _record(run, "evaluation", EVALUATION_FILE)
    assert record["candidate"]["by_label"]["0"] == {"count": 8, "value": 0.125}
    # Gold "0": 1 of 8 predicted "0" (the 3-word one), 7 predicted "1"; gold "1": all 8 predicted "1".
    assert record["candidate"]["confusion_matrix"] == {"labels": ["0", "1"], "counts": [[1, 7], [0, 8]],
                                                       "unit": "example"}
    assert sorted(os.listdir(run.outputs["evaluation"])) == [CONFUSION_MATRIX_PNG, EVALUATION_FILE, SLICED_METRICS_PNG]
    assert_png(os.path.join(run.outputs["evaluation"], CONFUSION_MATRIX_PNG), 300, 300)
    assert_png(os.path.join(run.outputs["evaluation"], SLICED_METRICS_PNG), 800, 400)
    assert record["baseline"] is None and record["reference_value"] is None
    assert run.result.metrics == {"accuracy": 0.5625, "blessed": True}
    assert run.messages == ["candidate accuracy 0.5625 on 16 examples", f"BLESSED: {reason}"]


def test_below_the_threshold_is_not_blessed(tmp_path, models, prepared_sample):
    run = execute(Evaluator(SAVED_MODEL, EXAMPLES, threshold=0.5), tmp_path, _inputs(models["poor"], prepared_sample))
    assert run.props("blessing") == {"blessed": False, "reason": "accuracy 0.4375 is below the threshold 0.5000"}
    assert os.listdir(run.outputs["blessing"]) == [NOT_BLESSED_FILE]
    assert run.result.metrics == {"accuracy": 0.4375, "blessed": False}


def test_the_latest_served_version_is_the_baseline(tmp_path, models, prepared_sample):
    serving = tmp_path / "serving"
    save_length_classifier(str(serving / "1"), max_words=8)      # 0.4375: the candidate would pass against it
    save_length_classifier(str(serving / "2"), max_words=3)      # 0.5625: the one served
    evaluator = Evaluator(SAVED_MODEL, EXAMPLES, max_drop=0.1, baseline_model_base_path=str(serving))
    run = execute(evaluator, tmp_path / "run", _inputs(models["poor"], prepared_sample))
    assert run.props("blessing") == {"blessed": False, "reason": "accuracy 0.4375 is worse than the served model's "
                                                                 "0.5625 by more than 0.1000"}
    evaluation = run.props("evaluation")
    assert evaluation["baseline_value"] == 0.5625 and evaluation["baseline_dir"] == str(serving / "2")
    assert _record(run, "evaluation", "evaluation.json")["baseline"]["by_label"] == {
        "0": {"count": 8, "value": 0.125}, "1": {"count": 8, "value": 1.0}}
    assert "served version 2: accuracy 0.5625" in run.messages


def test_eval_count_limits_the_examples(tmp_path, models, prepared_sample):
    run = execute(Evaluator(SAVED_MODEL, EXAMPLES, eval_count=4), tmp_path, _inputs(models["good"], prepared_sample))
    assert run.props("evaluation")["count"] == 4 and run.props("evaluation")["by_label"] == {"1": 1.0}


def test_token_classification_is_scored_by_entity_f1(tmp_path, prepared_conll_sample):
    # Every capitalised word tagged B-LOC: Oslo and Cairo right, 4 wrong, 2 of 4 entities missed.
    save_capital_tagger(str(tmp_path / "tagger" / "1"), tag="LOC")
    run = execute(Evaluator(SAVED_MODEL, EXAMPLES, threshold=0.5), tmp_path / "run",
                  _inputs(str(tmp_path / "tagger"), prepared_conll_sample, "token_classification"))
    evaluation = run.props("evaluation")
    assert evaluation["metric"] == "entity_f1" and evaluation["count"] == 2
    assert evaluation["value"] == pytest.approx(0.4)
    assert evaluation["by_label"] == {"LOC": pytest.approx(0.5), "ORG": 0.0, "PER": 0.0}
    # Per word, by type: the 2 LOC, 2 ORG and 2 PER words all tagged LOC; the 7 other words O.
    assert _record(run, "evaluation", EVALUATION_FILE)["candidate"]["confusion_matrix"] == {
        "labels": ["LOC", "ORG", "PER", "O"], "unit": "word",
        "counts": [[2, 0, 0, 0], [2, 0, 0, 0], [2, 0, 0, 0], [0, 0, 0, 7]]}
    assert_png(os.path.join(run.outputs["evaluation"], CONFUSION_MATRIX_PNG), 300, 300)
    assert run.props("blessing") == {"blessed": False, "reason": "entity_f1 0.4000 is below the threshold 0.5000"}


def test_examples_of_a_task_it_cannot_score_are_refused(tmp_path, models, prepared_sample):
    with pytest.raises(PipelineError, match=r"component Evaluator: examples .* are for task 'text'; the Evaluator "
                                            "scores classification and token_classification"):
        execute(Evaluator(SAVED_MODEL, EXAMPLES), tmp_path, _inputs(models["good"], prepared_sample, "text"))


def test_a_missing_saved_model_or_eval_split_is_named(tmp_path, models, prepared_sample):
    with pytest.raises(DataError, match=r"/gone/1: no SavedModel there"):
        execute(Evaluator(SAVED_MODEL, EXAMPLES), tmp_path, _inputs(str(tmp_path / "gone"), prepared_sample))
    with pytest.raises(DataError, match=r"/no_examples: prepared data directory not found"):
        execute(Evaluator(SAVED_MODEL, EXAMPLES), tmp_path, _inputs(models["good"], str(tmp_path / "no_examples")))
    assert os.listdir(tmp_path / "out" / "blessing") == [] and os.listdir(tmp_path / "out" / "evaluation") == []


@pytest.mark.parametrize("buckets", [(), (16, 8), (0, 8)])
def test_length_buckets_are_checked_when_the_pipeline_is_defined(buckets):
    with pytest.raises(PipelineError, match=r"^component Eval: length_buckets must be increasing positive word "
                                            r"counts, got \["):
        Evaluator(SAVED_MODEL, EXAMPLES, length_buckets=buckets, name="Eval")

"""Evaluator with a reference evaluation (a distilled student against its teacher): the share rule,
its reason and record, and the refusals of a reference measured on other data.

The SavedModel scoring is replaced by fixed values (``llm_tf.export.saved_model_eval`` has its own
tests in tests/export/test_saved_model_eval.py); the executor itself runs.
"""

import json
import os

import pytest

from llm_tf.export import saved_model_eval
from llm_tf.pipeline import artifacts
from llm_tf.pipeline.artifacts import Artifact
from llm_tf.pipeline.component import ExecutionContext, OutputRef
from llm_tf.pipeline.components import Evaluator
from llm_tf.pipeline.errors import PipelineError

SAVED_MODEL = OutputRef("StudentExporter", "saved_model", artifacts.SAVED_MODEL)
EXAMPLES = OutputRef("StudentExampleGen", "examples", artifacts.EXAMPLES)
REFERENCE = OutputRef("TeacherEvaluator", "evaluation", artifacts.MODEL_EVALUATION)


@pytest.fixture
def scores(monkeypatch):
    """The candidate's accuracy on 16 eval texts; set ``scores["value"]`` to change it."""
    values = {"value": 0.875}

    def evaluate(version_dir, texts, gold, task, buckets):
        return {"metric": "accuracy", "value": values["value"], "count": len(texts),
                "by_label": {"0": {"count": 8, "value": 1.0}, "1": {"count": 8, "value": 0.75}},
                "by_length": {"<=8": {"count": 16, "value": 0.875}},
                "confusion_matrix": {"labels": ["0", "1"], "counts": [[8, 0], [2, 6]], "unit": "example"}}

    monkeypatch.setattr(saved_model_eval, "read_eval_split", lambda uri, task, limit: (["a text"] * 16, [1] * 16))
    monkeypatch.setattr(saved_model_eval, "evaluate_saved_model", evaluate)
    return values


def _run(tmp_path, evaluator, reference_props=None):
    inputs = {"saved_model": Artifact(artifacts.SAVED_MODEL, str(tmp_path / "model"), {"version": 1}),
              "examples": Artifact(artifacts.EXAMPLES, str(tmp_path / "examples"), {"task": "classification"})}
    if reference_props is not None:
        inputs["reference_evaluation"] = Artifact(artifacts.MODEL_EVALUATION, str(tmp_path / "teacher_eval"),
                                                  reference_props)
    outputs = {name: str(tmp_path / name) for name in ("evaluation", "blessing")}
    for path in outputs.values():
        os.makedirs(path, exist_ok=True)
    messages = []
    result = evaluator.execute(ExecutionContext(inputs, outputs, dict(evaluator.properties), 1, str(tmp_path),
                                                log=messages.append))
    return result, outputs, messages


def test_a_student_below_the_share_of_its_teacher_is_not_blessed_and_says_both_numbers(tmp_path, scores):
    evaluator = Evaluator(SAVED_MODEL, EXAMPLES, reference_evaluation=REFERENCE, min_share_of_reference=0.97)
    result, outputs, messages = _run(tmp_path, evaluator, {"metric": "accuracy", "value": 0.9375, "count": 16})
    blessing = result.output_properties["blessing"]
    assert blessing["blessed"] is False
    assert "0.8750 is below 97.0% of the reference's 0.9375 (needs 0.9094; it is 93.3% of it)" in blessing["reason"]
    with open(os.path.join(outputs["blessing"], "NOT_BLESSED")) as f:
        record = json.load(f)
    assert record["reference"] == 0.9375 and record["min_share"] == 0.97 and record["candidate"] == 0.875
    evaluation = result.output_properties["evaluation"]
    assert evaluation["reference_value"] == 0.9375 and evaluation["share_of_reference"] == pytest.approx(0.875 / 0.9375)
    assert evaluation["reference_evaluation"] == str(tmp_path / "teacher_eval")
    assert result.metrics["share_of_reference"] == pytest.approx(0.9333, abs=1e-4)
    assert any(m.startswith("reference accuracy 0.9375") for m in messages)


def test_a_student_with_its_share_is_blessed(tmp_path, scores):
    scores["value"] = 0.9375
    evaluator = Evaluator(SAVED_MODEL, EXAMPLES, reference_evaluation=REFERENCE, min_share_of_reference=0.97)
    result, outputs, _ = _run(tmp_path, evaluator, {"metric": "accuracy", "value": 0.9375, "count": 16})
    assert result.output_properties["blessing"]["blessed"] is True
    assert "reference 0.9375, 100.0% of it, needs >= 97.0%" in result.output_properties["blessing"]["reason"]
    assert os.path.isfile(os.path.join(outputs["blessing"], "BLESSED"))


@pytest.mark.parametrize("props, message", [
    ({"metric": "entity_f1", "value": 0.9, "count": 16}, "measured 'entity_f1', the candidate 'accuracy'"),
    ({"metric": "accuracy", "value": 0.9, "count": 872},
     "scored 872 examples, the candidate 16: not the same eval data"),
])
def test_a_reference_on_another_metric_or_other_data_is_refused(tmp_path, scores, props, message):
    evaluator = Evaluator(SAVED_MODEL, EXAMPLES, reference_evaluation=REFERENCE)
    with pytest.raises(PipelineError, match=message):
        _run(tmp_path, evaluator, props)


def test_without_a_reference_the_properties_and_the_rule_are_as_before(tmp_path, scores):
    evaluator = Evaluator(SAVED_MODEL, EXAMPLES, threshold=0.5)
    assert "min_share_of_reference" not in evaluator.properties       # the cache key of existing pipelines stays
    result, _, _ = _run(tmp_path, evaluator)
    assert result.output_properties["blessing"] == {"blessed": True,
                                                    "reason": "accuracy 0.8750 >= threshold 0.5000 (no served model)"}
    assert "reference_value" not in result.output_properties["evaluation"]


def test_a_negative_share_is_refused():
    with pytest.raises(PipelineError, match="min_share_of_reference must be >= 0, got -0.1"):
        Evaluator(SAVED_MODEL, EXAMPLES, reference_evaluation=REFERENCE, min_share_of_reference=-0.1)

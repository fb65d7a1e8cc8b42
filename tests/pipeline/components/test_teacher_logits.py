"""TeacherLogits: the student's config resolved as the student Trainer resolves it, a cache key of
what the logits depend on, a teacher that was not blessed refused, and the logits written."""

import json
import os

import pytest

from llm_tf.errors import ConfigError, DataError
from llm_tf.pipeline import artifacts
from llm_tf.pipeline.artifacts import Artifact
from llm_tf.pipeline.component import ExecutionContext, OutputRef
from llm_tf.pipeline.components import TeacherLogits
from llm_tf.pipeline.errors import PipelineError
from llm_tf.training.teacher_logits import MANIFEST
from tests.training.conftest import FAST
from tests.training.distillation_fixtures import NARROW_STUDENT, teacher_dir  # noqa: F401

EXAMPLES = OutputRef("StudentExampleGen", "examples", artifacts.EXAMPLES)
TEACHER = OutputRef("TeacherTrainer", "model", artifacts.MODEL)
BLESSING = OutputRef("TeacherEvaluator", "blessing", artifacts.MODEL_BLESSING)
STUDENT = f"{FAST},{NARROW_STUDENT},trainer.train_steps=10"


def _logits(override: str = STUDENT, **kwargs) -> TeacherLogits:
    return TeacherLogits(EXAMPLES, TEACHER, params_override=override, **kwargs)


def _execute(component: TeacherLogits, tmp_path, examples: str, teacher: str, blessing: dict | None = None):
    inputs = {"examples": Artifact(artifacts.EXAMPLES, examples), "teacher_model": Artifact(artifacts.MODEL, teacher)}
    if blessing is not None:
        inputs["teacher_blessing"] = Artifact(artifacts.MODEL_BLESSING, str(tmp_path / "blessing"), blessing)
    out = tmp_path / "staging"
    out.mkdir()
    messages = []
    result = component.execute(ExecutionContext(inputs, {"teacher_logits": str(out)}, dict(component.properties), 1,
                                                str(tmp_path), log=messages.append))
    return result, str(out), messages


def test_logits_for_the_students_examples_from_the_wired_teacher(tmp_path, prepared_sample, teacher_dir):  # noqa: F811
    component = _logits(teacher_blessing=BLESSING, batch_size=7)
    result, out, messages = _execute(component, tmp_path, prepared_sample, teacher_dir,
                                     {"blessed": True, "reason": "accuracy 0.9 >= threshold 0.0"})
    props = result.output_properties["teacher_logits"]
    assert props["counts"] == {"train": 60, "eval": 16} and props["labels"] == ["0", "1"]
    assert props["teacher"] == os.path.abspath(teacher_dir)
    assert props["prepared_dir"] == os.path.abspath(prepared_sample)
    assert props["seq_length"] == 32 and props["teacher_tokenizer"] == "the student's"
    with open(os.path.join(out, MANIFEST), encoding="utf-8") as f:
        assert json.load(f)["teacher_checkpoint"] == props["teacher_checkpoint"]
    assert sorted(os.listdir(os.path.join(out, "examples")))
    assert result.metrics == {"train_examples": 60, "eval_examples": 16, "teacher_params": props["teacher_params"]}
    assert "60 train, 16 eval examples" in messages[0]


def test_a_teacher_that_was_not_blessed_does_not_teach(tmp_path):
    with pytest.raises(PipelineError, match="TeacherLogits: the teacher was not blessed, so it does not teach: "
                                            "accuracy 0.5000 is below the threshold 0.8500"):
        _execute(_logits(teacher_blessing=BLESSING), tmp_path, "/nowhere", "/nowhere",
                 {"blessed": False, "reason": "accuracy 0.5000 is below the threshold 0.8500"})


def test_a_missing_teacher_is_named(tmp_path, prepared_sample):
    with pytest.raises(ConfigError, match="task.distillation.teacher_dir: .*/gone: no such directory"):
        _execute(_logits(), tmp_path, prepared_sample, str(tmp_path / "gone"))


def test_missing_student_examples_are_named(tmp_path, teacher_dir):  # noqa: F811
    with pytest.raises(DataError, match=r"/no_examples: not a prepared data set \(no summary.json"):
        _execute(_logits(), tmp_path, str(tmp_path / "no_examples"), teacher_dir)
    assert os.listdir(tmp_path / "staging") == []


def test_the_cache_key_covers_what_the_logits_depend_on_and_not_the_students_training():
    key = _logits().key_properties()
    assert key == {"experiment": "distillation", "batch_size": 128, "train_split": "train", "eval_split": "eval",
                   "seq_length": 32, "teacher_checkpoint": "best"}
    student_only = (",trainer.train_steps=99,trainer.optimizer.learning_rate=0.5,task.distillation.alpha=0.3,"
                    "task.distillation.student_init_layers=[0]")
    assert _logits(STUDENT + student_only).key_properties() == key
    assert _logits(STUDENT + ",task.data.seq_length=64").key_properties()["seq_length"] == 64
    assert _logits(STUDENT + ",task.distillation.teacher_checkpoint=latest").key_properties() != key
    assert _logits(batch_size=7).key_properties() != key


def test_only_the_distillation_experiment():
    with pytest.raises(PipelineError, match="teacher logits are for the 'distillation' experiment, not "
                                            "'sentence_classification'"):
        TeacherLogits(EXAMPLES, TEACHER, experiment="sentence_classification")

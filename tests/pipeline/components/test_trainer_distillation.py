"""The Trainer's teacher inputs: wiring into ``task.distillation``, refusals, and a cache key that
the pipeline-internal teacher paths do not enter."""

import pytest

from llm_tf.pipeline import artifacts
from llm_tf.pipeline.artifacts import Artifact
from llm_tf.pipeline.component import ExecutionContext, OutputRef
from llm_tf.pipeline.components import Trainer
from llm_tf.pipeline.components.trainer import resolve_config
from llm_tf.pipeline.errors import PipelineError

EXAMPLES = OutputRef("StudentExampleGen", "examples", artifacts.EXAMPLES)
GRAPH = OutputRef("StudentTransform", "transform_graph", artifacts.TRANSFORM_GRAPH)
TEACHER = OutputRef("TeacherTrainer", "model", artifacts.MODEL)
LOGITS = OutputRef("TeacherLogits", "teacher_logits", artifacts.TEACHER_LOGITS)
#: Like configs/distillation/*.yaml: names a teacher and its logits elsewhere, which the pipeline replaces.
STUDENT_YAML = """task:
  distillation:
    teacher_dir: runs/distill/not_here
    teacher_logits_dir: runs/distill/not_here_logits
    alpha: 0.9
"""


@pytest.fixture
def student_config(tmp_path) -> str:
    path = tmp_path / "student.yaml"
    path.write_text(STUDENT_YAML, encoding="utf-8")
    return str(path)


def _student(config_file: str, **kwargs) -> Trainer:
    return Trainer(EXAMPLES, GRAPH, "distillation", config_files=[config_file],
                   params_override={"trainer": {"train_steps": 7}}, **kwargs)


def _inputs(**uris) -> dict:
    types = {"examples": artifacts.EXAMPLES, "teacher_model": artifacts.MODEL,
             "teacher_logits": artifacts.TEACHER_LOGITS}
    return {name: Artifact(types[name], uri) for name, uri in uris.items()}


def test_teacher_and_logits_are_wired_into_the_distillation_config(student_config):
    trainer = _student(student_config, teacher_model=TEACHER, teacher_logits=LOGITS)
    inputs = _inputs(examples="/root/ex/1", teacher_model="/root/teacher/6", teacher_logits="/root/logits/12")
    config = trainer.resolve_config(ExecutionContext(inputs, {}, dict(trainer.properties), 1, "/root"))
    settings = config.task.distillation
    assert settings.teacher_dir == "/root/teacher/6" and settings.teacher_logits_dir == "/root/logits/12"
    assert config.task.data.prepared_dir == "/root/ex/1" and config.trainer.train_steps == 7
    assert settings.alpha == 0.9 and config.runtime.strategy == "one_device"   # the rest is the declared config


def test_a_teacher_without_logits_runs_in_the_step_not_on_the_config_files_logits(student_config):
    trainer = _student(student_config, teacher_model=TEACHER)
    config = resolve_config(trainer.properties, _inputs(examples="/ex", teacher_model="/teacher"))
    assert config.task.distillation.teacher_dir == "/teacher" and config.task.distillation.teacher_logits_dir == ""


def test_the_cache_key_facts_do_not_depend_on_the_teacher_paths(student_config):
    plain = _student(student_config)
    wired = _student(student_config, teacher_model=TEACHER, teacher_logits=LOGITS)
    # The config file names teacher paths that do not exist; the key's facts are built all the same.
    assert wired.extra_fingerprint() == plain.extra_fingerprint()
    assert list(plain.extra_fingerprint()) == [student_config]


def test_teacher_inputs_are_refused_where_they_cannot_apply(student_config):
    with pytest.raises(PipelineError, match="teacher_model is for the 'distillation' experiment, not "
                                            "'sentence_classification'"):
        Trainer(EXAMPLES, GRAPH, "sentence_classification", teacher_model=TEACHER)
    with pytest.raises(PipelineError, match="teacher_logits needs teacher_model"):
        _student(student_config, teacher_logits=LOGITS)
    with pytest.raises(PipelineError, match="input 'teacher_logits' wants a TeacherLogits, got Model"):
        _student(student_config, teacher_model=TEACHER, teacher_logits=TEACHER)

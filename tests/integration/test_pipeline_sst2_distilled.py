"""pipelines/sst2_distilled.py end to end on the shipped sample with the tiny teacher (no checkpoint):
a blessed student smaller than its teacher is pushed and answers; a student-only change re-runs
only the student's side; a student below its share of the teacher is not pushed."""

import io
import os

import pytest

from llm_tf.pipeline.definitions import load_pipeline_module
from llm_tf.pipeline.runner import LocalRunner
from tests.conftest import REPO, predict_served

TEACHER_SIDE = ["ExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Transform", "TeacherTrainer",
                "TeacherExporter", "TeacherEvaluator", "TransferSetGen", "StudentExampleGen", "StudentTransform",
                "TeacherLogits"]
STUDENT_SIDE = ["StudentTrainer", "StudentExporter", "StudentEvaluator", "Quantizer", "InfraValidator", "Pusher"]
OPTIONS = {"teacher": "tiny", "latency_runs": "2"}


def _run(paths, options):
    pipeline = load_pipeline_module(str(REPO / "pipelines" / "sst2_distilled.py")).create_pipeline(
        **paths, options=options)
    return LocalRunner(out=io.StringIO()).run(pipeline)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("distilled")
    paths = {"pipeline_root": str(root / "pipeline"), "serving_model_base_path": str(root / "serving" / "sst2")}
    return paths, _run(paths, OPTIONS)


def test_the_whole_dag_pushes_a_blessed_student_smaller_than_its_teacher(first_run):
    paths, result = first_run
    assert [c.component for c in result.components] == TEACHER_SIDE + STUDENT_SIDE and result.succeeded
    blessing = result["StudentEvaluator"].outputs["blessing"].properties
    teacher_accuracy = result["TeacherEvaluator"].outputs["evaluation"].properties["value"]
    assert blessing["blessed"] is True and f"reference {teacher_accuracy:.4f}" in blessing["reason"]
    assert result["Pusher"].metrics == {"pushed": True, "version": 1}
    assert sorted(os.listdir(paths["serving_model_base_path"])) == ["1"]

    teacher = result["TeacherTrainer"].outputs["model"].properties["metrics"]
    student = result["StudentTrainer"].outputs["model"].properties
    assert student["experiment"] == "distillation" and student["step"] == 150
    assert student["teacher_dir"] == result["TeacherTrainer"].outputs["model"].uri
    assert student["teacher_logits_dir"] == result["TeacherLogits"].outputs["teacher_logits"].uri
    assert student["metrics"]["teacher_params"] == teacher["total_params"]
    assert student["metrics"]["student_params"] < teacher["total_params"]
    # The student's data: the transfer set tokenized with the teacher's (learned) vocabulary.
    graphs = [result[name].outputs["transform_graph"].properties for name in ("Transform", "StudentTransform")]
    assert graphs[0]["vocab_sha256"] == graphs[1]["vocab_sha256"]
    assert result["StudentExampleGen"].outputs["examples"].properties["counts"] == {"train": 60, "eval": 16}

    [answer] = predict_served(paths["serving_model_base_path"], ["a gripping , funny and touching film"])
    assert answer["labels"] in ("0", "1") and len(answer["scores"]) == 2


def test_a_student_option_reruns_the_student_and_a_student_below_its_share_is_not_pushed(first_run):
    paths, _ = first_run
    result = _run(paths, {**OPTIONS, "student_steps": "20"})
    assert result.succeeded
    assert {c.component: c.status for c in result.components} == {
        **{name: "cached" for name in TEACHER_SIDE}, **{name: "done" for name in STUDENT_SIDE}}
    assert result["StudentTrainer"].outputs["model"].properties["step"] == 20
    served = sorted(os.listdir(paths["serving_model_base_path"]))   # the 20-step student may or may not beat version 1

    result = _run(paths, {**OPTIONS, "student_steps": "20", "min_share": "1.5"})
    reran = [c.component for c in result.components if c.status == "done"]
    assert reran == ["StudentEvaluator", "Pusher"]
    assert "is below 150.0% of the reference's" in result["StudentEvaluator"].outputs["blessing"].properties["reason"]
    pushed = result["Pusher"].outputs["pushed_model"].properties
    assert pushed["pushed"] is False and pushed["reason"].startswith("blessing: accuracy ")
    assert sorted(os.listdir(paths["serving_model_base_path"])) == served

"""pipelines/sst2_distilled.py: the wiring and the options, inspected without running it."""

import os
import shutil

import pytest

from llm_tf.errors import ConfigError
from llm_tf.pipeline.components.trainer import declared_config
from llm_tf.pipeline.definitions import load_pipeline_module
from llm_tf.text.tokenizer import load_vocab
from tests.conftest import REPO, SST2_SAMPLE
from tests.preset_fixtures import save_hf_bert_directory

TEACHER_YAML = str(REPO / "configs" / "sentence_classification" / "sst2_minilm.yaml")
STUDENT_YAML = str(REPO / "configs" / "distillation" / "sst2_minilm_student.yaml")
ORDER = ["ExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Transform", "TeacherTrainer",
         "TeacherExporter", "TeacherEvaluator", "TransferSetGen", "StudentExampleGen", "StudentTransform",
         "TeacherLogits", "StudentTrainer", "StudentExporter", "StudentEvaluator", "Quantizer", "InfraValidator",
         "Pusher"]


@pytest.fixture(scope="module")
def distilled():
    return load_pipeline_module(str(REPO / "pipelines" / "sst2_distilled.py"))


@pytest.fixture(scope="module")
def hf_dir(prepared_sample, tmp_path_factory) -> str:
    vocab = load_vocab(os.path.join(prepared_sample, "tokenizer", "vocab.txt"))
    return save_hf_bert_directory(str(tmp_path_factory.mktemp("hf") / "bert"), vocab, max_sequence_length=64)


@pytest.fixture
def real_dir(tmp_path) -> str:
    """A data directory that is not the shipped sample (the sample's files, copied)."""
    directory = tmp_path / "sst2"
    shutil.copytree(SST2_SAMPLE, directory)
    return str(directory)


def _components(distilled, tmp_path, **kwargs):
    pipeline = distilled.create_pipeline(str(tmp_path / "root"), str(tmp_path / "serving"), **kwargs)
    assert pipeline.name == "sst2_distilled"
    return {c.name: c for c in pipeline.components}, [c.name for c in pipeline.components]


def _source(component, name):
    ref = component.inputs[name]
    return f"{ref.component}.{ref.output}"


def test_the_sample_dag_teacher_from_the_checkpoint_student_from_the_teacher(distilled, hf_dir, tmp_path):
    components, order = _components(distilled, tmp_path, options={"preset": hf_dir})
    assert order == ORDER
    teacher = components["TeacherTrainer"]
    assert teacher.properties["config_files"] == [TEACHER_YAML]
    assert teacher.properties["params_override"] == {"task": {"init_preset": hf_dir}, "trainer": {
        "train_steps": 40, "steps_per_loop": 40, "optimizer": {"learning_rate": 1e-4}}}
    assert components["TeacherEvaluator"].properties["baseline_model_base_path"] == ""   # the teacher is never served
    transfer = components["TransferSetGen"].properties
    assert (transfer["labelled"] == [str(SST2_SAMPLE / "train.tsv")]
            and transfer["exclude"] == [str(SST2_SAMPLE / "dev.tsv")])
    assert (transfer["augment_copies"], transfer["preset"], transfer["extra"]) == (8, hf_dir, [])
    student_gen = components["StudentExampleGen"]
    assert _source(student_gen, "transfer_set") == "TransferSetGen.transfer_set"
    assert _source(student_gen, "vocabulary") == "Transform.transform_graph"
    assert (student_gen.properties["vocab_cut"] == 0
            and student_gen.properties["eval_inputs"] == [str(SST2_SAMPLE / "dev.tsv")])
    logits, student = components["TeacherLogits"], components["StudentTrainer"]
    for key in ("config_files", "params_override", "experiment"):
        assert logits.properties[key] == student.properties[key]          # one config for both
    assert (student.properties["config_files"] == [STUDENT_YAML]
            and student.properties["experiment"] == "distillation")
    assert _source(logits, "teacher_model") == _source(student, "teacher_model") == "TeacherTrainer.model"
    assert _source(logits, "teacher_blessing") == "TeacherEvaluator.blessing"
    assert _source(student, "teacher_logits") == "TeacherLogits.teacher_logits"
    assert _source(student, "examples") == "StudentExampleGen.examples"
    config = declared_config(student.properties)
    assert (config.trainer.train_steps, config.trainer.optimizer.learning_rate) == (150, 3e-4)
    evaluator = components["StudentEvaluator"]
    assert _source(evaluator, "reference_evaluation") == "TeacherEvaluator.evaluation"
    assert evaluator.properties["min_share_of_reference"] == 0.97 and evaluator.properties["threshold"] == 0.0
    assert evaluator.properties["baseline_model_base_path"] == str(tmp_path / "serving")
    pusher = components["Pusher"]
    assert _source(pusher, "saved_model") == "StudentExporter.saved_model"
    assert _source(pusher, "blessing") == "StudentEvaluator.blessing"
    quantizer = components["Quantizer"].properties
    assert (quantizer["forms"], quantizer["variants"], quantizer["gate_variants"]) == (
        ["text"], ["float32", "dynamic_int8"], ["dynamic_int8"])


def test_real_data_uses_the_configs_steps_a_vocabulary_cut_and_the_extra_documents(distilled, hf_dir, real_dir,
                                                                                     tmp_path):
    imdb = os.path.join(real_dir, "reviews.csv")
    components, _ = _components(distilled, tmp_path, data_dir=real_dir,
                                options={"preset": hf_dir, "extra": imdb, "label_map": "pos:1+neg:0"})
    teacher = components["TeacherTrainer"].properties["params_override"]
    assert teacher == {"task": {"init_preset": hf_dir}}                       # sst2_minilm.yaml's steps and rate
    assert declared_config(components["StudentTrainer"].properties).trainer.train_steps == declared_config(
        {"experiment": "distillation", "config_files": [STUDENT_YAML], "params_override": ""}).trainer.train_steps
    transfer = components["TransferSetGen"].properties
    assert (transfer["extra"], transfer["label_map"], transfer["augment_copies"]) == (
        [imdb], {"pos": "1", "neg": "0"}, 2)
    assert components["StudentExampleGen"].properties["vocab_cut"] == 5000
    assert components["TeacherEvaluator"].properties["threshold"] == 0.85
    shorter, _ = _components(distilled, tmp_path, data_dir=real_dir,
                             options={"preset": hf_dir, "student_steps": "1200"})
    trainer = declared_config(shorter["StudentTrainer"].properties).trainer
    assert (trainer.train_steps, trainer.steps_per_loop) == (1200, 500)  # evaluated along the way, not only at the end
    assert components["StudentEvaluator"].properties["threshold"] == 0.75
    quantizer = components["Quantizer"].properties
    assert quantizer["forms"] == ["text", "tokens"] and quantizer["variants"] == ["float32", "float16", "dynamic_int8",
                                                                                  "full_int8"]
    assert quantizer["gate_variants"] == ["float16", "dynamic_int8"]


def test_student_options_and_overrides_reach_the_student_only(distilled, hf_dir, tmp_path):
    components, _ = _components(distilled, tmp_path, params_override="trainer.optimizer.learning_rate=0.002",
                                options={"preset": hf_dir, "student_init_layers": "0+5", "student_steps": "7",
                                         "min_share": "0.9", "vocab_cut": "3000", "quantize": "false"})
    student = components["StudentTrainer"]
    config = declared_config(student.properties)
    assert list(config.task.distillation.student_init_layers) == [0, 5]
    assert (config.trainer.train_steps, config.trainer.optimizer.learning_rate) == (7, 0.002)   # the user's last
    assert components["TeacherLogits"].properties["params_override"] == student.properties["params_override"]
    assert components["StudentEvaluator"].properties["min_share_of_reference"] == 0.9
    assert components["StudentExampleGen"].properties["vocab_cut"] == 3000 and "Quantizer" not in components
    assert components["TeacherTrainer"].properties["params_override"]["trainer"]["train_steps"] == 40


def test_the_tiny_teacher_needs_no_checkpoint(distilled, tmp_path):
    components, order = _components(distilled, tmp_path, options={"teacher": "tiny"})
    assert order == ORDER
    assert (components["ExampleGen"].properties["vocab_size"] == 8000
            and "preset" not in components["ExampleGen"].properties)
    assert components["TeacherTrainer"].properties["config_files"] == [
        str(REPO / "configs" / "sentence_classification" / "sample_tiny.yaml")]
    assert components["TransferSetGen"].properties["augment_copies"] == 0
    assert components["TransferSetGen"].properties["preset"] == ""
    config = declared_config(components["StudentTrainer"].properties)
    assert list(config.task.distillation.student_init_layers) == [0] and config.trainer.mixed_precision == "float32"


@pytest.mark.parametrize("options, message", [
    ({"teacher": "tiny", "augment_copies": "2"}, "teacher=tiny has no checkpoint: drop preset and augment_copies"),
    ({"teacher": "tiny", "preset": "all_minilm_l6_v2"}, "teacher=tiny has no checkpoint"),
    ({"teacher": "big"}, "teacher=big: expected preset or tiny"),
    ({"teacher": "tiny", "studnet_steps": "5"}, r"unknown option\(s\) studnet_steps"),
    ({"teacher": "tiny", "student_steps": "many"}, "student_steps=many: expected an integer"),
    ({"teacher": "tiny", "min_share": "most"}, "min_share=most: expected a number"),
    ({"teacher": "tiny", "label_map": "positive=1"}, "label_map=positive=1: expected extra_label:label items"),
    ({"teacher": "tiny", "student_init_layers": "0+top"}, "student_init_layers=0\\+top: expected layer numbers"),
])
def test_bad_options_are_refused_with_one_line(distilled, tmp_path, options, message):
    with pytest.raises(ConfigError, match=message):
        distilled.create_pipeline(str(tmp_path / "root"), str(tmp_path / "serving"), options=options)

"""Trainer's executor alone: the tiny classifier trained for 2 steps on the prepared sample into the
``model`` directory, with the pipeline's wiring (examples -> prepared_dir, base model ->
init_checkpoint) in its params.yaml; a vocabulary that is not the examples', examples without a
tokenizer and a bad override named before anything trains."""

import os

import pytest
import yaml

from llm_tf.errors import ConfigError, DataError
from llm_tf.pipeline import artifacts
from llm_tf.pipeline.components import Trainer
from llm_tf.pipeline.errors import PipelineError
from llm_tf.pipeline.fingerprint import file_sha256
from tests.pipeline.components.harness import artifact, execute, ref
from tests.plot_checks import assert_png

EXAMPLES = ref(artifacts.EXAMPLES, "ExampleGen", "examples")
GRAPH = ref(artifacts.TRANSFORM_GRAPH, "Transform", "transform_graph")
BASE = ref(artifacts.MODEL, "BaseTrainer", "model")
TINY = ("task.model.size=tiny,task.data.seq_length=32,task.data.global_batch_size=16,task.data.eval_batch_size=16,"
        "trainer.train_steps=2,trainer.steps_per_loop=2")


def _inputs(tmp_path, examples: str, vocab_sha256: str | None = None) -> dict:
    if vocab_sha256 is None:
        vocab_sha256 = file_sha256(os.path.join(examples, "tokenizer", "vocab.txt"))
    return {"examples": artifact(artifacts.EXAMPLES, examples),
            "transform_graph": artifact(artifacts.TRANSFORM_GRAPH, tmp_path / "graph", vocab_sha256=vocab_sha256)}


def test_trains_into_the_model_directory_with_the_wired_config(tmp_path, prepared_sample, trained_classifier):
    trainer = Trainer(EXAMPLES, GRAPH, "sentence_classification", params_override=TINY, base_model=BASE)
    inputs = {**_inputs(tmp_path, prepared_sample), "base_model": artifact(artifacts.MODEL, trained_classifier)}
    run = execute(trainer, tmp_path, inputs)
    props = run.props("model")
    assert props["experiment"] == "sentence_classification" and props["step"] == 2
    assert props["init_checkpoint"] == trained_classifier and props["params_yaml"] == "params.yaml"
    assert "teacher_dir" not in props and all(isinstance(v, (int, float)) for v in props["metrics"].values())
    assert 0.0 <= props["metrics"]["val_accuracy"] <= 1.0
    assert run.result.metrics["step"] == 2 and "val_accuracy" in run.result.metrics
    assert all(k == "step" or (k.startswith("val_") and not k.endswith("loss")) for k in run.result.metrics)
    model_dir = run.outputs["model"]
    with open(os.path.join(model_dir, "params.yaml"), encoding="utf-8") as f:
        params = yaml.safe_load(f)
    assert params["task"]["data"]["prepared_dir"] == prepared_sample
    assert params["task"]["init_checkpoint"] == trained_classifier and params["trainer"]["train_steps"] == 2
    assert os.listdir(os.path.join(model_dir, "checkpoints"))
    assert props["plots"] == ["training_curves.png"]
    assert_png(os.path.join(model_dir, "training_curves.png"), 600, 400)


def test_examples_tokenized_with_another_vocabulary_are_refused(tmp_path, prepared_sample):
    trainer = Trainer(EXAMPLES, GRAPH, "sentence_classification", params_override=TINY, name="StudentTrainer")
    with pytest.raises(PipelineError, match=f"^component StudentTrainer: the examples in {prepared_sample} were "
                                            "tokenized with another vocabulary than transform_graph .*/graph$"):
        execute(trainer, tmp_path, _inputs(tmp_path, prepared_sample, vocab_sha256="0" * 64))
    assert os.listdir(tmp_path / "out" / "model") == []


def test_examples_without_a_tokenizer_are_named(tmp_path):
    (tmp_path / "examples").mkdir()
    with pytest.raises(DataError, match=r"/examples/tokenizer/tokenizer_config.json: no tokenizer config"):
        execute(Trainer(EXAMPLES, GRAPH, "sentence_classification"), tmp_path,
                _inputs(tmp_path, str(tmp_path / "examples"), vocab_sha256=""))


def test_an_unknown_override_is_named_before_training(tmp_path, prepared_sample):
    trainer = Trainer(EXAMPLES, GRAPH, "sentence_classification", params_override="trainer.train_stepz=2")
    with pytest.raises(ConfigError, match="train_stepz"):
        execute(trainer, tmp_path, _inputs(tmp_path, prepared_sample))
    assert os.listdir(tmp_path / "out" / "model") == []


def test_an_unknown_mode_is_refused_at_definition():
    with pytest.raises(PipelineError, match="component Trainer: mode must be train or train_and_eval, got 'eval'"):
        Trainer(EXAMPLES, GRAPH, "sentence_classification", mode="eval")

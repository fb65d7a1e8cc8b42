"""Tests for llm_tf/training/causal_lm.py: inputs, training, eval perplexity, generation from a run."""

import json
import math
import os

import numpy as np
import pytest
import tensorflow as tf

from llm_tf.errors import ConfigError
from llm_tf.text.alignment import IGNORE_ID
from llm_tf.training import causal_lm, configs, strategies, tasks, train_lib
from llm_tf.training import model_dir as model_dir_lib
from tests.training.conftest import FAST


def experiment(prepared, override=""):
    config = tasks.experiment_config("causal_lm")
    return configs.apply_overrides(config, [],
                                   f"task.data.prepared_dir={prepared},{FAST}" + (f",{override}" if override else ""))


@pytest.fixture(scope="module")
def trained_lm(prepared_sample, tmp_path_factory):
    """(model_dir, eval metrics before training, training result) of a tiny causal LM."""
    model_dir = str(tmp_path_factory.mktemp("runs") / "clm")
    config = experiment(prepared_sample, "trainer.train_steps=40,trainer.steps_per_loop=20,"
                                         "trainer.optimizer.learning_rate=0.003")
    model_dir_lib.save_params(config, model_dir)
    trainer = train_lib.Trainer(config, model_dir, strategies.make_strategy())
    before = trainer.evaluate()
    result = trainer.train(evaluate=True)
    return model_dir, before, result


def test_inputs_are_next_token_pairs(prepared_sample):
    task = tasks.build_task(experiment(prepared_sample))
    tokenizer = task.data.tokenizer
    features, labels = next(iter(task.build_inputs("eval", training=False)))
    ids, mask, labels = features["token_ids"].numpy(), features["padding_mask"].numpy(), labels.numpy()
    assert ids.shape == mask.shape == labels.shape == (16, 32)
    assert sorted(features) == ["padding_mask", "token_ids"]
    assert (ids[:, 0] == tokenizer.cls_id).all()
    for row in range(16):
        real = int(mask[row].sum())
        scored = labels[row] != IGNORE_ID
        np.testing.assert_array_equal(labels[row, :real - 1], ids[row, 1:real])  # shifted by one
        assert labels[row][scored][-1] == tokenizer.sep_id  # the end token is learned
        assert not scored[real:].any()  # nothing scored at padding


def test_loss_drops_and_eval_reports_perplexity(trained_lm):
    model_dir, before, result = trained_lm
    assert result["step"] == 40
    assert result["val_loss"] < before["val_loss"] - 1.0
    assert result["val_perplexity"] < before["val_perplexity"]
    # Perplexity is exp of the mean token cross-entropy, the loss Keras reports.
    assert math.isclose(result["val_perplexity"], math.exp(result["val_loss"]), rel_tol=1e-3)
    assert {"encoder.weights.h5", "encoder.json", "params.yaml"} <= set(os.listdir(model_dir))


def test_eval_mode_reports_perplexity_of_the_latest_checkpoint(trained_lm):
    model_dir, _, result = trained_lm
    config = configs.apply_overrides(tasks.experiment_config("causal_lm"), [os.path.join(model_dir, "params.yaml")], "")
    metrics = train_lib.run_experiment(config, "eval", model_dir)
    assert metrics["step"] == 40
    assert math.isclose(metrics["val_perplexity"], result["val_perplexity"], rel_tol=1e-4)
    with open(os.path.join(model_dir, "metrics.json"), encoding="utf-8") as f:
        assert "val_perplexity" in json.load(f)


def test_generate_from_a_trained_run(trained_lm):
    model_dir, _, _ = trained_lm
    task, model = causal_lm.load_trained(model_dir)
    greedy = task.generate(model, ["the movie was", "a dull"], max_new_tokens=6)
    assert greedy.shape == (2,)
    assert task.generate(model, ["the movie was"], max_new_tokens=6)[0] == greedy[0]  # batch-independent
    sampled = task.generate(model, ["the movie was"], strategy="top_k", top_k=5, seed=1, max_new_tokens=6)
    assert sampled.numpy().tolist() == task.generate(model, ["the movie was"], strategy="top_k", top_k=5, seed=1,
                                                     max_new_tokens=6).numpy().tolist()


def test_perplexity_metric_ignores_padding():
    metric = causal_lm.MaskedPerplexity()
    logits = tf.zeros([2, 3, 10])  # uniform over 10 tokens: perplexity 10
    metric.update_state(tf.constant([[1, 2, IGNORE_ID], [IGNORE_ID, IGNORE_ID, IGNORE_ID]]), logits)
    assert math.isclose(float(metric.result()), 10.0, rel_tol=1e-5)
    sure = tf.one_hot([[4, 4, 4], [4, 4, 4]], 10) * 100.0
    metric.reset_state()
    metric.update_state(tf.constant([[4, IGNORE_ID, 4], [4, 4, IGNORE_ID]]), sure)
    assert math.isclose(float(metric.result()), 1.0, rel_tol=1e-5)


@pytest.mark.parametrize("override, message", [
    ("task.data.seq_length=600", r"task.data.seq_length \(600\) exceeds task.model.max_sequence_length \(512\)"),
    ("task.generation.strategy=beam",
     "task.generation.strategy: unknown 'beam' \\(expected one of: greedy, top_k, top_p\\)"),
    ("task.generation.top_p=0", r"task.generation.top_p must be in \(0, 1\]"),
    ("task.generation.temperature=-1", "task.generation.temperature must be > 0"),
    ("task.generation.max_new_tokens=0", "task.generation.max_new_tokens must be >= 1"),
])
def test_config_errors_are_clear(prepared_sample, override, message):
    with pytest.raises(ConfigError, match=message):
        tasks.build_task(experiment(prepared_sample, override))


def test_unknown_generation_key_names_the_valid_ones(prepared_sample):
    with pytest.raises(ConfigError, match="unknown config key 'topp'.*task.generation.top_p"):
        experiment(prepared_sample, "task.generation.topp=0.9")


def test_load_trained_errors(tmp_path):
    with pytest.raises(ConfigError, match="no params.yaml"):
        causal_lm.load_trained(str(tmp_path))
    (tmp_path / "params.yaml").write_text("experiment: sentence_classification\n")
    with pytest.raises(ConfigError, match="'sentence_classification' is not causal_lm"):
        causal_lm.load_trained(str(tmp_path))

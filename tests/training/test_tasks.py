"""Tests for llm_tf/training/tasks.py (the experiment registry)."""

import pytest
import tensorflow as tf

from llm_tf.errors import ConfigError
from llm_tf.training import configs, tasks
from tests.training.conftest import FAST


def test_registered_experiments_and_their_defaults():
    assert tasks.experiment_names() == ["causal_lm", "distillation", "mlm_pretrain", "sentence_classification",
                                      "token_classification"]
    config = tasks.experiment_config("token_classification")
    assert config.experiment == "token_classification" and config.trainer.best_metric == "entity_f1"
    assert tasks.experiment_config("sentence_classification").trainer.best_metric == "accuracy"


def test_unknown_experiment_lists_valid_ones():
    with pytest.raises(ConfigError, match="unknown experiment 'ner' \\(valid: causal_lm, distillation, mlm_pretrain, sentence_classification, token_classification\\)"):
        tasks.experiment_config("ner")


def test_bucket_boundaries():
    assert tasks.bucket_boundaries(64) == [4, 6, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56]
    assert tasks.bucket_boundaries(64, compiled=True) == [8, 16, 24, 32, 48]
    assert tasks.bucket_boundaries(512)[-3:] == [320, 384, 448]
    assert tasks.bucket_boundaries(64, [40, 10, 40]) == [10, 40]
    with pytest.raises(ConfigError, match="bucket_boundaries must lie in"):
        tasks.bucket_boundaries(32, [16, 32])


@pytest.mark.parametrize("autotune", [False, True])
def test_autotune_follows_the_config_on_train_and_eval_inputs(prepared_sample, autotune):
    # Off by default: the autotuner's thread delays every iterator's teardown (DataConfig).
    config = configs.apply_overrides(
        tasks.experiment_config("sentence_classification"), [],
        f"task.data.prepared_dir={prepared_sample},{FAST}" + (",task.data.autotune=true" if autotune else ""),
    )
    assert config.task.data.autotune is autotune
    task = tasks.build_task(config)
    for split, training in (("train", True), ("eval", False)):
        assert task.build_inputs(split, training=training).options().autotune.enabled is autotune


def test_a_task_whose_transform_branches_on_tensors_opts_into_autograph(prepared_sample):
    config = configs.apply_overrides(tasks.experiment_config("sentence_classification"), [],
                                     f"task.data.prepared_dir={prepared_sample},{FAST}")
    task = tasks.build_task(config)
    plain = task.example_transform()

    def branching(serialized):
        features, labels = plain(serialized)
        if tf.reduce_any(labels > 0):  # a Python `if` on a tensor: needs AutoGraph
            labels = labels * 1
        return features, labels

    with pytest.raises(tf.errors.OperatorNotAllowedInGraphError, match="as a Python `bool`"):
        task.batched_inputs("eval", False, 0, branching)
    task.autograph_transform = True
    features, labels = next(iter(task.batched_inputs("eval", False, 0, branching)))
    assert labels.shape[0] == features["token_ids"].shape[0] > 0

"""Tests for llm_tf/training/tasks.py (the experiment registry)."""

import pytest

from llm_tf.errors import ConfigError
from llm_tf.training import tasks


def test_registered_experiments_and_their_defaults():
    assert tasks.experiment_names() == ["mlm_pretrain", "sentence_classification", "token_classification"]
    config = tasks.experiment_config("token_classification")
    assert config.experiment == "token_classification" and config.trainer.best_metric == "entity_f1"
    assert tasks.experiment_config("sentence_classification").trainer.best_metric == "accuracy"


def test_unknown_experiment_lists_valid_ones():
    with pytest.raises(ConfigError, match="unknown experiment 'ner' \\(valid: mlm_pretrain, sentence_classification, token_classification\\)"):
        tasks.experiment_config("ner")

"""Tests for llm_tf/training/configs.py."""

import pytest
import yaml

from llm_tf.errors import ConfigError
from llm_tf.training import configs


def test_yaml_files_apply_in_order_then_params_override(write):
    first = write("a.yaml", "task:\n  model:\n    size: mini\ntrainer:\n  train_steps: 100\n")
    second = write("b.yaml", "trainer:\n  train_steps: 200\n  optimizer:\n    learning_rate: 0.003\n")
    config = configs.apply_overrides(configs.ExperimentConfig(), [first, second], "trainer.train_steps=300")
    assert config.task.model.size == "mini"
    assert config.trainer.optimizer.learning_rate == 0.003
    assert config.trainer.train_steps == 300


@pytest.mark.parametrize(
    "override, message",
    [
        ("task.model.sise=mini", "--params_override: unknown config key 'sise' (did you mean: task.model.size)"),
        ("trainer.train_step=5", "--params_override: unknown config key 'train_step' (did you mean: trainer.train_steps"),
    ],
)
def test_unknown_keys_name_the_valid_ones(override, message):
    with pytest.raises(ConfigError) as error:
        configs.apply_overrides(configs.ExperimentConfig(), [], override)
    assert str(error.value).startswith(message)


def test_bad_files(write, tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        configs.apply_overrides(configs.ExperimentConfig(), [str(tmp_path / "none.yaml")], "")
    bad = write("bad.yaml", "task:\n  model: [unclosed\n")
    with pytest.raises(ConfigError, match=f"{bad}:3: bad YAML"):
        configs.apply_overrides(configs.ExperimentConfig(), [bad], "")
    with pytest.raises(ConfigError, match="expected a mapping"):
        configs.apply_overrides(configs.ExperimentConfig(), [write("list.yaml", "- 1\n")], "")


def test_params_yaml_round_trips(tmp_path):
    config = configs.apply_overrides(configs.ExperimentConfig(experiment="x"), [], "task.model.size=small")
    path = configs.save_params(config, str(tmp_path))
    again = configs.apply_overrides(configs.ExperimentConfig(), [path], "")
    assert again.as_dict() == config.as_dict()
    assert yaml.safe_load(open(path))["task"]["model"]["size"] == "small"


def test_model_sizes():
    assert configs.ModelConfig(size="tiny").dimensions() == {"num_layers": 2, "hidden_dim": 128, "num_heads": 2, "intermediate_dim": 512}
    assert configs.ModelConfig(size="base").dimensions()["num_layers"] == 12
    assert configs.ModelConfig(size="mini", num_layers=1).dimensions()["num_layers"] == 1
    with pytest.raises(ConfigError, match="unknown model size 'huge'"):
        configs.ModelConfig(size="huge").dimensions()
    with pytest.raises(ConfigError, match="not divisible"):
        configs.ModelConfig(size="tiny", num_heads=3).dimensions()

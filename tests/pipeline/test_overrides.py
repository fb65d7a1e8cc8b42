"""llm_tf/pipeline/overrides.py: --params_override parsed and merged as pipeline definitions need."""

import pytest

from llm_tf.errors import ConfigError
from llm_tf.pipeline.overrides import merge_overrides, parse_overrides


def test_user_overrides_win_key_by_key_and_inputs_are_untouched():
    wiring = {"task": {"init_preset": "x", "data": {"seq_length": 64}}, "trainer": {"train_steps": 8}}
    user = parse_overrides("task.data.seq_length=32,trainer.optimizer.learning_rate=0.1")
    merged = merge_overrides(wiring, user)
    assert merged == {"task": {"init_preset": "x", "data": {"seq_length": 32}},
                      "trainer": {"train_steps": 8, "optimizer": {"learning_rate": 0.1}}}
    assert wiring["task"]["data"]["seq_length"] == 64, "the wiring dict is not modified"
    assert parse_overrides("") == {} and parse_overrides({"a": 1}) == {"a": 1}


def test_unparseable_overrides_are_named():
    with pytest.raises(ConfigError, match="--params_override: cannot parse 'trainer.train_steps'"):
        parse_overrides("trainer.train_steps")

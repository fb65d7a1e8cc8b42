"""Tests for llm_tf/training/strategies.py (multi-device runs are in test_train_lib.py)."""

import pytest
import tensorflow as tf

from llm_tf.errors import ConfigError
from llm_tf.training.strategies import make_strategy


def test_one_device():
    assert isinstance(make_strategy("one_device"), tf.distribute.OneDeviceStrategy)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(strategy="horovod"), "unknown strategy 'horovod'"),
        (dict(strategy="one_device", num_devices=2), "uses one device"),
        (dict(strategy="tpu"), "--strategy=tpu needs --tpu=ADDRESS"),
        (dict(strategy="tpu", tpu="local"), "--strategy=tpu: no TPU available at 'local'"),
        (dict(strategy="mirrored", num_devices=0), "--num_devices must be >= 1"),
    ],
)
def test_unavailable_strategies_are_one_line_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message) as error:
        make_strategy(**kwargs)
    assert "\n" not in str(error.value)

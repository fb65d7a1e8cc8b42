"""Tests for llm_tf/training/strategies.py (multi-device runs are in test_train_lib.py)."""

import pytest
import tensorflow as tf

from llm_tf.errors import ConfigError
from llm_tf.training.strategies import make_strategy


def test_one_device_without_gpus_reads_the_dataset_directly():
    # The default strategy: Keras iterates the dataset itself (no MultiDeviceIterator whose
    # per-device prefetch would run a second tf.data autotuner that delays teardown).
    strategy = make_strategy("one_device")
    assert not isinstance(strategy, tf.distribute.OneDeviceStrategy)
    assert strategy.num_replicas_in_sync == 1 and strategy.extended.should_checkpoint
    dataset = tf.data.Dataset.range(3)
    assert strategy.experimental_distribute_dataset(dataset) is dataset


def test_one_device_inside_another_scope_is_one_device_strategy():
    with tf.distribute.OneDeviceStrategy("/cpu:0").scope():
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

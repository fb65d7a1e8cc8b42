"""Tests for llm_tf/training/multi_worker.py (the two-process run is in test_train_lib.py)."""

import keras
import numpy as np
import tensorflow as tf

from llm_tf.training import multi_worker, strategies
from llm_tf.training.adversarial import FGMModel


def _functional():
    inputs = keras.Input((3,))
    return keras.Model(inputs, keras.layers.Dense(2)(inputs))


def test_adapt_keeps_the_model_object_and_its_variables():
    model = _functional()
    weights = [w.numpy() for w in model.weights]
    original_class = type(model)
    assert multi_worker.adapt(model) is model
    assert isinstance(model, multi_worker.MultiWorkerFit) and isinstance(model, original_class)
    assert type(model).__name__ == f"MultiWorker{original_class.__name__}"
    adapted_class = type(model)
    multi_worker.adapt(model)
    assert type(model) is adapted_class  # idempotent
    for before, after in zip(weights, model.weights):
        np.testing.assert_array_equal(before, after.numpy())
    assert type(multi_worker.adapt(_functional())) is adapted_class  # one class per model class


def test_adapted_fgm_model_keeps_its_own_training_step():
    base = _functional()
    model = multi_worker.adapt(FGMModel(base.input, base.output, 0.1, name="fgm"))
    mro = type(model).__mro__
    assert mro[1] is multi_worker.MultiWorkerFit and mro[2] is FGMModel  # super().train_step is FGM's


def test_logs_get_a_replica_axis_of_length_one():
    logs = multi_worker._with_replica_axis({"loss": tf.constant(0.5), "f1": tf.constant([0.1, 0.2, 0.3])})
    assert logs["loss"].shape == (1,) and logs["f1"].shape == (1, 3)
    np.testing.assert_allclose(logs["f1"].numpy(), [[0.1, 0.2, 0.3]])


def test_single_worker_strategies_are_not_multi_worker():
    assert not multi_worker.in_multi_worker_mode(strategies.make_strategy("one_device"))
    assert not multi_worker.in_multi_worker_mode(tf.distribute.get_strategy())

"""Keras 3 ``fit``/``evaluate`` under ``MultiWorkerMirroredStrategy``: two workarounds.

Keras 3.15's TensorFlow trainer fails with more than one worker (tensorflow/tensorflow#72388),
at two places, both in its own code rather than in the model:

1. ``Model._maybe_symbolic_build`` takes one batch to build the model and the compiled
   metrics, and first mean-reduces that whole nested batch across replicas with
   ``strategy.reduce``; the collective strategy accepts one value, not a structure
   ("Attempt to convert a value ({... PerReplica ...}) to a Tensor"). Only shapes and
   dtypes are needed, so :class:`MultiWorkerFit` builds from this worker's first replica.
2. Each step's logs go through ``reduce_per_replica(..., "auto")``, which under a
   multi-worker collective strategy calls ``strategy.reduce("MEAN", v, axis=0)`` on every
   value; the logs are scalars ("Invalid reduction dimension 0 for input with 0
   dimensions"). :class:`MultiWorkerFit` gives each log value a leading axis of length 1,
   so that reduction is the cross-replica mean, with the value's own shape.

Epoch logs, ``val_*`` logs and ``evaluate`` results come from the metric variables
(summed over all workers), as on one worker; a last partial batch may fall on one worker only.
"""

import functools

import keras
import tensorflow as tf

from llm_tf import compat


def in_multi_worker_mode(strategy: tf.distribute.Strategy) -> bool:
    """Whether ``strategy`` is a ``MultiWorkerMirroredStrategy`` with more than one worker."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and compat.in_multi_worker_mode(strategy)


@compat.private_overrides(keras.Model, compat.MODEL_PRIVATE_OVERRIDES)
class MultiWorkerFit:
    """Mixin for a ``keras.Model`` class: the two workarounds described in the module docstring."""

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):  # private: llm_tf.compat
        if iterator is not None:
            for _, _, batches in iterator:
                local = self.distribute_strategy.experimental_local_results
                data_batch = tf.nest.map_structure(lambda v: local(v)[0], next(batches))
                break
        with self.distribute_strategy.scope():
            compat.symbolic_build(self, data_batch)

    def train_step(self, data):
        return _with_replica_axis(super().train_step(data))

    def test_step(self, data):
        return _with_replica_axis(super().test_step(data))


def _with_replica_axis(logs):
    return tf.nest.map_structure(lambda v: tf.expand_dims(v, 0), logs)


@functools.cache
def _fit_class(cls: type) -> type:
    return type(f"MultiWorker{cls.__name__}", (MultiWorkerFit, cls), {"__module__": __name__})


def adapt(model: keras.Model) -> keras.Model:
    """Adds :class:`MultiWorkerFit` to ``model``'s class, in place; returns the same model.

    The object, its layers, variables and checkpoint layout stay the same (any ``keras.Model``,
    e.g. a functional task model or ``FGMModel``, whose own ``train_step`` then still runs).
    """
    if not isinstance(model, MultiWorkerFit):
        model.__class__ = _fit_class(type(model))
    return model

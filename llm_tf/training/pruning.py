"""Magnitude pruning for Keras 3 models (TF-MOT's ``prune_low_magnitude``, which needs tf_keras).

Each pruned weight gets a mask (a non-trainable variable of its shape, saved in the training
checkpoint under ``pruning``, so a resumed run keeps it). After every optimizer update the
pruned weights are multiplied by their masks, so masked entries stay exactly 0; at the
schedule's turns each mask is recomputed from the magnitudes of the masked weight, zeroing
the ``round(sparsity * size)`` smallest entries. The hook is our AdamW's ``after_apply``
(``llm_tf.training.optimizers``), so it runs wherever ``apply_gradients`` does: the default
train step, FGM's, with gradient accumulation (every batch, updates or not), under any
distribution strategy (masks are computed in the cross-replica context, identically for
every replica).

The schedule is TF-MOT's ``PolynomialDecay``: at step ``s`` (batches trained, counted after
the batch's update, so the last batch is ``s = trainer.train_steps``)::

    p = clip((s - begin_step) / (end_step - begin_step), 0, 1)
    sparsity(s) = target + (initial - target) * (1 - p) ** power

masks are recomputed at ``s = begin_step + k * frequency`` within ``[begin_step, end_step]``
and, unlike TF-MOT, also at ``s = end_step``, so the target is reached even when
``frequency`` does not divide ``end_step - begin_step``.

Export needs nothing: the checkpointed weights are already zero where pruned, and the mask
variables live outside the model, so ``llm_export`` writes plain weights.
"""

import dataclasses
import fnmatch
import os

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from llm_tf import compat
from llm_tf.errors import ConfigError
from llm_tf.io_utils import atomic_write_json
from llm_tf.models.parameters import count_params
from llm_tf.training import model_dir as model_dir_lib
from llm_tf.training.configs import PRUNING_INCLUDE

#: Report written into ``model_dir`` after every training loop.
PRUNING_FILE = model_dir_lib.PRUNING_FILE

#: Variable-path globs pruned by default (``trainer.pruning.include``).
DEFAULT_INCLUDE = PRUNING_INCLUDE


@dataclasses.dataclass(frozen=True)
class PolynomialSparsity:
    """TF-MOT's ``PolynomialDecay`` pruning schedule (see the module docstring).

    Args:
        target_sparsity: Sparsity at ``end_step`` and after, in [0, 1).
        begin_step: First step at which masks are computed.
        end_step: Step at which the target is reached (> ``begin_step``).
        initial_sparsity: Sparsity at ``begin_step``, in [0, ``target_sparsity``].
        power: Exponent of the decay (3: fast at first, then levelling off).
        frequency: Steps between mask recomputations.

    Raises:
        ConfigError: A value out of range, named by its ``trainer.pruning`` key.

    Example:
        >>> schedule = PolynomialSparsity(0.8, begin_step=0, end_step=100, power=1, frequency=10)
        >>> round(float(schedule.sparsity(50)), 3), bool(schedule.is_update_step(50)), bool(schedule.is_update_step(55))
        (0.4, True, False)
    """

    target_sparsity: float
    begin_step: int
    end_step: int
    initial_sparsity: float = 0.0
    power: float = 3.0
    frequency: int = 100

    def __post_init__(self):
        if not 0.0 <= self.target_sparsity < 1.0:
            raise ConfigError(f"trainer.pruning.target_sparsity must be in [0, 1), got {self.target_sparsity}")
        if not 0.0 <= self.initial_sparsity <= self.target_sparsity:
            raise ConfigError("trainer.pruning.initial_sparsity must be in "
                              f"[0, target_sparsity={self.target_sparsity}], got {self.initial_sparsity}")
        if self.begin_step < 0:
            raise ConfigError(f"trainer.pruning.begin_step must be >= 0, got {self.begin_step}")
        if self.begin_step >= self.end_step:
            raise ConfigError(f"trainer.pruning.begin_step ({self.begin_step}) must be < end_step ({self.end_step})")
        if self.frequency < 1:
            raise ConfigError(f"trainer.pruning.frequency must be >= 1, got {self.frequency}")
        if self.power <= 0:
            raise ConfigError(f"trainer.pruning.power must be > 0, got {self.power}")

    def sparsity(self, step) -> tf.Tensor:
        """The scheduled sparsity at ``step`` (a float32 scalar; works in and out of graphs)."""
        step = tf.cast(step, tf.float32)
        progress = tf.clip_by_value((step - self.begin_step) / float(self.end_step - self.begin_step), 0.0, 1.0)
        return self.target_sparsity + (self.initial_sparsity - self.target_sparsity) * (1.0 - progress) ** self.power

    def is_update_step(self, step) -> tf.Tensor:
        """Whether masks are recomputed after ``step`` (a bool scalar)."""
        step = tf.cast(step, tf.int64)
        in_range = tf.logical_and(step >= self.begin_step, step <= self.end_step)
        turn = tf.logical_or(tf.equal((step - self.begin_step) % self.frequency, 0), tf.equal(step, self.end_step))
        return tf.logical_and(in_range, turn)

    def last_update_step(self, step: int) -> int | None:
        """The latest step <= ``step`` at which masks were recomputed, or None before ``begin_step``."""
        if step < self.begin_step:
            return None
        if step >= self.end_step:
            return self.end_step
        return self.begin_step + (step - self.begin_step) // self.frequency * self.frequency


def magnitude_mask(values: tf.Tensor, sparsity) -> tf.Tensor:
    """A 0/1 mask that zeroes exactly the ``round(sparsity * size)`` smallest-magnitude entries.

    Ties are broken by position (a stable sort), so the count is exact and the result is the
    same on every replica.

    Args:
        values: The weight values.
        sparsity: Fraction to zero, a scalar in [0, 1).

    Returns:
        A mask of ``values``' shape and dtype.
    """
    flat = tf.reshape(tf.abs(values), [-1])
    count = tf.cast(tf.round(tf.cast(sparsity, tf.float32) * tf.cast(tf.size(flat), tf.float32)), tf.int32)
    ranks = tf.math.invert_permutation(tf.argsort(flat, stable=True))
    return tf.reshape(tf.cast(ranks >= count, values.dtype), tf.shape(values))


def select_weights(model: keras.Model, include: list[str]) -> list:
    """The trainable weights of ``model`` whose paths match one of the ``include`` globs.

    Raises:
        ConfigError: No weight matches (the patterns and some weight paths are named).
    """
    weights = [w for w in model.trainable_weights if any(fnmatch.fnmatchcase(w.path, p) for p in include)]
    if not weights:
        examples = ", ".join(w.path for w in model.trainable_weights[:4])
        raise ConfigError(f"trainer.pruning.include: no trainable weight matches {list(include)} "
                          f"(paths look like: {examples}, ...)")
    return weights


class MagnitudePruning:
    """Masks for a model's pruned weights, updated after every optimizer step.

    Build it in the strategy's scope (the masks are created there) and :meth:`attach` it to
    the optimizer; put :attr:`masks` into the training checkpoint.

    Args:
        weights: The variables to prune (e.g. from :func:`select_weights`).
        schedule: When and how much to prune.
        step: The global step variable (batches trained), read after each update.

    Attributes:
        masks: Weight path -> mask variable (1 keeps, 0 prunes), all ones at first.
    """

    def __init__(self, weights: list, schedule: PolynomialSparsity, step):
        self.weights = list(weights)
        self.paths = [w.path for w in self.weights]
        self.schedule = schedule
        self._step = step
        self._strategy = tf.distribute.get_strategy()
        self.masks = {
            w.path: tf.Variable(tf.ones(w.shape, w.dtype), trainable=False, name="prune_mask",
                                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
            for w in self.weights
        }

    def attach(self, optimizer: keras.optimizers.Optimizer) -> None:
        """Runs :meth:`after_update` after every ``apply`` of ``optimizer`` (our AdamW).

        Raises:
            TypeError: The optimizer has no ``after_apply`` hook.
        """
        if not hasattr(type(optimizer), "after_apply"):
            raise TypeError(f"pruning needs llm_tf's AdamW (an after_apply hook), not {type(optimizer).__name__}")
        optimizer.after_apply = self.after_update

    def after_update(self) -> None:
        """Recomputes the masks if the step is a turn, then multiplies the weights by them.

        Called in the replica context of a train step; the work happens in the cross-replica
        context, the way Keras applies weight decay.
        """
        compat.maybe_merge_call(self._update, self._strategy)

    def _update(self, strategy):
        step = tf.convert_to_tensor(self._step)
        due = self.schedule.is_update_step(step)
        sparsity = self.schedule.sparsity(step)

        def recompute(mask, weight):
            return tf.cond(due, lambda: mask.assign(magnitude_mask(weight * mask, sparsity)), lambda: mask.read_value())

        def apply_mask(weight, mask):
            return weight.assign(weight * mask)

        for weight, path in zip(self.weights, self.paths):
            mask, value = self.masks[path], weight.value
            strategy.extended.update(mask, recompute, args=(value,), group=False)
            strategy.extended.update(value, apply_mask, args=(mask,), group=False)

    def report(self, step: int, total_params: int | None = None) -> dict:
        """Sparsity achieved: the zeros of every pruned weight and overall.

        Args:
            step: The global step (for the schedule's figures).
            total_params: All parameters of the model, for ``model_sparsity``.

        Returns:
            ``sparsity`` (zeros / size over the pruned weights), ``model_sparsity`` (those
            zeros / ``total_params``), the schedule, and ``weights``: path -> shape, size,
            zeros, sparsity.
        """
        weights, zeros, size = {}, 0, 0
        for weight, path in zip(self.weights, self.paths):
            values = keras.ops.convert_to_numpy(weight.value)
            count = int(values.size - np.count_nonzero(values))
            weights[path] = {"shape": list(values.shape), "size": int(values.size), "zeros": count,
                             "sparsity": count / values.size}
            zeros, size = zeros + count, size + int(values.size)
        last = self.schedule.last_update_step(step)
        report = {
            "step": step,
            "sparsity": zeros / size,
            "pruned_params": size,
            "zero_params": zeros,
            "scheduled_sparsity": 0.0 if last is None else float(self.schedule.sparsity(last)),
            "schedule": dataclasses.asdict(self.schedule),
            "weights": weights,
        }
        if total_params:
            report["model_sparsity"] = zeros / total_params
            report["total_params"] = total_params
        return report


def build_pruning(config, model: keras.Model, optimizer: keras.optimizers.Optimizer, step) -> MagnitudePruning | None:
    """The pruning of ``config.trainer.pruning`` attached to ``optimizer``, or None when off.

    Call it in the strategy's scope. Pruning is on when ``target_sparsity`` > 0;
    ``end_step`` 0 means ``trainer.train_steps``.

    Args:
        config: The experiment config.
        model: The model being trained.
        optimizer: Its optimizer (llm_tf's AdamW).
        step: The global step variable (see ``optimizers.global_step``).

    Raises:
        ConfigError: Invalid schedule values, no weight matching ``include``, or LoRA (its
            frozen kernels cannot be pruned and the merged kernels would not be sparse).
    """
    prune = config.trainer.pruning
    if not prune.target_sparsity:
        if prune.initial_sparsity:
            raise ConfigError("trainer.pruning.initial_sparsity is set but target_sparsity is 0 (pruning is off)")
        return None
    if config.task.lora() is not None:
        raise ConfigError("trainer.pruning does not combine with task.lora_rank: LoRA freezes the kernels that pruning "
                          "would zero, and the merged kernels would not be sparse")
    train_steps = config.trainer.train_steps
    end_step = prune.end_step or train_steps
    if end_step > train_steps:
        raise ConfigError(f"trainer.pruning.end_step ({end_step}) is past trainer.train_steps ({train_steps}): "
                          "the target sparsity would never be reached")
    schedule = PolynomialSparsity(prune.target_sparsity, prune.begin_step, end_step, prune.initial_sparsity,
                                  prune.power, prune.frequency)
    pruning = MagnitudePruning(select_weights(model, list(prune.include)), schedule, step)
    pruning.attach(optimizer)
    logging.info("pruning %d weights (%s parameters) to sparsity %.2f between steps %d and %d (every %d)",
                 len(pruning.weights), f"{count_params(pruning.weights):,}",
                 schedule.target_sparsity, schedule.begin_step, schedule.end_step, schedule.frequency)
    return pruning


class PruningReport(keras.callbacks.Callback):
    """After every training loop: adds ``sparsity`` to the logs and writes ``pruning.json``.

    Put it before the callbacks that read the logs (metrics writer, TensorBoard).

    Args:
        pruning: The model's pruning.
        model_dir: Where ``pruning.json`` goes (None: not written, e.g. on a non-chief worker).
        step: The global step variable.
        total_params: All parameters of the model.
    """

    def __init__(self, pruning: MagnitudePruning, model_dir: str | None, step, total_params: int):
        super().__init__()
        self.pruning = pruning
        self.model_dir = model_dir
        self.step = step
        self.total_params = total_params
        self.last: dict = {}

    def on_epoch_end(self, epoch, logs=None):
        self.last = self.pruning.report(int(keras.ops.convert_to_numpy(self.step)), self.total_params)
        if logs is not None:
            logs["sparsity"] = self.last["sparsity"]
        logging.info("step %d: sparsity %.4f of %s pruned parameters (scheduled %.4f)", self.last["step"],
                     self.last["sparsity"], f"{self.last['pruned_params']:,}", self.last["scheduled_sparsity"])
        if self.model_dir:
            atomic_write_json(os.path.join(self.model_dir, PRUNING_FILE), self.last)

    def on_train_end(self, logs=None):
        for path, weight in self.last.get("weights", {}).items():
            logging.info("pruned %s %s: sparsity %.4f", path, weight["shape"], weight["sparsity"])

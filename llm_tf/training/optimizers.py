"""AdamW with a warm-up/decay learning-rate schedule and weight-decay exclusions."""

import keras
import tensorflow as tf

from llm_tf.errors import ConfigError

DECAYS = ("linear", "polynomial", "constant")
#: Variables whose names contain these are not weight-decayed (LayerNorm scale/offset, biases).
NO_DECAY = ("bias", "gamma", "beta")


@keras.saving.register_keras_serializable(package="llm_tf")
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 to ``peak`` over ``warmup_steps``, then decay to ``end``.

    Decay is polynomial with ``power`` (``power=1`` is linear) over the remaining steps, or
    none (``constant``).

    Args:
        peak: Learning rate at the end of warm-up.
        total_steps: Training steps (decay ends there).
        warmup_steps: Warm-up length.
        end: Final learning rate.
        power: Polynomial power of the decay.
        constant: Keep ``peak`` after warm-up.

    Example:
        >>> schedule = WarmupDecay(1e-3, total_steps=100, warmup_steps=10)
        >>> float(schedule(5)), float(schedule(10)), float(schedule(100))
        (0.0005, 0.001, 0.0)
    """

    def __init__(self, peak: float, total_steps: int, warmup_steps: int = 0, end: float = 0.0, power: float = 1.0,
                 constant: bool = False):
        super().__init__()
        self.peak = peak
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps
        self.end = end
        self.power = power
        self.constant = constant

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        warmup = keras.ops.cast(max(self.warmup_steps, 1), "float32")
        warm = self.peak * step / warmup
        if self.constant:
            decayed = keras.ops.convert_to_tensor(self.peak, "float32")
        else:
            span = keras.ops.cast(max(self.total_steps - self.warmup_steps, 1), "float32")
            progress = keras.ops.clip((step - self.warmup_steps) / span, 0.0, 1.0)
            decayed = (self.peak - self.end) * (1.0 - progress) ** self.power + self.end
        return keras.ops.where(step < self.warmup_steps, warm, decayed)

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps,
                "end": self.end, "power": self.power, "constant": self.constant}


@keras.saving.register_keras_serializable(package="llm_tf")
class AdamW(keras.optimizers.AdamW):
    """Keras AdamW whose ``global_clipnorm`` clips the gradient summed over replicas.

    Keras 3 on TensorFlow clips in the replica context, before the cross-replica sum, so under
    ``MirroredStrategy`` each replica's partial gradient is clipped to the norm on its own and
    training differs from one device whenever clipping is active (TensorFlow's maintainers call
    clipping before aggregation "usually wrong", tensorflow/tensorflow#33929). Here the clipping
    moves to right after the sum: the same update as on one device, and no extra all-reduce.

    ``after_apply``, when set, is called with no arguments after every ``apply`` (every batch,
    in the train step's replica context, also between accumulated updates); pruning uses it
    to keep pruned weights at zero (``llm_tf.training.pruning``).
    """

    after_apply = None

    def apply(self, grads, trainable_variables=None):
        super().apply(grads, trainable_variables)
        if self.after_apply is not None:
            self.after_apply()

    def _clip_gradients(self, grads):
        if self.global_clipnorm:
            return grads  # clipped after aggregation, in _all_reduce_sum_gradients
        return super()._clip_gradients(grads)

    def _all_reduce_sum_gradients(self, grads_and_vars):
        reduced = list(super()._all_reduce_sum_gradients(grads_and_vars))
        if not self.global_clipnorm:
            return reduced
        present = [i for i, (g, _) in enumerate(reduced) if g is not None]
        clipped, _ = tf.clip_by_global_norm([reduced[i][0] for i in present], self.global_clipnorm)
        for i, g in zip(present, clipped):
            reduced[i] = (g, reduced[i][1])
        return reduced


def build_optimizer(config, train_steps: int) -> keras.optimizers.AdamW:
    """Builds :class:`AdamW` from an :class:`~llm_tf.training.configs.OptimizerConfig`.

    Args:
        config: The optimizer config.
        train_steps: Total training steps (for the schedule).

    Raises:
        ConfigError: Unknown decay or out-of-range values.
    """
    if config.decay not in DECAYS:
        raise ConfigError(f"unknown decay '{config.decay}' (expected one of: {', '.join(DECAYS)})")
    if not 0 <= config.warmup_fraction < 1:
        raise ConfigError(f"warmup_fraction must be in [0, 1), got {config.warmup_fraction}")
    if config.learning_rate <= 0:
        raise ConfigError(f"learning_rate must be > 0, got {config.learning_rate}")
    if config.gradient_accumulation_steps < 1:
        raise ConfigError(f"gradient_accumulation_steps must be >= 1, got {config.gradient_accumulation_steps}")
    schedule = WarmupDecay(
        peak=config.learning_rate,
        total_steps=train_steps,
        warmup_steps=int(config.warmup_fraction * train_steps),
        end=config.end_learning_rate,
        power=1.0 if config.decay == "linear" else config.power,
        constant=config.decay == "constant",
    )
    optimizer = AdamW(
        learning_rate=schedule,
        weight_decay=config.weight_decay,
        beta_1=config.beta_1,
        beta_2=config.beta_2,
        epsilon=config.epsilon,
        global_clipnorm=config.clipnorm or None,
        gradient_accumulation_steps=config.gradient_accumulation_steps if config.gradient_accumulation_steps > 1 else None,
    )
    optimizer.exclude_from_weight_decay(var_names=list(NO_DECAY))
    return optimizer


def global_step(optimizer: keras.optimizers.Optimizer):
    """The variable counting training batches (micro-batches under gradient accumulation).

    Keras's public ``optimizer.iterations`` counts weight updates when gradients accumulate;
    checkpoints, metrics and the resume position count batches, which is this variable.
    """
    return optimizer._iterations

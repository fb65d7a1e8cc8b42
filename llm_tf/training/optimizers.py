"""AdamW with a warm-up/decay learning-rate schedule and weight-decay exclusions."""

import contextlib

import keras
import tensorflow as tf

from llm_tf import compat
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
        >>> [round(float(schedule(step)), 6) for step in (5, 10, 55, 100)]
        [0.0005, 0.001, 0.0005, 0.0]
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
@compat.private_overrides(keras.optimizers.AdamW, compat.OPTIMIZER_PRIVATE_OVERRIDES)
class AdamW(keras.optimizers.AdamW):
    """Keras AdamW whose ``global_clipnorm`` clips the gradient summed over replicas.

    Keras 3 on TensorFlow clips in the replica context, before the cross-replica sum, so under
    ``MirroredStrategy`` each replica's partial gradient is clipped to the norm on its own and
    training differs from one device whenever clipping is active (TensorFlow's maintainers call
    clipping before aggregation "usually wrong", tensorflow/tensorflow#33929). Here the clipping
    moves to right after the sum: the same update as on one device, and no extra all-reduce.

    Sparse gradients (``IndexedSlices``, an embedding's) are summed per row before the Adam
    step and before the global norm is taken (:func:`clip_by_global_norm`): Keras 3 treats each
    lookup's row separately there, which is not the batch's gradient when a token repeats.

    Each variable's Adam step is one fused ``ResourceApplyAdam`` kernel with the step's scalars
    (learning rate, bias corrections, ``lr * weight_decay``) computed once per step instead of
    once per variable: the same arithmetic as Keras's Adam, 10-15% off a small model's step.

    ``after_apply``, when set, is called with no arguments after every ``apply`` (every batch,
    in the train step's replica context, also between accumulated updates); pruning uses it
    to keep pruned weights at zero (``llm_tf.training.pruning``).

    Gradient accumulation (``gradient_accumulation_steps`` = k) works under every strategy.
    Keras 3 accumulates inside a ``cond`` in the replica context whose update branch calls
    ``merge_call``, which ``MirroredStrategy`` and ``MultiWorkerMirroredStrategy`` refuse
    ("merge_call called while defining a new graph"). Here each batch's gradient is first
    summed over replicas (unconditionally, so every replica and worker runs the same
    collectives), added to the accumulated sum and clipped as a mean of k batches, all in the
    replica context; then one ``merge_call`` enters the cross-replica context, where the
    ``cond`` chooses between storing the sum and applying the mean (weight decay, the Adam
    step, accumulators reset). The result is Keras's one-device accumulation on any number
    of replicas: the weights, the Adam moments, ``iterations`` (updates) and the
    learning-rate schedule (which reads batches, ``global_step``) move once every k batches,
    with the mean gradient of the k global batches, clipped after averaging; the
    accumulators are Keras's own variables, so checkpoints keep their layout.

    The methods named in ``llm_tf.compat.OPTIMIZER_PRIVATE_OVERRIDES`` override Keras's private
    ones (checked when the class is built); Keras's private state is read through ``llm_tf.compat``.
    """

    after_apply = None
    #: The step's Adam scalars while an update runs (see :meth:`_adam_scalars`); None otherwise.
    _step_scalars = None

    def apply(self, grads, trainable_variables=None):
        super().apply(grads, trainable_variables)
        if self.after_apply is not None:
            self.after_apply()

    def _adam_scalars(self, learning_rate) -> dict:
        """The float32 scalars of one Adam step, computed once for all variables."""
        # ``iterations`` counts updates (batches // k under gradient accumulation), as Keras's Adam reads it.
        local_step = tf.cast(tf.convert_to_tensor(self.iterations) + 1, tf.float32)
        return {"lr": tf.cast(learning_rate, tf.float32),
                "beta1_power": tf.pow(tf.constant(self.beta_1, tf.float32), local_step),
                "beta2_power": tf.pow(tf.constant(self.beta_2, tf.float32), local_step)}

    def update_step(self, gradient, variable, learning_rate):
        """One fused Adam step (``ResourceApplyAdam``) on ``variable``; Keras's own with amsgrad.

        Keras's Adam runs about ten element-wise ops per variable (and its scalars, again for
        each variable); the fused kernel does the same arithmetic (m, v, then
        ``var -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)``) in one pass, which is
        most of the optimizer's time on a small model. The moments are Keras's variables.
        """
        if isinstance(gradient, tf.IndexedSlices):
            # An embedding's gradient has one row per lookup; Keras's Adam squares those rows one
            # by one, so a token seen twice in a batch gets 2g² instead of (2g)² in the second
            # moment. Summing the rows first gives the batch's gradient (as tf.keras did, and as
            # the dense sum of accumulated batches is); Adam's update is dense anyway.
            gradient = tf.convert_to_tensor(gradient)
        if self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        momentum, velocity = compat.adam_moments(self, compat.variable_index(self, variable))
        scalars = self._step_scalars or self._adam_scalars(learning_rate)
        dtype = variable.dtype
        cast = {k: tf.cast(v, dtype) for k, v in scalars.items()}
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable), m=_handle(momentum), v=_handle(velocity),
            beta1_power=cast["beta1_power"], beta2_power=cast["beta2_power"], lr=cast["lr"],
            beta1=tf.constant(self.beta_1, dtype), beta2=tf.constant(self.beta_2, dtype),
            epsilon=tf.constant(self.epsilon, dtype), grad=tf.cast(gradient, dtype))

    @contextlib.contextmanager
    def _one_update(self, learning_rate):
        """Within it, :meth:`update_step` uses this update's scalars, computed once."""
        self._step_scalars = self._adam_scalars(learning_rate)
        try:
            yield
        finally:
            self._step_scalars = None

    def _distributed_tf_update_step(self, distribution, grads_and_vars, learning_rate):  # private: llm_tf.compat
        # Under a multi-replica strategy the replicas' learning rate arrives per replica (all equal).
        with self._one_update(distribution.experimental_local_results(learning_rate)[0]):
            super()._distributed_tf_update_step(distribution, grads_and_vars, learning_rate)

    def _apply_weight_decay(self, variables):  # private: llm_tf.compat
        """Keras's decoupled weight decay, with ``lr * weight_decay`` computed once, not per variable."""
        if self.weight_decay is None:
            return
        variables = [_tf_variable(v) for v in variables]

        def apply_decay(distribution, variables):
            self._decay_variables(distribution, variables, self.learning_rate)

        compat.maybe_merge_call(apply_decay, compat.optimizer_strategy(self), variables)

    def _decay_variables(self, distribution, variables, learning_rate):
        """Cross-replica context: ``variable -= variable * lr * weight_decay`` where decay applies."""
        factor = tf.cast(learning_rate, tf.float32) * tf.cast(self.weight_decay, tf.float32)

        def decay(variable):
            variable.assign_sub(variable * tf.cast(factor, variable.dtype))

        for variable in variables:
            if compat.uses_weight_decay(self, variable):
                distribution.extended.update(variable, decay, group=False)

    def _backend_apply_gradients(self, grads, trainable_variables):  # private: llm_tf.compat
        if not self.gradient_accumulation_steps or self.use_ema:
            return super()._backend_apply_gradients(grads, trainable_variables)
        steps = self.gradient_accumulation_steps
        variables = [_tf_variable(v) for v in trainable_variables]
        accumulated = compat.accumulated_gradients(self)
        accumulators = [accumulated[compat.variable_index(self, v)].value for v in trainable_variables]
        # Replica context, no control flow: the cross-replica sum (Keras's, not clipped), the
        # sum over the batches so far, and the clipped mean that an update step would apply.
        reduced = [g for g, _ in super()._all_reduce_sum_gradients(list(zip(grads, variables)))]
        totals = [tf.convert_to_tensor(g) + tf.convert_to_tensor(a) for g, a in zip(reduced, accumulators)]
        means = self._clip_accumulated([total / steps for total in totals])
        strategy = compat.optimizer_strategy(self)
        if tf.distribute.in_cross_replica_context():
            self._accumulate_or_update(strategy, variables, accumulators, totals, means)
        else:
            compat.maybe_merge_call(self._accumulate_or_update, strategy, variables, accumulators, totals, means)

    def _clip_accumulated(self, means):
        """Clips the mean accumulated gradient as Keras's update step would (global norm: over all of it)."""
        if not self.global_clipnorm:
            return super()._clip_gradients(means)
        return clip_by_global_norm(means, self.global_clipnorm)

    def _accumulate_or_update(self, distribution, variables, accumulators, totals, means):
        """Cross-replica context: every k-th batch applies ``means``, the others store ``totals``."""
        due = tf.equal((tf.convert_to_tensor(compat.batch_counter(self)) + 1) % self.gradient_accumulation_steps, 0)

        def step(variable, gradient, learning_rate):
            return self.update_step(gradient, variable, learning_rate)

        def update():
            learning_rate = self.learning_rate
            if self.weight_decay is not None:
                self._decay_variables(distribution, variables, learning_rate)
            with self._one_update(learning_rate):
                for variable, mean in zip(variables, means):
                    distribution.extended.update(variable, step, args=(mean, learning_rate), group=False)
            for accumulator in compat.accumulated_gradients(self):  # all of them, as Keras resets them
                distribution.extended.update(accumulator.value, lambda a: a.assign(tf.zeros_like(a)), group=False)

        def accumulate():
            for accumulator, total in zip(accumulators, totals):
                distribution.extended.update(accumulator, lambda a, t: a.assign(t), args=(total,), group=False)

        tf.cond(due, update, accumulate)

    def _clip_gradients(self, grads):  # private: llm_tf.compat
        if self.global_clipnorm:
            return grads  # clipped after aggregation, in _all_reduce_sum_gradients
        return super()._clip_gradients(grads)

    def _all_reduce_sum_gradients(self, grads_and_vars):  # private: llm_tf.compat
        reduced = list(super()._all_reduce_sum_gradients(grads_and_vars))
        if not self.global_clipnorm:
            return reduced
        present = [i for i, (g, _) in enumerate(reduced) if g is not None]
        clipped = clip_by_global_norm([reduced[i][0] for i in present], self.global_clipnorm)
        for i, g in zip(present, clipped):
            reduced[i] = (g, reduced[i][1])
        return reduced


def _tf_variable(variable):
    """The TensorFlow variable behind a Keras variable (a TensorFlow variable is returned as it is)."""
    return variable.value if isinstance(variable, keras.Variable) else variable


def _handle(variable):
    """The resource handle of a Keras or TensorFlow variable (the local copy inside a strategy's update)."""
    return _tf_variable(variable).handle


def clip_by_global_norm(gradients: list, clipnorm: float) -> list:
    """``tf.clip_by_global_norm`` with the norm of the gradient each ``IndexedSlices`` stands for.

    ``tf.clip_by_global_norm`` takes an ``IndexedSlices``' norm from its rows as they are, but
    rows with the same index add up (an embedding row per occurrence of a token in the batch),
    so the norm it clips to is not the gradient's. Here repeated rows are summed for the norm
    (the gradients themselves keep their form), so an embedding's gradient is clipped the same
    whether it arrives sparse (one batch) or dense (a sum of accumulated batches).

    Args:
        gradients: Tensors and ``tf.IndexedSlices`` (no None).
        clipnorm: The largest global norm.

    Returns:
        The gradients scaled by ``min(1, clipnorm / global_norm)``.

    Example:
        >>> rows = tf.IndexedSlices(tf.constant([[3.0, 4.0], [3.0, 4.0]]), tf.constant([1, 1]), tf.constant([3, 2]))
        >>> [g.numpy().tolist() for g in clip_by_global_norm([tf.convert_to_tensor(rows)], 5.0)]
        [[[0.0, 0.0], [3.0, 4.0], [0.0, 0.0]]]
        >>> clip_by_global_norm([rows], 5.0)[0].values.numpy().tolist()  # norm 10, not 7.07
        [[1.5, 2.0], [1.5, 2.0]]
    """
    def squared(gradient):
        if isinstance(gradient, tf.IndexedSlices):
            unique, positions = tf.unique(gradient.indices)
            gradient = tf.math.unsorted_segment_sum(gradient.values, positions, tf.shape(unique)[0])
        return tf.reduce_sum(tf.square(tf.cast(gradient, tf.float32)))

    norm = tf.sqrt(tf.add_n([squared(g) for g in gradients]))
    clipped, _ = tf.clip_by_global_norm(gradients, clipnorm, use_norm=norm)
    return clipped


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
        gradient_accumulation_steps=(config.gradient_accumulation_steps if config.gradient_accumulation_steps > 1
                                     else None),
    )
    optimizer.exclude_from_weight_decay(var_names=list(NO_DECAY))
    return optimizer


def global_step(optimizer: keras.optimizers.Optimizer):
    """The variable counting training batches (micro-batches under gradient accumulation).

    Keras's public ``optimizer.iterations`` counts weight updates when gradients accumulate;
    checkpoints, metrics and the resume position count batches, which is this variable.
    """
    return compat.batch_counter(optimizer)

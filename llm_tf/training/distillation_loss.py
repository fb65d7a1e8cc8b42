"""The knowledge-distillation loss and its schedules (Hinton et al., 2015).

Per example, with student logits ``s``, teacher logits ``t``, temperature ``T`` and weight
``alpha``::

    loss = alpha * T^2 * KL(softmax(t / T) || softmax(s / T)) + (1 - alpha) * CE(label, s)

The ``T^2`` keeps the soft term's gradients on the scale of the hard term's as ``T`` grows.
``alpha`` and ``T`` may move from a start to an end value over training (``linear`` or
``cosine``), see :func:`schedule_value`. Hidden-state matching adds the mean squared error
between (projected) student and teacher hidden states over real (non-padding) positions, see
:func:`masked_mse`.
"""

import math

import tensorflow as tf

#: How alpha and the temperature move from their start to their end value over training.
SCHEDULES = ("constant", "linear", "cosine")


def schedule_value(start: float, end: float | None, schedule: str, step, total_steps: int) -> tf.Tensor:
    """The scheduled value at ``step``: ``start`` moving to ``end`` at ``total_steps``.

    Args:
        start: Value at step 0.
        end: Value at ``total_steps`` and after; None means ``start`` (constant).
        schedule: ``constant`` (always ``start``), ``linear`` or ``cosine`` (half a cosine
            wave: slow at both ends).
        step: The current step (int or scalar tensor).
        total_steps: Steps over which the value moves (> 0).

    Returns:
        A float32 scalar tensor.

    Raises:
        ValueError: Unknown schedule.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule '{schedule}' (expected one of: {', '.join(SCHEDULES)})")
    start_t = tf.constant(start, tf.float32)
    if schedule == "constant" or end is None:
        return start_t
    progress = tf.clip_by_value(tf.cast(step, tf.float32) / float(max(total_steps, 1)), 0.0, 1.0)
    if schedule == "cosine":
        progress = 0.5 * (1.0 - tf.cos(math.pi * progress))
    return start_t + (float(end) - start) * progress


def soft_kl(teacher_logits: tf.Tensor, student_logits: tf.Tensor, temperature=1.0) -> tf.Tensor:
    """``KL(softmax(t / T) || softmax(s / T))`` per example, over the last axis.

    Args:
        teacher_logits, student_logits: float [..., classes].
        temperature: Softmax temperature (> 0; scalar).

    Returns:
        float32 [...].
    """
    temperature = tf.cast(temperature, tf.float32)
    teacher_log_p = tf.nn.log_softmax(tf.cast(teacher_logits, tf.float32) / temperature, axis=-1)
    student_log_p = tf.nn.log_softmax(tf.cast(student_logits, tf.float32) / temperature, axis=-1)
    return tf.reduce_sum(tf.exp(teacher_log_p) * (teacher_log_p - student_log_p), axis=-1)


def hard_cross_entropy(labels: tf.Tensor, student_logits: tf.Tensor, label_smoothing: float = 0.0) -> tf.Tensor:
    """Cross-entropy of the student's logits with integer labels (optionally smoothed), per example."""
    logits = tf.cast(student_logits, tf.float32)
    classes = tf.shape(logits)[-1]
    targets = tf.one_hot(tf.cast(tf.reshape(labels, [-1]), tf.int32), classes)
    if label_smoothing:
        targets = targets * (1.0 - label_smoothing) + label_smoothing / tf.cast(classes, tf.float32)
    return -tf.reduce_sum(targets * tf.nn.log_softmax(logits, axis=-1), axis=-1)


def distillation_loss(labels: tf.Tensor, student_logits: tf.Tensor, teacher_logits: tf.Tensor, alpha, temperature,
                      label_smoothing: float = 0.0) -> tf.Tensor:
    """``alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(labels, student)`` per example.

    Args:
        labels: int [batch] label ids.
        student_logits, teacher_logits: float [batch, classes].
        alpha: Weight of the soft (teacher) term, in [0, 1]; scalar.
        temperature: ``T`` > 0; scalar.
        label_smoothing: Applied to the hard labels of the cross-entropy term.

    Returns:
        float32 [batch].
    """
    alpha = tf.cast(alpha, tf.float32)
    temperature = tf.cast(temperature, tf.float32)
    soft = soft_kl(teacher_logits, student_logits, temperature) * tf.square(temperature)
    return alpha * soft + (1.0 - alpha) * hard_cross_entropy(labels, student_logits, label_smoothing)


def masked_mse(student_hidden: tf.Tensor, teacher_hidden: tf.Tensor, padding_mask: tf.Tensor) -> tf.Tensor:
    """Mean squared error over the real positions (``padding_mask`` 1) and the hidden axis.

    Args:
        student_hidden: float [batch, length, hidden] (already projected to the teacher's width).
        teacher_hidden: float [batch, length, hidden].
        padding_mask: [batch, length], 1 for real tokens.

    Returns:
        float32 scalar (0 when there is no real position).
    """
    mask = tf.cast(padding_mask, tf.float32)
    error = tf.reduce_mean(tf.square(tf.cast(student_hidden, tf.float32) - tf.cast(teacher_hidden, tf.float32)),
                           axis=-1)
    return tf.math.divide_no_nan(tf.reduce_sum(error * mask), tf.reduce_sum(mask))

"""Tests for llm_tf/training/distillation_loss.py: the loss against a hand computation, schedules."""

import math

import numpy as np
import pytest
import tensorflow as tf

from llm_tf.training.distillation_loss import distillation_loss, hard_cross_entropy, masked_mse, schedule_value, soft_kl

STUDENT = np.array([[2.0, -1.0, 0.5], [0.0, 0.3, -2.0]], np.float32)
TEACHER = np.array([[3.0, 0.0, -1.0], [-1.0, 2.0, 0.0]], np.float32)
LABELS = np.array([0, 2])


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def by_hand(alpha, temperature):
    p_teacher = softmax(TEACHER / temperature)
    p_student = softmax(STUDENT / temperature)
    kl = (p_teacher * np.log(p_teacher / p_student)).sum(axis=-1)
    ce = -np.log(softmax(STUDENT)[np.arange(2), LABELS])
    return alpha * temperature**2 * kl + (1 - alpha) * ce, kl, ce


@pytest.mark.parametrize("alpha,temperature", [(0.7, 3.0), (0.5, 1.0), (0.0, 2.0), (1.0, 2.0), (1.0, 4.0)])
def test_loss_matches_the_formula(alpha, temperature):
    expected, kl, ce = by_hand(alpha, temperature)
    got = distillation_loss(LABELS, STUDENT, TEACHER, alpha, temperature).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    if alpha == 0.0:
        np.testing.assert_allclose(got, ce, rtol=1e-5)  # the teacher plays no part
    if alpha == 1.0:
        np.testing.assert_allclose(got, temperature**2 * kl, rtol=1e-5)  # the labels play no part


def test_soft_term_is_scaled_by_t_squared():
    # Same KL, two temperatures: only the T^2 factor differs.
    kl = soft_kl(TEACHER, STUDENT, 4.0).numpy()
    np.testing.assert_allclose(distillation_loss(LABELS, STUDENT, TEACHER, 1.0, 4.0).numpy(), 16.0 * kl, rtol=1e-5)
    assert np.all(kl > 0) and soft_kl(TEACHER, TEACHER, 2.0).numpy() == pytest.approx([0.0, 0.0], abs=1e-6)


def test_hard_term_with_label_smoothing():
    smoothing = 0.1
    targets = np.eye(3)[LABELS] * (1 - smoothing) + smoothing / 3
    expected = -(targets * np.log(softmax(STUDENT))).sum(axis=-1)
    np.testing.assert_allclose(hard_cross_entropy(LABELS, STUDENT, smoothing).numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize("schedule,middle", [("constant", 0.9), ("linear", 0.6), ("cosine", 0.6)])
def test_schedules_at_start_middle_end(schedule, middle):
    values = [float(schedule_value(0.9, 0.3, schedule, step, 100)) for step in (0, 50, 100, 150)]
    start, mid, end, after = values
    assert start == pytest.approx(0.9)
    assert mid == pytest.approx(middle)
    assert end == pytest.approx(0.9 if schedule == "constant" else 0.3)
    assert after == pytest.approx(end)  # held at the end value past total_steps


def test_cosine_moves_slowly_at_the_ends():
    quarter = float(schedule_value(1.0, 5.0, "cosine", 25, 100))
    assert quarter == pytest.approx(1.0 + 4.0 * (1 - math.cos(math.pi / 4)) / 2)
    assert quarter < float(schedule_value(1.0, 5.0, "linear", 25, 100))
    assert float(schedule_value(2.0, None, "linear", 50, 100)) == pytest.approx(2.0)  # no end: constant
    assert float(schedule_value(1.0, 3.0, "linear", tf.constant(25, tf.int64), 100)) == pytest.approx(1.5)
    with pytest.raises(ValueError, match="unknown schedule 'step'"):
        schedule_value(1.0, 2.0, "step", 0, 10)


def test_masked_mse_ignores_padding():
    student = np.zeros([1, 3, 2], np.float32)
    teacher = np.array([[[1.0, 3.0], [2.0, 2.0], [100.0, 100.0]]], np.float32)
    # Real positions: (1 + 9) / 2 = 5 and (4 + 4) / 2 = 4 -> 4.5; the padded third is ignored.
    assert float(masked_mse(student, teacher, np.array([[1, 1, 0]]))) == pytest.approx(4.5)
    assert float(masked_mse(student, teacher, np.array([[0, 0, 0]]))) == 0.0

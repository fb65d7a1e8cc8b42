"""Tests for llm_tf/data/splits.py."""

from llm_tf.data.splits import assign_split


def test_split_is_deterministic_and_near_the_fraction():
    keys = [f"example number {i}" for i in range(20000)]
    first = [assign_split(k, 0.1) for k in keys]
    assert first == [assign_split(k, 0.1) for k in keys]
    share = first.count("eval") / len(keys)
    assert 0.09 < share < 0.11


def test_salt_changes_assignment_and_zero_fraction_keeps_all_in_train():
    keys = [f"k{i}" for i in range(1000)]
    assert [assign_split(k, 0.5, "a") for k in keys] != [assign_split(k, 0.5, "b") for k in keys]
    assert {assign_split(k, 0.0) for k in keys} == {"train"}

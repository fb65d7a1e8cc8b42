"""Tests for llm_tf/text/packing.py against tensorflow-text's reference ops."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text as tft

from llm_tf.text import packing

CLS, SEP = 2, 3


def random_ragged(rng, batch, max_len):
    return tf.ragged.constant([rng.integers(5, 100, size=rng.integers(0, max_len)).tolist() for _ in range(batch)],
                              dtype=tf.int32, ragged_rank=1)


def reference(segments, seq_length):
    budget = seq_length - (len(segments) + 1)
    trimmed = (tft.RoundRobinTrimmer(max_seq_length=budget).trim(segments) if len(segments) > 1
               else [segments[0][:, :budget]])
    ids, seg = tft.combine_segments(trimmed, start_of_sequence_id=CLS, end_of_segment_id=SEP)
    ids, mask = tft.pad_model_inputs(ids, max_seq_length=seq_length)
    seg, _ = tft.pad_model_inputs(seg, max_seq_length=seq_length)
    return ids.numpy(), seg.numpy(), mask.numpy().astype(bool)


@pytest.mark.parametrize("seq_length", [3, 8, 17])
def test_pack_pair_matches_round_robin_trimmer_and_combine_segments(seq_length):
    rng = np.random.default_rng(seq_length)
    a, b = random_ragged(rng, 64, 20), random_ragged(rng, 64, 20)
    packed = packing.pack_pair(a, b, seq_length, CLS, SEP)
    ids, seg, mask = reference([a, b], seq_length)
    np.testing.assert_array_equal(packed["token_ids"].numpy(), ids)
    np.testing.assert_array_equal(packed["segment_ids"].numpy(), seg)
    np.testing.assert_array_equal(packed["padding_mask"].numpy(), mask)


@pytest.mark.parametrize("seq_length", [2, 5, 32])
def test_pack_single_matches_reference(seq_length):
    rng = np.random.default_rng(seq_length)
    a = random_ragged(rng, 64, 40)
    packed = packing.pack_single(a, seq_length, CLS, SEP)
    ids, seg, mask = reference([a], seq_length)
    np.testing.assert_array_equal(packed["token_ids"].numpy(), ids)
    np.testing.assert_array_equal(packed["segment_ids"].numpy(), seg)
    np.testing.assert_array_equal(packed["padding_mask"].numpy(), mask)


def test_pair_lengths_round_robin():
    keep_a, keep_b = packing.pair_lengths(tf.constant([10, 1, 10, 2]), tf.constant([1, 10, 10, 2]), 5)
    assert keep_a.numpy().tolist() == [4, 1, 3, 2]
    assert keep_b.numpy().tolist() == [1, 4, 2, 2]

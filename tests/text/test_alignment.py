"""Tests for llm_tf/text/alignment.py."""

import tensorflow as tf

from llm_tf.text.alignment import IGNORE_ID, pack_words, word_predictions


def test_labels_on_first_sub_words_only(text_tokenizer):
    words = tf.ragged.constant([["the", "movie", "superbly", "charming"], ["fun"]])
    tags = tf.ragged.constant([[0, 1, 2, 3], [4]], dtype=tf.int32)
    packed = pack_words(text_tokenizer, words, tags, seq_length=16)
    pieces = text_tokenizer.tokenize_words(words)
    for b in range(2):
        per_word = pieces[b].row_lengths().numpy().tolist()
        expected_labels, expected_words = [IGNORE_ID], [IGNORE_ID]
        for w, n in enumerate(per_word):
            expected_labels += [tags[b][w].numpy()] + [IGNORE_ID] * (n - 1)
            expected_words += [w] * n
        length = len(expected_labels)
        assert packed["label_ids"][b].numpy().tolist()[:length] == expected_labels
        assert packed["word_ids"][b].numpy().tolist()[:length] == expected_words
        assert packed["label_ids"][b].numpy().tolist()[length:] == [IGNORE_ID] * (16 - length)
    assert (packed["token_ids"][0].numpy().tolist()[1:1 + sum(pieces[0].row_lengths().numpy())]
            == pieces[0].flat_values.numpy().tolist())


def test_reverse_mapping_recovers_word_labels(text_tokenizer):
    words = tf.ragged.constant([["superbly", "charming", "film"], ["a", "movie"]])
    tags = tf.ragged.constant([[5, 6, 7], [8, 9]], dtype=tf.int32)
    packed = pack_words(text_tokenizer, words, tags, seq_length=16)
    # Predicting the gold label everywhere must give back the word labels.
    predicted = tf.where(packed["label_ids"] >= 0, packed["label_ids"], 0)
    assert word_predictions(predicted, packed["first_piece_mask"], 3).numpy().tolist() == [[5, 6, 7], [8, 9, IGNORE_ID]]


def test_truncated_words_are_marked_missing(text_tokenizer):
    words = tf.ragged.constant([["movie"] * 10])
    tags = tf.ragged.constant([list(range(10))], dtype=tf.int32)
    packed = pack_words(text_tokenizer, words, tags, seq_length=6)  # room for 4 one-piece words
    back = word_predictions(packed["label_ids"], packed["first_piece_mask"], 10).numpy().tolist()
    assert back == [[0, 1, 2, 3] + [IGNORE_ID] * 6]

"""Tests for llm_tf/text/tokenizer.py and llm_tf/text/tflite.py."""

import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text as tft

from llm_tf.errors import ConfigError, DataError
from llm_tf.export.tflite_runtime import make_interpreter
from llm_tf.text import tflite, vocab
from llm_tf.text.tokenizer import SPECIAL_TOKENS, TextTokenizer, TokenizerConfig, load_vocab
from tests.conftest import CORPUS

TEXTS = ["The movie was GREAT!", "a dull , lifeless film", "naïve café zzqx", ""]
PAIRS = ["great fun", "no charm at all", "the plot", "bad"]


def test_outputs_are_fixed_length_bert_inputs(text_tokenizer):
    out = text_tokenizer(tf.constant(TEXTS))
    assert {k: (v.dtype, tuple(v.shape)) for k, v in out.items()} == {
        "token_ids": (tf.int32, (4, 16)), "segment_ids": (tf.int32, (4, 16)), "padding_mask": (tf.bool, (4, 16)),
    }
    ids = out["token_ids"].numpy()
    assert (ids[:, 0] == text_tokenizer.cls_id).all()
    assert ids[3].tolist()[:3] == [text_tokenizer.cls_id, text_tokenizer.sep_id, text_tokenizer.pad_id]
    assert out["padding_mask"].numpy()[3].sum() == 2


def test_same_ids_as_tensorflow_text_bert_tokenizer(vocab_dir, text_tokenizer):
    reference = tft.BertTokenizer(os.path.join(vocab_dir, "vocab.txt"), lower_case=True, token_out_type=tf.int32)
    expected = reference.tokenize(tf.constant(TEXTS)).merge_dims(-2, -1)
    assert text_tokenizer.tokenize(tf.constant(TEXTS)).to_list() == expected.to_list()


def test_deterministic_and_usable_in_tf_data(text_tokenizer):
    dataset = tf.data.Dataset.from_tensor_slices((TEXTS, PAIRS)).batch(2).map(lambda a, b: text_tokenizer(a, b))
    first = [x["token_ids"].numpy() for x in dataset]
    second = [x["token_ids"].numpy() for x in dataset]
    assert all((a == b).all() for a, b in zip(first, second))
    direct = text_tokenizer(tf.constant(TEXTS), tf.constant(PAIRS))["token_ids"].numpy()
    np.testing.assert_array_equal(np.concatenate(first), direct)


def test_saved_model_round_trip_carries_vocab_asset(tmp_path, text_tokenizer):
    module = tflite.tokenizer_module(text_tokenizer, pair=True)
    path = str(tmp_path / "saved")
    tf.saved_model.save(module, path, signatures={"serving_default": module.tokenize})
    assert os.listdir(os.path.join(path, "assets")) == ["vocab.txt"]
    loaded = tf.saved_model.load(path)
    out = loaded.signatures["serving_default"](text=tf.constant(TEXTS), text_pair=tf.constant(PAIRS))
    expected = text_tokenizer(tf.constant(TEXTS), tf.constant(PAIRS))
    for key in expected:
        np.testing.assert_array_equal(out[key].numpy(), expected[key].numpy())


@pytest.mark.parametrize("pair", [False, True])
def test_tflite_tokenizer_matches_tensorflow(text_tokenizer, pair):
    model = tflite.convert_tokenizer(text_tokenizer, pair=pair)
    runner = make_interpreter(model_content=model).get_signature_runner("serving_default")
    sentences = CORPUS + TEXTS
    inputs = {"text": np.array(sentences)}
    if pair:
        inputs["text_pair"] = np.array(list(reversed(sentences)))
    got = runner(**inputs)
    expected = text_tokenizer(tf.constant(inputs["text"]), tf.constant(inputs["text_pair"]) if pair else None)
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key].numpy())


def test_sentencepiece_tokenizer_converts_to_tflite(tmp_path):
    model = vocab.train_sentencepiece(CORPUS * 5, vocab_size=80)
    path = vocab.save_sentencepiece(str(tmp_path), model)
    tokenizer = TextTokenizer(path, kind="sentencepiece", max_seq_length=12)
    assert tokenizer.vocab[:5] == list(SPECIAL_TOKENS)
    runner = make_interpreter(model_content=tflite.convert_tokenizer(tokenizer)).get_signature_runner("serving_default")
    got = runner(text=np.array(CORPUS))["token_ids"]
    np.testing.assert_array_equal(got, tokenizer(tf.constant(CORPUS))["token_ids"].numpy())


def test_tokenize_words_gives_every_word_a_piece(text_tokenizer):
    words = tf.ragged.constant([["great", "\u200b", "film"]])
    pieces = text_tokenizer.tokenize_words(words)
    assert pieces.row_lengths(axis=2).numpy().min() >= 1
    assert pieces[0][1].numpy().tolist() == [text_tokenizer.unk_id]


def test_config_round_trip_and_errors(tmp_path, write):
    TokenizerConfig(max_seq_length=64).save(str(tmp_path))
    assert TokenizerConfig.load(str(tmp_path)).max_seq_length == 64
    with pytest.raises(DataError, match="no tokenizer config"):
        TokenizerConfig.load(str(tmp_path / "missing"))
    with pytest.raises(DataError, match="lacks the special token"):
        load_vocab(write("v.txt", "a\nb\n"))
    with pytest.raises(DataError, match=":7: token 'a' appears twice"):
        load_vocab(write("v2.txt", "\n".join(SPECIAL_TOKENS + ("a", "a")) + "\n"))
    with pytest.raises(ConfigError, match="unknown tokenizer kind"):
        TextTokenizer(write("v3.txt", "\n".join(SPECIAL_TOKENS)), kind="bpe")


def test_wordpiece_detokenize_joins_pieces_back(text_tokenizer):
    ids = text_tokenizer.tokenize(tf.constant(["the movie was great", "an unflinching look"]))
    assert text_tokenizer.detokenize(ids).numpy().tolist() == [b"the movie was great", b"an unflinching look"]

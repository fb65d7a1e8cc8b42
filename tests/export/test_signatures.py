"""Tests for llm_tf/export/signatures.py (in memory; saving is tested in test_exporter.py)."""

import numpy as np
import tensorflow as tf

from llm_tf.export import signatures
from llm_tf.models.classifier import build_classifier
from llm_tf.models.encoder import build_encoder
from llm_tf.models.token_tagger import build_token_tagger
from llm_tf.training import configs


def _encoder(text_tokenizer):
    return build_encoder(configs.ModelConfig(size="tiny"), text_tokenizer.vocab_size)


def _packed(text_tokenizer, texts, pairs=None, seq_length=16):
    inputs = text_tokenizer(tf.constant(texts), None if pairs is None else tf.constant(pairs), seq_length=seq_length)
    inputs["padding_mask"] = tf.cast(inputs["padding_mask"], tf.int32)
    return inputs


def test_classifier_outputs_match_the_model_on_full_length_inputs(text_tokenizer):
    model = build_classifier(_encoder(text_tokenizer), 3, dropout=0.0)
    serving = signatures.ClassifierServing(model, text_tokenizer, ["neg", "neu", "pos"], 16, has_pair=False)
    texts = ["the movie was great", "bad", "a charming and often affecting journey with no charm at all"]
    out = serving.classify_texts(tf.constant(texts))
    reference = model(_packed(text_tokenizer, texts), training=False).numpy()
    # Trimming padding to the longest sequence does not change the result.
    np.testing.assert_allclose(out["logits"].numpy(), reference, atol=1e-5)
    np.testing.assert_allclose(out["scores"].numpy().sum(axis=1), 1.0, atol=1e-6)
    assert out["labels"].numpy().tolist() == [["neg", "neu", "pos"][i].encode() for i in reference.argmax(axis=1)]


def test_classifier_with_pairs_and_its_signatures(text_tokenizer):
    model = build_classifier(_encoder(text_tokenizer), 2, dropout=0.0)
    serving = signatures.ClassifierServing(model, text_tokenizer, ["no", "yes"], 16, has_pair=True)
    functions = serving.signatures()
    assert sorted(functions) == ["classify", "predict_tokens", "serving_default"]
    out = functions["serving_default"](text=tf.constant(["great fun"]), text_pair=tf.constant(["the plot is thin"]))
    assert sorted(out) == ["label_ids", "labels", "scores"]
    reference = model(_packed(text_tokenizer, ["great fun"], ["the plot is thin"]), training=False)
    np.testing.assert_allclose(out["scores"].numpy(), tf.nn.softmax(reference).numpy(), atol=1e-5)
    example = tf.train.Example(features=tf.train.Features(feature={
        "text": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"great fun"])),
        "text_pair": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"the plot is thin"]))}))
    classified = functions["classify"](inputs=tf.constant([example.SerializeToString()]))
    assert classified["classes"].numpy().tolist() == [[b"no", b"yes"]]
    np.testing.assert_allclose(classified["scores"].numpy(), out["scores"].numpy(), atol=1e-6)
    tokens = functions["predict_tokens"](**_packed(text_tokenizer, ["great fun"], ["the plot is thin"]))
    np.testing.assert_allclose(tokens["logits"].numpy(), reference.numpy(), atol=1e-5)


def test_tagger_gives_one_tag_per_word_and_pads_past_seq_length(text_tokenizer):
    tags = ["O", "B-PER", "I-PER"]
    model = build_token_tagger(_encoder(text_tokenizer), len(tags), dropout=0.0)
    serving = signatures.TaggerServing(model, text_tokenizer, tags, seq_length=8)
    long_text = "the movie was great and the acting was superb indeed"  # 10 words > 6 pieces of room
    out = serving.tag_texts(tf.constant(["great fun", long_text]))
    words = out["words"].numpy()
    assert words.shape == (2, 10)
    assert words[0, :2].tolist() == [b"great", b"fun"] and words[0, 2:].tolist() == [b""] * 8
    tag_ids = out["tag_ids"].numpy()
    assert (tag_ids[0, :2] >= 0).all() and (tag_ids[0, 2:] == -1).all()
    kept = (tag_ids[1] >= 0).sum()
    assert 0 < kept <= 6 and (tag_ids[1, kept:] == -1).all()
    names = out["tags"].numpy()
    for row_ids, row_names in zip(tag_ids, names):
        assert [n.decode() for n in row_names] == [tags[i] if i >= 0 else "" for i in row_ids]
    assert ((out["scores"].numpy() > 0) == (tag_ids >= 0)).all()
    # The first sub-word's argmax is the word's tag.
    from llm_tf.text.alignment import pack_words, word_predictions

    packed = pack_words(text_tokenizer, tf.strings.split(tf.constant(["great fun"])), seq_length=8)
    logits = model({k: tf.cast(packed[k], tf.int32) for k in ("token_ids", "segment_ids", "padding_mask")},
                   training=False)
    expected = word_predictions(tf.argmax(logits, axis=-1), packed["first_piece_mask"], 2).numpy()
    assert tag_ids[0, :2].tolist() == expected[0].tolist()

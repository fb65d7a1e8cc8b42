"""Tests for llm_tf/data/prepare.py (the library call behind llm_prepare)."""

import json
import os

import pytest
import tensorflow as tf

from llm_tf.data import tfrecords
from llm_tf.data.prepare import PrepareConfig, prepare
from llm_tf.data.prepared import plot_files
from llm_tf.errors import BadRowError, ConfigError, DataError
from llm_tf.text.tokenizer import TextTokenizer
from tests.conftest import REPO
from tests.plot_checks import assert_png

SAMPLE = REPO / "samples" / "sst2_sample"
CONLL = REPO / "samples" / "conll_sample"


def config(tmp_path, name="out", **overrides):
    values = dict(output_dir=str(tmp_path / name), inputs=[str(SAMPLE / "train.tsv")], text_field="sentence",
                  vocab_size=200)
    values.update(overrides)
    return PrepareConfig(**values)


def records(directory, split):
    files = tfrecords.split_files(os.path.join(directory, "examples"), split)
    decoded = [tfrecords.from_tf_example(r) for f in files for r in tf.data.TFRecordDataset(f).as_numpy_iterator()]
    return sorted(decoded, key=lambda x: x["text"])


def test_outputs_layout_and_counts(tmp_path):
    result = prepare(config(tmp_path, eval_percent=25))
    out = tmp_path / "out"
    assert sorted(os.listdir(out)) == ["examples", "label_counts.png", "labels.txt", "schema.json", "statistics.json",
                                       "summary.json", "token_lengths.png", "tokenizer"]
    assert sorted(os.listdir(out / "tokenizer")) == ["tokenizer_config.json", "vocab.txt"]
    assert result.counts["train"] + result.counts["eval"] == 60 and result.counts["eval"] > 0
    assert (out / "labels.txt").read_text() == "0\n1\n"
    stats = json.loads((out / "statistics.json").read_text())
    assert stats["train"]["count"] == result.counts["train"]
    assert stats["train"]["tokens"]["count"] == result.counts["train"]
    assert stats["rejected"] == {"count": 0, "by_reason": {}}
    # Charts of the statistics, beside them.
    assert stats["train"]["token_histogram"]["max_seq_length"] == 128
    assert sum(stats["train"]["token_histogram"]["counts"]) == result.counts["train"]
    assert_png(out / "token_lengths.png", 600, 300)
    assert_png(out / "label_counts.png", 600, 200)
    assert plot_files(str(out)) == ["token_lengths.png", "label_counts.png"]
    schema = json.loads((out / "schema.json").read_text())
    assert schema["features"]["label"]["domain"] == ["0", "1"]
    # The tokenizer written there loads and matches the vocabulary size reported.
    assert TextTokenizer.from_directory(str(out / "tokenizer")).vocab_size == result.vocab_size
    # No temporary directory is left beside the output.
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_hash_split_and_vocabulary_are_reproducible(tmp_path):
    prepare(config(tmp_path, "a", eval_percent=30))
    prepare(config(tmp_path, "b", eval_percent=30))
    for split in ("train", "eval"):
        assert records(tmp_path / "a", split) == records(tmp_path / "b", split)
    assert (tmp_path / "a/tokenizer/vocab.txt").read_text() == (tmp_path / "b/tokenizer/vocab.txt").read_text()


def test_eval_input_file_gives_the_eval_split(tmp_path):
    result = prepare(config(tmp_path, eval_inputs=[str(SAMPLE / "dev.tsv")], num_shards=3))
    assert result.counts == {"train": 60, "eval": 16}
    assert len(tfrecords.split_files(str(tmp_path / "out/examples"), "train")) == 3
    assert result.statistics["eval"]["overlap_with_train"] == 0


def test_bad_row_fails_with_file_and_line_and_writes_nothing(tmp_path, write):
    path = write("bad.tsv", "sentence\tlabel\ngood one\t1\nbroken row\t1\textra\n")
    with pytest.raises(BadRowError) as error:
        prepare(config(tmp_path, inputs=[path]))
    assert str(error.value).startswith(f"{path}:3: wrong column count: expected 2, got 3")
    assert not (tmp_path / "out").exists()
    assert [p for p in os.listdir(tmp_path) if p.startswith(".out")] == []


def test_skip_policy_keeps_good_rows_and_reports_bad_ones(tmp_path, write):
    path = write("mixed.tsv", "sentence\tlabel\ngood one\t1\n\t0\nanother good\t0\nx\t5\nlast good\t1\n")
    result = prepare(config(tmp_path, inputs=[path], bad_rows="skip", labels=["0", "1"], eval_percent=0))
    assert result.counts == {"train": 3} and result.rejected == 2
    rejected = [json.loads(line) for line in open(tmp_path / "out/rejected.jsonl")]
    assert [(r["line"], r["reason"]) for r in rejected] == [
        (3, "empty text in field 'sentence'"),
        (5, "unknown label '5' in field 'label' (expected one of: 0, 1)"),
    ]
    assert result.statistics["rejected"]["by_reason"] == {"empty text": 1, "unknown label": 1}


def test_existing_output_needs_overwrite(tmp_path):
    prepare(config(tmp_path))
    with pytest.raises(ConfigError, match="output directory exists and is not empty"):
        prepare(config(tmp_path))
    prepare(config(tmp_path, overwrite=True, eval_percent=0))
    assert "eval" not in json.loads((tmp_path / "out/statistics.json").read_text())


def test_validation_reports_unseen_label(tmp_path, write):
    prepare(config(tmp_path, "reference"))
    new = write("new.tsv", "sentence\tlabel\n" + "".join(f"a fine film number {i}\t{i % 3}\n" for i in range(30)))
    result = prepare(config(tmp_path, inputs=[new], validate_against=str(tmp_path / "reference/schema.json"),
                            eval_percent=0))
    kinds = {a["kind"] for a in result.anomalies}
    assert "unseen_label" in kinds
    report = json.loads((tmp_path / "out/anomalies.json").read_text())
    assert report["anomalies"] == result.anomalies


def test_no_usable_example_is_an_error(tmp_path, write):
    path = write("empty_rows.tsv", "sentence\tlabel\n\t1\n")
    with pytest.raises(DataError, match="no usable training example .* \\(1 rows rejected\\)"):
        prepare(config(tmp_path, inputs=[path], bad_rows="skip"))


def test_conll_input_token_classification(tmp_path):
    result = prepare(config(tmp_path, inputs=[str(CONLL / "train.txt")], eval_inputs=[str(CONLL / "dev.txt")],
                            task="token_classification", lower_case=False, vocab_size=120))
    assert result.counts == {"train": 6, "eval": 2}
    assert result.labels == ["O", "B-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    assert result.statistics["train"]["words"]["max"] == 9


def test_jsonl_pairs_and_sentencepiece(tmp_path, write):
    lines = [json.dumps({"premise": f"the cat sat on mat {i}", "hypothesis": f"a cat is sitting {i}", "y": i % 2})
             for i in range(40)]
    path = write("pairs.jsonl", "\n".join(lines) + "\n")
    result = prepare(config(tmp_path, inputs=[path], text_field="premise", text_pair_field="hypothesis",
                            label_field="y", tokenizer="sentencepiece", vocab_size=60))
    assert sorted(os.listdir(tmp_path / "out/tokenizer")) == ["spm.model", "spm.vocab", "tokenizer_config.json"]
    assert 5 < result.vocab_size <= 60
    assert "pair_chars" in result.statistics["train"]


def test_given_vocabulary_is_used(tmp_path, vocab_dir):
    result = prepare(config(tmp_path, vocab_file=os.path.join(vocab_dir, "vocab.txt")))
    assert (tmp_path / "out/tokenizer/vocab.txt").read_text() == open(os.path.join(vocab_dir, "vocab.txt")).read()
    assert result.vocab_size == len(open(os.path.join(vocab_dir, "vocab.txt")).read().split())


def test_unlabelled_text(tmp_path, write):
    path = write("corpus.txt", "first sentence of text\nsecond sentence\n\nthird one here\n")
    result = prepare(config(tmp_path, inputs=[path], task="text", text_field="text", eval_percent=0, vocab_size=50))
    assert result.counts == {"train": 3} and result.labels == []
    assert not (tmp_path / "out/labels.txt").exists()
    assert plot_files(str(tmp_path / "out")) == ["token_lengths.png"]            # no label chart


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(inputs=[]), "either input files"),
        (dict(eval_percent=100), "--eval_percent must be in"),
        (dict(vocab_size=3), "--vocab_size must exceed 5"),
        (dict(max_seq_length=2), "--max_seq_length must be >= 3"),
        (dict(inputs=["nope/*.tsv"]), "nope/\\*.tsv: no file matches"),
        (dict(text_field="review"), "missing column 'review'"),
    ],
)
def test_configuration_errors(tmp_path, overrides, message):
    with pytest.raises((ConfigError, DataError), match=message):
        prepare(config(tmp_path, **overrides))

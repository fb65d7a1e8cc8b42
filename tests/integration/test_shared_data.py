"""Integration tests of the data layer on the real data sets in ../shared/data."""

import json

import pytest

from llm_tf.data import readers
from llm_tf.data.prepare import PrepareConfig, prepare
from llm_tf.data.rows import Row
from llm_tf.errors import BadRowError


def test_sst2_dev(tmp_path, shared_data):
    result = prepare(PrepareConfig(output_dir=str(tmp_path / "sst2"), inputs=[str(shared_data / "sst2/dev.tsv")],
                                   text_field="sentence", eval_percent=0, vocab_size=2000))
    assert result.counts == {"train": 872} and result.rejected == 0
    assert result.labels == ["0", "1"]
    labels = result.statistics["train"]["labels"]
    assert labels["0"]["count"] + labels["1"]["count"] == 872
    assert result.statistics["train"]["oov_rate"] < 0.01


def test_conll_dev_sentences_tags_and_docstart(tmp_path, shared_data):
    source = readers.open_source(str(shared_data / "conll2003/dev.txt"))
    sentences = [row for row in source if isinstance(row, Row)]
    assert len(sentences) == 3250  # 3,466 blocks less 216 -DOCSTART- markers
    assert sentences[0].fields["tokens"][:3] == ["CRICKET", "-", "LEICESTERSHIRE"]
    result = prepare(PrepareConfig(output_dir=str(tmp_path / "conll"), inputs=[str(shared_data / "conll2003/dev.txt")],
                                   task="token_classification", eval_percent=0, lower_case=False, vocab_size=4000))
    assert result.counts == {"train": 3250}
    assert result.labels == ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]


def imdb_config(tmp_path, vocab_dir, **overrides):
    # A given vocabulary keeps this test on the reader and bad-row policy: learning a WordPiece
    # vocabulary from these long reviews takes about a minute on 2 cores.
    values = dict(output_dir=str(tmp_path / "imdb"), inputs=[], text_field="review", label_field="sentiment",
                  min_text_chars=20, eval_percent=0, vocab_file=f"{vocab_dir}/vocab.txt")
    values.update(overrides)
    return PrepareConfig(**values)


def test_imdb_junk_row_fails_with_its_line(tmp_path, shared_data, vocab_dir):
    path = str(shared_data / "imdb/reviews.csv")
    with pytest.raises(BadRowError) as error:
        prepare(imdb_config(tmp_path, vocab_dir, inputs=[path]))
    assert str(error.value).startswith(f"{path}:2501: text too short in field 'review': 8 chars < --min_text_chars=20")
    assert not (tmp_path / "imdb").exists()


def test_imdb_skip_keeps_every_review_and_rejects_the_junk_row(tmp_path, shared_data, vocab_dir):
    path = str(shared_data / "imdb/reviews.csv")
    result = prepare(imdb_config(tmp_path, vocab_dir, inputs=[path], bad_rows="skip"))
    # The file holds 2,500 data rows: 2,499 quoted multi-sentence reviews and the junk row.
    assert result.counts == {"train": 2499} and result.rejected == 1
    assert result.labels == ["negative", "positive"]
    rejected = [json.loads(line) for line in open(tmp_path / "imdb/rejected.jsonl")]
    assert [(r["line"], r["raw"]) for r in rejected] == [(2501, "Bahubali,positive")]
    assert result.statistics["train"]["chars"]["max"] > 5000  # long quoted reviews survived whole

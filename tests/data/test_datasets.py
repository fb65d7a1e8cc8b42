"""Tests for llm_tf/data/datasets.py."""

import pytest

from llm_tf.data.bad_rows import BadRowHandler
from llm_tf.data.datasets import files_dataset
from llm_tf.data.examples import TaskSpec
from llm_tf.errors import BadRowError, DataError


def test_streams_classification_examples(write):
    path = write("a.tsv", "sentence\tlabel\nfirst one\t1\nsecond one\t0\n")
    with BadRowHandler("fail") as bad_rows:
        dataset = files_dataset([path], TaskSpec(text_field="sentence"), bad_rows)
        batch = next(iter(dataset.batch(8)))
    assert batch["text"].numpy().tolist() == [b"first one", b"second one"]
    assert batch["label"].numpy().tolist() == [b"1", b"0"]


def test_skip_policy_inside_tf_data(write, tmp_path):
    path = write("a.jsonl", '{"tokens": ["EU", "rejects"], "tags": ["B-ORG", "O"]}\n'
                            'not json\n{"tokens": ["x"], "tags": []}\n')
    with BadRowHandler("skip", str(tmp_path / "rejected.jsonl")) as bad_rows:
        examples = list(files_dataset([path], TaskSpec(task="token_classification"), bad_rows).as_numpy_iterator())
    assert [e["tokens"].tolist() for e in examples] == [[b"EU", b"rejects"]]
    assert bad_rows.count == 2
    assert (tmp_path / "rejected.jsonl").read_text().count("\n") == 2


def test_fail_policy_stops_iteration_with_file_and_line(write):
    path = write("a.tsv", "text\tlabel\nok\t1\n\t0\n")
    with pytest.raises(BadRowError, match=f"^{path}:3: empty text in field 'text'"):
        with BadRowHandler("fail") as bad_rows:
            list(files_dataset([path], TaskSpec(), bad_rows))


def test_missing_column_fails_before_iteration(write):
    path = write("a.tsv", "text\tlabel\nok\t1\n")
    with pytest.raises(DataError, match="missing column 'sentence'"):
        files_dataset([path], TaskSpec(text_field="sentence"), BadRowHandler("fail"))

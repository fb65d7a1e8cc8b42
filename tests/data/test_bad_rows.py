"""Tests for llm_tf/data/bad_rows.py."""

import json
import os

import pytest

from llm_tf.data.bad_rows import BadRowHandler
from llm_tf.data.rows import RowProblem
from llm_tf.errors import BadRowError, DataError


def test_fail_policy_raises_file_line_reason():
    handler = BadRowHandler("fail")
    with pytest.raises(BadRowError) as error:
        handler.handle(RowProblem("data.tsv", 12, "wrong column count: expected 2, got 3"))
    assert str(error.value).startswith("data.tsv:12: wrong column count: expected 2, got 3")
    assert "--bad_rows=skip" in str(error.value)


def test_skip_policy_writes_every_rejected_row_with_reason(tmp_path):
    path = str(tmp_path / "rejected.jsonl")
    with BadRowHandler("skip", path) as handler:
        handler.handle(RowProblem("a.tsv", 3, "empty text in field 'text'", "\t1"))
        handler.handle(RowProblem("a.tsv", 9, "unknown label '7' in field 'label' (expected one of: 0, 1)", "x\t7"))
        handler.handle(RowProblem("a.tsv", 10, "empty text in field 'text'", "\t0"))
    assert handler.count == 3
    assert handler.by_reason == {"empty text": 2, "unknown label": 1}
    rows = [json.loads(line) for line in open(path, encoding="utf-8")]
    assert [(r["file"], r["line"], r["raw"]) for r in rows] == [("a.tsv", 3, "\t1"), ("a.tsv", 9, "x\t7"),
                                                                 ("a.tsv", 10, "\t0")]
    assert rows[1]["reason"].startswith("unknown label '7'")


def test_reject_file_directory_is_created(tmp_path):
    path = tmp_path / "new" / "dir" / "rejected.jsonl"
    with BadRowHandler("skip", str(path)) as handler:
        handler.handle(RowProblem("a.tsv", 3, "blank line"))
    assert [json.loads(line)["line"] for line in open(path, encoding="utf-8")] == [3]


def test_reject_file_is_not_left_behind_on_failure(tmp_path):
    path = str(tmp_path / "rejected.jsonl")
    with pytest.raises(RuntimeError):
        with BadRowHandler("skip", path) as handler:
            handler.handle(RowProblem("a.tsv", 3, "blank line"))
            raise RuntimeError("crash")
    assert os.listdir(tmp_path) == []


def test_no_reject_file_without_rejects(tmp_path):
    with BadRowHandler("skip", str(tmp_path / "rejected.jsonl")):
        pass
    assert os.listdir(tmp_path) == []


def test_unknown_policy():
    with pytest.raises(DataError, match="unknown bad-row policy 'ignore'"):
        BadRowHandler("ignore")

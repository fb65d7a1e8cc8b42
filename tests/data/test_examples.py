"""Tests for llm_tf/data/examples.py."""

import pytest

from llm_tf.data.examples import TaskSpec, example_key, to_example
from llm_tf.data.rows import Row, RowProblem
from llm_tf.errors import DataError


def row(**fields):
    return Row("f.tsv", 7, fields, "raw")


def test_classification_example_uses_canonical_names():
    spec = TaskSpec(text_field="sentence", label_field="y")
    assert to_example(row(sentence="  hi there ", y="1"), spec) == {"text": "hi there", "label": "1"}


def test_pair_example():
    spec = TaskSpec(text_field="q", text_pair_field="a", label_field="y")
    assert to_example(row(q="why", a="because", y=0), spec) == {"text": "why", "text_pair": "because", "label": "0"}


@pytest.mark.parametrize(
    "fields, spec, reason",
    [
        ({"text": "   ", "label": "1"}, TaskSpec(), "empty text in field 'text'"),
        ({"text": "hi", "label": "1"}, TaskSpec(min_text_chars=5),
         "text too short in field 'text': 2 chars < --min_text_chars=5"),
        ({"text": "hello", "label": "1"}, TaskSpec(max_text_chars=3),
         "text too long in field 'text': 5 chars > --max_text_chars=3"),
        ({"text": "hi", "label": "7"}, TaskSpec(labels=("0", "1")),
         "unknown label '7' in field 'label' (expected one of: 0, 1)"),
        ({"label": "1"}, TaskSpec(), "missing field 'text'"),
        ({"text": "hi"}, TaskSpec(), "missing field 'label'"),
        ({"text": 3, "label": "1"}, TaskSpec(), "field 'text' must be a string, got int"),
        ({"text": "hi", "label": True}, TaskSpec(), "field 'label' must be a string or integer, got bool"),
        ({"text": "hi", "label": " "}, TaskSpec(), "empty label in field 'label'"),
    ],
)
def test_bad_examples_name_field_and_reason(fields, spec, reason):
    problem = to_example(row(**fields), spec)
    assert isinstance(problem, RowProblem)
    assert problem.describe() == f"f.tsv:7: {reason}"


def test_token_classification_checks_lengths_and_tags():
    spec = TaskSpec(task="token_classification", labels=("O", "B-PER"))
    assert to_example(row(tokens=["Ann"], tags=["B-PER"]), spec) == {"tokens": ["Ann"], "tags": ["B-PER"]}
    assert to_example(row(tokens=["a", "b"], tags=["O"]), spec).reason == "2 tokens but 1 tags"
    assert to_example(row(tokens=["a"], tags=["B-LOC"]), spec).reason.startswith("unknown tag 'B-LOC'")
    assert to_example(row(tokens=[], tags=[]), spec).reason == "empty token list in field 'tokens'"


def test_text_task_needs_no_label():
    assert to_example(row(text="just text"), TaskSpec(task="text", label_field=None)) == {"text": "just text"}


def test_check_columns_names_the_missing_column():
    spec = TaskSpec(text_field="sentence")
    with pytest.raises(DataError, match="a.tsv: missing column 'sentence' \\(columns: text, label"):
        spec.check_columns("a.tsv", ("text", "label"))
    spec.check_columns("a.jsonl", None)  # unknown columns: checked per row instead


def test_unknown_task():
    with pytest.raises(DataError, match="unknown task 'ner'"):
        TaskSpec(task="ner")


def test_example_key():
    assert example_key({"text": "a", "label": "1"}) == "a"
    assert example_key({"text": "a", "text_pair": "b"}) == "a\tb"
    assert example_key({"tokens": ["a", "b"], "tags": ["O", "O"]}) == "a b"


def test_text_field_alternatives_and_conll_sentences_as_text():
    spec = TaskSpec(task="text", text_field="sentence,review", label_field=None)
    assert to_example(row(review="a long review"), spec) == {"text": "a long review"}
    assert to_example(row(sentence="short one", review="ignored"), spec) == {"text": "short one"}
    assert to_example(row(tokens=["EU", "rejects", "it"], tags=["B-ORG", "O", "O"]), spec) == {"text": "EU rejects it"}
    spec.check_columns("a.csv", ("review", "sentiment"))
    spec.check_columns("ner.txt", ("tokens", "pos", "chunk", "tags"))
    with pytest.raises(DataError, match="missing column 'sentence' or 'review'"):
        spec.check_columns("b.tsv", ("text", "label"))


def test_canonical_features_per_task():
    assert TaskSpec().features == ["text", "label"]
    assert TaskSpec(text_pair_field="b").features == ["text", "text_pair", "label"]
    assert TaskSpec(task="token_classification").features == ["tokens", "tags"]
    assert TaskSpec(task="text", label_field=None).features == ["text"]

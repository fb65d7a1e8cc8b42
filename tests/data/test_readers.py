"""Tests for llm_tf/data/readers.py."""

import gzip

import pytest

from llm_tf.data import readers
from llm_tf.data.rows import Row, RowProblem
from llm_tf.errors import DataError


def items(path, **kwargs):
    return list(readers.open_source(path, **kwargs))


def test_tsv_rows_have_named_fields_and_line_numbers(write):
    path = write("a.tsv", "sentence\tlabel\nhello world\t1\nbye\t0\n")
    source = readers.open_source(path)
    assert source.format == "tsv"
    assert source.columns == ("sentence", "label")
    rows = list(source)
    assert [(r.line, dict(r.fields)) for r in rows] == [
        (2, {"sentence": "hello world", "label": "1"}),
        (3, {"sentence": "bye", "label": "0"}),
    ]


def test_tsv_wrong_column_count_and_blank_line_are_problems(write):
    path = write("a.tsv", "sentence\tlabel\nok\t1\ntoo\tmany\tcols\n\nfine\t0\n")
    result = items(path)
    problems = [i for i in result if isinstance(i, RowProblem)]
    assert [p.describe() for p in problems] == [
        f"{path}:3: wrong column count: expected 2, got 3",
        f"{path}:4: blank line",
    ]
    assert [r.line for r in result if isinstance(r, Row)] == [2, 5]


def test_invalid_utf8_is_reported_with_its_line(write):
    path = write("a.tsv", b"sentence\tlabel\ngood\t1\nbad \xff\xfe bytes\t0\n")
    problems = [i for i in items(path) if isinstance(i, RowProblem)]
    assert len(problems) == 1
    assert problems[0].describe() == f"{path}:3: invalid UTF-8 in column 'sentence'"
    assert problems[0].to_json()["raw"] == "bad \\xff\\xfe bytes\t0"


def test_csv_quoted_fields_with_commas_quotes_and_newlines(write):
    content = 'review,sentiment\r\n"Great, really ""great"" film.\nSecond line.",positive\r\nplain,negative\r\n'
    rows = items(write("r.csv", content))
    assert [r.line for r in rows] == [2, 4]
    assert rows[0].fields["review"] == 'Great, really "great" film.\nSecond line.'
    assert rows[1].fields == {"review": "plain", "sentiment": "negative"}


def test_csv_bad_quoting_is_a_problem_not_a_crash(write):
    content = 'text,label\n"unterminated,1\n'
    result = items(write("r.csv", content))
    assert len(result) == 1 and isinstance(result[0], RowProblem)
    assert result[0].line == 2 and result[0].reason.startswith("bad CSV")


def test_csv_wrong_column_count(write):
    path = write("r.csv", "text,label\na,1\nb,1,extra\n")
    problems = [i for i in items(path) if isinstance(i, RowProblem)]
    assert [p.describe() for p in problems] == [f"{path}:3: wrong column count: expected 2, got 3"]


def test_header_less_csv_with_given_column_names(write):
    rows = items(write("r.csv", "a,1\nb,0\n"), column_names=["text", "label"])
    assert [dict(r.fields) for r in rows] == [{"text": "a", "label": "1"}, {"text": "b", "label": "0"}]


def test_jsonl_bad_json_and_non_objects(write):
    path = write("a.jsonl", '{"text": "ok", "label": 1}\n{"text": broken}\n[1, 2]\n\n{"text": "fine"}\n')
    result = items(path)
    assert [r.line for r in result if isinstance(r, Row)] == [1, 5]
    assert [p.describe() for p in result if isinstance(p, RowProblem)] == [
        f"{path}:2: bad JSON: Expecting value at column 10",
        f"{path}:3: bad JSON: expected an object, got list",
        f"{path}:4: blank line",
    ]


def test_text_line_and_document_modes(write):
    path = write("c.txt", "first line\nsecond line\n\nthird para\n")
    assert [(r.line, r.fields["text"]) for r in items(path)] == [
        (1, "first line"), (2, "second line"), (4, "third para")
    ]
    assert [(r.line, r.fields["text"]) for r in items(path, text_mode="document")] == [
        (1, "first line\nsecond line"), (4, "third para")
    ]


CONLL = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER
"""


def test_conll_sentences_skip_docstart_and_name_columns(write):
    path = write("ner.txt", CONLL)
    source = readers.open_source(path)
    assert source.format == "conll"
    rows = list(source)
    assert [r.line for r in rows] == [3, 7]
    assert rows[0].fields["tokens"] == ["EU", "rejects", "German"]
    assert rows[0].fields["tags"] == ["B-ORG", "O", "B-MISC"]
    assert rows[1].fields["pos"] == ["NNP", "NNP"]
    assert source.columns == ("tokens", "pos", "chunk", "tags")


def test_conll_wrong_column_count_rejects_the_sentence(write):
    path = write("ner.conll", "EU NNP B-NP B-ORG\nrejects VBZ O\n\nPeter NNP B-NP B-PER\n")
    result = items(path)
    assert isinstance(result[0], RowProblem)
    assert result[0].describe() == f"{path}:2: wrong column count: expected 4, got 3"
    assert isinstance(result[1], Row) and result[1].line == 4


def test_gzip_input(write, tmp_path):
    path = tmp_path / "a.tsv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("text\tlabel\nzipped\t1\n")
    rows = items(str(path))
    assert rows[0].fields == {"text": "zipped", "label": "1"}


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("missing.tsv", None, "no such file"),
        ("empty.tsv", "", "file is empty"),
        ("noheader.csv", "\n\n", "missing header line"),
        ("dup.tsv", "text\ttext\nx\ty\n", "duplicate column name(s) in header: text"),
        ("data.xyz", "x", "cannot tell the format from the extension"),
    ],
)
def test_file_level_errors_are_one_clear_line(write, tmp_path, name, content, message):
    path = str(tmp_path / name) if content is None else write(name, content)
    with pytest.raises(DataError) as error:
        readers.open_source(path)
    assert message in str(error.value)
    assert path in str(error.value)
    assert "\n" not in str(error.value)


def test_unknown_format_name():
    with pytest.raises(DataError, match="unknown format 'xml'"):
        readers.detect_format("a.tsv", "xml")


def test_reading_twice_gives_the_same_rows(write):
    source = readers.open_source(write("a.tsv", "text\tlabel\na\t1\nb\t0\n"))
    assert list(source) == list(source)

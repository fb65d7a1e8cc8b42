"""Tests for llm_tf/export/representative.py: texts from TSV, text files and prepared splits."""

import pytest

from llm_tf.errors import DataError
from llm_tf.export import representative


def test_tsv_with_header_reads_text_and_labels(write):
    path = write("dev.tsv", "sentence\tlabel\na fine film\t1\n\t0\nawful\t0\nmeh\t1\n")
    found = representative.read_text_file(path)
    assert found.texts == ["a fine film", "awful", "meh"]  # the blank text is skipped
    assert found.labels == ["1", "0", "1"]
    assert representative.read_text_file(path, limit=2).texts == ["a fine film", "awful"]


def test_tsv_columns_by_name_and_without_labels(write):
    path = write("data.tsv", "id\treview\n1\tgreat\n2\tbad\n")
    found = representative.read_text_file(path)
    assert found.texts == ["great", "bad"] and found.labels is None
    with pytest.raises(DataError, match="no text column"):
        representative.read_text_file(path, text_field="body")


def test_plain_text_one_per_line(write):
    path = write("texts.txt", "first line\n\n  \nsecond line\r\n")
    found = representative.read_text_file(path)
    assert found.texts == ["first line", "second line"] and found.labels is None


def test_prepared_split(prepared_sample):
    found = representative.read_prepared_split(prepared_sample, "train", limit=5)
    assert len(found.texts) == 5 and len(found.labels) == 5
    assert set(found.labels) <= {"0", "1"} and found.source.endswith(":train")
    assert len(representative.read_prepared_split(prepared_sample, "eval").texts) == 16


def test_representative_texts_sources_and_errors(write, prepared_sample, tmp_path):
    assert len(representative.representative_texts(7, prepared_dir=prepared_sample).texts) == 7
    assert representative.representative_texts(3, path=write("r.txt", "a\nb\n")).texts == ["a", "b"]
    with pytest.raises(DataError, match="representative dataset is empty"):
        representative.representative_texts(3, path=write("empty.txt", "\n\n"))
    with pytest.raises(DataError, match="representative dataset is empty"):
        representative.representative_texts(3, path=write("empty.tsv", "sentence\tlabel\n"))
    with pytest.raises(DataError, match="count must be >= 1"):
        representative.representative_texts(0, prepared_dir=prepared_sample)
    with pytest.raises(DataError, match="no source"):
        representative.representative_texts(3)
    with pytest.raises(DataError, match="no such file"):
        representative.representative_texts(3, path=str(tmp_path / "missing.tsv"))
    with pytest.raises(DataError, match="prepared data directory not found"):
        representative.representative_texts(3, prepared_dir=str(tmp_path / "moved"))

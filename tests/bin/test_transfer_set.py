"""Tests for llm_tf/bin/transfer_set.py, run as the installed console script."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from llm_tf.data.transfer_set import parse_label_map
from llm_tf.errors import ConfigError


def llm_transfer_set(*args, env=None):
    executable = shutil.which("llm_transfer_set") or os.path.join(os.path.dirname(sys.executable), "llm_transfer_set")
    return subprocess.run([executable, *args], check=False, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})})


@pytest.fixture
def inputs(write):
    train = write("train.tsv", "sentence\tlabel\n" + "".join(
        f"{text}\t{label}\n" for text, label in [("a gripping and well-acted film", "1"),
                                                 ("dull , lifeless and long", "0"),
                                                 ("the best thing all year", "1"),
                                                 ("a dev sentence planted here", "0")]))
    extra = write("reviews.csv", 'review,sentiment\n'
                                 '"Loved every minute of it.<br /><br />Go and see it now!",positive\n'
                                 '"I left early and never looked back.",negative\n"What is this even about?",meh\n')
    dev = write("dev.tsv", "sentence\tlabel\nA dev sentence, planted here.\t0\n")
    return train, extra, dev


def test_success_prints_the_summary_json_and_exits_zero(tmp_path, inputs):
    train, extra, dev = inputs
    out = tmp_path / "transfer" / "set.tsv"
    args = [f"--labelled={train}", f"--extra={extra}", "--label_map=positive:1,negative:0", f"--exclude={dev}",
            f"--output={out}"]
    result = llm_transfer_set(*args, env={"PYTHONHASHSEED": "1"})
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["counts"] == {"labelled": 3, "extra": 3, "augmented": 0}
    assert summary["excluded"] == {"labelled": 1, "extra": 0, "augmented": 0}
    assert summary["bad_rows"]["rows"] == [(f"{extra}:4: unmapped label 'meh' (--label_map maps negative, positive; "
                                            "the labelled files' labels are 0, 1)")]
    assert json.loads((tmp_path / "transfer" / "set.tsv.summary.json").read_text())["rows"] == 6
    lines = out.read_text().splitlines()
    assert lines[0] == "sentence\tlabel\tsource" and len(lines) == 7
    assert "Go and see it now!\t1\textra" in lines
    # Another process (another str hash seed) writes the same bytes.
    again = llm_transfer_set(*args[:-1], f"--output={tmp_path / 'again.tsv'}", env={"PYTHONHASHSEED": "2"})
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "again.tsv").read_bytes() == out.read_bytes()


def test_errors_exit_one_with_one_line(tmp_path, inputs):
    train, _, _ = inputs
    missing = tmp_path / "nope.tsv"
    result = llm_transfer_set(f"--labelled={train}", f"--extra={missing}", f"--output={tmp_path / 'out.tsv'}")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"llm_transfer_set: error: {missing}: no such file (--extra)"]
    assert result.stdout == ""
    assert not (tmp_path / "out.tsv").exists()


def test_a_scheme_tensorflow_cannot_open_is_one_line(inputs):
    train, _, _ = inputs
    result = llm_transfer_set(f"--labelled={train}", "--output=nope://b/set.tsv")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "llm_transfer_set: error: --output: nope://b/set.tsv: TensorFlow has no file system for 'nope://' here"]


def test_parse_label_map():
    assert parse_label_map(["positive:1", " negative : 0 "]) == {"positive": "1", "negative": "0"}
    assert parse_label_map([]) == {}
    with pytest.raises(ConfigError, match=r"^--label_map: 'positive' is not FROM:TO"):
        parse_label_map(["positive"])
    with pytest.raises(ConfigError, match=r"^--label_map: 'a' is mapped twice \(1 and 2\)"):
        parse_label_map(["a:1", "a:2"])

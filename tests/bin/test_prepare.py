"""Tests for llm_tf/bin/prepare.py, run as the installed console script."""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.bin.start_line import start_lines, without_start_line
from tests.conftest import REPO

SAMPLE = REPO / "samples" / "sst2_sample"


def llm_prepare(*args, cwd=None):
    executable = shutil.which("llm_prepare") or os.path.join(os.path.dirname(sys.executable), "llm_prepare")
    return subprocess.run([executable, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_success_prints_a_summary_and_exits_zero(tmp_path):
    out = tmp_path / "prepared"
    result = llm_prepare(f"--input={SAMPLE / 'train.tsv'}", f"--eval_input={SAMPLE / 'dev.tsv'}",
                         "--text_field=sentence", "--vocab_size=200", f"--output_dir={out}")
    assert result.returncode == 0, result.stderr
    assert f"wrote {out}" in result.stdout
    assert "train: 60 examples" in result.stdout and "eval: 16 examples" in result.stdout
    assert "labels (2): 0, 1" in result.stdout
    assert len(start_lines(result.stderr)) == 1 and without_start_line(result.stderr) == "", result.stderr
    assert (out / "tokenizer" / "vocab.txt").is_file()


def test_malformed_file_gives_one_line_with_file_line_reason(tmp_path, write):
    path = write("bad.tsv", "sentence\tlabel\nfine\t1\nno label column here\n")
    result = llm_prepare(f"--input={path}", "--text_field=sentence", f"--output_dir={tmp_path / 'out'}")
    assert result.returncode == 1
    assert without_start_line(result.stderr).splitlines() == [
        f"llm_prepare: error: {path}:3: wrong column count: expected 2, got 1 "
        "(use --bad_rows=skip to skip bad rows and write them to a file)"
    ]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--input=/no/such/file.tsv"], "llm_prepare: error: /no/such/file.tsv: no such file"),
        (["--input={sample}", "--text_field=review"], "llm_prepare: error: {sample}: missing column 'review'"),
        (["--input={sample}", "--bad_rows=maybe"], "FATAL Flags parsing error: flag --bad_rows=maybe"),
    ],
)
def test_bad_invocations_exit_non_zero_with_one_clear_line(tmp_path, args, message):
    sample = str(SAMPLE / "train.tsv")
    args = [a.format(sample=sample) for a in args]
    result = llm_prepare(*args, f"--output_dir={tmp_path / 'out'}")
    assert result.returncode != 0
    first = without_start_line(result.stderr).strip().splitlines()[0]
    assert first.startswith(message.format(sample=sample)), result.stderr
    assert "Traceback" not in result.stderr


def test_flagfile_json_and_anomalies_exit_code(tmp_path, write):
    reference = tmp_path / "reference"
    flagfile = write("prepare.flags", "\n".join([
        f"--input={SAMPLE / 'train.tsv'}", "--text_field=sentence", "--vocab_size=200", f"--output_dir={reference}",
        "--json",
    ]) + "\n")
    result = llm_prepare(f"--flagfile={flagfile}")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["counts"]["train"] + json.loads(result.stdout)["counts"].get("eval", 0) == 60
    drifted = write("drifted.tsv", "sentence\tlabel\n" + "".join(f"a dull film {i}\t0\n" for i in range(40)))
    result = llm_prepare(f"--input={drifted}", "--text_field=sentence", "--vocab_size=100", "--eval_percent=0",
                         f"--validate_against={reference / 'schema.json'}", f"--output_dir={tmp_path / 'new'}")
    assert result.returncode == 1
    assert "ANOMALY [train] label_drift" in result.stdout
    assert result.stderr.strip().endswith(f"(report: {tmp_path / 'new'}/anomalies.json)")


def test_helpfull_lists_the_flags():
    result = llm_prepare("--helpfull")
    # absl's listing of every flag; exit 0 like --help (absl itself exits 1 after help).
    assert result.returncode == 0 and result.stderr == ""
    for flag in ("--input", "--bad_rows", "--vocab_size", "--max_seq_length", "--tfds", "--validate_against",
                 "--flagfile"):
        assert flag in result.stdout


def test_preset_gives_the_vocabulary_and_lower_casing(tmp_path):
    from tests.preset_fixtures import save_bert_preset

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "film", "a", "fine", "##s"]
    preset = save_bert_preset(str(tmp_path / "preset"), vocab, lowercase=False)
    out = tmp_path / "prepared"
    result = llm_prepare(f"--input={SAMPLE / 'train.tsv'}", "--text_field=sentence", f"--preset={preset}",
                         f"--output_dir={out}")
    assert result.returncode == 0, result.stderr
    assert "vocabulary: 10 tokens" in result.stdout
    settings = json.loads((out / "tokenizer" / "tokenizer_config.json").read_text())
    assert settings["lower_case"] is False and settings["kind"] == "wordpiece"
    assert (out / "tokenizer" / settings["vocab_file"]).read_text().split() == vocab
    # Contradicting flags: see tests/models/test_presets.py::test_tokenizer_settings_for_llm_prepare.


@pytest.mark.parametrize("output_dir, line", [
    ("nope://b/out", r"--output_dir: nope://b/out: TensorFlow has no file system for 'nope://' here"),
    ("gs://llm-tf-no-such-bucket/out", r"gs://llm-tf-no-such-bucket/out: \w+: .+"),  # no network, or no such bucket
], ids=["unknown-scheme", "unreachable-bucket"])
def test_an_unusable_bucket_is_one_line_and_nothing_is_written_locally(tmp_path, output_dir, line):
    result = llm_prepare(f"--input={SAMPLE / 'train.tsv'}", "--text_field=sentence", "--vocab_size=200",
                         f"--output_dir={output_dir}", cwd=tmp_path)
    assert result.returncode == 1
    assert re.fullmatch(f"llm_prepare: error: {line}\n", without_start_line(result.stderr)), result.stderr
    assert os.listdir(tmp_path) == []  # no local "nope:" or "gs:" directory

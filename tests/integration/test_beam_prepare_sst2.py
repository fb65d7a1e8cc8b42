"""SST-2 train + dev through ``llm_prepare`` in-process and ``llm_prepare --runner=DirectRunner``: the same output.

Both runs go through the installed console script (a subprocess each). The two directories hold
the same files with the same bytes: the TFRecord shards (same examples per split, same order),
the vocabulary, ``labels.txt``, ``statistics.json``, ``schema.json`` and the charts;
``summary.json`` differs only in the run's details. ``benchmarks/beam_prepare.py`` times the two.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("apache_beam")

from llm_tf.data.beam_prepare import summary_without_run_details  # noqa: E402
from tests.bin.start_line import without_start_line  # noqa: E402
from tests.data.test_beam_prepare import files  # noqa: E402


def llm_prepare(*args):
    executable = shutil.which("llm_prepare") or os.path.join(os.path.dirname(sys.executable), "llm_prepare")
    return subprocess.run([executable, *args], capture_output=True, text=True, timeout=600)


def _messages(stderr: str) -> list[str]:
    """The log lines without their time stamps (absl's ``I1205 16:23:44.32 123 file.py:1] message``)."""
    return [line.split("] ", 1)[-1] for line in without_start_line(stderr).splitlines()]


def test_sst2_train_and_dev_are_prepared_identically_on_beam(tmp_path, shared_data):
    common = [f"--input={shared_data / 'sst2/train.tsv'}", f"--eval_input={shared_data / 'sst2/dev.tsv'}",
              "--text_field=sentence", "--label_field=label", "--vocab_size=8000", "--json"]
    local = llm_prepare(*common, f"--output_dir={tmp_path / 'local'}")
    assert local.returncode == 0, local.stderr
    beam = llm_prepare(*common, f"--output_dir={tmp_path / 'beam'}", "--runner=DirectRunner")
    assert beam.returncode == 0, beam.stderr
    # Beam's own notes stay quiet on a local runner: stderr says nothing the in-process run does not.
    assert set(_messages(beam.stderr)) <= set(_messages(local.stderr)), beam.stderr
    ours, theirs = files(str(tmp_path / "beam")), files(str(tmp_path / "local"))
    assert sorted(ours) == sorted(theirs)
    assert sorted(n for n in ours if n.startswith("examples/")) == [
        "examples/eval-00000-of-00001.tfrecord", "examples/train-00000-of-00002.tfrecord",
        "examples/train-00001-of-00002.tfrecord"]
    for name in sorted(set(ours) - {"summary.json"}):
        assert ours[name] == theirs[name], name
    assert (summary_without_run_details(json.loads(ours["summary.json"]))
            == summary_without_run_details(json.loads(theirs["summary.json"])))
    printed = json.loads(beam.stdout)
    assert printed["counts"] == json.loads(local.stdout)["counts"] == {"train": 67349, "eval": 872}
    assert printed["statistics"] == json.loads(local.stdout)["statistics"]
    assert printed["vocab_size"] == len(ours["tokenizer/vocab.txt"].decode().splitlines())

"""Tests for llm_tf/bin/predict.py: output formats, inputs and one-line errors.

Most tests run ``main`` in process with flag values set by ``flagsaver`` (parsing a command line
in process would also run the validators of other binaries' flags); two run the installed
``llm_predict`` console script.
"""

import io
import json
import os
import shutil
import subprocess
import sys

import grpc
import pytest
from absl import flags
from absl.testing import flagsaver

from llm_tf.bin import predict
from llm_tf.errors import ConfigError
from llm_tf.serving.client import RemoteError, ServerUnreachableError
from tests.bin.start_line import start_lines, without_start_line
from tests.serving.test_client import FakeServer, free_port

FLAGS = flags.FLAGS


@pytest.fixture
def fake():
    server = FakeServer()
    yield server
    server.stop()


def run_main(args=(), **flag_values):
    """Runs predict.main in process with the given flag values; returns what it printed."""
    if not FLAGS.is_parsed():
        FLAGS.mark_as_parsed()
    flag_values.setdefault("retries", 1)
    with flagsaver.flagsaver(**flag_values):
        predict.main(["llm_predict", *args])


def llm_predict(*args):
    """Starts the installed console script; returns its Popen (pipes for stdin, stdout, stderr)."""
    executable = shutil.which("llm_predict") or os.path.join(os.path.dirname(sys.executable), "llm_predict")
    return subprocess.Popen([executable, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_classification_prints_label_score_text(fake, capsys):
    run_main(["a good film", "a bad film"], server=fake.target, model="sst2")
    assert capsys.readouterr().out.splitlines() == ["positive\t0.9000\ta good film", "negative\t0.9000\ta bad film"]


def test_ner_prints_word_slash_tag(fake, capsys):
    run_main(["John met Mary today", "hello"], server=fake.target, model="conll")
    assert capsys.readouterr().out.splitlines() == ["John/B-PER met/O Mary/B-PER today/O", "hello/O"]


def test_json_prints_every_output_per_input(fake, capsys):
    run_main(["nice"], server=fake.target, model="sst2", json=True)
    (line,) = capsys.readouterr().out.splitlines()
    record = json.loads(line)
    assert record["text"] == "nice" and record["labels"] == "positive" and record["label_ids"] == 1
    assert record["scores"] == pytest.approx([0.1, 0.9])


def test_input_file_and_stdin_are_read_in_batches(fake, capsys, tmp_path, monkeypatch):
    path = tmp_path / "texts.txt"
    path.write_text("one\ntwo bad\n\nthree\n", encoding="utf-8")
    run_main(["first"], server=fake.target, model="sst2", input_file=str(path), batch_size=2)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[2] for line in lines] == ["first", "one", "two bad", "", "three"]
    assert [len(r.inputs["text"].string_val) for r in fake.servicer.requests] == [2, 2, 1]
    monkeypatch.setattr(sys, "stdin", io.StringIO("from stdin\r\n"))
    run_main([], server=fake.target, model="sst2", input_file="-")
    assert capsys.readouterr().out == "positive\t0.9000\tfrom stdin\n"


def test_version_and_label_go_to_the_request_and_exclude_each_other(fake, capsys):
    run_main(["x"], server=fake.target, model="sst2", version=4, signature="serving_default")
    assert fake.servicer.requests[-1].model_spec.version.value == 4
    with pytest.raises(ConfigError, match="give --version or --version_label, not both"):
        run_main(["x"], server=fake.target, model="sst2", version=4, version_label="stable")


def test_bad_invocations_are_config_errors(fake, tmp_path):
    with pytest.raises(ConfigError, match="no input"):
        run_main([], server=fake.target, model="sst2")
    with pytest.raises(ConfigError, match="no such file"):
        run_main([], server=fake.target, model="sst2", input_file=str(tmp_path / "missing.txt"))
    assert fake.servicer.requests == []


def test_server_errors_carry_the_servers_message(fake):
    with pytest.raises(RemoteError) as e:
        run_main(["x"], server=fake.target, model="nope")
    assert str(e.value) == "model 'nope': NOT_FOUND: Servable not found for request: Latest(nope)"
    assert e.value.code == grpc.StatusCode.NOT_FOUND


def test_wait_seconds_waits_for_the_model(fake, capsys):
    fake.servicer.available_after = 2
    run_main(["ok"], server=fake.target, model="sst2", wait_seconds=5.0)
    assert capsys.readouterr().out.startswith("positive\t")


def test_unreachable_server_in_process(capsys):
    with pytest.raises(ServerUnreachableError):
        run_main(["x"], server=f"localhost:{free_port()}", model="sst2", timeout=2.0)


def test_console_script_output_and_one_line_error_exit():
    # Both runs at once: each pays the TensorFlow import (seconds), so overlap them.
    target = f"localhost:{free_port()}"
    with FakeServer() as fake:
        ok = llm_predict(f"--server={fake.target}", "--model=sst2", "--input_file=-", "a bad day")
        down = llm_predict(f"--server={target}", "--model=sst2", "--retries=1", "hello")
        ok_out, ok_err = ok.communicate("great\n", timeout=120)
        down_out, down_err = down.communicate("", timeout=120)
    assert ok.returncode == 0, ok_err
    assert ok_out.splitlines() == ["negative\t0.9000\ta bad day", "positive\t0.9000\tgreat"]
    assert len(start_lines(ok_err)) == 1 and without_start_line(ok_err) == "", ok_err
    assert down.returncode == 1
    lines = without_start_line(down_err).strip().splitlines()
    assert len(lines) == 1, down_err
    assert lines[0].startswith(f"llm_predict: error: cannot reach {target}: ")
    assert down_out == ""

"""Tests for llm_tf/bin/serve.py, run as the installed console script."""

import os
import shutil
import signal
import socket
import subprocess
import sys

import grpc
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tests.serving.conftest import copy_version, free_port, save_tiny_model

EXECUTABLE = shutil.which("llm_serve") or os.path.join(os.path.dirname(sys.executable), "llm_serve")


@pytest.fixture(scope="module")
def model_store(tmp_path_factory):
    """Versions 1 and 2 of the tiny model of tests/serving/conftest.py."""
    root = tmp_path_factory.mktemp("serve_models")
    save_tiny_model(str(root / "1"), bias=0.0)
    save_tiny_model(str(root / "2"), bias=2.0)
    return str(root)


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "TF_SERVING_BIN"}
    env["PATH"] = "/usr/bin:/bin"  # no tensorflow_model_server
    env.update(extra)
    return env


def llm_serve(*args, env=None, timeout=120):
    return subprocess.run([EXECUTABLE, *args], capture_output=True, text=True, timeout=timeout, env=env or _env())


def _last_line(result):
    return result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("args, message", [
    ([], "llm_serve: error: no model to serve: pass --model_base_path (with --model_name) or --model_config_file"),
    (["--model_base_path=/no/such/dir"], "llm_serve: error: --model_base_path: /no/such/dir does not exist"),
    (["--model_config_file=/no/such.config"], "llm_serve: error: --model_config_file: /no/such.config does not exist"),
    (["--model_base_path=/tmp", "--backend=tf_serving"],
     "llm_serve: error: --backend=tf_serving: tensorflow_model_server not found (set TF_SERVING_BIN"),
])
def test_bad_invocations_give_one_line(args, message):
    result = llm_serve(*args)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(message), result.stderr


def test_port_in_use_is_one_line(model_store, tmp_path):
    base = str(tmp_path / "m")
    copy_version(model_store, 1, base)
    with socket.socket() as taken:
        taken.bind(("localhost", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = llm_serve("--backend=embedded", f"--port={port}", "--rest_api_port=0", f"--model_base_path={base}")
    assert result.returncode == 1
    assert _last_line(result) == f"llm_serve: error: gRPC: cannot bind localhost:{port}: port in use"
    assert "Traceback" not in result.stderr


def test_auto_execs_tf_serving_with_translated_flags(tmp_path):
    argv_file = tmp_path / "argv.txt"
    fake = tmp_path / "tensorflow_model_server"
    fake.write_text(f'#!/bin/sh\nfor a in "$@"; do echo "$a"; done > {argv_file}\n')
    fake.chmod(0o755)
    batching = tmp_path / "batching.txt"
    batching.write_text("max_batch_size { value: 8 }\n")
    result = llm_serve(f"--model_base_path={tmp_path}", "--model_name=sst2", "--port=9000", "--rest_api_port=0",
                       f"--batching_parameters_file={batching}", "--max_message_bytes=1000",
                       "--file_system_poll_wait_seconds=5", "--tensorflow_intra_op_parallelism=1",
                       "--rest_api_num_threads=8", env=_env(TF_SERVING_BIN=str(fake)))
    assert result.returncode == 0, result.stderr
    assert argv_file.read_text().splitlines() == [
        "--port=9000", "--rest_api_port=0", "--model_name=sst2", f"--model_base_path={tmp_path}",
        "--enable_batching=true", f"--batching_parameters_file={batching}", "--file_system_poll_wait_seconds=5",
        "--rest_api_num_threads=8", "--tensorflow_intra_op_parallelism=1",
        "--grpc_channel_arguments=grpc.max_send_message_length=1000,grpc.max_receive_message_length=1000",
    ]
    # the same binary found on PATH; --backend=embedded ignores it
    result = llm_serve(f"--model_base_path={tmp_path}", env=_env(PATH=f"{tmp_path}:/usr/bin:/bin"))
    assert result.returncode == 0 and "--model_name=default" in argv_file.read_text()


def test_tensorflow_model_server_gets_the_users_log_level_and_the_real_stderr(tmp_path):
    fake = tmp_path / "tensorflow_model_server"
    fake.write_text('#!/bin/sh\necho "level=${TF_CPP_MIN_LOG_LEVEL-unset}"\n'
                    'echo "I0000 00:00:1.0 1 server.cc:1] Running gRPC ModelServer at 0.0.0.0:8500" >&2\n')
    fake.chmod(0o755)
    env = {k: v for k, v in _env(TF_SERVING_BIN=str(fake)).items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = llm_serve(f"--model_base_path={tmp_path}", env=env)
    # Not llm-tf's default of 1 (the server's INFO lines are its start-up report), and fd 2 is
    # the real stderr again (the C++-INFO filter of llm_tf/bin/logfilter.py is gone).
    assert result.returncode == 0 and result.stdout.splitlines() == ["level=unset"]
    assert "Running gRPC ModelServer at 0.0.0.0:8500" in result.stderr
    result = llm_serve(f"--model_base_path={tmp_path}", env={**env, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.stdout.splitlines() == ["level=2"]


def test_embedded_serves_and_stops_on_sigterm(model_store, tmp_path):
    base = str(tmp_path / "m")
    copy_version(model_store, 1, base)
    copy_version(model_store, 2, base)
    port, rest = free_port(), free_port()
    process = subprocess.Popen([EXECUTABLE, "--backend=auto", f"--port={port}", f"--rest_api_port={rest}",
                                "--model_name=tiny", f"--model_base_path={base}"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        line = process.stdout.readline().strip()
        assert line == f"serving tiny versions [2] on gRPC localhost:{port}, REST localhost:{rest}", (
            line, process.stderr.read() if process.poll() is not None else "")
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "tiny"
        request.inputs["text"].CopyFrom(tf.make_tensor_proto([b"hello"]))
        with grpc.insecure_channel(f"localhost:{port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            assert stub.Predict(request, timeout=30).model_spec.version.value == 2
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_thread_flags_reach_the_embedded_server_options():
    from absl.testing import flagsaver

    from llm_tf.bin import serve

    # Values set directly: parsing argv here would run the validators of every binary's flags
    # imported into this test process (e.g. llm_predict's required --model).
    with flagsaver.flagsaver(tensorflow_intra_op_parallelism=1, tensorflow_inter_op_parallelism=3,
                             rest_api_num_threads=5):
        serve.FLAGS.mark_as_parsed()
        options = serve.options_from_flags()
    assert (options.tensorflow_intra_op_parallelism, options.tensorflow_inter_op_parallelism) == (1, 3)
    assert options.rest_api_num_threads == 5

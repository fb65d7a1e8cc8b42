"""Log hygiene of the binaries: C++ noise on fd 2 is filtered, real warnings and errors (even before a crash) pass."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from llm_tf.bin import logfilter

NOISE_LINES = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "W0000 00:00:1796479522.245163   14470 tf_tfl_flatbuffer_helpers.cc:364] Ignored output_format.",
    "W0000 00:00:1796479522.245381   14470 tf_tfl_flatbuffer_helpers.cc:367] Ignored drop_control_dependency.",
    "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
    "2026-12-05 14:05:16.802006: I external/local_xla/xla/tsl/cuda/cudart_stub.cc:31] Could not find cuda drivers on "
    "your machine, GPU will not be used.",
    "2026-12-05 14:05:16.868676: I tensorflow/core/platform/cpu_feature_guard.cc:210] This TensorFlow binary is "
    "optimized to use available CPU instructions in performance-critical operations.",
    "To enable the following instructions: AVX2 AVX512F AVX512_VNNI AVX512_BF16 AVX_VNNI FMA, in other operations, "
    "rebuild TensorFlow with the appropriate compiler flags.",
    "2026-12-05 14:05:16.802364: I tensorflow/core/util/port.cc:153] oneDNN custom operations are on. You may see "
    "slightly different numerical results due to floating-point round-off errors from different computation orders.",
    "E0000 00:00:1732276346.404812   12345 cuda_dnn.cc:8310] Unable to register cuDNN factory: Attempting to register "
    "factory for plugin cuDNN when one has already been registered",
    "I0000 00:00:1796479522.254667   14470 mlir_graph_optimization_pass.cc:437] MLIR V1 optimization pass is not "
    "enabled",
]
CUINIT = ("2026-12-05 14:05:21.930353: E external/local_xla/xla/stream_executor/cuda/cuda_platform.cc:51] failed call "
          "to cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)")
CPP_INFO = "I0000 00:00:1796479522.2 14470 reader.cc:83] Reading SavedModel from: /tmp/m"
REAL = [
    "E0000 00:00:1796479522.1 14470 some_op.cc:12] real error: OOM when allocating tensor",
    "2026-12-05 14:05:22.1: W tensorflow/core/framework/op_kernel.cc:1857] a real TensorFlow warning",
]

# A binary like the real ones (run_main, the same start-up path) whose main writes C++-style lines to fd 2.
PROGRAM = textwrap.dedent("""
    import os, sys
    from absl import logging
    from llm_tf.bin.common import run_main

    def main(argv):
        for line in os.environ["PROG_LINES"].split("|"):
            os.write(2, line.encode() + b"\\n")
        logging.info("python info")
        logging.debug("python debug")
        print("python stderr", file=sys.stderr)
        if os.environ.get("CRASH"):
            os.write(2, b"F0000 00:00:1.2 1 check.cc:1] Check failed: a == b\\npartial at crash")
            os.abort()
        os.write(2, b"partial at exit")
        return 0

    run_main(main)
""")


def run_program(tmp_path, *flags, env=None, lines=None):
    script = tmp_path / "prog.py"
    script.write_text(PROGRAM)
    base = {k: v for k, v in os.environ.items() if k not in ("LLM_TF_LOG_NOISE", "TF_CPP_MIN_LOG_LEVEL", "CRASH")}
    lines = lines if lines is not None else NOISE_LINES + [CPP_INFO] + REAL
    return subprocess.run([sys.executable, str(script), *flags], capture_output=True, text=True,
                          env={**base, "PROG_LINES": "|".join(lines), **(env or {})}, timeout=60)


def test_noise_is_dropped_and_real_errors_pass(tmp_path):
    out = run_program(tmp_path)
    assert out.returncode == 0, out.stderr
    err = out.stderr
    for line in NOISE_LINES + [CPP_INFO]:
        assert line not in err
    for line in REAL:
        assert line in err
    # Python's stderr and absl logging pass, in order with the C++ lines; the unfinished last line too.
    assert "python info" in err and "python debug" not in err and "python stderr" in err
    assert err.index(REAL[-1]) < err.index("python info") < err.index("python stderr")
    assert err.endswith("partial at exit")


@pytest.mark.skipif(logfilter.has_nvidia_driver(), reason="on a GPU machine a cuInit failure is a real error")
def test_cuinit_failure_is_noise_without_a_gpu_driver(tmp_path):
    out = run_program(tmp_path, lines=[CUINIT, REAL[0]])
    assert CUINIT not in out.stderr and REAL[0] in out.stderr


def test_lines_written_just_before_a_crash_are_not_lost(tmp_path):
    out = run_program(tmp_path, env={"CRASH": "1"})
    assert out.returncode == -signal.SIGABRT
    assert "F0000 00:00:1.2 1 check.cc:1] Check failed: a == b\npartial at crash" in out.stderr
    assert REAL[0] in out.stderr and NOISE_LINES[0] not in out.stderr


def test_log_noise_env_shows_everything(tmp_path):
    out = run_program(tmp_path, env={"LLM_TF_LOG_NOISE": "1"})
    for line in NOISE_LINES + [CPP_INFO] + REAL:
        assert line in out.stderr


@pytest.mark.parametrize("flags, env, cpp_info_shown, info_shown, debug_shown", [
    ((), {}, False, True, False),
    (("--verbosity=1",), {}, True, True, True),
    (("--verbosity=-1",), {}, False, False, False),
    ((), {"TF_CPP_MIN_LOG_LEVEL": "0"}, True, True, False),
    ((), {"TF_CPP_MIN_LOG_LEVEL": ""}, False, True, False),
])
def test_verbosity_and_tf_cpp_min_log_level(tmp_path, flags, env, cpp_info_shown, info_shown, debug_shown):
    out = run_program(tmp_path, *flags, env=env)
    assert out.returncode == 0, out.stderr
    assert (CPP_INFO in out.stderr) == cpp_info_shown
    assert ("python info" in out.stderr) == info_shown
    assert ("python debug" in out.stderr) == debug_shown
    assert REAL[0] in out.stderr and NOISE_LINES[0] not in out.stderr


def _forward_in_thread(hold=0.05):
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    regex = logfilter.noise_regex(drop_cpp_info=True, gpu_machine=False)
    thread = threading.Thread(target=logfilter.forward, args=(in_r, out_w, regex, hold), daemon=True)
    thread.start()
    return in_w, out_r, thread


def _read_available(fd, wait=0.5):
    time.sleep(wait)
    os.set_blocking(fd, False)
    try:
        return os.read(fd, 65536)
    except BlockingIOError:
        return b""
    finally:
        os.set_blocking(fd, True)


def test_forward_shows_progress_bars_before_the_line_ends():
    in_w, out_r, thread = _forward_in_thread()
    os.write(in_w, b"\r 10%|#         |")
    assert _read_available(out_r) == b"\r 10%|#         |"  # a partial line, forwarded after the hold time
    os.write(in_w, b"\r 20%|##        |")
    assert _read_available(out_r) == b"\r 20%|##        |"
    os.write(in_w, b"\n" + NOISE_LINES[0].encode() + b"\nafter\n")
    os.close(in_w)
    thread.join(5)
    assert os.read(out_r, 65536) == b"\nafter\n"


def test_forward_holds_a_partial_noise_line_until_it_ends():
    in_w, out_r, thread = _forward_in_thread()
    os.write(in_w, NOISE_LINES[1].encode())  # no newline yet, but it already matches: held, not forwarded
    assert _read_available(out_r) == b""
    os.write(in_w, b"\nkept\n")
    os.close(in_w)
    thread.join(5)
    assert os.read(out_r, 65536) == b"kept\n"


def test_forward_keeps_crlf_lines_whole():
    in_w, out_r, thread = _forward_in_thread()
    os.write(in_w, b"windows line\r")
    os.write(in_w, b"\n" + NOISE_LINES[3].encode() + b"\r\nnext\r\n")
    os.close(in_w)
    thread.join(5)
    assert os.read(out_r, 65536) == b"windows line\r\nnext\r\n"


CUSTOM_OPS = (
    "2026-12-05 14:28:08.999057: W tensorflow/compiler/mlir/lite/flatbuffer_export.cc:4093] The following "
    "operation(s) need TFLite custom op implementation(s):\n"
    "Custom ops: FastBertNormalize, FastWordpieceTokenizeWithOffsets, {extra}RaggedTensorToTensor\n"
    "Details:\n"
    "\ttf.FastBertNormalize(tensor<?x!tf_type.string>, tensor<254136xui8>) -> (tensor<?x!tf_type.string>) : {{}}\n"
    "\ttf.RaggedTensorToTensor(tensor<2xi64>, tensor<?xi32>) -> (tensor<?x30xi32>) : {{T = i32}}\n"
    "See instructions: https://www.tensorflow.org/lite/guide/ops_custom\n"
)


@pytest.mark.parametrize("extra, shown", [("", False), ("MyOwnOp, ", True)])
def test_tflite_custom_op_message_is_noise_only_for_tensorflow_text_ops(extra, shown):
    in_w, out_r, thread = _forward_in_thread()
    message = CUSTOM_OPS.format(extra=extra).encode()
    os.write(in_w, b"before\n" + message + b"after\n")
    os.close(in_w)
    thread.join(5)
    assert os.read(out_r, 65536) == b"before\n" + (message if shown else b"") + b"after\n"


def test_an_unfinished_multi_line_message_is_shown_after_a_while(monkeypatch):
    monkeypatch.setattr(logfilter, "BLOCK_SECONDS", 0.1)
    in_w, out_r, thread = _forward_in_thread()
    start = "".join(CUSTOM_OPS.format(extra="").splitlines(keepends=True)[:2]).encode()
    os.write(in_w, start)
    assert _read_available(out_r) == start
    os.close(in_w)
    thread.join(5)


def test_grpc_cpp_info_lines_are_dropped_but_python_absl_lines_are_not():
    matcher = logfilter.noise_regex(drop_cpp_info=True, gpu_machine=False)
    grpc = (b"I1205 14:36:10.332751   16768 chttp2_transport.cc:1403] ipv6:%5B::1%5D:39765: Got goaway [2] "
            b"err=UNAVAILABLE:GOAWAY received")
    python = b"I1205 14:36:10.257048 140478750346112 server.py:236] serving sst2 on gRPC localhost:39765"
    warning = b"W1205 14:36:10.332751   16768 chttp2_transport.cc:1403] a gRPC warning"
    assert matcher.search(grpc)
    assert not matcher.search(python) and not matcher.search(warning)
    assert not logfilter.noise_regex(drop_cpp_info=False, gpu_machine=False).search(grpc)

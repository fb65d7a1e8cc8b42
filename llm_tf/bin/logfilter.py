"""Filters known-harmless C++/library log noise out of a binary's stderr; everything else passes.

TensorFlow, XLA, TFLite and absl's C++ logging write to file descriptor 2 directly, where no
Python logging filter sees them. :func:`install` (called by ``run_main`` before the binary's
main) points fd 2 at a pipe read by a small forwarder *process* (this file, run as a script
with only the standard library) that copies every line to the real stderr except those
matching :data:`NOISE` and, while C++ INFO is off (``TF_CPP_MIN_LOG_LEVEL`` >= 1, our
default), :data:`CPP_INFO`; the TFLite converter's multi-line custom-op warning is dropped
when it names tensorflow-text ops only (:func:`custom_ops_are_tf_text`). Python's
``sys.stderr`` (absl logging, tracebacks, our error lines) goes through the same pipe, so
Python and C++ lines keep the order they were written in; its ``isatty()`` answers for the
real stderr, so progress bars still show in a terminal.

A process rather than a thread: a C++ ``F``/``E`` line written just before an ``abort()`` or
a segfault is still read and forwarded after the binary died (a thread dies with it), and a
C++ writer holding the GIL can never block on a full pipe. At a normal exit the binary
restores fd 2 and waits (at most :data:`DRAIN_SECONDS`) for the forwarder to write what is
left. Partial lines (progress bars ending in ``\\r``, a last line without newline) are
forwarded after :data:`HOLD_SECONDS` without more output.

``LLM_TF_LOG_NOISE=1`` turns all of it off: fd 2 is left alone and nothing is filtered.
"""

import io
import os
import re
import select
import signal
import sys

#: Set to 1 to see every library log line (no fd-2 forwarder, no Python-side filtering).
NOISE_ENV = "LLM_TF_LOG_NOISE"

#: Known-harmless lines, always dropped (each pattern is searched anywhere in the line).
NOISE: tuple[tuple[str, str], ...] = (
    (r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR",
     "absl C++ logging's one-time notice (printed by every TFLite conversion)"),
    (r"tf_tfl_flatbuffer_helpers\.cc:\d+\] Ignored (output_format|drop_control_dependency)\.",
     "the TFLite converter reporting options it sets itself"),
    (r"Created TensorFlow Lite XNNPACK delegate for CPU\.",
     "TFLite's interpreter on every model load"),
    (r"Could not find cuda drivers on your machine, GPU will not be used\.",
     "TensorFlow's CUDA probe on a machine without a GPU"),
    (r"Unable to register (cuDNN|cuFFT|cuBLAS) factory: Attempting to register factory for plugin",
     "duplicate CUDA plugin registration at import (TF 2.15+)"),
    (r"computation placer already registered\. Please check linkage",
     "duplicate XLA registration at import (TF 2.18+)"),
    (r"TF-TRT Warning: Could not find TensorRT",
     "TensorRT is optional; we do not use it"),
    (r"This TensorFlow binary is optimized to use available CPU instructions in performance-critical operations",
     "cpu_feature_guard; the start line lists the CPU's vector extensions"),
    (r"^To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags",
     "second line of the cpu_feature_guard message"),
    (r"oneDNN custom operations are on\. You may see slightly different numerical results",
     "the start line says whether oneDNN is on"),
    (r"MLIR V1 optimization pass is not enabled",
     "MLIR bridge notice on every graph conversion"),
)

#: Dropped only on a machine without an NVIDIA driver (on a GPU machine it is a real error).
NO_GPU_NOISE: tuple[tuple[str, str], ...] = (
    (r"failed call to cuInit: .*(UNKNOWN ERROR \(303\)|CUDA_ERROR_NO_DEVICE|no CUDA-capable device)",
     "TensorFlow's CUDA probe on a machine without a GPU (logged at ERROR level)"),
)

#: C++ INFO lines in the formats TensorFlow's libraries use: absl C++ logging before
#: ``absl::InitializeLog()``, which TensorFlow never calls (``I0000 00:00:1796479522.254667 14470
#: file.cc:437]``; absl *Python* logging has a real date, ``I1205 14:05:22.254667``, and is not
#: matched), gRPC's C++ logging once absl is initialised (``I1205 14:36:10.332751 16768
#: chttp2_transport.cc:1403]``: a ``.cc`` file, where Python lines name a ``.py``), TensorFlow's
#: (``2026-12-05 14:05:22.246135: I file.cc:83]``) and TFLite's (``INFO: ...``). TensorFlow's own
#: logging obeys ``TF_CPP_MIN_LOG_LEVEL``; the absl-logging, gRPC and TFLite parts ignore it, so
#: the filter applies the same level to them.
CPP_INFO = (r"^I0000 00:00:\d+\.\d+\s+\d+ \S+:\d+\] ",
            r"^I\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ \S+\.cc:\d+\] ",
            r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: I \S+:\d+\] ",
            r"^INFO: ")

#: Seconds a partial line waits for its end before it is forwarded as it is.
HOLD_SECONDS = 0.1
#: Seconds a normal exit waits for the forwarder to write the rest.
DRAIN_SECONDS = 2.0
_NVIDIA_DRIVER_FILES = ("/proc/driver/nvidia/version", "/dev/nvidiactl")


def noise_enabled() -> bool:
    """True when ``LLM_TF_LOG_NOISE`` asks for every line, unfiltered."""
    return os.environ.get(NOISE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def has_nvidia_driver() -> bool:
    """True when an NVIDIA driver is loaded (then CUDA errors are real)."""
    return any(os.path.exists(path) for path in _NVIDIA_DRIVER_FILES)


def noise_regex(drop_cpp_info: bool, gpu_machine: bool) -> "re.Pattern[bytes]":
    """The one regex a line is dropped for.

    Args:
        drop_cpp_info: Also drop C++ INFO lines (:data:`CPP_INFO`).
        gpu_machine: The machine has an NVIDIA driver: keep CUDA errors (:data:`NO_GPU_NOISE`).
    """
    patterns = [p for p, _ in NOISE]
    if not gpu_machine:
        patterns += [p for p, _ in NO_GPU_NOISE]
    if drop_cpp_info:
        patterns += list(CPP_INFO)
    return re.compile("|".join(f"(?:{p})" for p in patterns).encode())


def _write_all(fd: int, data: bytes) -> bool:
    """Writes everything or gives up quietly (stderr closed): the pipe must keep draining."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except InterruptedError:
            continue
        except OSError:
            return False
    return True


_SEGMENT = re.compile(rb"[^\r\n]*(?:\r\n|\n|\r(?!\n))")

#: A multi-line TFLite converter warning judged as a whole: the custom ops a converted model
#: needs. llm_quantize's ``text`` variants hold the tensorflow-text tokenizer by design, so the
#: message is noise when every op it names is one :data:`TF_TEXT_OPS` (what
#: ``llm_tf.export.tflite_runtime.make_interpreter`` registers); any other op shows it whole.
_CUSTOM_OPS_START = re.compile(
    rb"flatbuffer_export\.cc:\d+\] The following operation\(s\) need TFLite custom op implementation\(s\):")
_CUSTOM_OPS_END = re.compile(rb"^See instructions: https://www\.tensorflow\.org/lite/guide/ops_custom")
#: The ops of ``tensorflow_text.tflite_registrar.SELECT_TFTEXT_OPS`` (a ``TFText>`` prefix is ignored).
TF_TEXT_OPS = frozenset({
    "ByteSplit", "ByteSplitByOffsets", "FastBertNormalize", "FastSentencepieceDetokenize", "FastSentencepieceTokenize",
    "FastWordpieceDetokenize", "FastWordpieceTokenizeWithOffsets", "NgramsStringJoin", "RaggedTensorToTensor",
    "SentenceFragmentsV2", "WhitespaceTokenizeWithOffsetsV2",
})
#: Seconds an unfinished multi-line message waits for its last line before it is shown as it is.
BLOCK_SECONDS = 1.0
_BLOCK_MAX_LINES = 200


def custom_ops_are_tf_text(message: bytes) -> bool:
    """True when a "need TFLite custom op implementation(s)" message names only :data:`TF_TEXT_OPS`."""
    match = re.search(rb"^Custom ops: (.+?)\r?$", message, re.MULTILINE)
    if not match:
        return False
    ops = {op.strip().decode("utf-8", "replace").removeprefix("TFText>") for op in match.group(1).split(b",")}
    return bool(ops) and ops <= TF_TEXT_OPS


def forward(in_fd: int, out_fd: int, noise: "re.Pattern[bytes]", hold_seconds: float = HOLD_SECONDS) -> None:
    """Copies ``in_fd`` to ``out_fd`` until end of file, dropping the lines ``noise`` matches.

    A line ends at ``\\n``, ``\\r\\n`` or a lone ``\\r`` (progress bars). A partial line is
    forwarded after ``hold_seconds`` without more input (and the rest of that line then
    passes unfiltered) unless it already matches ``noise``; at end of file what is left is
    forwarded unless it is noise. A TFLite custom-op message is held until its last line and
    dropped when it names tensorflow-text ops only (:func:`custom_ops_are_tf_text`).
    """
    pending = b""
    continuing = False  # the start of the pending line was already forwarded
    writable = True
    block: list[bytes] = []  # the lines so far of a multi-line message being judged

    def emit(data: bytes) -> None:
        nonlocal writable
        if writable and data:
            writable = _write_all(out_fd, data)

    def flush_block() -> None:
        emit(b"".join(block))
        block.clear()

    def take(line: bytes) -> None:
        if block:
            block.append(line)
            if _CUSTOM_OPS_END.search(line):
                if custom_ops_are_tf_text(b"".join(block)):
                    block.clear()
                else:
                    flush_block()
            elif len(block) >= _BLOCK_MAX_LINES:
                flush_block()
        elif _CUSTOM_OPS_START.search(line):
            block.append(line)
        elif not noise.search(line):
            emit(line)

    while True:
        if pending or block:
            if block:
                timeout = BLOCK_SECONDS
            elif not continuing and noise.search(pending):
                timeout = None  # a partial line that already looks like noise waits for its end
            else:
                timeout = hold_seconds
            ready, _, _ = select.select([in_fd], [], [], timeout)
            if not ready:
                flush_block()  # a message that never ended: show it
                emit(pending)
                continuing = continuing or bool(pending)
                pending = b""
                continue
        try:
            chunk = os.read(in_fd, 65536)
        except InterruptedError:
            continue
        if not chunk:
            break
        data = pending + chunk
        end = 0
        for match in _SEGMENT.finditer(data):
            line = match.group()
            if match.end() == len(data) and line.endswith(b"\r"):
                break  # a final "\r" may be the first half of "\r\n": wait for the next byte
            end = match.end()
            if continuing:
                emit(line)
                continuing = False
            else:
                take(line)
        pending = data[end:]
    flush_block()
    if pending and (continuing or not noise.search(pending)):
        emit(pending)


class _StderrStream(io.TextIOWrapper):
    """Python's ``sys.stderr`` while the filter runs: writes go through the pipe, in order with the
    C++ lines; ``isatty()`` answers for the real stderr (progress bars stay on in a terminal)."""

    def __init__(self, buffer, real_fd: int, **kwargs):
        super().__init__(buffer, **kwargs)
        self._real_fd = real_fd

    def isatty(self) -> bool:
        try:
            return os.isatty(self._real_fd)
        except OSError:
            return False


class _Forwarder:
    def __init__(self, process, real_fd: int):
        self.process = process
        self.real_fd = real_fd


_installed: _Forwarder | None = None


def install(drop_cpp_info: bool = True) -> bool:
    """Routes fd 2 through the forwarder process.

    Does nothing (returns False) under ``LLM_TF_LOG_NOISE=1``, when already installed, or
    when stderr is unusable. Call it before TensorFlow loads; :func:`uninstall` runs at exit.
    Python's ``sys.stderr`` goes through the same pipe (so the order of Python and C++ lines
    is kept) and is replaced by a stream whose ``isatty()`` is the real stderr's.

    Args:
        drop_cpp_info: Drop C++ INFO lines too (when ``TF_CPP_MIN_LOG_LEVEL`` >= 1).

    Returns:
        Whether this call installed the filter.
    """
    global _installed
    if _installed is not None or noise_enabled():
        return False
    import atexit
    import subprocess

    try:
        sys.stderr.flush()
        real_fd = os.dup(2)
    except (OSError, AttributeError, ValueError):
        return False
    read_fd, write_fd = os.pipe()
    args = [sys.executable, "-I", "-S", os.path.abspath(__file__)]
    if drop_cpp_info:
        args.append("--drop_cpp_info")
    try:
        process = subprocess.Popen(args, stdin=read_fd, stdout=real_fd, stderr=real_fd, close_fds=True)
    except OSError:
        for fd in (read_fd, write_fd, real_fd):
            os.close(fd)
        return False
    os.close(read_fd)
    os.dup2(write_fd, 2)
    os.close(write_fd)
    old = sys.stderr
    sys.stderr = _StderrStream(io.FileIO(2, "w", closefd=False), real_fd,
                               encoding=getattr(old, "encoding", None) or "utf-8",
                               errors=getattr(old, "errors", None) or "backslashreplace",
                               line_buffering=True, write_through=True)
    _installed = _Forwarder(process, real_fd)
    atexit.register(uninstall)
    return True


def uninstall() -> None:
    """Puts the real stderr back on fd 2 and waits for the forwarder to write the rest."""
    global _installed
    forwarder, _installed = _installed, None
    if forwarder is None:
        return
    import subprocess

    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os.dup2(forwarder.real_fd, 2)  # closes our write end: the forwarder sees end of file
    try:
        forwarder.process.wait(timeout=DRAIN_SECONDS)
    except subprocess.TimeoutExpired:
        pass  # a child process of the binary still holds the pipe; the forwarder ends with it


def main(argv: list[str]) -> int:
    """The forwarder process: stdin (the binary's fd 2) to stdout (the real stderr)."""
    # Ctrl-C and a SIGTERM to the process group are for the binary; we end when it closes fd 2.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    noise = noise_regex(drop_cpp_info="--drop_cpp_info" in argv, gpu_machine=has_nvidia_driver())
    forward(0, 1, noise)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

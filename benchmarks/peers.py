"""Peer systems for the side-by-side benchmarks: their virtualenv and their worker processes.

Peers (PyTorch, Hugging Face ``transformers`` and ``tokenizers``) are never dependencies of
llm-tf: :func:`ensure_venv` installs them, pinned, into their own virtualenv
(``benchmarks/.peer_venv`` by default, git-ignored) and reuses it while the pins match.
``torch==2.13.0`` is pinned because pip on this kind of machine takes its CPU build from a
local wheel (about 190 MB installed, no CUDA packages); elsewhere PyPI serves the CUDA build
of the same release, which runs on the CPU too.

Every system under test runs in a :class:`Worker`: a long-lived process that loads its
model once and then answers JSON requests, one per line on stdin, with one JSON line on
stdout. The parent asks workers for rounds in turn (ours, keras-hub, HF, ours, ...), so each
system sees the same machine conditions and ratios come from rounds taken side by side.

Example:
    >>> python = ensure_venv()
    >>> with Worker([python, worker_script("hf_tokenize.py"), "--vocab=vocab.txt"], "hf") as hf:
    ...     print(hf.request({"op": "round", "repeats": 1}))
"""

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence

from benchmarks.worker_protocol import REPLY
from llm_tf.errors import ConfigError
from llm_tf.io_utils import atomic_write_json

HERE = os.path.dirname(os.path.abspath(__file__))
#: Default peer virtualenv (listed in .gitignore); LLM_TF_PEER_VENV overrides it.
DEFAULT_VENV = os.path.join(HERE, ".peer_venv")
WORKERS = os.path.join(HERE, "peer_workers")
#: Peer packages and their pinned releases.
PINS = ("torch==2.13.0", "transformers==5.17.0", "tokenizers==0.23.2")
#: Optional extra pins, installed on top of :data:`PINS` by :func:`ensure_extras` for the benchmarks
#: that need them (``minilm_inference``: ONNX export and ONNX Runtime); the others never install them.
ONNX_PINS = ("onnx==1.23.2", "onnxscript==0.7.2", "onnxruntime==1.31.1")
MARKER = "llm_tf_peers.json"


def venv_python(venv: str) -> str:
    """The Python interpreter of a virtualenv directory."""
    return os.path.join(venv, "bin", "python")


def ensure_venv(venv: str | None = None, pins: Sequence[str] = PINS, log=sys.stderr) -> str:
    """Creates (or reuses) the peer virtualenv with ``pins`` installed; returns its Python.

    The venv is reused when its marker file records the same pins and its interpreter
    imports every pinned package; otherwise it is rebuilt. The marker records how long the
    install took.

    Args:
        venv: Directory of the venv (default :data:`DEFAULT_VENV` or ``$LLM_TF_PEER_VENV``).
        pins: ``name==version`` requirements.
        log: Where progress lines go.

    Raises:
        ConfigError: The venv could not be created or a package not installed/imported
            (the pip or import error's last line is in the message).
    """
    venv = os.path.abspath(venv or os.environ.get("LLM_TF_PEER_VENV") or DEFAULT_VENV)
    marker = os.path.join(venv, MARKER)
    python = venv_python(venv)
    if os.path.isfile(marker):
        with open(marker, encoding="utf-8") as f:
            recorded = json.load(f)
        if recorded.get("pins") == list(pins) and _imports(python, pins) is None:
            return python
        print(f"peer venv {venv}: pins changed or broken, rebuilding", file=log)
    start = time.perf_counter()
    _run([sys.executable, "-m", "venv", "--clear", venv], f"creating the venv {venv}")
    _run([python, "-m", "pip", "install", "--quiet", "--upgrade", "pip"], "upgrading pip in the peer venv")
    print(f"installing {' '.join(pins)} into {venv} ...", file=log)
    _run([python, "-m", "pip", "install", "--quiet", *pins], f"pip install {' '.join(pins)}")
    error = _imports(python, pins)
    if error:
        raise ConfigError(f"peer venv {venv}: {error}")
    seconds = time.perf_counter() - start
    atomic_write_json(marker, {"pins": list(pins), "install_seconds": round(seconds, 1),
                               "installed_mb": round(_size_mb(venv), 1), "versions": peer_versions(python)})
    print(f"peer venv ready in {seconds:.0f} s ({_size_mb(venv):.0f} MB)", file=log)
    return python


def ensure_extras(venv: str | None = None, extras: Sequence[str] = ONNX_PINS, pins: Sequence[str] = PINS,
                  log=sys.stderr) -> str:
    """The peer venv of :func:`ensure_venv` with ``extras`` installed on top; returns its Python.

    The base venv is built (or reused) as usual; the extra packages are pip-installed into it
    when they are not importable at their pinned versions, so a benchmark that needs them adds
    them without changing the venv the other benchmarks see (their marker pins stay ``pins``).
    The marker records the extras and how long their install took.

    Raises:
        ConfigError: The venv or an extra package could not be installed or imported.
    """
    python = ensure_venv(venv, pins, log)
    if _imports(python, extras) is None:
        return python
    start = time.perf_counter()
    print(f"installing {' '.join(extras)} into the peer venv ...", file=log)
    _run([python, "-m", "pip", "install", "--quiet", *extras], f"pip install {' '.join(extras)}")
    error = _imports(python, extras)
    if error:
        raise ConfigError(f"peer venv {os.path.dirname(os.path.dirname(python))}: {error}")
    marker = os.path.join(os.path.dirname(os.path.dirname(python)), MARKER)
    with open(marker, encoding="utf-8") as f:
        recorded = json.load(f)
    recorded.setdefault("extras", {})[" ".join(extras)] = {"install_seconds": round(time.perf_counter() - start, 1)}
    atomic_write_json(marker, recorded)
    return python


def install_record(venv: str | None = None) -> dict:
    """What :func:`ensure_venv` recorded (pins, install seconds, size, versions); {} if none."""
    venv = os.path.abspath(venv or os.environ.get("LLM_TF_PEER_VENV") or DEFAULT_VENV)
    try:
        with open(os.path.join(venv, MARKER), encoding="utf-8") as f:
            return json.load(f)
    except OSError:
        return {}


def peer_versions(python: str) -> dict:
    """Versions of torch, transformers and tokenizers in the interpreter ``python``."""
    code = ("import json, torch, transformers, tokenizers; print(json.dumps({'torch': torch.__version__, "
            "'transformers': transformers.__version__, 'tokenizers': tokenizers.__version__, "
            "'torch_threads': torch.get_num_threads(), 'torch_cuda_build': torch.version.cuda}))")
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False)
    if out.returncode:
        return {"error": _last_line(out.stderr)}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _imports(python: str, pins: Sequence[str]) -> str | None:
    """None if ``python`` imports every pinned package at its pinned version, else the reason."""
    if not os.path.isfile(python):
        return f"{python} does not exist"
    checks = "; ".join(
        f"import {name}; assert {name}.__version__.split('+')[0] == {version!r}, "
        f"'{name} ' + {name}.__version__ + ' installed, {version} pinned'"
        for name, version in (pin.split("==", 1) for pin in pins))
    out = subprocess.run([python, "-c", checks], capture_output=True, text=True, check=False)
    return None if out.returncode == 0 else _last_line(out.stderr)


def _run(argv: list[str], what: str) -> None:
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    if out.returncode:
        raise ConfigError(f"{what} failed: {_last_line(out.stderr or out.stdout)}")


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def _size_mb(path: str) -> float:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total / 2**20


def worker_script(name: str) -> str:
    """Path of a worker script in ``benchmarks/peer_workers``."""
    return os.path.join(WORKERS, name)


def project_python() -> str:
    """The interpreter that runs llm-tf (and keras-hub) workers: this one."""
    return sys.executable


class WorkerError(RuntimeError):
    """A worker died or answered with an error."""


class Worker:
    """A long-lived benchmark process answering JSON requests line by line.

    The worker prints ``@@reply {json}`` for each request line it reads; anything else it
    prints (library logs) goes to its stderr, which is kept in a log file and quoted when it
    fails.

    Args:
        argv: Command line (interpreter, script, flags).
        name: Name used in messages.
        env: Extra environment variables.
        log_dir: Directory for the worker's stderr log (default: a temp file).
        ready_timeout: Seconds to wait for the worker's first (``ready``) reply.
    """

    def __init__(self, argv: Sequence[str], name: str, env: dict | None = None, log_dir: str | None = None,
                 ready_timeout: float = 600):
        self.name = name
        self.argv = list(argv)
        self.env = {**os.environ, "PYTHONPATH": worker_pythonpath(), "PYTHONUNBUFFERED": "1", **(env or {})}
        import tempfile

        self.log_path = os.path.join(log_dir or tempfile.mkdtemp(prefix="bench_worker_"), f"{name}.log")
        self.ready_timeout = ready_timeout
        self.process: subprocess.Popen | None = None
        self.info: dict = {}

    def __enter__(self) -> "Worker":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> dict:
        """Starts the process and waits for its ``ready`` reply (returned, also in ``info``)."""
        self._log = open(self.log_path, "w", encoding="utf-8")
        self.process = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                                        text=True, env=self.env, cwd=os.path.dirname(HERE), bufsize=1)
        self.info = self._read()
        return self.info

    def request(self, message: dict) -> dict:
        """Sends one request and returns the worker's reply.

        Raises:
            WorkerError: The worker exited or replied ``{"error": ...}``.
        """
        if self.process is None or self.process.poll() is not None:
            raise WorkerError(f"worker {self.name} is not running{self._tail()}")
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()
        return self._read()

    def _read(self) -> dict:
        while True:
            line = self.process.stdout.readline()
            if not line:
                self.process.wait(10)
                raise WorkerError(f"worker {self.name} exited with code {self.process.returncode}{self._tail()}")
            if line.startswith(REPLY):
                reply = json.loads(line[len(REPLY):])
                if "error" in reply:
                    raise WorkerError(f"worker {self.name}: {reply['error']}{self._tail()}")
                return reply

    def _tail(self) -> str:
        try:
            self._log.flush()
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                tail = f.read()[-1500:]
        except OSError:
            return ""
        return f"\n--- {self.log_path} (tail) ---\n{tail}" if tail.strip() else ""

    def close(self) -> None:
        """Asks the worker to exit; kills it after 30 s."""
        if self.process is None:
            return
        if self.process.poll() is None:
            try:
                self.process.stdin.write(json.dumps({"op": "exit"}) + "\n")
                self.process.stdin.flush()
                self.process.wait(30)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait(10)
        self._log.close()
        self.process = None


def worker_pythonpath() -> str:
    """The repository root first, so workers import ``benchmarks`` and ``llm_tf`` from this tree."""
    root = os.path.dirname(HERE)
    existing = os.environ.get("PYTHONPATH", "")
    return root + (os.pathsep + existing if existing else "")


def interleave(plan: Sequence[tuple[str, "Worker", dict]], rounds: int, warmup: int = 1, log=sys.stderr) -> dict:
    """Runs every measurement of ``plan`` once per round, round after round; returns the replies.

    Odd rounds go through the plan in reverse (A B C, C B A, ...), so slow drifts of the
    machine's load hit every system alike. Each measurement is first run ``warmup`` times
    untimed (compilation, caches).

    Args:
        plan: (name, worker, request) triples.
        rounds: Timed rounds.
        warmup: Untimed runs of each measurement before the first round.
        log: Where a line per measurement goes.

    Returns:
        {name: [reply of round 1, reply of round 2, ...]}.
    """
    for name, worker, request in plan:
        for _ in range(warmup):
            worker.request(request)
            print(f"warm-up {name} done", file=log)
    replies: dict[str, list[dict]] = {name: [] for name, _, _ in plan}
    for r in range(rounds):
        order = plan if r % 2 == 0 else list(reversed(plan))
        for name, worker, request in order:
            replies[name].append(worker.request(request))
            print(f"round {r + 1}/{rounds} {name}: {json.dumps(_short(replies[name][-1]))}", file=log)
    return replies


def _short(reply: dict) -> dict:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in reply.items()
            if not isinstance(v, (list, dict))}

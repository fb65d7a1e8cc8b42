"""The one line a binary logs when it starts: versions, devices and (llm_train) the strategy.

Example (``llm_train`` on a 2-core CPU machine)::

    I1205 14:05:22.246 140 startup.py:97] llm_train: llm-tf 0.1.0, TensorFlow 2.20.0,
    Keras 3.15.1, keras-hub 0.32.0; devices: CPU AMD EPYC (2 cores; avx2 avx512f avx512_vnni
    avx512_bf16), oneDNN on; strategy: one_device

(one line in the terminal). It is logged at INFO, which absl shows by default;
``--verbosity=-1`` hides it.
"""

import importlib.metadata
import json
import os
import sys
from collections import Counter
from collections.abc import Iterable

from absl import logging

from llm_tf import compat

#: The CPU flags of /proc/cpuinfo worth knowing for TensorFlow's CPU kernels, in this order.
VECTOR_EXTENSIONS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni",
                     "amx_tile", "amx_bf16", "amx_int8")


def cpu_model_and_extensions(cpuinfo: str = "/proc/cpuinfo") -> tuple[str, list[str]]:
    """The CPU's model name and which of :data:`VECTOR_EXTENSIONS` it has.

    Args:
        cpuinfo: The file to read (Linux's /proc/cpuinfo).

    Returns:
        ``(model name or "unknown", [extensions])``; ``("unknown", [])`` when the file cannot be read.
    """
    model, flags = "", set()
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not model:
                    model = " ".join(value.split())
                elif key in ("flags", "Features") and not flags:  # x86 / ARM
                    flags = set(value.split())
                if model and flags:
                    break
    except OSError:
        pass
    return model or "unknown", [ext for ext in VECTOR_EXTENSIONS if ext in flags]


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. a container's share)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _counted(names: Iterable[str]) -> str:
    return ", ".join(f"{n}x {name}" if n > 1 else name for name, n in Counter(names).items())


def describe_devices(tf) -> str:
    """``GPU 2x NVIDIA H100 80GB HBM3`` / ``TPU (8 devices)`` / ``CPU <model> (<cores>; <extensions>)``.

    Args:
        tf: The ``tensorflow`` module (already imported by the binary).
    """
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        names = []
        for gpu in gpus:
            try:
                names.append(tf.config.experimental.get_device_details(gpu).get("device_name") or gpu.name)
            except (ValueError, RuntimeError):
                names.append(gpu.name)
        return f"GPU {_counted(names)}"
    tpus = tf.config.list_physical_devices("TPU")
    if tpus:
        return f"TPU ({len(tpus)} device{'s' if len(tpus) != 1 else ''})"
    model, extensions = cpu_model_and_extensions()
    cores = usable_cores()
    detail = f"{cores} core{'s' if cores != 1 else ''}" + (f"; {' '.join(extensions)}" if extensions else "")
    return f"CPU {model} ({detail})"


def onednn_state() -> str:
    """``on``/``off``: whether TensorFlow's oneDNN CPU kernels are enabled in this process."""
    try:
        return "on" if compat.onednn_enabled() else "off"
    except (ImportError, AttributeError):
        value = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
        return {"1": "on", "0": "off"}.get(value or "", "TensorFlow's default")


def _version(distribution: str, module: str) -> str:
    loaded = sys.modules.get(module)
    version = getattr(loaded, "__version__", None)
    if version:
        return version
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def versions(keras_hub: bool | None = None) -> list[tuple[str, str]]:
    """``[(name, version)]`` of llm-tf, TensorFlow, Keras and keras-hub.

    Args:
        keras_hub: Include keras-hub; None: when it is imported already.
    """
    result = [("llm-tf", _version("llm-tf", "llm_tf")), ("TensorFlow", _version("tensorflow", "tensorflow")),
              ("Keras", _version("keras", "keras"))]
    if keras_hub or (keras_hub is None and "keras_hub" in sys.modules):
        result.append(("keras-hub", _version("keras-hub", "keras_hub")))
    return result


def describe_strategy(runtime) -> str:
    """llm_train's resolved ``runtime`` config in words, for the start line.

    ``one_device``, ``mirrored (2 devices)``, ``tpu (local)`` or
    ``multi_worker_mirrored (1 device; worker 0 of 2 workers)`` (from ``TF_CONFIG``).
    """
    if runtime.strategy == "tpu":
        return f"tpu ({runtime.tpu or 'local'})"
    if runtime.strategy == "one_device":
        return "one_device"
    count = runtime.num_devices
    detail = [f"{count} device{'s' if count != 1 else ''}"]
    if runtime.strategy == "multi_worker_mirrored":
        try:
            tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
            task = tf_config.get("task", {})
            workers = len(tf_config.get("cluster", {}).get("worker", []))
            detail.append(f"{task.get('type', 'worker')} {task.get('index', 0)} of {workers} workers")
        except (ValueError, AttributeError, TypeError):
            detail.append("TF_CONFIG unreadable")
    return f"{runtime.strategy} ({'; '.join(detail)})"


def start_line(binary: str | None = None, *, devices: bool = True, strategy: str | None = None,
               keras_hub: bool | None = None) -> str:
    """The start line: ``<binary>: <versions>; devices: <devices>, oneDNN <on|off>[; strategy: ...]``.

    Imports TensorFlow (every caller is about to use it anyway).

    Args:
        binary: The binary's name (default: ``sys.argv[0]``'s base name).
        devices: List the devices (a client such as llm_predict leaves them out: listing
            initialises the GPU runtime).
        strategy: The distribution strategy, for llm_train.
        keras_hub: Include keras-hub's version; None: when it is imported already.
    """
    import tensorflow as tf

    binary = binary or os.path.basename(sys.argv[0]) or "llm_tf"
    line = f"{binary}: " + ", ".join(f"{name} {version}" for name, version in versions(keras_hub))
    if devices:
        device_text = describe_devices(tf)
        if device_text.startswith("CPU"):
            device_text += f", oneDNN {onednn_state()}"
        line += f"; devices: {device_text}"
    if strategy:
        line += f"; strategy: {strategy}"
    return line


def log_start(binary: str | None = None, **kwargs) -> str:
    """Logs :func:`start_line` at INFO and returns it (arguments as :func:`start_line`'s)."""
    line = start_line(binary, **kwargs)
    logging.info("%s", line)
    return line

"""Fingerprints: the code version, file contents, and the cache key of an execution."""

import functools
import hashlib
import json
import os
import subprocess
from typing import Any

import llm_tf

# The pipeline's components import file_sha256 from here too.
from llm_tf.io_utils import file_sha256


def hash_json(value: Any) -> str:
    """SHA-256 (hex) of ``value`` as canonical JSON."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def _package_dir() -> str:
    return os.path.dirname(os.path.abspath(llm_tf.__file__))


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """SHA-256 over every ``.py`` file of the ``llm_tf`` package (path and contents).

    Any change to the library's code changes it, committed or not, so cached results are
    never reused across code changes.
    """
    root = _package_dir()
    digest = hashlib.sha256()
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                digest.update(os.path.relpath(path, root).encode("utf-8") + b"\0")
                digest.update(file_sha256(path).encode("ascii"))
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def code_version() -> dict[str, Any]:
    """The code version recorded on every execution.

    Returns:
        ``package_version``, ``code_fingerprint`` and, when the package sits in a git
        checkout, ``git_commit`` and ``git_dirty`` (uncommitted changes present).
    """
    from importlib import metadata

    try:
        version = metadata.version("llm-tf")
    except metadata.PackageNotFoundError:
        version = "unknown"
    info: dict[str, Any] = {"package_version": version, "code_fingerprint": code_fingerprint()}
    root = os.path.dirname(_package_dir())
    try:
        commit = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if commit.returncode == 0:
            info["git_commit"] = commit.stdout.strip()
            status = subprocess.run(["git", "-C", root, "status", "--porcelain", "--", "llm_tf"], capture_output=True,
                                    text=True, timeout=10)
            info["git_dirty"] = bool(status.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def execution_key(component_type: str, name: str, properties: dict, input_fingerprints: dict[str, str],
                  code: str) -> str:
    """The cache key of an execution: same key, same outputs.

    Args:
        component_type: The component's class name.
        name: The component's name in the pipeline.
        properties: Its execution properties.
        input_fingerprints: Input name -> the input artifact's fingerprint.
        code: The code fingerprint.

    Returns:
        A hex SHA-256.
    """
    return hash_json({"type": component_type, "name": name, "properties": properties,
                      "inputs": input_fingerprints, "code": code})

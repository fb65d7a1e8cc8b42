"""Atomic file and directory writes: write to a temporary path, then rename.

Readers of our outputs never see a half-written file or directory, even after a kill.
"""

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

from llm_tf.errors import ConfigError

# mkstemp/mkdtemp create private (0600/0700) paths; what we publish gets the modes a plain
# open()/mkdir() would give under the process umask, so other users and containers can read it.
_UMASK = os.umask(0)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK
DIR_MODE = 0o777 & ~_UMASK


def file_sha256(path: str, chunk: int = 1 << 20) -> str:
    """SHA-256 (hex) of a file's contents, read in chunks; a ``scheme://`` path through ``tf.io.gfile``."""
    digest = hashlib.sha256()
    if "://" in path:
        import tensorflow as tf

        open_file = tf.io.gfile.GFile
    else:
        open_file = open
    with open_file(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically (temp file in the same directory, then rename).

    Args:
        path: Destination file; its directory must exist.
        data: The bytes to write.
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix="-" + os.path.basename(path), dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str, text: str) -> None:
    """Writes UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str, obj: Any) -> None:
    """Writes ``obj`` as indented, key-sorted JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


@contextlib.contextmanager
def atomic_directory(path: str, overwrite: bool = False) -> Iterator[str]:
    """Yields a temporary directory that becomes ``path`` only if the block succeeds.

    The temporary directory sits beside ``path`` (same file system, so the final rename is
    atomic). On an exception it is removed and ``path`` is left as it was.

    Args:
        path: The final directory.
        overwrite: Replace an existing ``path``; otherwise an existing non-empty ``path`` is
            an error.

    Yields:
        The temporary directory to write into.

    Raises:
        ConfigError: ``path`` exists, is not empty and ``overwrite`` is False.
    """
    path = os.path.abspath(path)
    if os.path.exists(path) and os.listdir(path) and not overwrite:
        raise ConfigError(f"{path}: output directory exists and is not empty (pass --overwrite to replace it)")
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.partial-", dir=parent)
    try:
        os.chmod(tmp, DIR_MODE)
        yield tmp
        if os.path.exists(path):
            trash = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.old-", dir=parent)
            os.replace(path, os.path.join(trash, "old"))
            os.replace(tmp, path)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

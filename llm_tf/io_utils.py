"""Paths that may be buckets, and atomic file and directory writes.

Every user-given path may be local or a ``scheme://`` path that TensorFlow's file systems
open (``gs://`` is built in; ``s3://``, ``hdfs://`` and others come with tensorflow-io): a
remote path goes through ``tf.io.gfile``. :func:`check_path` refuses, in one line, a scheme
TensorFlow cannot open, instead of letting ``os`` create a local directory named ``gs:``.

What is atomic where:

* a file (:func:`atomic_write_bytes` and the text/JSON variants): locally a temporary file in
  the same directory renamed into place; on a remote file system a temporary object renamed
  into place (an object store's rename is a copy, and each object appears whole).
* a directory (:func:`atomic_directory`): locally a temporary directory beside it renamed into
  place (one atomic ``rename``). Object stores have no directory rename (``ram://`` and
  ``gs://`` copy object by object), so a remote directory is written under a temporary name
  and then copied into place file by file, the files named in ``last`` (a SavedModel's
  ``saved_model.pb``) after every other one: a reader that waits for those files (TF Serving
  loads a version once ``saved_model.pb`` is there, and retries a failed load) never reads half
  a directory. The temporary copy is removed afterwards.
"""

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from llm_tf.errors import ConfigError, DataError

#: Packages that add file systems to TensorFlow, by scheme (for the error that names a missing one).
SCHEME_PACKAGES = {"s3": "tensorflow-io", "hdfs": "tensorflow-io", "viewfs": "tensorflow-io", "az": "tensorflow-io",
                   "http": "tensorflow-io", "https": "tensorflow-io"}


def scheme(path: str) -> str:
    """The ``scheme`` of ``scheme://...`` (empty for a local path; ``file://`` is local)."""
    head, sep, _ = str(path).partition("://")
    if not sep or "/" in head or head == "file":
        return ""
    return head


def is_remote(path: str) -> bool:
    """Whether ``path`` names a non-local file system (``gs://``, ``ram://``, ...)."""
    return bool(scheme(path))


def check_path(path: str, what: str = "path") -> str:
    """Returns ``path`` when TensorFlow can open its file system.

    Args:
        path: A local path or ``scheme://...``.
        what: The flag or field that gave it, for the error.

    Raises:
        ConfigError: The scheme has no TensorFlow file system here; the message names the
            package that adds it.

    Example:
        >>> check_path("gs://bucket/models")
        'gs://bucket/models'
    """
    name = scheme(path)
    if name:
        import tensorflow as tf

        if name not in tf.io.gfile.get_registered_schemes():
            extra = SCHEME_PACKAGES.get(name)
            hint = f"; pip install {extra} adds it" if extra else ""
            raise ConfigError(f"{what}: {path}: TensorFlow has no file system for '{name}://' here{hint}")
    return path


@contextlib.contextmanager
def storage_errors(path: str) -> Iterator[None]:
    """Turns a TensorFlow file-system error on ``path`` into a one-line :class:`DataError`.

    An unreachable bucket (no network, no credentials, no such bucket) fails with the storage
    layer's first line and the path, instead of a traceback.
    """
    import tensorflow as tf

    try:
        yield
    except tf.errors.OpError as e:
        first = ((e.message or str(e)).strip().splitlines() or ["(no message)"])[0]
        raise DataError(f"{path}: {type(e).__name__}: {first}") from None


def makedirs(path: str) -> None:
    """Creates ``path`` and its parents (locally with the umask's modes; remote through gfile)."""
    if not is_remote(path):
        os.makedirs(path, exist_ok=True)
        return
    import tensorflow as tf

    check_path(path)
    with storage_errors(path):
        tf.io.gfile.makedirs(path)


def exists(path: str) -> bool:
    """Whether ``path`` exists (a remote one through gfile; storage errors become DataError)."""
    if not is_remote(path):
        return os.path.exists(path)
    import tensorflow as tf

    check_path(path)
    with storage_errors(path):
        return tf.io.gfile.exists(path)


def listdir(path: str) -> list[str]:
    """Entry names in directory ``path`` (no trailing ``/``), sorted."""
    if not is_remote(path):
        return sorted(os.listdir(path))
    import tensorflow as tf

    check_path(path)
    with storage_errors(path):
        return sorted(name.rstrip("/") for name in tf.io.gfile.listdir(path))


def remove_tree(path: str) -> None:
    """Deletes directory ``path`` and everything in it (nothing when it is absent)."""
    if not is_remote(path):
        shutil.rmtree(path, ignore_errors=True)
        return
    import tensorflow as tf

    with storage_errors(path):
        if tf.io.gfile.exists(path):
            try:
                tf.io.gfile.rmtree(path)
            except tf.errors.NotFoundError:
                if tf.io.gfile.exists(path):  # else a phantom name (see copy_tree) failed after all else went
                    raise


def abspath(path: str) -> str:
    """``os.path.abspath`` of a local path; a ``scheme://`` path is returned unchanged."""
    return path if is_remote(path) else os.path.abspath(path)


def isdir(path: str) -> bool:
    """Whether ``path`` is a directory (a remote one through gfile; storage errors become DataError)."""
    if not is_remote(path):
        return os.path.isdir(path)
    import tensorflow as tf

    check_path(path)
    with storage_errors(path):
        return tf.io.gfile.isdir(path)


def isfile(path: str) -> bool:
    """Whether ``path`` is an existing file, not a directory (remote through gfile)."""
    if not is_remote(path):
        return os.path.isfile(path)
    return exists(path) and not isdir(path)


def read_bytes(path: str) -> bytes:
    """The contents of file ``path`` (a local one raises OSError, a remote one DataError)."""
    if not is_remote(path):
        with open(path, "rb") as f:
            return f.read()
    import tensorflow as tf

    check_path(path)
    with storage_errors(path), tf.io.gfile.GFile(path, "rb") as f:
        return f.read()


def read_text(path: str) -> str:
    """The UTF-8 text of file ``path`` (see :func:`read_bytes`)."""
    return read_bytes(path).decode("utf-8")


def replace(source: str, target: str) -> None:
    """Renames file ``source`` to ``target``, replacing it: the publishing step of a file written aside.

    Locally ``os.replace`` (atomic); on a remote file system ``tf.io.gfile.rename`` (an object
    store copies, and the object appears whole). Storage errors become one-line DataErrors.
    """
    if not is_remote(source) and not is_remote(target):
        os.replace(source, target)
        return
    import tensorflow as tf

    with storage_errors(target):
        tf.io.gfile.rename(source, target, overwrite=True)


def remove_file(path: str) -> None:
    """Deletes file ``path`` (``os.unlink`` locally, gfile remote; storage errors become DataError)."""
    if not is_remote(path):
        os.unlink(path)
        return
    import tensorflow as tf

    with storage_errors(path):
        tf.io.gfile.remove(path)


def copy_file(source: str, target: str) -> None:
    """Copies file ``source`` to ``target`` (any file systems; ``target``'s directory must exist locally)."""
    if not is_remote(source) and not is_remote(target):
        shutil.copyfile(source, target)
        return
    import tensorflow as tf

    with storage_errors(source):
        tf.io.gfile.copy(source, target, overwrite=True)


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
        path: Destination file; its directory must exist (a remote one need not).
        data: The bytes to write.

    Raises:
        ConfigError: A scheme TensorFlow cannot open.
        DataError: The remote file system failed (unreachable bucket, no permission).
    """
    if is_remote(path):
        _remote_write_bytes(path, data)
        return
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


def _remote_write_bytes(path: str, data: bytes) -> None:
    import tensorflow as tf

    check_path(path)
    parent, name = path.rstrip("/").rsplit("/", 1)
    tmp = f"{parent}/.tmp-{uuid.uuid4().hex}-{name}"
    with storage_errors(path):
        tf.io.gfile.makedirs(parent)
        try:
            with tf.io.gfile.GFile(tmp, "wb") as f:
                f.write(data)
            tf.io.gfile.rename(tmp, path, overwrite=True)
        except BaseException:
            with contextlib.suppress(tf.errors.OpError):
                tf.io.gfile.remove(tmp)
            raise


def atomic_write_text(path: str, text: str) -> None:
    """Writes UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str, obj: Any) -> None:
    """Writes ``obj`` as indented, key-sorted JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


@contextlib.contextmanager
def atomic_directory(path: str, overwrite: bool = False, last: Iterable[str] = ()) -> Iterator[str]:
    """Yields a temporary directory that becomes ``path`` only if the block succeeds.

    Locally the temporary directory sits beside ``path`` (same file system, so the final
    rename is atomic). On a remote file system it is copied into place file by file, the
    files named in ``last`` after all others (see the module docstring). On an exception it is
    removed and ``path`` is left as it was.

    Args:
        path: The final directory (local or ``scheme://``).
        overwrite: Replace an existing ``path``; otherwise an existing non-empty ``path`` is
            an error.
        last: File names (at any depth) copied last on a remote file system, e.g.
            ``("saved_model.pb",)``.

    Yields:
        The temporary directory to write into (on the same file system as ``path``).

    Raises:
        ConfigError: ``path`` exists, is not empty and ``overwrite`` is False; or a scheme
            TensorFlow cannot open.
        DataError: The remote file system failed.
    """
    if is_remote(path):
        with _remote_directory(path.rstrip("/"), overwrite, tuple(last)) as tmp:
            yield tmp
        return
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


@contextlib.contextmanager
def _remote_directory(path: str, overwrite: bool, last: tuple[str, ...]) -> Iterator[str]:
    import tensorflow as tf

    check_path(path)
    with storage_errors(path):
        if tf.io.gfile.exists(path) and tf.io.gfile.listdir(path) and not overwrite:
            raise ConfigError(f"{path}: output directory exists and is not empty (pass --overwrite to replace it)")
        parent, name = path.rsplit("/", 1)
        tmp = f"{parent}/.{name}.partial-{uuid.uuid4().hex}"
        tf.io.gfile.makedirs(tmp)
    try:
        yield tmp
        with storage_errors(path):
            if tf.io.gfile.exists(path):
                tf.io.gfile.rmtree(path)  # overwrite: an object store cannot swap directories atomically
            copy_tree(tmp, path, last)
    finally:
        remove_tree(tmp)


def copy_tree(source: str, target: str, last: Iterable[str] = ()) -> list[str]:
    """Copies the files under ``source`` to ``target`` (any file systems), those named in ``last`` last.

    Returns:
        The target files in the order they were written.
    """
    import tensorflow as tf

    last = set(last)
    files = []
    for directory, _, names in tf.io.gfile.walk(source):
        relative = directory[len(source):].strip("/")
        # ram:// lists children by name prefix: a listing of "a" also holds ".b" from its sibling "a.b".
        names = [n for n in names if tf.io.gfile.exists(f"{directory}/{n}")]
        files += [f"{relative}/{n}" if relative else n for n in names]
    files.sort(key=lambda f: (f.rsplit("/", 1)[-1] in last, f))
    written = []
    for relative in files:
        destination = f"{target}/{relative}"
        tf.io.gfile.makedirs(destination.rsplit("/", 1)[0])
        tf.io.gfile.copy(f"{source}/{relative}", destination, overwrite=True)
        written.append(destination)
    return written

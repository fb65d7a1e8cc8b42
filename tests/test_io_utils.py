"""Tests for llm_tf/io_utils.py."""

import os
import stat

import pytest

from llm_tf import io_utils
from llm_tf.errors import ConfigError


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_write_gives_umask_modes_not_private_ones(tmp_path):
    path = tmp_path / "a.json"
    io_utils.atomic_write_json(str(path), {"b": 1, "a": [1]})
    assert path.read_text() == '{\n  "a": [\n    1\n  ],\n  "b": 1\n}\n'
    assert mode(path) == io_utils.FILE_MODE
    assert os.listdir(tmp_path) == ["a.json"]


def test_atomic_directory_appears_whole_or_not_at_all(tmp_path):
    final = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with io_utils.atomic_directory(str(final)) as work:
            open(os.path.join(work, "half"), "w").close()
            raise RuntimeError("killed")
    assert os.listdir(tmp_path) == []
    with io_utils.atomic_directory(str(final)) as work:
        open(os.path.join(work, "done"), "w").close()
        assert not final.exists()
    assert os.listdir(final) == ["done"] and mode(final) == io_utils.DIR_MODE


def test_existing_directory_needs_overwrite(tmp_path):
    final = tmp_path / "out"
    final.mkdir()
    (final / "old").write_text("x")
    with pytest.raises(ConfigError, match="exists and is not empty"):
        with io_utils.atomic_directory(str(final)):
            pass
    with io_utils.atomic_directory(str(final), overwrite=True) as work:
        open(os.path.join(work, "new"), "w").close()
    assert os.listdir(final) == ["new"]
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_file_sha256_reads_local_and_gfile_paths(tmp_path):
    import hashlib

    import tensorflow as tf

    from llm_tf.io_utils import file_sha256

    data = bytes(range(256)) * 5000  # more than one chunk
    (tmp_path / "f.bin").write_bytes(data)
    assert file_sha256(str(tmp_path / "f.bin")) == hashlib.sha256(data).hexdigest()
    assert file_sha256(str(tmp_path / "f.bin"), chunk=7) == hashlib.sha256(data).hexdigest()
    tf.io.gfile.makedirs("ram://sha_test")
    with tf.io.gfile.GFile("ram://sha_test/f.bin", "wb") as f:
        f.write(data)
    assert file_sha256("ram://sha_test/f.bin") == hashlib.sha256(data).hexdigest()

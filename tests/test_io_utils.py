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


# Bucket paths: TensorFlow's in-memory ram:// file system is a real non-local gfile file system.


def _ram(name: str) -> str:
    import uuid

    return f"ram://io-utils-{uuid.uuid4().hex}/{name}"


def test_remote_file_writes_land_whole_and_leave_no_temporary(tmp_path, monkeypatch):
    import tensorflow as tf

    monkeypatch.chdir(tmp_path)
    path = _ram("a/b.json")
    io_utils.atomic_write_json(path, {"b": 1})
    io_utils.atomic_write_json(path, {"b": 2})
    with tf.io.gfile.GFile(path) as f:
        assert f.read() == '{\n  "b": 2\n}\n'
    assert io_utils.listdir(path.rsplit("/", 1)[0]) == ["b.json"]
    assert os.listdir(tmp_path) == []  # nothing local, no "ram:" directory


def test_remote_directory_is_copied_into_place_with_the_last_files_last(monkeypatch):
    import tensorflow as tf

    final = _ram("models/sst2/1")
    copied = []
    real_copy = tf.io.gfile.copy
    def spy(a, b, overwrite=False):
        copied.append(b)
        return real_copy(a, b, overwrite)

    monkeypatch.setattr(tf.io.gfile, "copy", spy)
    with io_utils.atomic_directory(final, last=("saved_model.pb",)) as work:
        assert io_utils.is_remote(work) and work != final
        for name in ("saved_model.pb", "variables/variables.index", "assets/vocab.txt", "fingerprint.pb"):
            tf.io.gfile.makedirs(f"{work}/{name}".rsplit("/", 1)[0])
            with tf.io.gfile.GFile(f"{work}/{name}", "w") as f:
                f.write(name)
        assert not tf.io.gfile.exists(final)  # nothing visible before the block ends
    assert copied[-1] == f"{final}/saved_model.pb" and len(copied) == 4
    with tf.io.gfile.GFile(f"{final}/variables/variables.index") as f:
        assert f.read() == "variables/variables.index"
    assert io_utils.listdir(final.rsplit("/", 1)[0]) == ["1"]  # the temporary copy is gone


def test_remote_directory_failure_and_overwrite():
    import tensorflow as tf

    final = _ram("out")
    with pytest.raises(RuntimeError):
        with io_utils.atomic_directory(final) as work:
            with tf.io.gfile.GFile(f"{work}/half", "w") as f:
                f.write("x")
            raise RuntimeError("killed")
    assert io_utils.listdir(final.rsplit("/", 1)[0]) == []
    with io_utils.atomic_directory(final) as work:
        with tf.io.gfile.GFile(f"{work}/old", "w") as f:
            f.write("x")
    with pytest.raises(ConfigError, match="exists and is not empty"):
        with io_utils.atomic_directory(final):
            pass
    with io_utils.atomic_directory(final, overwrite=True) as work:
        with tf.io.gfile.GFile(f"{work}/new", "w") as f:
            f.write("y")
    assert io_utils.listdir(final) == ["new"]


def test_a_scheme_tensorflow_cannot_open_is_one_line_naming_the_package(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"^--output_dir: s3://b/x: TensorFlow has no file system for 's3://' here; "
                                          r"pip install tensorflow-io adds it$"):
        io_utils.check_path("s3://b/x", "--output_dir")
    with pytest.raises(ConfigError, match="no file system for 'nope://'"):
        io_utils.atomic_write_text("nope://b/x.txt", "x")
    assert io_utils.check_path("gs://b/x") == "gs://b/x" and io_utils.check_path("/tmp/x") == "/tmp/x"
    assert io_utils.scheme("file:///tmp/x") == "" and io_utils.scheme("a/b://c") == ""
    assert os.listdir(tmp_path) == []


def test_an_unreachable_bucket_is_a_clear_error_and_nothing_is_written_locally(tmp_path, monkeypatch):
    from llm_tf.errors import DataError

    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=r"^gs://llm-tf-no-such-bucket/x\.json: \w+: .+"):
        io_utils.atomic_write_json("gs://llm-tf-no-such-bucket/x.json", {})
    assert os.listdir(tmp_path) == []


def test_copy_tree_copies_sibling_directories_that_share_a_name_prefix():
    # ram:// lists "assets" with a phantom ".extra" from its sibling "assets.extra" (every SavedModel has both).
    import tensorflow as tf

    source, target = _ram("src"), _ram("dst")
    for name in ("assets/vocab.txt", "assets.extra/labels.txt", "saved_model.pb"):
        tf.io.gfile.makedirs(f"{source}/{name}".rsplit("/", 1)[0])
        with tf.io.gfile.GFile(f"{source}/{name}", "w") as f:
            f.write(name)
    written = io_utils.copy_tree(source, target, last=("saved_model.pb",))
    assert written == [f"{target}/assets.extra/labels.txt", f"{target}/assets/vocab.txt", f"{target}/saved_model.pb"]
    io_utils.remove_tree(source)
    assert not tf.io.gfile.exists(f"{source}/saved_model.pb")


def test_replace_and_remove_file_on_local_and_remote_paths(tmp_path):
    import tensorflow as tf

    for root in (str(tmp_path), _ram("r")):
        io_utils.makedirs(root)
        io_utils.atomic_write_text(f"{root}/a.tmp", "new")
        io_utils.atomic_write_text(f"{root}/a.txt", "old")
        io_utils.replace(f"{root}/a.tmp", f"{root}/a.txt")
        assert io_utils.read_text(f"{root}/a.txt") == "new" and not tf.io.gfile.exists(f"{root}/a.tmp")
        io_utils.remove_file(f"{root}/a.txt")
        assert not io_utils.exists(f"{root}/a.txt")

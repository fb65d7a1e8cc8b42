"""TFRecord shards of ``tf.train.Example``: atomic sharded writing and reading back to tf.data.

Shards are named ``<split>-00000-of-00004.tfrecord``. Each shard is written to a hidden
temporary file and renamed when the writer closes cleanly, so a reader never sees a partial
shard. The directory may be local or ``gs://`` (any ``scheme://`` TensorFlow opens).
"""

import contextlib
import glob
import os
from collections.abc import Iterable, Mapping
from typing import Any

import tensorflow as tf

from llm_tf import io_utils
from llm_tf.errors import DataError

#: Canonical feature -> (dtype, is_list). Strings are stored as UTF-8 bytes.
FEATURES = {
    "text": (tf.string, False),
    "text_pair": (tf.string, False),
    "label": (tf.string, False),
    "tokens": (tf.string, True),
    "tags": (tf.string, True),
}


def to_tf_example(example: Mapping[str, Any]) -> tf.train.Example:
    """Encodes a canonical example (str, int, float or lists of them) as ``tf.train.Example``."""
    features = {}
    for name, value in example.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        if all(isinstance(v, str) for v in values):
            feature = tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode("utf-8") for v in values]))
        elif all(isinstance(v, bytes) for v in values):
            feature = tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))
        elif all(isinstance(v, (int,)) and not isinstance(v, bool) for v in values):
            feature = tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))
        elif all(isinstance(v, (int, float)) for v in values):
            feature = tf.train.Feature(float_list=tf.train.FloatList(value=list(values)))
        else:
            raise TypeError(f"feature '{name}': cannot encode {type(values[0]).__name__}")
        features[name] = feature
    return tf.train.Example(features=tf.train.Features(feature=features))


def serialize_example(example: Mapping[str, Any]) -> bytes:
    """The record of a canonical example: :func:`to_tf_example`, serialized deterministically.

    Deterministic serialization writes the feature map sorted by name. The default order is
    the map's hash order, which the protobuf runtime seeds per process: the same example
    could give different bytes in two runs (or on two Beam workers) of the same preparation.
    """
    return to_tf_example(example).SerializeToString(deterministic=True)


def from_tf_example(serialized: bytes) -> dict[str, Any]:
    """Decodes a serialized ``tf.train.Example`` into Python values (str for bytes features).

    Scalar features (one value) come back as scalars, except canonical list features.
    """
    example = tf.train.Example.FromString(serialized)
    result = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        values = list(getattr(feature, kind).value) if kind else []
        if kind == "bytes_list":
            values = [v.decode("utf-8") for v in values]
        is_list = FEATURES.get(name, (None, len(values) != 1))[1]
        result[name] = values if is_list else values[0]
    return result


class ShardedWriter:
    """Writes examples round-robin into ``num_shards`` TFRecord files of one split.

    Use as a context manager: shards are renamed into place only when the block succeeds.

    Args:
        directory: Output directory (created if needed).
        split: Split name used as the file prefix (``train``, ``eval``).
        num_shards: Number of shard files.
        compression: ``""`` or ``"GZIP"``.

    Example:
        >>> with ShardedWriter("out", "train", num_shards=2) as writer:
        ...     writer.write({"text": "a fine film", "label": "1"})
    """

    def __init__(self, directory: str, split: str, num_shards: int = 1, compression: str = ""):
        if num_shards < 1:
            raise DataError(f"num_shards must be >= 1, got {num_shards}")
        self.directory = directory
        self.split = split
        self.num_shards = num_shards
        self.compression = compression
        self.count = 0
        self.paths = [shard_path(directory, split, i, num_shards, compression) for i in range(num_shards)]
        self._tmp_paths = [_partial_path(p) for p in self.paths]
        self._writers = None

    def __enter__(self) -> "ShardedWriter":
        io_utils.makedirs(self.directory)
        options = tf.io.TFRecordOptions(compression_type=self.compression)
        with io_utils.storage_errors(self.directory):
            self._writers = [tf.io.TFRecordWriter(p, options) for p in self._tmp_paths]
        return self

    def write(self, example: Mapping[str, Any]) -> None:
        """Appends one canonical example to the next shard."""
        self.write_serialized(serialize_example(example))

    def write_serialized(self, record: bytes) -> None:
        """Appends one already-serialized record to the next shard."""
        self._writers[self.count % self.num_shards].write(record)
        self.count += 1

    def __exit__(self, exc_type, exc, tb) -> None:
        with io_utils.storage_errors(self.directory):
            for writer in self._writers:
                writer.close()
            for tmp, final in zip(self._tmp_paths, self.paths):
                if exc_type is None:
                    io_utils.replace(tmp, final)
                else:
                    _remove(tmp)


def write_shard(directory: str, split: str, index: int, num_shards: int, records: Iterable[bytes]) -> str:
    """Writes one shard of a split, from serialized records in order, atomically; returns its path.

    The shard a :class:`ShardedWriter` of ``num_shards`` shards would write as its ``index``-th
    when given the same records: how a distributed run (:mod:`llm_tf.data.beam_prepare`) has each
    worker write a shard of its own.

    Raises:
        DataError: The file system failed (the directory is named).
    """
    path = shard_path(directory, split, index, num_shards)
    tmp = _partial_path(path)
    io_utils.makedirs(directory)
    with io_utils.storage_errors(directory):
        try:
            with tf.io.TFRecordWriter(tmp) as writer:
                for record in records:
                    writer.write(record)
        except BaseException:
            _remove(tmp)
            raise
        io_utils.replace(tmp, path)
    return path


def _partial_path(path: str) -> str:
    """Where a shard is written before it is renamed into place (hidden, beside it)."""
    return os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.partial")


def _remove(path: str) -> None:
    """Removes a partial shard if it is there (a storage error here would hide the one being raised)."""
    if not io_utils.is_remote(path):
        if os.path.exists(path):
            os.unlink(path)
        return
    with contextlib.suppress(tf.errors.OpError):
        if tf.io.gfile.exists(path):
            tf.io.gfile.remove(path)


def shard_path(directory: str, split: str, index: int, num_shards: int, compression: str = "") -> str:
    """Returns the path of one shard: ``<dir>/<split>-00001-of-00004.tfrecord[.gz]``."""
    suffix = ".tfrecord.gz" if compression == "GZIP" else ".tfrecord"
    return os.path.join(directory, f"{split}-{index:05d}-of-{num_shards:05d}{suffix}")


def write_tfrecords(examples: Iterable[Mapping[str, Any]], directory: str, split: str,
                    num_shards: int = 1) -> list[str]:
    """Writes examples into sharded TFRecords atomically and returns the shard paths."""
    with ShardedWriter(directory, split, num_shards) as writer:
        for example in examples:
            writer.write(example)
    return writer.paths


def split_files(directory: str, split: str) -> list[str]:
    """Lists the shard files of ``split`` in ``directory``, sorted.

    Raises:
        DataError: No shard of that split exists.
    """
    pattern = os.path.join(directory, f"{split}-*-of-*.tfrecord*")
    if io_utils.is_remote(directory):
        io_utils.check_path(directory)
        with io_utils.storage_errors(directory):
            files = sorted(tf.io.gfile.glob(pattern))
    else:
        files = sorted(glob.glob(pattern))
    if not files:
        raise DataError(f"{directory}: no TFRecord shards for split '{split}'")
    return files


def feature_spec(features: Iterable[str]) -> dict[str, Any]:
    """Returns the parsing spec for canonical ``features`` (lists become ragged)."""
    spec = {}
    for name in features:
        if name not in FEATURES:
            raise DataError(f"unknown feature '{name}' (known: {', '.join(FEATURES)})")
        dtype, is_list = FEATURES[name]
        spec[name] = (tf.io.RaggedFeature(dtype, row_splits_dtype=tf.int64) if is_list
                      else tf.io.FixedLenFeature([], dtype))
    return spec


def read_tfrecords(
    files: str | list[str], features: Iterable[str], batch_size: int | None = None, compression: str | None = None
) -> tf.data.Dataset:
    """Reads TFRecord shards back into a tf.data.Dataset of feature dicts.

    Args:
        files: A glob pattern or a list of shard paths.
        features: Canonical feature names to parse (e.g. ``["text", "label"]``).
        batch_size: Parse in batches of this size (faster); None yields single examples.
        compression: ``""``, ``"GZIP"``, or None to infer from the file names.

    Returns:
        A dataset of dicts; list features are ``tf.RaggedTensor``.

    Raises:
        DataError: No file matches.
    """
    if isinstance(files, str):
        with io_utils.storage_errors(files):
            paths = sorted(tf.io.gfile.glob(files))
    else:
        paths = list(files)
    if not paths:
        raise DataError(f"{files}: no TFRecord files match")
    if compression is None:
        compression = "GZIP" if paths[0].endswith(".gz") else ""
    spec = feature_spec(features)
    dataset = tf.data.TFRecordDataset(paths, compression_type=compression)
    if batch_size:
        return dataset.batch(batch_size).map(lambda x: tf.io.parse_example(x, spec),
                                             num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.map(lambda x: tf.io.parse_single_example(x, spec), num_parallel_calls=tf.data.AUTOTUNE)

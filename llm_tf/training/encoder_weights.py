"""Encoder weights between runs: export after training, load as ``task.init_checkpoint``.

Every task model holds its encoder as the layer named ``encoder``; its weights go to
``model_dir/encoder.weights.h5`` (and its dimensions to ``encoder.json``) so that another experiment
(e.g. fine-tuning after ``mlm_pretrain``) can start from them whatever its head.

Keras reads and writes ``.h5`` files on local disk only: with a bucket ``model_dir`` the weights
are saved to a local temporary file and copied up (then renamed into place), and read by
copying them down to a local temporary file.
"""

import contextlib
import json
import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator

import keras

from llm_tf import io_utils
from llm_tf.errors import ConfigError
from llm_tf.io_utils import FILE_MODE, atomic_write_json
from llm_tf.models.encoder import ENCODER_NAME
from llm_tf.training import model_dir as model_dir_lib

ENCODER_WEIGHTS = model_dir_lib.ENCODER_WEIGHTS_FILE
ENCODER_SHAPE = model_dir_lib.ENCODER_SHAPE_FILE
#: Encoder config keys that must agree for weights to load.
SHAPE_KEYS = ("vocabulary_size", "num_layers", "num_heads", "hidden_dim", "intermediate_dim", "max_sequence_length")


def _shape(encoder: keras.Model) -> dict:
    config = encoder.get_config()
    return {key: config.get(key) for key in SHAPE_KEYS}


def export_encoder(model: keras.Model, model_dir: str) -> str:
    """Saves the encoder's weights (``encoder.weights.h5``) and dimensions (``encoder.json``).

    Both are written atomically into ``model_dir``.

    Returns:
        The weights path.
    """
    encoder = model.get_layer(ENCODER_NAME)
    path = os.path.join(model_dir, ENCODER_WEIGHTS)
    if io_utils.is_remote(model_dir):  # Keras writes h5 files to local disk only: save there, copy up
        with _local_directory() as local:
            encoder.save_weights(os.path.join(local, ENCODER_WEIGHTS))
            tmp = f"{model_dir.rstrip('/')}/.partial-{uuid.uuid4().hex}.{ENCODER_WEIGHTS}"
            io_utils.copy_file(os.path.join(local, ENCODER_WEIGHTS), tmp)
            io_utils.replace(tmp, path)
    else:
        tmp = os.path.join(model_dir, f".partial-{os.getpid()}.{ENCODER_WEIGHTS}")
        encoder.save_weights(tmp)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    atomic_write_json(os.path.join(model_dir, ENCODER_SHAPE), _shape(encoder))
    return path


@contextlib.contextmanager
def _local_directory() -> Iterator[str]:
    """A local temporary directory, removed afterwards (Keras's h5 files need local disk)."""
    directory = tempfile.mkdtemp(prefix="llm_tf_h5_")
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def local_weights_file(path: str) -> Iterator[str]:
    """Yields ``path`` when it is local, else a local temporary copy of it (Keras reads h5 files from local disk)."""
    if not io_utils.is_remote(path):
        yield path
        return
    with _local_directory() as local:
        copy = os.path.join(local, os.path.basename(path))
        io_utils.copy_file(path, copy)
        yield copy


def load_init_checkpoint(model: keras.Model, init_checkpoint: str) -> str:
    """Loads encoder weights from an earlier run into ``model``'s encoder.

    Args:
        model: A task model with an ``encoder`` layer.
        init_checkpoint: A ``model_dir`` holding ``encoder.weights.h5``, or that file.

    Returns:
        The weights file loaded.

    Raises:
        ConfigError: The file is missing, or its shapes do not fit this encoder (a different
            size or vocabulary); the message names the first mismatch.
    """
    path = os.path.join(init_checkpoint, ENCODER_WEIGHTS) if io_utils.isdir(init_checkpoint) else init_checkpoint
    if not io_utils.isfile(path):
        raise ConfigError(f"task.init_checkpoint: {path}: no such file (expected a model_dir with {ENCODER_WEIGHTS})")
    encoder = model.get_layer(ENCODER_NAME)
    shape_file = os.path.join(os.path.dirname(path), ENCODER_SHAPE)
    if io_utils.isfile(shape_file):
        saved = json.loads(io_utils.read_text(shape_file))
        ours = _shape(encoder)
        differ = [f"{k} {saved.get(k)} there, {ours[k]} here" for k in SHAPE_KEYS if saved.get(k) != ours[k]]
        if differ:
            raise ConfigError(f"task.init_checkpoint: {path} does not fit this encoder: {'; '.join(differ)}")
    with local_weights_file(path) as local:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Keras warns per skipped layer before it raises
                encoder.load_weights(local)
        except (ValueError, KeyError) as e:
            detail = next((line for line in str(e).splitlines() if line.startswith("Layer ")), str(e).splitlines()[0])
            raise ConfigError(f"task.init_checkpoint: {path} does not fit this encoder: {detail}") from None
    return path

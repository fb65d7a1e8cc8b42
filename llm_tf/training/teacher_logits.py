"""Teacher logits computed once and stored with the examples, so distillation need not run the teacher.

:func:`precompute_teacher_logits` reads every shard of the student's prepared data (train and
eval splits) in file order, runs the teacher in inference mode on the same packed inputs the
training pipeline builds (the student's tokenizer at ``task.data.seq_length``; batches of
similar length within chunks, for speed), and writes each record back unchanged, in its
order, plus a float feature ``teacher_logits`` [classes], into shards with the same names
under ``<output_dir>/examples/``. A teacher trained on another vocabulary than the student's
(the student's is a cut of it, ``llm_prepare --vocab_cut``) reads each text tokenized with its
own tokenizer (its prepared data's) instead, as it was trained. The logits travel inside the records, so
shuffling and bucketing cannot misalign them, and a run on these shards sees its examples in
the same order as a run on the original data. ``teacher_logits.json`` records what produced
them; :func:`open_teacher_logits` checks it against the run's config. From the binary::

    llm_train --experiment=distillation --mode=precompute_teacher_logits \\
        --model_dir=runs/distill/teacher_logits --config_file=...

The output directory is written beside its final path and renamed into place at the end (on a
bucket: copied into place, ``teacher_logits.json`` last, see :func:`llm_tf.io_utils.atomic_directory`).
"""

import json
import os
import time

import numpy as np
import tensorflow as tf

from llm_tf import io_utils
from llm_tf.data.prepared import EXAMPLES_DIR
from llm_tf.errors import ConfigError, DataError
from llm_tf.io_utils import atomic_directory, atomic_write_json
from llm_tf.text.tokenizer import TextTokenizer
from llm_tf.training import teacher as teacher_lib
from llm_tf.training.sentence_classification import SentenceClassificationTask

#: The float feature [classes] added to every record.
FEATURE = "teacher_logits"
#: What produced the logits (teacher, checkpoint, prepared data, seq_length, labels, counts).
MANIFEST = "teacher_logits.json"
#: The ``llm_train --mode`` that runs :func:`precompute_teacher_logits`.
MODE = "precompute_teacher_logits"
#: The config field that points training at precomputed logits.
FIELD = "task.distillation.teacher_logits_dir"


def _trim(inputs: dict) -> dict:
    """Cuts a padded batch to its longest real sequence (padding does not change the logits)."""
    length = tf.maximum(tf.reduce_max(tf.reduce_sum(inputs["padding_mask"], axis=1)), 1)
    return {k: v[:, :length] for k, v in inputs.items()}


def _chunk_logits(inputs: dict, logits_of, batch_size: int) -> np.ndarray:
    """Teacher logits of a chunk of packed examples, in the chunk's order.

    The teacher sees batches of similar length (sorted, then cut to their longest), which
    costs a fraction of batches padded to the longest example of a random mix.
    """
    order = np.argsort(inputs["padding_mask"].sum(axis=1), kind="stable")
    result = None
    for start in range(0, len(order), batch_size):
        index = order[start:start + batch_size]
        logits = logits_of({k: tf.constant(v[index]) for k, v in inputs.items()}).numpy()
        if result is None:
            result = np.zeros([len(order), logits.shape[-1]], np.float32)
        result[index] = logits
    return result


def _add_logits(record: bytes, logits) -> bytes:
    example = tf.train.Example.FromString(record)
    example.features.feature[FEATURE].float_list.value[:] = [float(v) for v in logits]
    return example.SerializeToString()


def precompute_teacher_logits(config, output_dir: str, batch_size: int = 128, chunk_size: int = 8192) -> dict:
    """Writes the prepared records of the train and eval splits with the teacher's logits added.

    Args:
        config: A ``distillation`` experiment config (``task.data`` names the prepared data
            and ``seq_length``; ``task.distillation`` the teacher and its checkpoint).
        output_dir: Where to write (``examples/`` and ``teacher_logits.json``). An existing
            directory is replaced only if it holds earlier teacher logits.
        batch_size: Examples per teacher call.
        chunk_size: Examples read at a time; each chunk is sorted by length into batches (the
            records are still written in their order).

    Returns:
        The manifest written to ``teacher_logits.json``.

    Raises:
        ConfigError: Bad teacher (see ``teacher.load_teacher``), labels or vocabulary that
            differ from the prepared data's, or an output directory holding something else.
        DataError: Missing prepared data.
    """
    data_config = config.task.data
    settings = config.task.distillation
    if (io_utils.isdir(output_dir) and io_utils.listdir(output_dir)
            and not io_utils.isfile(os.path.join(output_dir, MANIFEST))):
        raise ConfigError(f"{output_dir}: exists and does not hold teacher logits ({MANIFEST}); "
                          "choose another --model_dir")
    # The student's own transform: the teacher sees exactly the packed inputs training builds.
    student = SentenceClassificationTask(config)
    data = student.data
    teacher = teacher_lib.load_teacher(settings.teacher_dir, settings.teacher_checkpoint)
    student_vocab = teacher_lib.vocab_path_of(data.directory)
    own_tokenizer = None
    if teacher.info.tokenizer_dir and not teacher_lib.same_vocabulary(teacher.info, student_vocab):
        # The student's vocabulary is another (e.g. a cut of the teacher's): the teacher reads
        # each text tokenized its own way, as it was trained.
        teacher_lib.check_compatible(teacher.info, data.labels, teacher.info.vocab_path, data.directory)
        own_tokenizer = TextTokenizer.from_directory(teacher.info.tokenizer_dir)
    elif not teacher_lib.same_vocabulary(teacher.info, student_vocab):
        raise ConfigError(f"{teacher_lib.FIELD}: the teacher {teacher.info.source} is a SavedModel whose vocabulary "
                          f"{teacher.info.vocab_path} differs from the student's {student_vocab}; tokenizing each text "
                          "the teacher's way needs its training model_dir (its prepared data's tokenizer)")
    else:
        teacher_lib.check_compatible(teacher.info, data.labels, student_vocab, data.directory)
    example_transform = student.example_transform(own_tokenizer)
    seq_length = data_config.seq_length

    def pack(serialized):
        return example_transform(serialized)[0]

    @tf.function(reduce_retracing=True)
    def logits_of(inputs):
        return teacher(_trim(inputs))["logits"]

    splits = {}
    with atomic_directory(output_dir, overwrite=True, last=(MANIFEST,)) as tmp:
        io_utils.makedirs(os.path.join(tmp, EXAMPLES_DIR))
        for split in dict.fromkeys([data_config.train_split, data_config.eval_split]):
            try:
                files = data.files(split)
            except DataError:
                continue
            count = 0
            for path in files:
                compression = "GZIP" if path.endswith(".gz") else ""
                dataset = tf.data.TFRecordDataset(path, compression_type=compression).batch(chunk_size)
                dataset = dataset.map(lambda s: (s, pack(s))).prefetch(1)
                target = os.path.join(tmp, EXAMPLES_DIR, os.path.basename(path))
                with tf.io.TFRecordWriter(target, tf.io.TFRecordOptions(compression_type=compression)) as writer:
                    for records, inputs in dataset:
                        chunk = _chunk_logits({k: v.numpy() for k, v in inputs.items()}, logits_of, batch_size)
                        for record, logits in zip(records.numpy(), chunk):
                            writer.write(_add_logits(record, logits))
                            count += 1
            splits[split] = {"count": count, "files": [os.path.basename(p) for p in files]}
        info = teacher.info
        manifest = {
            "feature": FEATURE,
            "teacher": info.source,
            "teacher_kind": info.kind,
            "teacher_checkpoint": info.checkpoint,
            "teacher_step": info.step,
            "teacher_params": info.params,
            "prepared_dir": io_utils.abspath(data.directory),
            "seq_length": seq_length,
            "teacher_tokenizer": teacher.info.tokenizer_dir if own_tokenizer else "the student's",
            "labels": list(data.labels),
            "splits": splits,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        atomic_write_json(os.path.join(tmp, MANIFEST), manifest)
    return manifest


def open_teacher_logits(directory: str, config, labels: list[str]) -> dict:
    """Reads and checks the manifest of precomputed teacher logits against a run's config.

    Args:
        directory: ``task.distillation.teacher_logits_dir``.
        config: The run's config (prepared data, ``seq_length``, teacher).
        labels: The student's labels.

    Returns:
        The manifest.

    Raises:
        ConfigError: No logits there, or logits computed for other prepared data, another
            ``seq_length``, other labels or another teacher (the message names both sides).
    """
    path = os.path.join(directory, MANIFEST)
    if not io_utils.isfile(path):
        raise ConfigError(f"{FIELD}: {directory}: no {MANIFEST}; write it first with "
                          f"llm_train --experiment=distillation --mode={MODE} --model_dir={directory} (same config)")
    manifest = json.loads(io_utils.read_text(path))
    prepared = io_utils.abspath(config.task.data.prepared_dir)
    if manifest["prepared_dir"] != prepared:
        raise ConfigError(f"{FIELD}: {directory} holds logits for the prepared data {manifest['prepared_dir']}, "
                          f"not {prepared} (task.data.prepared_dir)")
    if manifest["seq_length"] != config.task.data.seq_length:
        raise ConfigError(f"{FIELD}: {directory} was computed at seq_length {manifest['seq_length']}, this run uses "
                          f"{config.task.data.seq_length} (task.data.seq_length)")
    if manifest["labels"] != list(labels):
        raise ConfigError(f"{FIELD}: {directory} has logits over labels {manifest['labels']}, the student's prepared "
                          f"data has {list(labels)}")
    if not config.task.distillation.teacher_dir:
        raise ConfigError(f"{teacher_lib.FIELD} is not set: name the teacher ({directory} holds logits of "
                          f"{manifest['teacher']})")
    teacher = io_utils.abspath(config.task.distillation.teacher_dir)
    if teacher != manifest["teacher"]:
        raise ConfigError(f"{FIELD}: {directory} holds logits of the teacher {manifest['teacher']}, but "
                          f"{teacher_lib.FIELD} is '{config.task.distillation.teacher_dir}'")
    return manifest


def logits_files(directory: str, manifest: dict, split: str) -> list[str]:
    """The shards of ``split`` under ``directory`` (raises DataError when the split was not computed)."""
    if split not in manifest["splits"]:
        raise DataError(f"{directory}: no teacher logits for split '{split}' "
                        f"(computed: {', '.join(manifest['splits'])})")
    return [os.path.join(directory, EXAMPLES_DIR, name) for name in manifest["splits"][split]["files"]]


def precompute_from_config(config, output_dir: str) -> dict:
    """``llm_train --mode=precompute_teacher_logits``: :func:`precompute_teacher_logits` for a run's config.

    Returns:
        A summary: the teacher, its checkpoint and the examples written per split.

    Raises:
        ConfigError: The experiment is not ``distillation`` (or see :func:`precompute_teacher_logits`).
    """
    if config.experiment != "distillation":
        raise ConfigError(f"--mode={MODE} is for --experiment=distillation, not '{config.experiment}'")
    started = time.perf_counter()
    manifest = precompute_teacher_logits(config, output_dir)
    return {"teacher": manifest["teacher"], "teacher_checkpoint": manifest["teacher_checkpoint"],
            **{f"{split}_examples": values["count"] for split, values in manifest["splits"].items()},
            "seconds": round(time.perf_counter() - started, 1)}

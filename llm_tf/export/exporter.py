"""``llm_export``'s library call: a training ``model_dir`` to ``<model_base_path>/<version>/``.

The version directory is written beside its final path under a dot-name that TF Serving
ignores and renamed into place at the end, so a polling server never sees half a model. On a
bucket (``gs://...``), which has no directory rename, it is copied into place file by file with
``saved_model.pb`` last: TF Serving loads a version once that file is there (and retries a failed
load), so it never loads half a version (:func:`llm_tf.io_utils.atomic_directory`).
"""

import dataclasses
import itertools
import os
import time

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from llm_tf import compat, io_utils
from llm_tf.data import tfrecords
from llm_tf.errors import ConfigError, DataError
from llm_tf.export import compression, export_dir, serving_tflite, signatures, softmax_masks, warmup
from llm_tf.io_utils import atomic_directory, atomic_write_bytes
from llm_tf.training import model_dir as model_dir_lib
from llm_tf.training import registry_imports  # noqa: F401  (rebuilds any registered experiment's model)


@dataclasses.dataclass
class ExportResult:
    """What :func:`export_saved_model` wrote.

    Attributes:
        path: The version directory.
        version: Its integer version.
        signatures: Signature names saved.
        checkpoint: The checkpoint exported.
        step: Its training step.
        weights: Size and sparsity of the variables (see ``compression.variables_report``).
        tflite_model: What :func:`~llm_tf.export.serving_tflite.place_tflite_model` wrote as
            ``model.tflite`` (variant, bytes, signature, checks), or None.
    """

    path: str
    version: int
    signatures: list[str]
    checkpoint: str
    step: int
    weights: dict = dataclasses.field(default_factory=dict)
    tflite_model: dict | None = None


def build_serving_module(trained: model_dir_lib.TrainedModel) -> tf.Module:
    """The serving module for a restored model's task.

    Raises:
        ConfigError: The experiment has no serving export (e.g. ``mlm_pretrain``).
    """
    task = trained.task
    seq_length = trained.config.task.data.seq_length
    name = trained.config.experiment
    if name in ("sentence_classification", "distillation"):  # a distilled student is a sentence classifier
        return signatures.ClassifierServing(trained.model, task.data.tokenizer, task.data.labels, seq_length,
                                            task.has_pair)
    if name == "token_classification":
        return signatures.TaggerServing(trained.model, task.data.tokenizer, task.data.labels, seq_length)
    if name == "causal_lm":
        return signatures.GeneratorServing(trained.model, task.data.tokenizer, trained.config.task.generation)
    raise ConfigError(f"experiment '{name}' has no serving export (export sentence_classification, "
                      "token_classification or causal_lm runs; mlm_pretrain's encoder is exported by training as "
                      f"{model_dir_lib.ENCODER_WEIGHTS_FILE})")


def sample_texts(trained: model_dir_lib.TrainedModel, count: int) -> tuple[list[str], list[str] | None]:
    """Up to ``count`` texts (and pairs) from the prepared eval split (train if none), for warm-up."""
    data = trained.task.data
    pair = "text_pair" in data.features
    if "tokens" in data.features:
        features, joined = ["tokens"], True
    else:
        features, joined = ["text"] + (["text_pair"] if pair else []), False
    for split in (trained.config.task.data.eval_split, trained.config.task.data.train_split):
        try:
            files = data.files(split)
        except DataError:
            continue
        texts, pairs = [], []
        for example in itertools.islice(tfrecords.read_tfrecords(files, features), count):
            if joined:
                texts.append(" ".join(t.decode("utf-8") for t in example["tokens"].numpy()))
            else:
                texts.append(example["text"].numpy().decode("utf-8"))
                if pair:
                    pairs.append(example["text_pair"].numpy().decode("utf-8"))
        if texts:
            return texts, (pairs if pair else None)
    raise DataError(f"{data.directory}: no examples to draw warm-up requests from")


def set_method_names(version_dir: str, methods: dict[str, str]) -> None:
    """Rewrites SignatureDef method names in saved_model.pb (TF2's saver writes 'predict' for all).

    Args:
        version_dir: A SavedModel directory (saved_model.pb and fingerprint.pb are rewritten).
        methods: Signature name -> method name (e.g. ``tensorflow/serving/classify``).
    """
    path = os.path.join(version_dir, export_dir.SAVED_MODEL_FILE)
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString(io_utils.read_bytes(path))
    for meta_graph in saved_model.meta_graphs:
        for name, method in methods.items():
            if name in meta_graph.signature_def:
                meta_graph.signature_def[name].method_name = method
    atomic_write_bytes(path, saved_model.SerializeToString())
    # fingerprint.pb checksums saved_model.pb: recompute it so the two agree.
    fingerprint = os.path.join(version_dir, "fingerprint.pb")
    if io_utils.exists(fingerprint):
        with io_utils.storage_errors(fingerprint):
            tf.io.gfile.remove(fingerprint)
            compat.write_fingerprint(version_dir)


def export_saved_model(model_dir: str, model_base_path: str, version: int | None = None, checkpoint: str = "best",
                       model_name: str = "", warmup_count: int = 8, prepared_dir: str | None = None,
                       tflite_model: str = "none") -> ExportResult:
    """Exports a trained model as a new TF Serving version with raw-text signatures.

    Args:
        model_dir: The training directory (``params.yaml`` + checkpoints).
        model_base_path: The serving model base path; the version goes in a sub-directory.
        version: Version number; default: the next integer.
        checkpoint: ``best``, ``latest`` or a checkpoint prefix.
        model_name: Model name in the warm-up requests (default: the base path's name).
        warmup_count: Sample texts in the warm-up requests (0: no warm-up file).
        prepared_dir: Where the prepared data is, if it moved since training.
        tflite_model: ``none``, or a variant (``float32``, ``float16``, ``dynamic_int8``) of the token
            form to write as ``model.tflite`` (TF Serving's ``--prefer_tflite_model``); its
            warm-up requests are then on ``predict_tokens``, which both files serve.

    Returns:
        An :class:`ExportResult`.

    Raises:
        ConfigError: The version exists, is not positive, or the experiment cannot be served
            (as TFLite, with ``tflite_model``).
        DataError: Missing training directory, checkpoint or prepared data.
    """
    if version is not None and version < 1:
        raise ConfigError(f"--version must be a positive integer, got {version}")
    serving_tflite.check_choice(tflite_model)
    version = version or export_dir.next_version(model_base_path)
    final = export_dir.version_path(model_base_path, version)
    if io_utils.exists(final):
        raise ConfigError(f"{final}: version {version} already exists (versions are immutable; pick another)")
    trained = model_dir_lib.restore_trained_model(model_dir, checkpoint, prepared_dir)
    module = build_serving_module(trained)
    functions = module.signatures()
    if isinstance(module, signatures.ClassifierServing):
        # For llm_quantize: the token function once more, its attention masks added instead of
        # selected (softmax_masks); saved as a function of the module, not a serving signature.
        with softmax_masks.additive_softmax_masks():
            # A concrete function: saving a tf.function would trace it again, outside this block.
            module.predict_tokens_additive_masks = module.tokens_function().get_concrete_function()
    placed = None
    # On a bucket model.tflite and saved_model.pb come last: either can make a polling server load the version.
    with atomic_directory(final, last=(export_dir.SAVED_MODEL_FILE, export_dir.MODEL_TFLITE_FILE)) as tmp:
        tf.saved_model.save(module, tmp, signatures=functions)
        methods = {name: signatures.PREDICT_METHOD for name in functions}
        if signatures.CLASSIFY_SIGNATURE in functions:
            methods[signatures.CLASSIFY_SIGNATURE] = signatures.CLASSIFY_METHOD
        set_method_names(tmp, methods)
        default_name = os.path.basename(io_utils.abspath(model_base_path).rstrip("/"))
        if warmup_count and tflite_model == "none":
            texts, pairs = sample_texts(trained, warmup_count)
            logs = warmup.warmup_logs(model_name or default_name, texts, pairs,
                                      with_classify=signatures.CLASSIFY_SIGNATURE in functions)
            warmup.write_warmup(tmp, logs)
        export_dir.write_labels(tmp, trained.task.data.labels)
        weights = compression.variables_report(tmp)
        export_dir.write_export_info(tmp, {
            "experiment": trained.config.experiment,
            "model_dir": io_utils.abspath(model_dir),
            "checkpoint": io_utils.abspath(trained.checkpoint),
            "step": trained.step,
            "prepared_dir": io_utils.abspath(trained.task.data.directory),
            "seq_length": trained.config.task.data.seq_length,
            "labels": trained.task.data.labels,
            "signatures": sorted(functions),
            "tflite_model": None if tflite_model == "none" else tflite_model,
            "weights": weights,
            "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "config": trained.config.as_dict(),
        })
        if tflite_model != "none":
            exported = serving_tflite.load_for_tflite(tmp, prepared_dir)
            placed = serving_tflite.place_tflite_model(exported, tflite_model)
            if warmup_count:  # records that model.tflite can serve as well as the SavedModel
                packed = exported.tokenize(sample_texts(trained, warmup_count)[0])
                warmup.write_warmup(tmp, warmup.token_warmup_logs(model_name or default_name, packed))
    return ExportResult(final, version, sorted(functions), trained.checkpoint, trained.step, weights, placed)

"""TF Serving warm-up requests: ``assets.extra/tf_serving_warmup_requests``.

TF Serving (and the embedded server) replays these ``PredictionLog`` records when it loads
a version, before the version takes traffic, so the first real request does not pay for
graph tracing and kernel initialisation.
"""

import os

import tensorflow as tf
from tensorflow_serving.apis import classification_pb2, predict_pb2, prediction_log_pb2

from llm_tf import io_utils
from llm_tf.export import export_dir
from llm_tf.export.signatures import CLASSIFY_SIGNATURE, DEFAULT_SIGNATURE, TOKENS_SIGNATURE

WARMUP_FILE = export_dir.WARMUP_FILE


def _example(text: str, text_pair: str | None) -> tf.train.Example:
    feature = {"text": tf.train.Feature(bytes_list=tf.train.BytesList(value=[text.encode("utf-8")]))}
    if text_pair is not None:
        feature["text_pair"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[text_pair.encode("utf-8")]))
    return tf.train.Example(features=tf.train.Features(feature=feature))


def warmup_logs(model_name: str, texts: list[str], text_pairs: list[str] | None = None,
                with_classify: bool = False) -> list[prediction_log_pb2.PredictionLog]:
    """Builds warm-up records: one Predict on ``serving_default`` per text (batch 1, then the batch).

    Args:
        model_name: The model name to put in each request's ``model_spec``.
        texts: Sample inputs (e.g. a few eval sentences); must not be empty.
        text_pairs: Second segments for pair tasks (same length as ``texts``).
        with_classify: Also a Classify request on the ``classify`` signature.

    Returns:
        The records, in replay order.

    Raises:
        ValueError: No texts, or pairs of another length.
    """
    if not texts:
        raise ValueError("warm-up needs at least one sample text")
    if text_pairs is not None and len(text_pairs) != len(texts):
        raise ValueError(f"{len(text_pairs)} text pairs for {len(texts)} texts")
    logs = []
    # Batch 1 is the latency path; the whole list traces the batched shapes.
    for batch in ([0], list(range(len(texts)))):
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model_name
        request.model_spec.signature_name = DEFAULT_SIGNATURE
        request.inputs["text"].CopyFrom(tf.make_tensor_proto([texts[i] for i in batch], dtype=tf.string))
        if text_pairs is not None:
            request.inputs["text_pair"].CopyFrom(tf.make_tensor_proto([text_pairs[i] for i in batch], dtype=tf.string))
        logs.append(prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request)))
    if with_classify:
        request = classification_pb2.ClassificationRequest()
        request.model_spec.name = model_name
        request.model_spec.signature_name = CLASSIFY_SIGNATURE
        for i, text in enumerate(texts):
            request.input.example_list.examples.append(_example(text, text_pairs[i] if text_pairs else None))
        logs.append(prediction_log_pb2.PredictionLog(classify_log=prediction_log_pb2.ClassifyLog(request=request)))
    return logs


def token_warmup_logs(model_name: str, packed: dict) -> list[prediction_log_pb2.PredictionLog]:
    """Warm-up records on ``predict_tokens`` (batch 1, then the batch): what a ``model.tflite`` version serves too.

    Args:
        model_name: The model name to put in each request's ``model_spec``.
        packed: ``token_ids``, ``segment_ids``, ``padding_mask``: int32 [batch, seq_length] arrays.

    Returns:
        The records, in replay order.
    """
    logs = []
    count = len(packed["token_ids"])
    for rows in (slice(0, 1), slice(0, count)):
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model_name
        request.model_spec.signature_name = TOKENS_SIGNATURE
        for key, value in packed.items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(value[rows], dtype=tf.int32))
        logs.append(prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request)))
    return logs


def write_warmup(version_dir: str, logs: list[prediction_log_pb2.PredictionLog]) -> str:
    """Writes ``logs`` as the TFRecord file TF Serving reads; returns its path."""
    path = os.path.join(version_dir, WARMUP_FILE)
    io_utils.makedirs(os.path.dirname(path))
    with io_utils.storage_errors(path), tf.io.TFRecordWriter(path) as writer:
        for log in logs:
            writer.write(log.SerializeToString())
    return path


def read_warmup(path: str) -> list[prediction_log_pb2.PredictionLog]:
    """Reads a warm-up file back (for tests and inspection)."""
    return [prediction_log_pb2.PredictionLog.FromString(record.numpy()) for record in tf.data.TFRecordDataset(path)]

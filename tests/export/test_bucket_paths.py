"""Export, quantization and keras-hub presets on a bucket: TensorFlow's in-memory ram:// file system stands in for
gs://. A ram:// file system lives in one process, so the binaries are only checked for their errors."""

import os
import shutil
import subprocess
import sys
import uuid

import numpy as np
import pytest
import tensorflow as tf

from llm_tf import io_utils
from llm_tf.export import export_dir, exporter
from tests.bin.start_line import without_start_line

TEXTS = ["a fine film", "the worst movie of the year", "it is a charming and often affecting journey"]


def _ram(name: str) -> str:
    return f"ram://export-{uuid.uuid4().hex}/{name}"


@pytest.fixture(scope="module")
def bucket_run(trained_classifier) -> str:
    """The session's trained classifier, copied to a ram:// model_dir."""
    model_dir = _ram("runs/classifier")
    io_utils.copy_tree(trained_classifier, model_dir)
    return model_dir


@pytest.fixture(scope="module")
def bucket_export(bucket_run) -> tuple[str, list[str]]:
    """Version 1 of a ram:// model base path exported from the ram:// run; and the files copied, in order."""
    base = _ram("models/sst2")
    copied = []
    real_copy = tf.io.gfile.copy
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tf.io.gfile, "copy", lambda a, b, overwrite=False: (copied.append(b), real_copy(a, b, overwrite)))
        result = exporter.export_saved_model(bucket_run, base, warmup_count=2)
    assert result.path == f"{base}/1" and result.version == 1
    return base, copied


def test_a_version_on_a_bucket_appears_whole_with_saved_model_pb_last(bucket_export, bucket_run, exported_version):
    base, copied = bucket_export
    version = f"{base}/1"
    assert copied[-1] == f"{version}/saved_model.pb" and all(path.startswith(version + "/") for path in copied)
    assert {f"{version}/{name}" for name in ("fingerprint.pb", "variables/variables.index",
                                              "assets.extra/llm_tf_export.json", "assets.extra/labels.txt",
                                              "assets.extra/tf_serving_warmup_requests")} <= set(copied)
    assert io_utils.listdir(base) == ["1"] and export_dir.existing_versions(base) == [1]  # no temporary left
    info = export_dir.load_export_info(version)
    assert info["model_dir"] == bucket_run and info["checkpoint"].startswith(f"{bucket_run}/best/ckpt-")
    assert export_dir.load_labels(version) == export_dir.load_labels(exported_version)
    loaded = tf.saved_model.load(version)
    local = tf.saved_model.load(exported_version)
    ours = loaded.signatures["serving_default"](text=tf.constant(TEXTS))
    theirs = local.signatures["serving_default"](text=tf.constant(TEXTS))
    np.testing.assert_allclose(ours["scores"].numpy(), theirs["scores"].numpy(), atol=1e-6)
    assert ours["labels"].numpy().tolist() == theirs["labels"].numpy().tolist()
    methods = {name: d.method_name for name, d in _signature_defs(version).items()}
    assert methods["classify"] == "tensorflow/serving/classify"


def _signature_defs(version_dir: str):
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel.FromString(io_utils.read_bytes(f"{version_dir}/saved_model.pb"))
    return proto.meta_graphs[0].signature_def


def test_a_second_export_to_the_bucket_is_version_2(bucket_export, bucket_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base, _ = bucket_export
    assert export_dir.next_version(base) == 2
    result = exporter.export_saved_model(bucket_run, base, warmup_count=0)
    assert result.path == f"{base}/2" and export_dir.existing_versions(base) == [1, 2]
    with pytest.raises(Exception, match="version 2 already exists"):
        exporter.export_saved_model(bucket_run, base, version=2)
    assert os.listdir(tmp_path) == []  # nothing local: no "ram:" directory


def test_quantize_reads_and_writes_a_bucket(bucket_export, tmp_path, monkeypatch):
    from llm_tf.export.tflite_quantize import QuantizeConfig, quantize

    monkeypatch.chdir(tmp_path)
    base, _ = bucket_export
    out = _ram("tflite/sst2")
    result = quantize(QuantizeConfig(saved_model_dir=f"{base}/1", output_dir=out, forms=["tokens"],
                                     variants=["float32"], eval_count=8, latency_runs=2, progress=False,
                                     log=lambda line: None))
    assert result.output_dir == out and result.files == {"tokens_float32": f"{out}/tokens_float32.tflite"}
    assert io_utils.listdir(out) == ["report.json", "report.md", "report.png", "tokens_float32.tflite"]
    variant = result.report["variants"][0]
    assert variant["agreement"] == 1.0
    assert variant["size_bytes"] == len(io_utils.read_bytes(result.files["tokens_float32"]))
    assert result.report["saved_model"] == f"{base}/1"
    assert os.listdir(tmp_path) == []


def test_a_keras_hub_preset_is_saved_to_a_bucket(trained_classifier, tmp_path, monkeypatch):
    from llm_tf.export.keras_hub_preset import save_keras_hub_preset

    monkeypatch.chdir(tmp_path)
    out = _ram("presets/sst2")
    result = save_keras_hub_preset(trained_classifier, out)
    assert result.path == out
    assert {"config.json", "model.weights.h5", "tokenizer.json", "assets"} <= set(io_utils.listdir(out))
    assert io_utils.isfile(f"{out}/assets/tokenizer/vocabulary.txt")
    assert os.listdir(tmp_path) == []


def llm_export(*args, cwd):
    executable = shutil.which("llm_export") or os.path.join(os.path.dirname(sys.executable), "llm_export")
    return subprocess.run([executable, *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def test_llm_export_to_an_unreachable_bucket_is_one_line_and_writes_nothing_locally(trained_classifier, tmp_path):
    result = llm_export(f"--model_dir={trained_classifier}", "--model_base_path=gs://llm-tf-no-such-bucket/m",
                        cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    lines = without_start_line(result.stderr).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llm_export: error: gs://llm-tf-no-such-bucket/m"), lines
    assert result.stdout == "" and os.listdir(tmp_path) == []  # no "gs:" directory
    result = llm_export(f"--model_dir={trained_classifier}", "--model_base_path=nope://x", cwd=tmp_path)
    assert result.returncode == 1
    assert without_start_line(result.stderr).strip().splitlines() == [
        "llm_export: error: --model_base_path: nope://x: TensorFlow has no file system for 'nope://' here"]
    assert os.listdir(tmp_path) == []

"""Tests for llm_tf/export/exporter.py: real SavedModels written, loaded and compared."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from llm_tf.errors import ConfigError
from llm_tf.export import export_dir, exporter, warmup
from llm_tf.training import model_dir as model_dir_lib

DEV_TEXTS = ["a fine film", "the worst movie of the year", "it is a charming and often affecting journey"]


@pytest.fixture(scope="module")
def exported(trained_classifier, tmp_path_factory):
    base = tmp_path_factory.mktemp("models") / "sst2"
    return exporter.export_saved_model(trained_classifier, str(base))


def test_writes_version_one_with_every_signature_and_method_names(exported):
    assert exported.version == 1 and exported.path.endswith(os.path.join("sst2", "1"))
    assert exported.signatures == ["classify", "predict_tokens", "serving_default"]
    proto = saved_model_pb2.SavedModel.FromString(open(os.path.join(exported.path, "saved_model.pb"), "rb").read())
    defs = proto.meta_graphs[0].signature_def
    assert defs["classify"].method_name == "tensorflow/serving/classify"
    assert defs["serving_default"].method_name == "tensorflow/serving/predict"
    assert sorted(defs["serving_default"].outputs) == ["label_ids", "labels", "scores"]
    assert list(defs["serving_default"].inputs) == ["text"]
    # The fingerprint was recomputed after the method names changed.
    from tensorflow.python.saved_model import fingerprinting_utils

    assert (fingerprinting_utils.singleprint_from_fingerprint_proto(exported.path)
            == fingerprinting_utils.singleprint_from_saved_model(exported.path))
    # Nothing but the version directory is left in the base path.
    assert os.listdir(os.path.dirname(exported.path)) == ["1"]


def test_served_predictions_equal_the_in_process_model(exported, trained_classifier):
    trained = model_dir_lib.restore_trained_model(trained_classifier)
    loaded = tf.saved_model.load(exported.path)
    out = loaded.signatures["serving_default"](text=tf.constant(DEV_TEXTS))
    inputs = trained.task.data.tokenizer(tf.constant(DEV_TEXTS), seq_length=32)
    inputs["padding_mask"] = tf.cast(inputs["padding_mask"], tf.int32)
    logits = trained.model(inputs, training=False).numpy()
    np.testing.assert_allclose(out["scores"].numpy(), tf.nn.softmax(logits).numpy(), atol=1e-5)
    assert out["label_ids"].numpy().tolist() == logits.argmax(axis=1).tolist()
    assert [x.decode() for x in out["labels"].numpy()] == [trained.task.data.labels[i] for i in logits.argmax(axis=1)]
    tokens = loaded.signatures["predict_tokens"](**inputs)
    np.testing.assert_allclose(tokens["logits"].numpy(), logits, atol=1e-5)


def test_the_additive_mask_function_predicts_the_same_without_selects(exported, trained_classifier):
    import tensorflow_text  # noqa: F401  (the graph's tokenizer ops, to read it)

    trained = model_dir_lib.restore_trained_model(trained_classifier)
    loaded = tf.saved_model.load(exported.path)
    assert "predict_tokens_additive_masks" not in loaded.signatures  # for llm_quantize, not for TF Serving
    inputs = {k: tf.cast(v, tf.int32)
              for k, v in trained.task.data.tokenizer(tf.constant(DEV_TEXTS), seq_length=32).items()}
    assert int(tf.reduce_min(tf.reduce_sum(inputs["padding_mask"], axis=1))) < 32  # some padding is masked
    want = loaded.signatures["predict_tokens"](**inputs)
    got = loaded.predict_tokens_additive_masks(inputs["token_ids"], inputs["segment_ids"], inputs["padding_mask"])
    np.testing.assert_allclose(got["logits"].numpy(), want["logits"].numpy(), rtol=1e-6, atol=1e-6)

    def select_ops(function):
        graph = function.graph.as_graph_def()
        nodes = list(graph.node) + [n for f in graph.library.function for n in f.node_def]
        return sum(node.op == "SelectV2" for node in nodes)

    # Keras's masked softmax selects twice per layer (2 layers); the embedding lookups' selects remain.
    assert select_ops(loaded.signatures["predict_tokens"]) - select_ops(loaded.predict_tokens_additive_masks) == 4


def test_warmup_requests_replay_against_the_saved_model(exported):
    logs = warmup.read_warmup(os.path.join(exported.path, warmup.WARMUP_FILE))
    assert [log.WhichOneof("log_type") for log in logs] == ["predict_log", "predict_log", "classify_log"]
    assert logs[0].predict_log.request.model_spec.name == "sst2"
    loaded = tf.saved_model.load(exported.path)
    texts = tf.make_ndarray(logs[1].predict_log.request.inputs["text"])
    assert len(texts) == 8  # eval sentences of the sample
    out = loaded.signatures["serving_default"](text=tf.constant(texts))
    assert out["scores"].shape == (8, 2)
    examples = [e.SerializeToString() for e in logs[2].classify_log.request.input.example_list.examples]
    classified = loaded.signatures["classify"](inputs=tf.constant(examples))
    np.testing.assert_allclose(classified["scores"].numpy(), out["scores"].numpy(), atol=1e-6)


def test_export_metadata_and_labels(exported, trained_classifier):
    info = export_dir.load_export_info(exported.path)
    assert info["experiment"] == "sentence_classification" and info["labels"] == ["0", "1"]
    assert info["model_dir"] == os.path.abspath(trained_classifier) and info["step"] == exported.step
    assert open(os.path.join(exported.path, export_dir.LABELS_FILE)).read() == "0\n1\n"


def test_next_version_and_immutability(exported, trained_classifier):
    base = os.path.dirname(exported.path)
    second = exporter.export_saved_model(trained_classifier, base, checkpoint="latest", warmup_count=0)
    assert second.version == 2 and export_dir.existing_versions(base) == [1, 2]
    assert not os.path.exists(os.path.join(second.path, warmup.WARMUP_FILE))
    with pytest.raises(ConfigError, match="version 2 already exists"):
        exporter.export_saved_model(trained_classifier, base, version=2)
    with pytest.raises(ConfigError, match="positive"):
        exporter.export_saved_model(trained_classifier, base, version=0)


def test_a_failed_export_leaves_nothing(tmp_path, trained_classifier, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(warmup, "write_warmup", broken)
    with pytest.raises(RuntimeError):
        exporter.export_saved_model(trained_classifier, str(tmp_path / "m"), version=5)
    assert os.listdir(tmp_path / "m") == []


def test_causal_lm_export_generates_like_the_library(prepared_sample, tmp_path):
    from llm_tf.models import generation
    from tests.conftest import train_tiny

    run = train_tiny(prepared_sample, str(tmp_path / "clm"), "causal_lm",
                     "trainer.train_steps=4,trainer.steps_per_loop=2,task.generation.max_new_tokens=5")
    result = exporter.export_saved_model(run, str(tmp_path / "clm_models"), warmup_count=2)
    assert result.signatures == ["generate", "serving_default"]
    loaded = tf.saved_model.load(result.path)
    prompts = tf.constant(["the movie", "a dull , lifeless"])
    served = loaded.signatures["serving_default"](text=prompts)["text"].numpy().tolist()
    trained = model_dir_lib.restore_trained_model(run)
    expected = generation.generate(trained.model, trained.task.data.tokenizer, prompts, 5).numpy().tolist()
    assert served == expected
    sampled = loaded.signatures["generate"](text=prompts, max_new_tokens=tf.constant(3), strategy=tf.constant("top_k"),
                                            top_k=tf.constant(4), top_p=tf.constant(1.0), temperature=tf.constant(1.0),
                                            seed=tf.constant(7))["text"].numpy().tolist()
    again = loaded.signatures["generate"](text=prompts, max_new_tokens=tf.constant(3), strategy=tf.constant("top_k"),
                                          top_k=tf.constant(4), top_p=tf.constant(1.0), temperature=tf.constant(1.0),
                                          seed=tf.constant(7))["text"].numpy().tolist()
    assert sampled == again and all(len(t.split()) <= 3 for t in sampled)
    with pytest.raises(tf.errors.InvalidArgumentError):
        loaded.signatures["generate"](text=prompts, max_new_tokens=tf.constant(3), strategy=tf.constant("beam"),
                                      top_k=tf.constant(4), top_p=tf.constant(1.0), temperature=tf.constant(1.0),
                                      seed=tf.constant(7))


def test_mlm_runs_have_no_serving_export(tmp_path, prepared_sample):
    from tests.conftest import train_tiny

    run = train_tiny(prepared_sample, str(tmp_path / "mlm"), "mlm_pretrain",
                     "trainer.train_steps=2,trainer.steps_per_loop=2,task.max_predictions_per_seq=4")
    with pytest.raises(ConfigError, match="'mlm_pretrain' has no serving export"):
        exporter.export_saved_model(run, str(tmp_path / "m"))


def test_ner_export_tags_words(trained_tagger, tmp_path):
    result = exporter.export_saved_model(trained_tagger, str(tmp_path / "ner"))
    assert result.signatures == ["predict_tokens", "serving_default"]
    loaded = tf.saved_model.load(result.path)
    out = loaded.signatures["serving_default"](text=tf.constant(["EU rejects German call", "Peter Blackburn"]))
    assert out["words"].numpy()[1].tolist() == [b"Peter", b"Blackburn", b"", b""]
    tags = set(open(os.path.join(result.path, export_dir.LABELS_FILE)).read().split())
    assert {t.decode() for t in out["tags"].numpy().ravel()} <= tags | {""}
    assert out["tag_ids"].numpy()[1, 2:].tolist() == [-1, -1]
    logs = warmup.read_warmup(os.path.join(result.path, warmup.WARMUP_FILE))
    assert [log.WhichOneof("log_type") for log in logs] == ["predict_log", "predict_log"]
    sample = tf.make_ndarray(logs[0].predict_log.request.inputs["text"])[0].decode()
    assert len(sample.split()) > 1  # sentences rebuilt from CoNLL tokens


def test_saved_model_cli_describes_every_signature(exported):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    result = subprocess.run([cli, "show", "--all", "--dir", exported.path], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for name in ("serving_default", "predict_tokens", "classify"):
        assert f"signature_def['{name}']" in result.stdout
    assert "Method name is: tensorflow/serving/classify" in result.stdout
    assert "inputs['text'] tensor_info:" in result.stdout and "outputs['labels'] tensor_info:" in result.stdout

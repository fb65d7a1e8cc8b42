"""The real-model inference benchmark: the Keras -> transformers weight converter, the targets, one-line errors.

The converter is checked two ways on a tiny random classifier: read back by keras-hub's own
transformers loader (the inverse direction) to the same weights, and, when the peer virtualenv
has been built (``python -c "from benchmarks import peers; peers.ensure_venv()"``; tests never
build it), run by transformers' ``BertForSequenceClassification`` in PyTorch to the same logits.
"""

import json
import subprocess

import numpy as np
import pytest

from benchmarks import minilm_inference as bench
from benchmarks.minilm_to_hf import HF_TANH_GELU, hf_state_dict, write_hf_directory
from tests.benchmarks.peer_venv import peer_python, requires_peer_venv


def _tiny_classifier(vocab_size: int, seed: int = 0):
    import keras

    from llm_tf.models.classifier import build_classifier
    from llm_tf.models.encoder import build_encoder
    from llm_tf.training.configs import ModelConfig

    keras.utils.set_random_seed(seed)
    config = ModelConfig(size="tiny", num_layers=2, hidden_dim=16, num_heads=2, intermediate_dim=32,
                         max_sequence_length=32, dropout=0.0)
    model = build_classifier(build_encoder(config, vocab_size), num_classes=3, dropout=0.0)
    rng = np.random.default_rng(seed)
    for variable in model.weights:  # zero biases and unit norms would hide a swapped pair
        variable.assign(rng.normal(0, 0.3, variable.shape).astype("float32") + (1.0 if "gamma" in variable.path else 0))
    return model


def _checkpoint(tmp_path, vocab):
    from tests.preset_fixtures import save_hf_bert_directory

    return save_hf_bert_directory(str(tmp_path / "original"), vocab, hidden_dim=16, intermediate_dim=32)


VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(30)]


def test_converted_weights_read_back_by_keras_hub_are_ours(tmp_path):
    from llm_tf.models import presets

    model = _tiny_classifier(len(VOCAB))
    out = write_hf_directory(model, str(tmp_path / "hf"), _checkpoint(tmp_path, VOCAB), ["a", "b", "c"], 24)
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["hidden_act"] == HF_TANH_GELU and config["num_labels"] == 3
    assert config["id2label"] == {"0": "a", "1": "b", "2": "c"} and config["num_hidden_layers"] == 2
    assert json.loads((tmp_path / "hf" / "tokenizer_config.json").read_text())["model_max_length"] == 24
    assert out["parameters"] == sum(int(np.prod(v.shape)) for v in model.weights)
    back = presets.backbone_weights(presets.open_preset(str(tmp_path / "hf")))
    encoder = model.get_layer("encoder")
    ours = {v.path[len("encoder/"):] if v.path.startswith("encoder/") else v.path: v.numpy() for v in encoder.weights}
    assert set(back) == set(ours)
    for path, value in ours.items():
        np.testing.assert_array_equal(back[path], value, err_msg=path)
    state = hf_state_dict(model)
    np.testing.assert_array_equal(state["classifier.weight"], model.get_layer("logits").kernel.numpy().T)
    np.testing.assert_array_equal(state["classifier.bias"], model.get_layer("logits").bias.numpy())


def test_a_model_without_the_classifier_layers_is_refused():
    import keras

    inputs = keras.Input((4,))
    with pytest.raises(ValueError, match="not an llm-tf sentence classifier"):
        hf_state_dict(keras.Model(inputs, keras.layers.Dense(2)(inputs)))


def _summary(e2e_p50s, model_p50s=None, rates=None):
    def batch1(p50s):
        return {"p50": float(np.median(p50s)), "p99": max(p50s), "round_p50": list(p50s)} if p50s else None

    rates = rates or [100.0, 100.0]
    return {"batch1": {"end_to_end_ms": batch1(e2e_p50s), "model_ms": batch1(model_p50s)},
            "batch32": {"end_to_end": {"median": float(np.median(rates)), "rounds": rates},
                        "model": {"median": float(np.median(rates)), "rounds": rates}}}


def test_targets_take_the_fastest_accurate_form_of_ours_against_the_fastest_ort_int8():
    summary = {
        "savedmodel": _summary([8.0, 8.0], [6.0, 6.0], rates=[240.0, 300.0]),
        "tflite_tokens_dynamic_int8": _summary([2.0, 2.5], [1.5, 2.0]),
        "tflite_text_dynamic_int8": _summary([1.0, 1.0]),  # fastest, but 1 point less accurate
        "torch": _summary([20.0, 20.0], [19.0, 19.0], rates=[200.0, 200.0]),
        "ort_int8": _summary([3.0, 3.0], [2.0, 2.0]),
        "ort_opt_int8": _summary([2.4, 2.4], [1.8, 1.8]),
    }
    accuracy = {"savedmodel": {"accuracy": 0.91}, "tflite_tokens_dynamic_int8": {"accuracy": 0.905},
                "tflite_text_dynamic_int8": {"accuracy": 0.895}, "torch": {"accuracy": 0.91},
                "ort_int8": {"accuracy": 0.9}, "ort_opt_int8": {"accuracy": 0.907}}
    t = bench.targets(summary, accuracy)
    b1 = t["batch1"]
    assert b1["ours"] == "tflite_tokens_dynamic_int8" and b1["theirs"] == "ort_opt_int8"
    assert b1["speedup_end_to_end"]["runs"] == pytest.approx([1.2, 0.96])
    assert b1["speedup_model_only"]["runs"] == pytest.approx([1.2, 0.9])
    assert b1["accuracy_points"] == pytest.approx(-0.2) and b1["passed"] is True  # median 1.08x, -0.2 points
    b32 = t["batch32"]
    assert b32["speedup_end_to_end"]["runs"] == pytest.approx([1.2, 1.5]) and b32["passed"] is True
    accuracy["ort_opt_int8"]["accuracy"] = 0.92  # now no form of ours is within 0.5 points: the fastest is taken
    t = bench.targets(summary, accuracy)
    assert t["batch1"]["ours"] == "tflite_text_dynamic_int8" and t["batch1"]["passed"] is False
    assert bench.targets({"torch": summary["torch"]}, accuracy) == {"batch1": None, "batch32": None}


def test_summaries_and_accuracy_figures():
    rounds = [{"end_to_end_ms": [1.0, 2.0, 3.0], "model_ms": None}, {"end_to_end_ms": [5.0, 5.0, 5.0],
                                                                       "model_ms": None}]
    s = bench.summarize_batch1(rounds)
    assert s["model_ms"] is None and s["end_to_end_ms"]["round_p50"] == [2.0, 5.0]
    assert s["end_to_end_ms"]["p50"] == pytest.approx(4.0)
    rates = bench.summarize_batch32([{"end_to_end_s": 2.0, "model_s": 1.0, "sentences": 64},
                                     {"end_to_end_s": 4.0, "model_s": 1.0, "sentences": 64}])
    assert rates["end_to_end"] == {"median": 24.0, "rounds": [32.0, 16.0]} and rates["model"]["median"] == 64.0
    figures = bench.accuracy_figures(np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]]), np.array([0, 1, 1]),
                                     np.array([[1.0, 0.5], [0.0, 1.0], [0.0, 1.0]]))
    assert figures["accuracy"] == pytest.approx(2 / 3) and figures["agreement"] == pytest.approx(2 / 3)
    assert figures["max_abs_logit_diff"] == pytest.approx(3.0)


def test_a_missing_model_dir_or_data_file_is_one_line(tmp_path):
    with pytest.raises(SystemExit) as error:
        bench.main([f"--model_dir={tmp_path / 'nothing'}", f"--output={tmp_path / 'out.md'}"])
    message = str(error.value.code)
    assert "\n" not in message and message.startswith("minilm_inference: ") and "not an llm_train directory" in message
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "params.yaml").write_text("experiment: sentence_classification\n")
    with pytest.raises(SystemExit, match="missing.tsv: missing"):
        bench.main([f"--model_dir={tmp_path / 'run'}", f"--data={tmp_path / 'missing.tsv'}"])
    assert not (tmp_path / "out.md").exists()


def test_unknown_systems_are_refused():
    with pytest.raises(SystemExit):
        bench.parse_args(["--model_dir=x", "--systems=savedmodel,tensorrt"])


@requires_peer_venv
def test_pytorch_runs_the_converted_classifier_to_our_logits(tmp_path):
    model = _tiny_classifier(len(VOCAB), seed=1)
    write_hf_directory(model, str(tmp_path / "hf"), _checkpoint(tmp_path, VOCAB), ["neg", "pos", "mixed"], 24)
    rng = np.random.default_rng(2)
    ids = rng.integers(5, len(VOCAB), size=(4, 9)).astype("int32")
    ids[:, 0] = 2
    mask = np.ones_like(ids)
    mask[1, 6:] = 0  # padding in one row
    ids[1, 6:] = 0
    segments = np.zeros_like(ids)
    segments[2, 5:] = 1
    ours = model({"token_ids": ids, "segment_ids": segments, "padding_mask": mask}, training=False).numpy()
    np.save(tmp_path / "inputs.npy", np.stack([ids, mask, segments]))
    code = ("import sys, json, numpy as np, torch, transformers\n"
            "m = transformers.BertForSequenceClassification.from_pretrained(sys.argv[1]).eval()\n"
            "x = torch.from_numpy(np.load(sys.argv[2]).astype('int64'))\n"
            "with torch.inference_mode():\n"
            "    out = m(input_ids=x[0], attention_mask=x[1], token_type_ids=x[2]).logits\n"
            "print(json.dumps({'logits': out.tolist(), 'act': m.config.hidden_act}))\n")
    run = subprocess.run([peer_python(), "-c", code, str(tmp_path / "hf"), str(tmp_path / "inputs.npy")],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    reply = json.loads(run.stdout.strip().splitlines()[-1])
    assert reply["act"] == HF_TANH_GELU
    np.testing.assert_allclose(np.array(reply["logits"]), ours, atol=1e-4)

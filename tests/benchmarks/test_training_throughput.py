"""Training-throughput benchmark: FLOP count, synthetic batches, our worker's Trainer path."""

import numpy as np
import pytest

from benchmarks import training_throughput as tt
from benchmarks.peer_workers import train_tf


def test_flops_match_the_keras_hub_backbone_kernels():
    import keras_hub

    layers, hidden, heads = tt.SIZES["tiny"]
    seq = 16
    backbone = keras_hub.models.BertBackbone(vocabulary_size=50, num_layers=layers, num_heads=heads, hidden_dim=hidden,
                                             intermediate_dim=4 * hidden, max_sequence_length=32)
    # Matmul weights: every kernel of the transformer layers (per token) and the pooler (per example).
    per_token = sum(int(np.prod(w.shape)) for w in backbone.weights
                    if "transformer_layer" in w.path and w.name == "kernel")
    pooler = sum(int(np.prod(w.shape)) for w in backbone.weights if "pooled_dense" in w.path and w.name == "kernel")
    attention = layers * 2 * 2 * seq * hidden  # scores and mixing, per token
    forward = seq * (2 * per_token + attention) + 2 * pooler + 2 * hidden * 2
    assert tt.train_flops_per_example("tiny", seq) == pytest.approx(3 * forward)


def test_synthetic_batches_are_reproducible(tmp_path):
    a = np.load(tt.synthetic_batches(str(tmp_path / "a.npz"), 3, 4, 10, 100, seed=7))
    b = np.load(tt.synthetic_batches(str(tmp_path / "b.npz"), 3, 4, 10, 100, seed=7))
    assert a["token_ids"].shape == (3, 4, 10) and a["labels"].shape == (3, 4)
    np.testing.assert_array_equal(a["token_ids"], b["token_ids"])
    assert (a["token_ids"][:, :, 0] == 2).all() and (a["token_ids"][:, :, -1] == 3).all()
    assert a["token_ids"].min() >= 2 and a["token_ids"].max() < 100
    assert a["padding_mask"].all()


def test_parse_steps():
    assert tt.parse_steps("tiny:20,small:6", ["tiny", "small"]) == {"tiny": 20, "small": 6}
    assert tt.parse_steps("5", ["tiny", "small"]) == {"tiny": 5, "small": 5}
    with pytest.raises(SystemExit, match="small"):
        tt.parse_steps("tiny:3", ["tiny", "small"])


def test_worker_argv_picks_system_precision_and_xla():
    argv = tt.worker_argv("ours_bf16_xla", "small", "b.npz", 8000, "/peer/python")
    assert argv[1].endswith("train_tf.py") and "--system=ours" in argv and "--jit" in argv
    assert "--precision=bf16" in argv and "--size=small" in argv
    hf = tt.worker_argv("hf_fp32", "tiny", "b.npz", 8000, "/peer/python")
    assert hf[0] == "/peer/python" and hf[1].endswith("hf_train.py") and "--precision=fp32" in hf


def test_ours_worker_trains_with_our_trainer(tmp_path):
    model, settings = train_tf.build_ours("tiny", "fp32", False, vocab_size=60, seq_length=8, batch_size=4)
    assert settings == {"jit_compile": False, "optimizer": "AdamW", "mixed_precision": "float32"}
    assert model.get_layer("encoder").num_layers == 2
    batches = np.load(tt.synthetic_batches(str(tmp_path / "b.npz"), 2, 4, 8, 60, seed=0))
    features = {k: batches[k].reshape(8, 8) for k in ("token_ids", "segment_ids", "padding_mask")}
    history = model.fit(features, batches["labels"].reshape(8), batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1])


def test_parse_skip():
    assert tt.parse_skip("small:hf_bf16,tiny:ours_fp32_xla") == {("small", "hf_bf16"), ("tiny", "ours_fp32_xla")}
    assert tt.parse_skip("") == set()
    with pytest.raises(SystemExit, match="huge:hf_bf16"):
        tt.parse_skip("huge:hf_bf16")


def test_worker_env_switches():
    assert tt.worker_env("ours_fp32_onednn", "PASSIVE") == {"TF_ENABLE_ONEDNN_OPTS": "1"}
    assert tt.worker_env("hf_fp32", "PASSIVE") == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert tt.worker_env("hf_fp32", "") == {} and tt.worker_env("ours_fp32", "PASSIVE") == {}
    assert all(not c.endswith("_onednn") for c in tt.DEFAULT_CONFIGS)


def test_summary_times_the_loop_and_reports_fit_call_overhead():
    from types import SimpleNamespace

    args = SimpleNamespace(batch_size=32, seq_length=128)
    peak = {"best": {"float32": 100.0, "bfloat16": 10.0}}
    replies = {
        "ours_fp32": [{"seconds": 2.0, "call_seconds": 2.9, "steps": 10, "loss": 0.7},
                      {"seconds": 4.0, "call_seconds": 4.5, "steps": 10, "loss": 0.6}],
        "keras_hub_fp32_onednn": [{"seconds": 4.0, "call_seconds": 4.1, "steps": 10, "loss": 0.7},
                                  {"seconds": 4.0, "call_seconds": 5.0, "steps": 10, "loss": 0.7}],
        "hf_fp32": [{"seconds": 4.0, "steps": 10, "loss": 0.7}, {"seconds": 4.0, "steps": 10, "loss": 0.7}],
    }
    out = tt.summarize("tiny", replies, {c: {} for c in replies}, args, peak)
    ours = out["configs"]["ours_fp32"]
    assert ours["examples_per_s"]["runs"] == [160.0, 80.0]  # loop time, not the fit call's
    assert ours["fit_call_overhead_s"]["median"] == pytest.approx(0.7)
    assert out["configs"]["hf_fp32"]["fit_call_overhead_s"] is None
    assert out["ratios"]["ours_fp32 / hf_fp32"]["runs"] == [2.0, 1.0]
    assert out["ratios"]["keras_hub_fp32_onednn / hf_fp32"]["median"] == pytest.approx(1.0)
    assert out["best_ours_fp32"]["vs_hf"] == pytest.approx(1.5)

"""A training run whose model_dir is a bucket: TensorFlow's in-memory ram:// file system stands in for gs://."""

import json
import os
import uuid

import tensorflow as tf

from llm_tf import io_utils
from llm_tf.training import encoder_weights, train_lib
from llm_tf.training import model_dir as model_dir_lib
from tests.conftest import train_tiny

STEPS = "trainer.steps_per_loop=5,trainer.max_to_keep=5"


def _ram(name: str) -> str:
    return f"ram://training-{uuid.uuid4().hex}/{name}"


def _json(path: str) -> dict:
    return json.loads(io_utils.read_text(path))


def test_a_run_on_a_bucket_writes_everything_there_resumes_and_restores(prepared_sample, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model_dir = _ram("runs/x")
    train_tiny(prepared_sample, model_dir, override=f"trainer.train_steps=10,{STEPS}")
    assert {"params.yaml", "checkpoints", "best", "metrics", "metrics.json", "encoder.weights.h5", "encoder.json",
            "training_curves.png", "logs"} <= set(io_utils.listdir(model_dir))
    assert model_dir_lib.is_training_dir(model_dir)
    assert model_dir_lib.latest_checkpoint(model_dir) == f"{model_dir}/checkpoints/ckpt-10"
    best = _json(f"{model_dir}/best/best.json")
    assert best["metric"] == "val_accuracy" and tf.io.gfile.exists(best["checkpoint"] + ".index")
    assert [r["step"] for r in model_dir_lib.read_metrics_history(model_dir)] == [5, 10]
    assert io_utils.read_bytes(f"{model_dir}/training_curves.png").startswith(b"\x89PNG")
    assert tf.io.gfile.glob(f"{model_dir}/logs/train/events.out.tfevents.*")  # TensorBoard summaries
    assert not [n for n in io_utils.listdir(model_dir) if n.startswith(".")]  # no temporary left

    # The same command with more steps resumes from the bucket's checkpoint.
    train_tiny(prepared_sample, model_dir, override=f"trainer.train_steps=15,{STEPS}")
    assert [r["step"] for r in model_dir_lib.read_metrics_history(model_dir)] == [5, 10, 15]
    assert _json(f"{model_dir}/metrics.json")["step"] == 15

    trained = model_dir_lib.restore_trained_model(model_dir, "latest")
    assert trained.step == 15 and trained.checkpoint == f"{model_dir}/checkpoints/ckpt-15"
    assert model_dir_lib.find_checkpoint(model_dir).startswith(f"{model_dir}/best/ckpt-")
    # Another run starts its encoder from the bucket's encoder.weights.h5 (copied to a local temporary file).
    before = [w.numpy().copy() for w in trained.model.get_layer("encoder").weights]
    for weight in trained.model.get_layer("encoder").weights:
        weight.assign(tf.zeros_like(weight))
    assert encoder_weights.load_init_checkpoint(trained.model, model_dir) == f"{model_dir}/encoder.weights.h5"
    after = [w.numpy() for w in trained.model.get_layer("encoder").weights]
    assert all((a == b).all() for a, b in zip(before, after))
    assert os.listdir(tmp_path) == []  # nothing local: no "ram:" directory


def test_training_curves_on_a_bucket_are_drawn_from_its_metrics(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model_dir = _ram("runs/curves")
    for step, loss in ((10, 0.7), (20, 0.5)):
        model_dir_lib.write_metrics(model_dir, step, {"loss": loss, "val_accuracy": 0.5 + step / 100})
    path = train_lib.draw_training_curves(model_dir, "val_accuracy")
    assert path == f"{model_dir}/training_curves.png" and io_utils.read_bytes(path).startswith(b"\x89PNG")
    assert os.listdir(tmp_path) == []

"""Tests for llm_tf/training/train_lib.py, in process and through the llm_train binary."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from llm_tf.errors import ConfigError, DataError
from llm_tf.training import configs, strategies, tasks, train_lib
from tests.training.conftest import FAST

NO_DROPOUT = "task.model.dropout=0.0,task.head_dropout=0.0"


def experiment(prepared, override):
    config = tasks.experiment_config("sentence_classification")
    return configs.apply_overrides(config, [], f"task.data.prepared_dir={prepared},{FAST},{override}")


def llm_train(*args, **kwargs):
    executable = shutil.which("llm_train") or os.path.join(os.path.dirname(sys.executable), "llm_train")
    return subprocess.run([executable, *args], capture_output=True, text=True, timeout=600, **kwargs)


def test_loss_drops_and_outputs_are_written(tmp_path, prepared_sample):
    config = experiment(prepared_sample,
                        "trainer.train_steps=60,trainer.steps_per_loop=20,trainer.optimizer.learning_rate=0.001")
    trainer = train_lib.Trainer(config, str(tmp_path), strategies.make_strategy())
    before = trainer.evaluate()["val_loss"]
    metrics = trainer.train(evaluate=True)
    assert metrics["step"] == 60
    assert metrics["val_loss"] < before - 0.05, (before, metrics)
    assert sorted(os.listdir(tmp_path / "metrics")) == ["step_0.json", "step_20.json", "step_40.json", "step_60.json"]
    assert json.loads((tmp_path / "metrics.json").read_text())["step"] == 60
    assert {"ckpt-40.index", "ckpt-60.index"} <= set(os.listdir(tmp_path / "checkpoints"))
    best = json.loads((tmp_path / "best" / "best.json").read_text())
    assert best["metric"] == "val_accuracy" and os.path.exists(best["checkpoint"] + ".index")
    assert os.listdir(tmp_path / "logs" / "train")  # TensorBoard summaries


def test_stop_and_resume_equals_an_uninterrupted_run(tmp_path, prepared_sample):
    config = experiment(prepared_sample,
                        f"{NO_DROPOUT},trainer.train_steps=40,trainer.steps_per_loop=10,trainer.max_to_keep=5")
    whole = train_lib.run_experiment(config, "train_and_eval", str(tmp_path / "whole"))
    # The same job, stopped right after its step-20 checkpoint: keep only that checkpoint.
    checkpoints = tmp_path / "stopped" / "checkpoints"
    checkpoints.mkdir(parents=True)
    for name in os.listdir(tmp_path / "whole" / "checkpoints"):
        if name.startswith("ckpt-20."):
            shutil.copy(tmp_path / "whole" / "checkpoints" / name, checkpoints / name)
    (checkpoints / "checkpoint").write_text('model_checkpoint_path: "ckpt-20"\nall_model_checkpoint_paths: "ckpt-20"\n')
    resumed = train_lib.run_experiment(config, "train_and_eval", str(tmp_path / "stopped"))
    assert resumed["step"] == whole["step"] == 40
    assert sorted(os.listdir(tmp_path / "stopped" / "metrics")) == ["step_30.json", "step_40.json"]
    # Same weights, same optimizer state, same batches after the resume point: same numbers.
    assert resumed["val_loss"] == pytest.approx(whole["val_loss"], rel=1e-6)
    assert resumed["loss"] == pytest.approx(whole["loss"], rel=1e-6)


def test_eval_mode_needs_a_checkpoint_and_reads_the_latest(tmp_path, prepared_sample):
    config = experiment(prepared_sample, "trainer.train_steps=10,trainer.steps_per_loop=10")
    with pytest.raises(DataError, match="no checkpoint to evaluate"):
        train_lib.run_experiment(config, "eval", str(tmp_path))
    trained = train_lib.run_experiment(config, "train_and_eval", str(tmp_path))
    evaluated = train_lib.run_experiment(config, "eval", str(tmp_path))
    assert evaluated["step"] == 10
    assert evaluated["val_loss"] == pytest.approx(trained["val_loss"], rel=1e-5)


def test_loop_length_must_divide_train_steps(prepared_sample, tmp_path):
    with pytest.raises(ConfigError, match="must be a multiple of trainer.steps_per_loop"):
        train_lib.run_experiment(experiment(prepared_sample, "trainer.train_steps=25,trainer.steps_per_loop=10"),
                                 "train", str(tmp_path))


def test_several_steps_per_execution_train_the_same_steps(tmp_path, prepared_sample):
    override = f"{NO_DROPOUT},trainer.train_steps=12,trainer.steps_per_loop=6"
    one = train_lib.run_experiment(experiment(prepared_sample, f"{override},trainer.steps_per_execution=1"),
                                   "train_and_eval", str(tmp_path / "one"))
    three = train_lib.run_experiment(experiment(prepared_sample, f"{override},trainer.steps_per_execution=3"),
                                     "train_and_eval", str(tmp_path / "three"))
    assert one["step"] == three["step"] == 12  # no steps past a loop's end
    assert three["val_loss"] == pytest.approx(one["val_loss"], rel=1e-5)
    assert three["loss"] == pytest.approx(one["loss"], rel=1e-5)


def test_steps_per_execution_divides_the_loop(prepared_sample, tmp_path):
    def resolved(strategy="one_device", **trainer):
        config = configs.ExperimentConfig(trainer=configs.TrainerConfig(**trainer))
        config.runtime.strategy = strategy
        return train_lib.steps_per_execution(config)

    assert resolved(steps_per_loop=2104) == 8 and resolved(steps_per_loop=7) == 1
    assert resolved(steps_per_loop=10, steps_per_execution=5) == 5
    assert resolved("mirrored", steps_per_loop=2104) == 1
    with pytest.raises(ConfigError, match=r"steps_per_execution \(4\) must divide trainer.steps_per_loop \(10\)"):
        train_lib.run_experiment(experiment(prepared_sample, "trainer.train_steps=10,trainer.steps_per_loop=10,"
                                                             "trainer.steps_per_execution=4"), "train", str(tmp_path))
    with pytest.raises(ConfigError, match="one_device strategy only, not mirrored"):
        train_lib.run_experiment(experiment(prepared_sample, "trainer.train_steps=10,trainer.steps_per_loop=10,"
                                                             "trainer.steps_per_execution=2,runtime.strategy=mirrored"),
                                 "train", str(tmp_path))


def test_kill_9_then_the_same_command_resumes(tmp_path, prepared_sample):
    args = ["--experiment=sentence_classification", f"--model_dir={tmp_path}", "--mode=train",
            f"--params_override=task.data.prepared_dir={prepared_sample},{FAST},trainer.train_steps=300,trainer.steps_per_loop=10"]
    executable = shutil.which("llm_train") or os.path.join(os.path.dirname(sys.executable), "llm_train")
    process = subprocess.Popen([executable, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    checkpoints = tmp_path / "checkpoints"
    while time.time() < deadline and not (
            checkpoints.is_dir() and any(n.startswith("ckpt-30.") for n in os.listdir(checkpoints))):
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    saved = max(int(n.split("-")[1].split(".")[0]) for n in os.listdir(checkpoints) if n.endswith(".index"))
    assert 30 <= saved < 300
    result = llm_train(*args)
    assert result.returncode == 0, result.stderr
    assert f"restored {checkpoints}/ckpt-{saved} at step {saved}" in result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["step"] == 300


def test_mirrored_over_two_cpus_matches_one_device(tmp_path, prepared_sample):
    override = (f"task.data.prepared_dir={prepared_sample},{FAST},{NO_DROPOUT},"
                "trainer.train_steps=10,trainer.steps_per_loop=10")
    results = {}
    for strategy, devices in (("one_device", 1), ("mirrored", 2)):
        run = llm_train("--experiment=sentence_classification", f"--model_dir={tmp_path / strategy}",
                        f"--strategy={strategy}", f"--num_devices={devices}", f"--params_override={override}")
        assert run.returncode == 0, run.stderr
        results[strategy] = json.loads(run.stdout.strip().splitlines()[-1])
    for key in ("loss", "val_loss", "val_accuracy"):
        assert results["mirrored"][key] == pytest.approx(results["one_device"][key], rel=1e-4, abs=1e-5), key


@pytest.mark.parametrize(
    "args, message",
    [
        (["--experiment=ner"],
         "llm_train: error: unknown experiment 'ner' (valid: causal_lm, distillation, mlm_pretrain, "
         "sentence_classification, token_classification)"),
        (["--experiment=sentence_classification", "--params_override=trainer.steps=1"],
         "llm_train: error: --params_override: unknown config key 'steps'"),
        (["--experiment=sentence_classification", "--strategy=tpu"],
         "llm_train: error: --strategy=tpu needs --tpu=ADDRESS"),
        (["--experiment=sentence_classification"], "llm_train: error: no prepared data: set task.data.prepared_dir"),
    ],
)
def test_binary_errors_are_one_line(tmp_path, args, message):
    result = llm_train(*args, f"--model_dir={tmp_path}")
    assert result.returncode == 1
    assert [line for line in result.stderr.splitlines() if line.strip()] [-1].startswith(message), result.stderr
    assert "Traceback" not in result.stderr


def test_params_yaml_is_written_and_reusable(tmp_path, prepared_sample):
    result = llm_train("--experiment=sentence_classification", f"--model_dir={tmp_path}", "--mode=train",
                       f"--params_override=task.data.prepared_dir={prepared_sample},{FAST},trainer.train_steps=10,trainer.steps_per_loop=10")
    assert result.returncode == 0, result.stderr
    # Reusable as a --config_file of the same experiment (each experiment has its own task keys).
    again = configs.apply_overrides(tasks.experiment_config("sentence_classification"), [str(tmp_path / "params.yaml")],
                                    "")
    assert again.experiment == "sentence_classification" and again.trainer.train_steps == 10
    assert np.isfinite(json.loads(result.stdout.strip().splitlines()[-1])["loss"])


def test_lora_trains_only_factors_and_head_and_exports_merged_weights(tmp_path, prepared_sample):
    from llm_tf.models.encoder import build_encoder

    config = experiment(prepared_sample, "task.lora_rank=4,task.lora_alpha=8,trainer.train_steps=20,"
                                         "trainer.steps_per_loop=10,trainer.optimizer.learning_rate=0.003")
    trainer = train_lib.Trainer(config, str(tmp_path), strategies.make_strategy())
    encoder = trainer.model.get_layer("encoder")
    frozen = {v.path: v.numpy().copy() for v in encoder.weights
              if "lora" not in v.path and not v.path.startswith("pooled_dense")}
    result = trainer.train(evaluate=False)
    assert all(np.array_equal(frozen[v.path], v.numpy()) for v in encoder.weights if v.path in frozen)
    assert result["trainable_params"] < result["total_params"]
    assert result["trainable_fraction"] == pytest.approx(result["trainable_params"] / result["total_params"])
    # The exported encoder holds merged kernels: a plain encoder loaded from it computes the same.
    plain = build_encoder(config.task.model, trainer.task.data.tokenizer.vocab_size)
    plain.load_weights(str(tmp_path / "encoder.weights.h5"))
    features = next(iter(trainer.task.build_inputs("eval", training=False)))[0]
    np.testing.assert_allclose(plain(features)["sequence_output"].numpy(), encoder(features)["sequence_output"].numpy(),
                               rtol=1e-4, atol=1e-4)


def test_gradient_accumulation_equals_a_larger_batch(tmp_path, prepared_sample):
    common = (f"{NO_DROPOUT},trainer.optimizer.decay=constant,trainer.optimizer.warmup_fraction=0.0,"
              "trainer.optimizer.weight_decay=0.01")
    large = experiment(prepared_sample,
                       f"{common},task.data.global_batch_size=16,trainer.train_steps=6,trainer.steps_per_loop=6")
    accumulated = experiment(prepared_sample, f"{common},task.data.global_batch_size=8,trainer.train_steps=12,"
                                              "trainer.steps_per_loop=12,trainer.optimizer.gradient_accumulation_steps=2")
    small = experiment(prepared_sample,
                       f"{common},task.data.global_batch_size=8,trainer.train_steps=12,trainer.steps_per_loop=12")
    a = train_lib.run_experiment(large, "train_and_eval", str(tmp_path / "large"))
    b = train_lib.run_experiment(accumulated, "train_and_eval", str(tmp_path / "accumulated"))
    c = train_lib.run_experiment(small, "train_and_eval", str(tmp_path / "small"))
    # Steps count batches: 12 micro-batches, 6 updates.
    assert b["step"] == 12 and (tmp_path / "accumulated" / "checkpoints" / "ckpt-12.index").exists()
    # Same examples per update as batch 16; Adam amplifies float rounding of near-zero
    # gradients, so compare with the gap to plain batch-8 training rather than to zero.
    assert abs(b["val_loss"] - a["val_loss"]) < 0.1 * abs(c["val_loss"] - a["val_loss"]), (a, b, c)


def _trained_state(prepared, override, checkpoint):
    """Model weights and optimizer variables (no counters, no accumulators) of a checkpoint, in order.

    Keys are the position and the name without its prefix (layer and optimizer names carry
    per-process counters), so two runs' states compare key by key.
    """
    trainer = train_lib.Trainer(experiment(prepared, override), os.path.dirname(os.path.dirname(checkpoint)),
                                strategies.make_strategy())
    trainer.restore(checkpoint)
    optimizer = [v for v in trainer.optimizer.variables if "accumulator" not in v.path and "iteration" not in v.path]
    accumulators = [v.numpy() for v in trainer.optimizer.variables if "accumulator" in v.path]
    state = {f"{i}:{v.path.split('/')[-1]}": v.numpy() for i, v in enumerate(trainer.model.weights + optimizer)}
    return state, trainer.step, accumulators


# Gradient accumulation over several replicas: k=2 micro-batches of global batch 8 give, after 6
# updates, the weights and Adam moments of 6 steps with global batch 16 on one device.
ACCUMULATED = ("task.data.global_batch_size=8,trainer.train_steps=12,trainer.steps_per_loop=6,"
               "trainer.optimizer.gradient_accumulation_steps=2")
LARGE = "task.data.global_batch_size=16,trainer.train_steps=6,trainer.steps_per_loop=3"
CONSTANT_LR = ("trainer.optimizer.decay=constant,trainer.optimizer.warmup_fraction=0.0,"
               "trainer.optimizer.learning_rate=0.001")


def _assert_same_training(prepared, accumulated_dir, large_dir, accumulated, large):
    assert accumulated["step"] == 12 and large["step"] == 6  # steps count batches
    a, step, accumulators = _trained_state(prepared, f"{CONSTANT_LR},{ACCUMULATED}",
                                           os.path.join(accumulated_dir, "checkpoints", "ckpt-12"))
    b, _, _ = _trained_state(prepared, f"{CONSTANT_LR},{LARGE}", os.path.join(large_dir, "checkpoints", "ckpt-6"))
    assert step == 12 and accumulators and not any(x.any() for x in accumulators)  # reset by the last update
    assert sorted(a) == sorted(b) and any("momentum" in k for k in a)
    worst = max(float(np.abs(a[k] - b[k]).max()) for k in a)
    assert worst < 1e-5, worst
    assert accumulated["val_loss"] == pytest.approx(large["val_loss"], rel=1e-5)


def test_gradient_accumulation_over_two_replicas_equals_a_larger_batch(tmp_path, prepared_sample):
    common = f"task.data.prepared_dir={prepared_sample},{FAST},{NO_DROPOUT},{CONSTANT_LR}"
    results = {}
    for name, strategy, devices, override in (("mirrored", "mirrored", 2, ACCUMULATED),
                                              ("one_device", "one_device", 1, LARGE)):
        run = llm_train("--experiment=sentence_classification", f"--model_dir={tmp_path / name}",
                        "--mode=train_and_eval", f"--strategy={strategy}", f"--num_devices={devices}",
                        f"--params_override={common},{override}")
        assert run.returncode == 0, run.stderr[-3000:]
        results[name] = json.loads(run.stdout.strip().splitlines()[-1])
    _assert_same_training(prepared_sample, str(tmp_path / "mirrored"), str(tmp_path / "one_device"),
                          results["mirrored"], results["one_device"])


def test_mirrored_accumulation_resumes_between_updates(tmp_path, prepared_sample):
    # Checkpoints every 3 batches with k=2: ckpt-3 holds one batch's gradient in the accumulators.
    override = (f"task.data.prepared_dir={prepared_sample},{FAST},{NO_DROPOUT},task.data.global_batch_size=8,"
                "trainer.train_steps=12,trainer.steps_per_loop=3,trainer.max_to_keep=5,"
                "trainer.optimizer.gradient_accumulation_steps=2")
    args = ["--experiment=sentence_classification", "--mode=train", "--strategy=mirrored", "--num_devices=2",
            f"--params_override={override}"]
    whole = llm_train(*args, f"--model_dir={tmp_path / 'whole'}")
    assert whole.returncode == 0, whole.stderr[-3000:]
    checkpoints = tmp_path / "stopped" / "checkpoints"
    checkpoints.mkdir(parents=True)
    for name in os.listdir(tmp_path / "whole" / "checkpoints"):
        if name.startswith("ckpt-3."):
            shutil.copy(tmp_path / "whole" / "checkpoints" / name, checkpoints / name)
    (checkpoints / "checkpoint").write_text('model_checkpoint_path: "ckpt-3"\nall_model_checkpoint_paths: "ckpt-3"\n')
    resumed = llm_train(*args, f"--model_dir={tmp_path / 'stopped'}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"restored {checkpoints}/ckpt-3 at step 3" in resumed.stderr
    a, b = (json.loads(run.stdout.strip().splitlines()[-1]) for run in (whole, resumed))
    assert a["step"] == b["step"] == 12
    assert b["loss"] == pytest.approx(a["loss"], rel=1e-6)


def test_mixed_bfloat16_trains(tmp_path, prepared_sample):
    import keras

    config = experiment(prepared_sample,
                        "trainer.mixed_precision=mixed_bfloat16,trainer.train_steps=10,trainer.steps_per_loop=10")
    try:
        result = train_lib.run_experiment(config, "train_and_eval", str(tmp_path))
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert np.isfinite(result["loss"]) and np.isfinite(result["val_loss"])


def test_non_chief_resumes_from_model_dir_and_removes_its_scratch(tmp_path, prepared_sample, monkeypatch):
    model_dir = str(tmp_path / "run")
    train_lib.run_experiment(experiment(prepared_sample, "trainer.train_steps=5,trainer.steps_per_loop=5"), "train",
                             model_dir)
    strategy = strategies.make_strategy("one_device")
    monkeypatch.setattr(type(strategy.extended), "should_checkpoint", property(lambda self: False))
    trainer = train_lib.Trainer(experiment(prepared_sample, "trainer.train_steps=10,trainer.steps_per_loop=5"),
                                model_dir, strategy)
    assert not trainer.is_chief and trainer.root != model_dir
    assert trainer.restore() == 5  # the chief's latest checkpoint, not its own (empty) scratch directory
    assert trainer.train(evaluate=False)["step"] == 10
    # A non-chief writes nothing to model_dir.
    assert sorted(os.listdir(tmp_path / "run" / "checkpoints")) == ["checkpoint", "ckpt-5.data-00000-of-00001",
                                                                      "ckpt-5.index"]
    assert not os.path.exists(trainer.root)


def _free_ports(count):
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _two_local_workers(args, scratch):
    """Runs ``llm_train *args`` as two local ``multi_worker_mirrored`` workers; returns their (rc, stdout, stderr)."""
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    executable = shutil.which("llm_train") or os.path.join(os.path.dirname(sys.executable), "llm_train")
    workers = []
    for index in range(2):
        env = dict(os.environ, TMPDIR=str(scratch),
                   TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
        workers.append(subprocess.Popen([executable, "--strategy=multi_worker_mirrored", *args], env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = []
    try:
        for worker in workers:
            outputs.append(worker.communicate(timeout=300))
    finally:
        for worker in workers:
            worker.kill()
    return [(worker.returncode, out, err) for worker, (out, err) in zip(workers, outputs)]


def _two_local_worker_results(args: list[str], scratch) -> list[dict]:
    """Runs two local workers (in ``scratch``, created); both must succeed; their last JSON lines."""
    scratch.mkdir()
    results = []
    for returncode, out, err in _two_local_workers(args, scratch):
        assert returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def test_multi_worker_mirrored_two_local_workers(tmp_path, prepared_sample):
    # 16 eval examples in batches of 6: the last global batch (4) splits unevenly over the workers.
    override = f"task.data.prepared_dir={prepared_sample},{FAST},trainer.train_steps=10,trainer.steps_per_loop=5"
    args = ["--experiment=sentence_classification", f"--model_dir={tmp_path / 'run'}", "--mode=train_and_eval",
            f"--params_override={override},task.data.eval_batch_size=6"]
    scratch = tmp_path / "scratch"
    results = _two_local_worker_results(args, scratch)
    assert [r["step"] for r in results] == [10, 10]
    assert results[0]["val_loss"] == results[1]["val_loss"] and results[0]["loss"] == results[1]["loss"]
    # One checkpoint set, written by the chief (worker 0) alone; the other's scratch copy is removed.
    names = sorted(os.listdir(tmp_path / "run" / "checkpoints"))
    assert names == ["checkpoint", "ckpt-10.data-00000-of-00001", "ckpt-10.index", "ckpt-5.data-00000-of-00001",
                     "ckpt-5.index"]
    assert sorted(os.listdir(tmp_path)) == ["run", "scratch"]
    assert not [n for n in os.listdir(scratch) if n.startswith("llm_tf_worker_")]
    # The distributed evaluation covers the whole eval split: one device scores the chief's checkpoint the same.
    trainer = train_lib.Trainer(experiment(prepared_sample, "trainer.train_steps=10,trainer.steps_per_loop=5"),
                                str(tmp_path / "check"), strategies.make_strategy("one_device"))
    assert trainer.restore(str(tmp_path / "run" / "checkpoints" / "ckpt-10")) == 10
    local = trainer.evaluate()
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert written["step"] == 10
    assert written["val_loss"] == pytest.approx(local["val_loss"], rel=1e-5)
    assert written["val_accuracy"] == pytest.approx(local["val_accuracy"])


def test_gradient_accumulation_over_two_local_workers_equals_a_larger_batch(tmp_path, prepared_sample):
    common = f"task.data.prepared_dir={prepared_sample},{FAST},{NO_DROPOUT},{CONSTANT_LR}"
    args = ["--experiment=sentence_classification", f"--model_dir={tmp_path / 'workers'}", "--mode=train_and_eval",
            f"--params_override={common},{ACCUMULATED}"]
    scratch = tmp_path / "scratch"
    results = _two_local_worker_results(args, scratch)
    assert results[0]["loss"] == results[1]["loss"] and results[0]["val_loss"] == results[1]["val_loss"]
    large = train_lib.run_experiment(experiment(prepared_sample, f"{NO_DROPOUT},{CONSTANT_LR},{LARGE}"),
                                     "train_and_eval", str(tmp_path / "one_device"))
    _assert_same_training(prepared_sample, str(tmp_path / "workers"), str(tmp_path / "one_device"), results[0], large)

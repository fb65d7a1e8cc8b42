"""Step time of our tiny classifier: short Keras ``fit`` calls vs a plain ``tf.function`` step.

A short ``fit`` call (a few steps) often takes ~1.5x the plain step's time per step with only
~1 core busy. This benchmark shows where that time goes: each ``fit`` round is timed as a
whole call and, with a callback, as its training loop (epoch begin to end; ``fit`` waits for
the last step's results before ``on_epoch_end``). The loop runs at the plain step's speed; the
rest is a wait after the loop, when the round's tf.data iterator is destroyed and tf.data's
autotuner thread is joined (``fit_no_autotune`` feeds the same data with
``options.autotune.enabled = False``: no wait). Prints one JSON line per round:
``{"path": .., "model": i, "s_per_step": .., "loop_s_per_step": .., "cores": ..}`` (s_per_step:
the whole call or round; cores = process CPU time / wall time).

Usage (repository root, project virtualenv):
    python -m benchmarks.fit_step_states [--models=4] [--rounds=2] [--steps=6] [--intra=0] [--inter=0]
"""

import argparse
import json
import os
import resource
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def timed(run, steps: int) -> dict:
    """Seconds per step and busy cores of ``run()`` (which runs ``steps`` steps).

    ``run`` may return the seconds of its training loop alone, reported as ``loop_s_per_step``.
    """
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    loop_seconds = run()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    out = {"s_per_step": round(wall / steps, 4), "cores": round(cpu / wall, 2)}
    if loop_seconds is not None:
        out["loop_s_per_step"] = round(loop_seconds / steps, 4)
    return out


def main() -> None:
    """Builds fresh models and times ``fit`` rounds (with and without autotune) and plain-step rounds."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=4, help="fresh models (each compiled anew)")
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds per model and path")
    parser.add_argument("--steps", type=int, default=6, help="steps per round")
    parser.add_argument("--intra", type=int, default=0, help="intra-op threads (0: TensorFlow's default)")
    parser.add_argument("--inter", type=int, default=0, help="inter-op threads (0: TensorFlow's default)")
    args = parser.parse_args()

    import numpy as np
    import tensorflow as tf

    if args.intra:
        tf.config.threading.set_intra_op_parallelism_threads(args.intra)
    if args.inter:
        tf.config.threading.set_inter_op_parallelism_threads(args.inter)
    from benchmarks.peer_workers.train_tf import stand_in_prepared
    from llm_tf.training import configs, optimizers, registry_imports, tasks  # noqa: F401

    prepared = stand_in_prepared(os.path.join(tempfile.mkdtemp(prefix="fit_states_"), "prepared"), 8000, 128)
    config = tasks.experiment_config("sentence_classification")
    configs.apply_overrides(config, [], {"task": {"model": {"size": "tiny"}, "data": {
        "prepared_dir": prepared, "seq_length": 128, "global_batch_size": 32}}})
    task = tasks.build_task(config)
    rng = np.random.default_rng(0)
    count = 32 * 8
    features = {"token_ids": rng.integers(5, 8000, (count, 128)).astype("int32"),
                "segment_ids": np.zeros((count, 128), "int32"), "padding_mask": np.ones((count, 128), "int32")}
    labels = rng.integers(0, 2, count)
    dataset = (tf.data.Dataset.from_tensor_slices((features, labels)).batch(32, drop_remainder=True)
               .cache().repeat().prefetch(2))
    options = tf.data.Options()
    options.autotune.enabled = False
    datasets = {"fit": dataset, "fit_no_autotune": dataset.with_options(options)}

    import keras

    class LoopClock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = time.perf_counter() - self.start
    batch = ({k: tf.constant(v[:32]) for k, v in features.items()}, tf.constant(labels[:32]))
    for index in range(args.models):
        model = task.build_model()
        optimizer = optimizers.build_optimizer(config.trainer.optimizer, 100000)
        loss_fn = task.loss()
        model.compile(optimizer=optimizer, loss=loss_fn)

        @tf.function
        def step(x, y):
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
            optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
            return loss

        def fit_round(data):
            clock = LoopClock()
            model.fit(data, steps_per_epoch=args.steps, epochs=1, verbose=0, callbacks=[clock])
            return clock.seconds

        def step_round():
            for _ in range(args.steps):
                loss = step(*batch)
            float(loss)

        runs = {path: (lambda data=data: fit_round(data)) for path, data in datasets.items()}
        runs["step"] = step_round
        for run in runs.values():
            run()  # compile
        for _ in range(args.rounds):
            for path, run in runs.items():
                print(json.dumps({"path": path, "model": index, **timed(run, args.steps)}), flush=True)


if __name__ == "__main__":
    main()

"""Training-throughput worker for the TensorFlow systems: llm-tf's Trainer or keras-hub's classifier.

Runs in the project's virtualenv and trains on the synthetic batches in ``--batches`` (an
``.npz`` with ``token_ids``, ``segment_ids``, ``padding_mask``, ``labels``; the same file the
other systems read), cycling through them.

* ``--system=ours``: :class:`llm_tf.training.train_lib.Trainer` builds the model (our
  ``build_classifier`` on a keras-hub ``BertBackbone``), our AdamW with its warm-up/decay
  schedule, weight-decay exclusions and global-norm clipping, and compiles it with
  ``trainer.jit_compile`` and ``trainer.mixed_precision`` from the config, exactly as
  ``llm_train`` does; the worker then calls ``fit`` on the synthetic batches. The Trainer
  needs a prepared directory: a stand-in with a vocabulary of ``--vocab_size`` is written to
  a temporary directory (no records are read).
* ``--system=keras_hub``: ``keras_hub.models.BertTextClassifier`` on a ``BertBackbone`` of the
  same size, ``compile()`` with its defaults (Adam 5e-5, ``jit_compile="auto"``, which is
  off on a CPU-only machine), then ``fit``.

Requests: ``{"op": "round", "steps": n}`` -> ``{"seconds": s, "call_seconds": c, "steps": n, "loss": l}``
(``s``: the epoch inside ``fit``, first batch to the last step's results; ``c``: the whole
``fit`` call, which adds a fixed per-call cost, see :func:`main`);
``{"op": "peak", "n": N, "dtype": "float32"|"bfloat16", "repeats": k}`` -> matmul GFLOP/s.
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def stand_in_prepared(directory: str, vocab_size: int, seq_length: int) -> str:
    """Writes the files :func:`llm_tf.data.prepared.load_prepared` reads, with a synthetic vocabulary."""
    import json

    from llm_tf.data import labels as labels_lib
    from llm_tf.text import tokenizer as tokenizer_lib

    os.makedirs(os.path.join(directory, "tokenizer"), exist_ok=True)
    tokens = list(tokenizer_lib.SPECIAL_TOKENS) + [f"w{i}" for i in
                                                  range(vocab_size - len(tokenizer_lib.SPECIAL_TOKENS))]
    with open(os.path.join(directory, "tokenizer", "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(tokens) + "\n")
    tokenizer_lib.TokenizerConfig(max_seq_length=seq_length).save(os.path.join(directory, "tokenizer"))
    labels_lib.save_labels(os.path.join(directory, "labels.txt"), ["0", "1"])
    with open(os.path.join(directory, "summary.json"), "w", encoding="utf-8") as f:
        json.dump({"task": "classification", "features": ["text", "label"]}, f)
    return directory


def build_ours(size: str, precision: str, jit: bool, vocab_size: int, seq_length: int, batch_size: int):
    """Our Trainer's compiled model (and the Trainer, for its resolved config)."""
    from llm_tf.training import configs, registry_imports, strategies, tasks, train_lib  # noqa: F401

    work = tempfile.mkdtemp(prefix="bench_ours_")
    prepared = stand_in_prepared(os.path.join(work, "prepared"), vocab_size, seq_length)
    config = tasks.experiment_config("sentence_classification")
    configs.apply_overrides(config, [], {
        "task": {"model": {"size": size}, "data": {"prepared_dir": prepared, "seq_length": seq_length,
                                                   "global_batch_size": batch_size}},
        "trainer": {"jit_compile": jit, "mixed_precision": "mixed_bfloat16" if precision == "bf16" else "",
                    "train_steps": 100000, "steps_per_loop": 100000,
                    # One step per graph call: rounds of any step count (Keras runs whole executions,
                    # so 16 a call would train past a 10-step round); at batch 32 x 128 a call's
                    # overhead is ~1% of a tiny step.
                    "steps_per_execution": 1},
    })
    trainer = train_lib.Trainer(config, os.path.join(work, "model"), strategies.make_strategy("one_device"))
    return trainer.model, {"jit_compile": jit, "optimizer": type(trainer.optimizer).__name__,
                           "mixed_precision": config.trainer.mixed_precision or "float32"}


def build_keras_hub(size: str, precision: str, vocab_size: int):
    """keras-hub's ``BertTextClassifier`` compiled with its defaults."""
    import keras
    import keras_hub

    from llm_tf.training.configs import MODEL_SIZES

    keras.mixed_precision.set_global_policy("mixed_bfloat16" if precision == "bf16" else "float32")
    keras.utils.set_random_seed(42)
    layers, hidden, heads = MODEL_SIZES[size]
    backbone = keras_hub.models.BertBackbone(vocabulary_size=vocab_size, num_layers=layers, num_heads=heads,
                                             hidden_dim=hidden, intermediate_dim=4 * hidden, max_sequence_length=512)
    model = keras_hub.models.BertTextClassifier(backbone, num_classes=2, preprocessor=None)
    model.compile()
    return model, {"jit_compile": str(model.jit_compile), "optimizer": type(model.optimizer).__name__,
                   "mixed_precision": keras.mixed_precision.global_policy().name}


def matmul_gflops(n: int, dtype: str, repeats: int) -> dict:
    """GFLOP/s of an n x n @ n x n matmul in a tf.function (best and median of ``repeats``)."""
    import tensorflow as tf

    from benchmarks.worker_protocol import matmul_rate

    a = tf.random.normal([n, n], dtype=tf.float32)
    b = tf.random.normal([n, n], dtype=tf.float32)
    if dtype == "bfloat16":
        a, b = tf.cast(a, tf.bfloat16), tf.cast(b, tf.bfloat16)
    matmul = tf.function(lambda x, y: tf.reduce_sum(tf.cast(tf.matmul(x, y)[0, :1], tf.float32)))
    return matmul_rate(lambda: matmul(a, b).numpy(), n, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--system", choices=["ours", "keras_hub", "peak"], required=True)
    parser.add_argument("--batches", help=".npz of synthetic batches")
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--jit", action="store_true", help="ours: trainer.jit_compile=true")
    parser.add_argument("--vocab_size", type=int, default=8000)
    args = parser.parse_args()

    import numpy as np
    import tensorflow as tf

    from benchmarks.worker_protocol import serve

    if args.system == "peak":
        def handle_peak(request: dict) -> dict:
            if request["op"] != "peak":
                raise ValueError(f"unknown op {request['op']!r}")
            return matmul_gflops(request["n"], request["dtype"], request.get("repeats", 5))

        serve(handle_peak, {"system": "tf_matmul", "tensorflow": tf.__version__,
                            "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default")})
        return

    data = np.load(args.batches)
    count, batch_size = data["labels"].shape[:2]
    seq_length = data["token_ids"].shape[-1]
    if args.system == "ours":
        model, settings = build_ours(args.size, args.precision, args.jit, args.vocab_size, seq_length, batch_size)
    else:
        model, settings = build_keras_hub(args.size, args.precision, args.vocab_size)
    flat = lambda k: data[k].reshape(count * batch_size, seq_length)  # noqa: E731
    features = {"token_ids": flat("token_ids"), "segment_ids": flat("segment_ids"),
                "padding_mask": flat("padding_mask")}
    dataset = (tf.data.Dataset.from_tensor_slices((features, data["labels"].reshape(-1)))
               .batch(batch_size, drop_remainder=True).cache().repeat().prefetch(tf.data.AUTOTUNE))

    import keras

    class EpochClock(keras.callbacks.Callback):
        """Wall time of the epoch: first batch to last step's results (fit syncs before on_epoch_end)."""

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = time.perf_counter() - self.start

    def handle(request: dict) -> dict:
        if request["op"] != "round":
            raise ValueError(f"unknown op {request['op']!r}")
        clock = EpochClock()
        start = time.perf_counter()
        history = model.fit(dataset, steps_per_epoch=request["steps"], epochs=1, verbose=0, callbacks=[clock])
        call_seconds = time.perf_counter() - start
        # "seconds" is the training loop itself, as the HF worker times its loop; the fit call adds a
        # fixed cost per call (call_seconds - seconds), mostly tf.data's autotuner thread being
        # joined when the epoch's iterator is destroyed (up to ~1 s; once per llm_train run).
        return {"seconds": clock.seconds, "call_seconds": call_seconds, "steps": request["steps"],
                "loss": float(history.history["loss"][-1])}

    import keras_hub
    from tensorflow.python.util import _pywrap_util_port

    from llm_tf.models.parameters import count_params

    params = count_params(model.trainable_weights)
    serve(handle, {"system": args.system, "size": args.size, "precision": args.precision, **settings,
                   "onednn": bool(_pywrap_util_port.IsMklEnabled()),
                   "trainable_params": params, "tensorflow": tf.__version__, "keras_hub": keras_hub.__version__})


if __name__ == "__main__":
    main()

"""Inference on the real model: our fine-tuned MiniLM SST-2 classifier, deployed our way and the peers' way.

The model is a ``llm_train`` directory (default ``runs/sst2_minilm_s42``: all-MiniLM-L6-v2
fine-tuned on SST-2). It is deployed as:

* ours: the ``llm_export`` SavedModel in-process (``serving_default``: text in, the tokenizer
  in the graph; ``predict_tokens``: token ids in), and ``llm_quantize``'s TFLite float32 and
  dynamic int8 conversions in both forms (``text``: tokenizer inside; ``tokens``: token ids
  from our tokenizer), run with :func:`llm_tf.export.tflite_runtime.make_interpreter`
  (builtin kernels + XNNPACK, ``--threads``);
* theirs (``benchmarks/peer_workers/hf_classify.py`` in the peer venv, one long-lived process):
  the same weights as a transformers ``BertForSequenceClassification``
  (``benchmarks/minilm_to_hf.py``; ``hidden_act=gelu_pytorch_tanh``, the tanh GELU that
  keras-hub computes) in PyTorch eager mode, and its ONNX export in ONNX Runtime, float32 and
  ``quantize_dynamic`` int8, plain and through ORT's BERT optimizer (fusions) first.

Every system tokenizes as it does in deployment (ours in the graph or with our tokenizer,
theirs with the HF fast tokenizer) and reads the same SST-2 dev sentences. Measured, in
``--rounds`` interleaved rounds (each round runs every system once, in reversed order every
other round, the peer worker taking its turns between ours):

* batch 1: each of the first ``--batch1_sentences`` sentences alone: end to end (tokenize +
  forward, per sentence) and model only (the sentence tokenized beforehand); p50/p99 ms;
* batch 32: the first ``--batch32_sentences`` sentences (default all) in dev order, batches of
  ``--batch_size`` padded to their longest sentence (the TFLite files are converted with
  ``dynamic_length``, so they run at each batch's own length too; ``--tflite_length=fixed``
  converts them at the packed length, 64, instead); sentences/s end to end and model only;
* accuracy on the dev sentences (``--eval_limit``: fewer, for smoke runs), each system from its
  own predictions, with its agreement with the SavedModel and the largest logit difference.

Targets (issue 24 §2): at batch 1 our fastest form, within 0.5 points of ONNX Runtime int8's
accuracy, at least as fast end to end as ONNX Runtime int8 (the faster of plain and optimized);
at batch 32 the SavedModel's end-to-end throughput >= 1.2x HF torch eager. Ratios are taken per
round; the median over rounds is reported.

Usage (from the repository root, in the project's virtualenv):
    python -m benchmarks.minilm_inference --model_dir=runs/sst2_minilm_s42 [--rounds=5] \
        [--batch1_sentences=200] [--threads=2] [--output=benchmarks/results/minilm_inference.md]

Results: the markdown file --output with ``.json`` and ``.png`` beside it. Exit code non-zero,
with one line, on a missing model directory or data file, or a peer venv that cannot be built.
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from benchmarks import common  # noqa: E402

NAME = "minilm_inference"
#: Our systems: name -> (what, form, variant); form None is the SavedModel.
OURS = {
    "savedmodel": ("ours: SavedModel in-process (serving_default / predict_tokens)", None, None),
    "tflite_text_float32": ("ours: TFLite text form, float32 (tokenizer inside)", "text", "float32"),
    "tflite_text_dynamic_int8": ("ours: TFLite text form, dynamic int8 (tokenizer inside)", "text", "dynamic_int8"),
    "tflite_tokens_float32": ("ours: TFLite tokens form, float32 + our tokenizer", "tokens", "float32"),
    "tflite_tokens_dynamic_int8": ("ours: TFLite tokens form, dynamic int8 + our tokenizer", "tokens",
                                   "dynamic_int8"),
}
#: Peer systems (hf_classify.py's names).
THEIRS = {
    "torch": "theirs: HF transformers, PyTorch eager",
    "ort_fp32": "theirs: ONNX Runtime float32",
    "ort_int8": "theirs: ONNX Runtime dynamic int8",
    "ort_opt_fp32": "theirs: ONNX Runtime float32, BERT optimizer (fused)",
    "ort_opt_int8": "theirs: ONNX Runtime dynamic int8, BERT optimizer (fused)",
}
ORT_INT8 = ("ort_int8", "ort_opt_int8")
#: Targets of issue 24 §2.
BATCH1_TARGET = 1.0
ACCURACY_MARGIN_POINTS = 0.5
BATCH32_TARGET = 1.2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_dir", required=True, help="llm_train directory of the fine-tuned classifier.")
    parser.add_argument("--data", default="../shared/data/sst2/dev.tsv", help="TSV with sentence and label columns.")
    parser.add_argument("--output", default=os.path.join(common.RESULTS, f"{NAME}.md"),
                        help="Markdown results file; .json and .png go beside it.")
    parser.add_argument("--rounds", type=int, default=5, help="Interleaved timed rounds.")
    parser.add_argument("--batch1_sentences", type=int, default=200, help="Sentences timed alone per round.")
    parser.add_argument("--batch32_sentences", type=int, default=0,
                        help="Sentences per batch-32 pass (0: all the evaluated ones).")
    parser.add_argument("--batch_size", type=int, default=32, help="Batch size of the throughput pass.")
    parser.add_argument("--threads", type=int, default=2,
                        help="Threads of every system (TF intra/inter-op, TFLite, torch, ONNX Runtime).")
    parser.add_argument("--eval_limit", type=int, default=0, help="Only the first N dev sentences (0: all).")
    parser.add_argument("--tflite_length", choices=("dynamic", "fixed"), default="dynamic",
                        help="TFLite inputs: dynamic length (each call at its own length, llm_quantize "
                             "--dynamic_length) or fixed at the packed length.")
    parser.add_argument("--systems", default=",".join([*OURS, *THEIRS]), help="Systems to run (comma-separated).")
    parser.add_argument("--preset", default="",
                        help="Hugging Face directory of the original checkpoint (config.json, tokenizer files); "
                             "default: the run's task.init_preset.")
    parser.add_argument("--torch_omp_wait_policy", default="PASSIVE",
                        help="OMP_WAIT_POLICY of the peer worker ('' = torch's default, spinning threads that "
                             "would take CPU from the next system in the round).")
    parser.add_argument("--work_dir", default="", help="Keep the exported models here (default: a temp dir, removed).")
    parser.add_argument("--peer_venv", default="", help="Peer virtualenv (default benchmarks/.peer_venv).")
    args = parser.parse_args(argv)
    if min(args.rounds, args.batch1_sentences, args.batch_size, args.threads) < 1:
        parser.error("--rounds, --batch1_sentences, --batch_size and --threads must be >= 1")
    if args.eval_limit < 0 or args.batch32_sentences < 0:
        parser.error("--eval_limit and --batch32_sentences must be >= 0")
    args.systems = [s for s in args.systems.split(",") if s]
    unknown = [s for s in args.systems if s not in OURS and s not in THEIRS]
    if unknown:
        parser.error(f"unknown systems {', '.join(unknown)} (known: {', '.join([*OURS, *THEIRS])})")
    return args


# --- Summaries (pure) ---------------------------------------------------------------------------

def percentiles(values: list[float]) -> dict:
    """p50 and p99 of a list of milliseconds."""
    return {"p50": float(np.percentile(values, 50)), "p99": float(np.percentile(values, 99))}


def summarize_batch1(rounds: list[dict]) -> dict:
    """One system's batch-1 rounds (``end_to_end_ms``, ``model_ms`` lists, model None when not
    separable) -> p50/p99 over all rounds and each round's p50."""
    out = {}
    for key in ("end_to_end_ms", "model_ms"):
        if not rounds or rounds[0].get(key) is None:
            out[key] = None
            continue
        every = [x for r in rounds for x in r[key]]
        out[key] = {**percentiles(every), "round_p50": [float(np.percentile(r[key], 50)) for r in rounds]}
    return out


def summarize_batch32(rounds: list[dict]) -> dict:
    """One system's batch-32 rounds (``end_to_end_s``, ``model_s``, ``sentences``) -> sentences/s per round + median."""
    out = {}
    for key in ("end_to_end_s", "model_s"):
        if not rounds or rounds[0].get(key) is None:
            out[key.replace("_s", "")] = None
            continue
        rates = [r["sentences"] / r[key] for r in rounds]
        out[key.replace("_s", "")] = {"median": statistics.median(rates), "rounds": rates}
    return out


def accuracy_figures(logits: np.ndarray, truth: np.ndarray, reference_logits: np.ndarray) -> dict:
    """Accuracy of ``logits`` [n, classes] against ``truth``, agreement with and max |diff| to the reference."""
    predicted = logits.argmax(axis=1)
    return {"accuracy": float(np.mean(predicted == truth)),
            "agreement": float(np.mean(predicted == reference_logits.argmax(axis=1))),
            "max_abs_logit_diff": float(np.max(np.abs(logits - reference_logits))),
            "mean_abs_logit_diff": float(np.mean(np.abs(logits - reference_logits)))}


def targets(summary: dict, accuracy: dict) -> dict:
    """The two targets from per-system summaries: ratios per round, medians, PASS/MISS.

    Args:
        summary: ``{system: {"batch1": summarize_batch1(...), "batch32": summarize_batch32(...)}}``.
        accuracy: ``{system: {"accuracy": ...}}``.

    Returns:
        ``{"batch1": {...} | None, "batch32": {...} | None}`` (None when a system it needs did not run).
    """
    out: dict = {"batch1": None, "batch32": None}
    ours = [s for s in OURS if s in summary and summary[s]["batch1"]["end_to_end_ms"]]
    theirs = [s for s in ORT_INT8 if s in summary and summary[s]["batch1"]["end_to_end_ms"]]
    if ours and theirs:
        def p50s(system):
            return summary[system]["batch1"]["end_to_end_ms"]["round_p50"]

        best_theirs = min(theirs, key=lambda s: statistics.median(p50s(s)))
        floor = accuracy[best_theirs]["accuracy"] - ACCURACY_MARGIN_POINTS / 100
        eligible = [s for s in ours if accuracy[s]["accuracy"] >= floor - 1e-12] or ours
        best_ours = min(eligible, key=lambda s: statistics.median(p50s(s)))
        ratio = common.ratio_summary(p50s(best_theirs), p50s(best_ours))
        points = 100 * (accuracy[best_ours]["accuracy"] - accuracy[best_theirs]["accuracy"])
        model = None
        if summary[best_ours]["batch1"]["model_ms"] and summary[best_theirs]["batch1"]["model_ms"]:
            model = common.ratio_summary(summary[best_theirs]["batch1"]["model_ms"]["round_p50"],
                                         summary[best_ours]["batch1"]["model_ms"]["round_p50"])
        out["batch1"] = {"ours": best_ours, "theirs": best_theirs, "speedup_end_to_end": ratio,
                         "speedup_model_only": model, "accuracy_points": points,
                         "passed": bool(ratio["median"] >= BATCH1_TARGET and points >= -ACCURACY_MARGIN_POINTS)}
    if all(s in summary and summary[s]["batch32"]["end_to_end"] for s in ("savedmodel", "torch")):
        ratio = common.ratio_summary(summary["savedmodel"]["batch32"]["end_to_end"]["rounds"],
                                     summary["torch"]["batch32"]["end_to_end"]["rounds"])
        model = common.ratio_summary(summary["savedmodel"]["batch32"]["model"]["rounds"],
                                     summary["torch"]["batch32"]["model"]["rounds"])
        out["batch32"] = {"speedup_end_to_end": ratio, "speedup_model_only": model,
                          "passed": bool(ratio["median"] >= BATCH32_TARGET)}
    return out


# --- Our systems ---------------------------------------------------------------------------------

class SavedModelSystem:
    """The SavedModel in-process: ``serving_default`` (text) end to end, ``predict_tokens`` model only."""

    def __init__(self, exported, texts: list[str]):
        import tensorflow as tf

        self.tf = tf
        self.serve = exported.loaded.signatures["serving_default"]
        self.tokens = exported.loaded.signatures["predict_tokens"]
        self.tokenize = trimmed_tokenizer(exported)
        self.texts = texts
        self.singles = [self.tokenize(tf.constant([t])) for t in texts]

    def predict(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """(logits from predict_tokens on our token ids, label ids from serving_default), batch by batch."""
        tf = self.tf
        logits, labels = [], []
        for i in range(0, len(self.texts), batch_size):
            chunk = tf.constant(self.texts[i:i + batch_size])
            labels.append(self.serve(text=chunk)["label_ids"].numpy())
            logits.append(self.tokens(**self.tokenize(chunk))["logits"].numpy())
        return np.concatenate(logits), np.concatenate(labels)

    def batch1(self, indices: list[int]) -> dict:
        tf = self.tf
        end_to_end, model = [], []
        for i in indices:
            start = time.perf_counter()
            self.serve(text=tf.constant([self.texts[i]]))["label_ids"].numpy()
            end_to_end.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            self.tokens(**self.singles[i])["label_ids"].numpy()
            model.append((time.perf_counter() - start) * 1000)
        return {"end_to_end_ms": end_to_end, "model_ms": model}

    def batch32(self, count: int, batch_size: int) -> dict:
        tf = self.tf
        start = time.perf_counter()
        for i in range(0, count, batch_size):
            self.serve(text=tf.constant(self.texts[i:min(i + batch_size, count)]))["label_ids"].numpy()
        end_to_end = time.perf_counter() - start
        prepared = [self.tokenize(tf.constant(self.texts[i:min(i + batch_size, count)]))
                    for i in range(0, count, batch_size)]
        start = time.perf_counter()
        for inputs in prepared:
            self.tokens(**inputs)["label_ids"].numpy()
        return {"end_to_end_s": end_to_end, "model_s": time.perf_counter() - start, "sentences": count}


def trimmed_tokenizer(exported, trim: bool = True):
    """Our tokenizer as a ``tf.function``: strings -> int32 tensors [batch, packed length], cut to
    the batch's longest sentence when ``trim``."""
    import tensorflow as tf

    from llm_tf.export.signatures import trim_to_longest

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def tokenize(text):
        packed = {k: tf.cast(v, tf.int32) for k, v in exported.tokenizer(text, seq_length=exported.seq_length).items()}
        return trim_to_longest(packed) if trim else packed

    return tokenize


class TFLiteSystem:
    """A TFLite variant with :func:`~llm_tf.export.tflite_runtime.make_interpreter`'s settings.

    A dynamic-length file (``dynamic_length``) runs each call at its batch's longest sentence
    (the text form cuts inside the graph; token ids are cut before the call); a fixed-length
    file takes inputs of the packed length (``[batch, seq_length]``), so every sentence runs
    padded to it.
    ``text`` form: strings in (the tokenizer inside); timed end to end only. ``tokens`` form:
    our tokenizer (``tf.function``) then the interpreter, end to end; the interpreter alone on
    ids made beforehand, model only. A call is the signature's resize (when the shape changes),
    set, invoke and get (:class:`~llm_tf.export.tflite_eval.InvokeTimer`), timed whole.
    """

    def __init__(self, path: str, form: str, exported, texts: list[str], threads: int, dynamic_length: bool):
        import tensorflow as tf

        from llm_tf.export import tflite_convert
        from llm_tf.export.tflite_eval import InvokeTimer
        from llm_tf.export.tflite_runtime import make_interpreter

        self.tf = tf
        self.form = form
        self.texts = texts
        self.run = InvokeTimer(make_interpreter(model_path=path, num_threads=threads),
                               tflite_convert.classify_signature(form))
        if form == "tokens":
            self.tokenize = trimmed_tokenizer(exported, trim=dynamic_length)
            self.singles = [self.numpy_tokens([t]) for t in texts]

    def numpy_tokens(self, texts: list[str]) -> dict:
        return {k: v.numpy() for k, v in self.tokenize(self.tf.constant(texts)).items()}

    def call(self, texts: list[str]) -> dict:
        if self.form == "text":
            return self.run(text=np.array([t.encode("utf-8") for t in texts], dtype=object))[0]
        return self.run(**self.numpy_tokens(texts))[0]

    def predict(self, batch_size: int) -> np.ndarray:
        return np.concatenate([self.call(self.texts[i:i + batch_size])["logits"]
                               for i in range(0, len(self.texts), batch_size)])

    def batch1(self, indices: list[int]) -> dict:
        end_to_end, model = [], []
        for i in indices:
            start = time.perf_counter()
            self.call([self.texts[i]])
            end_to_end.append((time.perf_counter() - start) * 1000)
            if self.form == "tokens":
                start = time.perf_counter()
                self.run(**self.singles[i])
                model.append((time.perf_counter() - start) * 1000)
        return {"end_to_end_ms": end_to_end, "model_ms": model if self.form == "tokens" else None}

    def batch32(self, count: int, batch_size: int) -> dict:
        start = time.perf_counter()
        for i in range(0, count, batch_size):
            self.call(self.texts[i:min(i + batch_size, count)])
        end_to_end = time.perf_counter() - start
        if self.form != "tokens":
            return {"end_to_end_s": end_to_end, "model_s": None, "sentences": count}
        prepared = [self.numpy_tokens(self.texts[i:min(i + batch_size, count)]) for i in range(0, count, batch_size)]
        start = time.perf_counter()
        for inputs in prepared:
            self.run(**inputs)
        return {"end_to_end_s": end_to_end, "model_s": time.perf_counter() - start, "sentences": count}


class PeerSystem:
    """One system of the peer worker, with the same calls as ours."""

    def __init__(self, worker, system: str, work: str):
        self.worker, self.system, self.work = worker, system, work

    def predict(self, batch_size: int) -> np.ndarray:
        path = os.path.join(self.work, f"{self.system}_logits.npy")
        self.worker.request({"op": "predict", "system": self.system, "batch_size": batch_size, "save_to": path})
        return np.load(path)

    def batch1(self, indices: list[int]) -> dict:
        return self.worker.request({"op": "batch1", "system": self.system, "indices": list(indices)})

    def batch32(self, count: int, batch_size: int) -> dict:
        return self.worker.request({"op": "batch32", "system": self.system, "count": count,
                                    "batch_size": batch_size})


# --- The run -------------------------------------------------------------------------------------

def fail(message: str) -> None:
    """Exits with one line."""
    sys.exit(f"{NAME}: {message}")


def main(argv: list[str] | None = None) -> None:
    """Checks the inputs, builds every system, measures in interleaved rounds, writes the results."""
    args = parse_args(argv)
    started = time.perf_counter()
    from llm_tf.errors import ConfigError, DataError, LlmTfError
    from llm_tf.training import model_dir as model_dir_lib

    if not os.path.isdir(args.model_dir) or not model_dir_lib.is_training_dir(args.model_dir):
        fail(f"{args.model_dir}: not an llm_train directory (no params.yaml)")
    if not os.path.isfile(args.data):
        fail(f"{args.data}: missing (--data must be a TSV with sentence and label columns)")
    from llm_tf.export import representative

    try:
        dev = representative.read_text_file(args.data, args.eval_limit or None)
    except DataError as e:
        fail(str(e))
    if not dev.texts or dev.labels is None:
        fail(f"{args.data}: no labelled sentences")
    texts = dev.texts
    theirs = [s for s in args.systems if s in THEIRS]
    python = None
    if theirs:
        from benchmarks import peers

        try:
            python = peers.ensure_extras(args.peer_venv or None)
        except ConfigError as e:
            fail(str(e))
    load_before = common.load_average()

    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    except RuntimeError:  # TensorFlow already initialised in this process (a test calling main)
        pass
    from llm_tf.export import export_dir, exporter, tflite_convert
    from llm_tf.export.tflite_eval import cpu_info, label_ids_of
    from llm_tf.export.tflite_runtime import runtime_version
    from llm_tf.models import presets

    work = args.work_dir or tempfile.mkdtemp(prefix=f"{NAME}_")
    os.makedirs(work, exist_ok=True)
    seconds: dict = {}
    try:
        start = time.perf_counter()
        try:
            trained = model_dir_lib.restore_trained_model(args.model_dir)
            base = os.path.join(work, "saved_model")
            shutil.rmtree(base, ignore_errors=True)
            result = exporter.export_saved_model(args.model_dir, base, version=1, warmup_count=0)
            exported = export_dir.load_exported(result.path)
        except (ConfigError, DataError) as e:
            fail(str(e))
        seconds["export_saved_model"] = time.perf_counter() - start
        truth = label_ids_of(dev.labels, exported.labels, dev.source)
        systems: dict = {}
        if "savedmodel" in args.systems:
            systems["savedmodel"] = SavedModelSystem(exported, texts)
        tflite_files = {}
        for name, (_, form, variant) in OURS.items():
            if form is None or name not in args.systems:
                continue
            start = time.perf_counter()
            try:
                conversion = tflite_convert.convert_variant(exported, form, variant,
                                                            dynamic_length=args.tflite_length == "dynamic")
            except LlmTfError as e:
                fail(str(e))
            path = os.path.join(work, f"{form}_{variant}.tflite")
            with open(path, "wb") as f:
                f.write(conversion.content)
            tflite_files[name] = {"file": path, "mb": round(len(conversion.content) / 1e6, 2)}
            seconds[f"convert_{name}"] = time.perf_counter() - start
            systems[name] = TFLiteSystem(path, form, exported, texts, args.threads, args.tflite_length == "dynamic")
            print(f"{name}: converted ({tflite_files[name]['mb']} MB)", file=sys.stderr)

        worker = None
        hf = {}
        if theirs:
            from benchmarks import peers
            from benchmarks.minilm_to_hf import write_hf_directory

            start = time.perf_counter()
            preset_dir = args.preset or presets.open_preset(trained.config.task.init_preset).directory
            hf = write_hf_directory(trained.model, os.path.join(work, "hf_model"), preset_dir,
                                    list(exported.labels), exported.seq_length)
            seconds["write_hf_model"] = time.perf_counter() - start
            sentences_file = os.path.join(work, "sentences.json")
            with open(sentences_file, "w", encoding="utf-8") as f:
                json.dump(texts, f)
            argv_worker = [python, peers.worker_script("hf_classify.py"), f"--model_dir={hf['directory']}",
                           f"--sentences={sentences_file}", f"--work_dir={os.path.join(work, 'onnx')}",
                           f"--systems={','.join(theirs)}", f"--threads={args.threads}",
                           f"--max_length={exported.seq_length}"]
            env = {"OMP_NUM_THREADS": str(args.threads), "RAYON_NUM_THREADS": str(args.threads),
                   **({"OMP_WAIT_POLICY": args.torch_omp_wait_policy} if args.torch_omp_wait_policy else {})}
            start = time.perf_counter()
            worker = peers.Worker(argv_worker, "hf_classify", env=env, log_dir=work)
            worker.start()
            seconds["peer_worker_start"] = time.perf_counter() - start
            for system in theirs:
                systems[system] = PeerSystem(worker, system, work)
        try:
            report = measure(args, systems, texts, truth, exported, work, worker)
        finally:
            if worker is not None:
                worker.close()
        seconds["total"] = time.perf_counter() - started
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)

    import keras_hub

    machine = common.machine_info()
    machine["load_average_before"] = load_before
    machine.update(cpu_info())
    machine["keras_hub"] = keras_hub.__version__
    machine["tflite_runtime"] = runtime_version()
    if worker is not None:
        machine["peers"] = {k: worker.info.get(k) for k in ("torch", "transformers", "tokenizers")}
        machine["peers"]["onnxruntime"] = worker.info.get("onnx", {}).get("onnxruntime")
    command = "python -m benchmarks.minilm_inference " + " ".join(sys.argv[1:] if argv is None else argv)
    result = {"benchmark": NAME, "command": command, "machine": machine, "model_dir": os.path.abspath(args.model_dir),
              "checkpoint": trained.checkpoint, "step": trained.step, "data": dev.source,
              "sentences": len(texts), "seq_length": exported.seq_length, "threads": args.threads,
              "tflite_length": args.tflite_length,
              "rounds": args.rounds, "batch1_sentences": min(args.batch1_sentences, len(texts)),
              "batch_size": args.batch_size, "torch_omp_wait_policy": args.torch_omp_wait_policy,
              "tflite_files": {k: v["mb"] for k, v in tflite_files.items()},
              "hf_model": {k: v for k, v in hf.items() if k != "directory"},
              "peer_worker": worker.info if worker is not None else {}, "seconds": seconds, **report}
    directory = os.path.dirname(os.path.abspath(args.output))
    name = os.path.splitext(os.path.basename(args.output))[0]
    common.write_results(name, result, markdown(result), directory)
    plot(result, os.path.join(directory, f"{name}.png"))


def measure(args, systems: dict, texts: list[str], truth: np.ndarray, exported, work: str, worker) -> dict:
    """Accuracy pass (also the warm-up), then the interleaved rounds; the report's figures."""
    batch32_count = min(args.batch32_sentences or len(texts), len(texts))
    indices = list(range(min(args.batch1_sentences, len(texts))))
    logits, labels_served = {}, None
    for name, system in systems.items():
        start = time.perf_counter()
        if name == "savedmodel":
            logits[name], labels_served = system.predict(args.batch_size)
        else:
            logits[name] = system.predict(args.batch_size)
        system.batch1(indices[:5])
        print(f"{name}: predicted {len(texts)} sentences in {time.perf_counter() - start:.1f} s (warm-up)",
              file=sys.stderr)
    reference = logits.get("savedmodel", next(iter(logits.values())))
    accuracy = {name: accuracy_figures(value, truth, reference) for name, value in logits.items()}
    if labels_served is not None:  # the SavedModel's accuracy is that of its serving signature
        accuracy["savedmodel"]["accuracy"] = float(np.mean(labels_served == truth))
        accuracy["savedmodel"]["serving_default_agrees_with_predict_tokens"] = float(
            np.mean(labels_served == reference.argmax(axis=1)))
    tokens = None
    if worker is not None:
        path = os.path.join(work, "hf_tokens.npy")
        worker.request({"op": "tokens", "save_to": path})
        theirs = np.load(path)
        ours = exported.tokenize(texts)
        same = np.all(theirs[0] == ours["token_ids"], axis=1) & np.all(theirs[1] == ours["padding_mask"], axis=1) \
            & np.all(theirs[2] == ours["segment_ids"], axis=1)
        tokens = {"identical": int(same.sum()), "sentences": len(texts),
                  "differing_examples": [texts[i] for i in np.flatnonzero(~same)[:3]]}
    batch1 = {name: [] for name in systems}
    batch32 = {name: [] for name in systems}
    order = list(systems)
    for r in range(args.rounds):
        names = order if r % 2 == 0 else list(reversed(order))
        for name in names:
            batch1[name].append(systems[name].batch1(indices))
            p50 = np.percentile(batch1[name][-1]["end_to_end_ms"], 50)
            print(f"round {r + 1}/{args.rounds} batch 1 {name}: p50 {p50:.2f} ms end to end", file=sys.stderr)
        for name in names:
            batch32[name].append(systems[name].batch32(batch32_count, args.batch_size))
            rate = batch32_count / batch32[name][-1]["end_to_end_s"]
            print(f"round {r + 1}/{args.rounds} batch {args.batch_size} {name}: {rate:.0f} sentences/s",
                  file=sys.stderr)
    summary = {name: {"batch1": summarize_batch1(batch1[name]), "batch32": summarize_batch32(batch32[name])}
               for name in systems}
    return {"systems": list(systems), "accuracy": accuracy, "summary": summary, "targets": targets(summary, accuracy),
            "tokens": tokens, "batch32_sentences": batch32_count,
            "raw": {"batch1": batch1, "batch32": batch32}}


# --- Report --------------------------------------------------------------------------------------

def label(name: str) -> str:
    return OURS[name][0] if name in OURS else THEIRS.get(name, name)


def _ms(figure: dict | None) -> str:
    return f"{figure['p50']:.2f} / {figure['p99']:.2f}" if figure else "—"


def _rate(figure: dict | None) -> str:
    return f"{figure['median']:,.0f}" if figure else "—"


def _ratio(spread: dict | None) -> str:
    if not spread:
        return "—"
    return f"**{spread['median']:.2f}x** (rounds {', '.join(f'{x:.2f}' for x in spread['runs'])})"


def markdown(result: dict) -> str:
    """The results page."""
    m = result["machine"]
    peers = m.get("peers") or {}
    versions = (f"; TF {m['tensorflow']}, keras-hub {m.get('keras_hub', '?')}, {m.get('tflite_runtime', '?')}"
                + "".join(f", {k} {v}" for k, v in peers.items() if v))
    info = result.get("peer_worker") or {}
    onnx = info.get("onnx") or {}
    lines = [
        "# Inference on the real model: fine-tuned MiniLM (SST-2), ours vs PyTorch and ONNX Runtime", "",
        f"Command: `{result['command']}`  ",
        common.machine_line(m, versions),
        "",
        f"Model: {result['model_dir']} (checkpoint {os.path.basename(result['checkpoint'])}, step {result['step']}); "
        f"{result['sentences']} sentences of {result['data']}; packed length {result['seq_length']}; "
        f"{result['threads']} thread(s) for every system; {result['rounds']} rounds, each running every system once "
        "(reversed order every other round). Batch 1: the first "
        f"{result['batch1_sentences']} sentences alone, end to end (tokenize + forward) and model only (ids made "
        f"beforehand). Batch {result['batch_size']}: the first {result['batch32_sentences']} sentences in dev order, "
        "each batch padded to its longest sentence"
        + (" (the TFLite files too: converted with dynamic_length). " if result.get("tflite_length") == "dynamic" else
           f", except the TFLite forms, whose inputs are fixed at the packed length ({result['seq_length']} tokens). ")
        + "Accuracy: each system's own predictions (batches of "
        f"{result['batch_size']}); agreement and logit difference against the SavedModel's `predict_tokens`.", "",
        "| system | accuracy | agreement | max abs logit diff | batch 1 model-only p50 / p99 ms | "
        "batch 1 end-to-end p50 / p99 ms | batch 32 sentences/s end to end | batch 32 sentences/s model only |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in result["systems"]:
        a, s = result["accuracy"][name], result["summary"][name]
        lines.append(f"| {label(name)} (`{name}`) | {100 * a['accuracy']:.2f}% | {100 * a['agreement']:.2f}% | "
                     f"{a['max_abs_logit_diff']:.2e} | {_ms(s['batch1']['model_ms'])} | "
                     f"{_ms(s['batch1']['end_to_end_ms'])} | {_rate(s['batch32']['end_to_end'])} | "
                     f"{_rate(s['batch32']['model'])} |")
    t = result["targets"]
    lines += ["", "Targets (per-round ratios, median and rounds):", ""]
    if t["batch1"]:
        b = t["batch1"]
        lines.append(f"* Batch 1, end to end: our best deployable form `{b['ours']}` vs ONNX Runtime int8 at its "
                     f"best, `{b['theirs']}`: {_ratio(b['speedup_end_to_end'])} faster (target >= "
                     f"{BATCH1_TARGET:.1f}x), accuracy {b['accuracy_points']:+.2f} points (target >= "
                     f"-{ACCURACY_MARGIN_POINTS} points): **{'PASS' if b['passed'] else 'MISS'}**. Model only: "
                     f"{_ratio(b['speedup_model_only'])}.")
    else:
        lines.append("* Batch 1: not measured (needs one of our systems and an ONNX Runtime int8 system).")
    if t["batch32"]:
        b = t["batch32"]
        lines.append(f"* Batch {result['batch_size']}, end to end: SavedModel vs HF torch eager "
                     f"{_ratio(b['speedup_end_to_end'])} (target >= {BATCH32_TARGET:.1f}x): "
                     f"**{'PASS' if b['passed'] else 'MISS'}**. Model only: {_ratio(b['speedup_model_only'])}.")
    else:
        lines.append("* Batch 32: not measured (needs `savedmodel` and `torch`).")
    if "torch" in result["accuracy"] and "savedmodel" in result["accuracy"]:
        a = result["accuracy"]["torch"]
        lines += ["", f"Same weights: the converted PyTorch model (`benchmarks/minilm_to_hf.py`, "
                  f"hidden_act={info.get('hidden_act', '?')}: transformers' tanh GELU, the function keras-hub's "
                  "BertBackbone computes, where the original checkpoint's config says exact `gelu`) gives logits "
                  f"within {a['max_abs_logit_diff']:.2e} (mean {a['mean_abs_logit_diff']:.2e}) of the SavedModel's "
                  f"on all {result['sentences']} sentences, each with its own tokenizer; predictions agree on "
                  f"{100 * a['agreement']:.2f}%."]
    if result.get("tokens"):
        tk = result["tokens"]
        lines.append(f"Token ids (HF fast tokenizer vs ours, padded to {result['seq_length']}): identical for "
                     f"{tk['identical']} of {tk['sentences']} sentences.")
    if onnx:
        fused = ", ".join(f"{k} {v}" for k, v in (onnx.get("fused_operators") or {}).items()) or "—"
        q = onnx.get("quantize_dynamic", {})
        lines += ["", f"ONNX: {onnx.get('exporter')}, opset {onnx.get('opset')}, exported with transformers' "
                  f"`{onnx.get('export_attention')}` attention; `quantize_dynamic` weight_type {q.get('weight_type')}, "
                  f"per_channel {q.get('per_channel')}, reduce_range {q.get('reduce_range')}; sessions "
                  f"{onnx.get('session', {}).get('graph_optimization_level')}, intra-op threads "
                  f"{onnx.get('session', {}).get('intra_op_num_threads')}, sequential. BERT optimizer fusions: "
                  f"{fused}. PyTorch: attention `{info.get('attn_implementation', '?')}`, "
                  f"OMP_WAIT_POLICY={result['torch_omp_wait_policy'] or 'default'}; tokenizer {info.get('tokenizer')}."]
    sizes = ", ".join(f"{k} {v} MB" for k, v in result["tflite_files"].items())
    onnx_sizes = ", ".join(f"{k} {v['file_mb']} MB" for k, v in onnx.items() if isinstance(v, dict) and "file_mb" in v)
    lines += ["", f"Files: {sizes or '—'}; {onnx_sizes or '—'}. TFLite: {m.get('tflite_runtime')}, builtin kernels "
              "+ XNNPACK (`make_interpreter`); a call = resize when the shape changes, set, invoke, get.",
              f"Wall time of the run: {result['seconds'].get('total', 0):.0f} s.", ""]
    return "\n".join(lines)


def plot(result: dict, path: str) -> None:
    """Bar charts: batch-1 p50 (end to end and model only), batch-32 sentences/s."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = result["systems"]
    summary = result["summary"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 0.5 * len(names) + 2.5))
    y = np.arange(len(names))
    colors = ["tab:blue" if n in OURS else "tab:orange" for n in names]
    e2e = [summary[n]["batch1"]["end_to_end_ms"]["p50"] for n in names]
    model = [(summary[n]["batch1"]["model_ms"] or {}).get("p50", 0.0) for n in names]
    left.barh(y - 0.2, e2e, 0.4, color=colors, label="end to end")
    left.barh(y + 0.2, model, 0.4, color=colors, alpha=0.45, label="model only")
    left.set_yticks(y, [f"{n} ({100 * result['accuracy'][n]['accuracy']:.1f}%)" for n in names])
    left.invert_yaxis()
    left.set_xlabel("batch 1 p50 latency, ms (lower is better)")
    left.legend(loc="lower right")
    rates = [summary[n]["batch32"]["end_to_end"]["median"] for n in names]
    right.barh(y, rates, 0.6, color=colors)
    right.set_yticks(y, names)
    right.invert_yaxis()
    right.set_xlabel(f"batch {result['batch_size']} sentences/s end to end (higher is better)")
    fig.suptitle(f"Fine-tuned MiniLM on SST-2 dev: ours (blue) vs PyTorch / ONNX Runtime (orange), "
                 f"{result['threads']} thread(s)")
    common.save_png(fig, path)
    plt.close(fig)


if __name__ == "__main__":
    main()

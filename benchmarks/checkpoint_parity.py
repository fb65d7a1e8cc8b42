"""Checkpoint parity: a pre-trained checkpoint loaded the llm-tf way vs HF transformers' ``BertModel``.

The named preset (default ``all_minilm_l6_v2``, sentence-transformers/all-MiniLM-L6-v2) is
loaded as training loads it (:func:`llm_tf.models.presets.open_preset`, keras-hub's own
transformers converter in :func:`~llm_tf.models.presets.backbone_weights`,
:func:`llm_tf.models.encoder.build_encoder` + :func:`~llm_tf.models.presets.assign_weights`);
the reference is ``transformers.BertModel.from_pretrained`` on the same directory in PyTorch
(``benchmarks/peer_workers/hf_encode.py`` in the peer virtualenv, float32, eval mode). Every
sentence of --data is tokenized once, by our in-graph ``TextTokenizer`` over the preset's
vocabulary, padded to the longest; both systems run on those same token ids, so only the
encoders are compared (tokenizer agreement is in ``benchmarks/tokenizer_throughput.py``).

Reported per pair of systems: the largest and mean absolute difference of ``sequence_output``
over real (non-padding) positions and of ``pooled_output``; the cosine similarity of the
mean-pooled sentence embeddings (what sentence-transformers computes for this model), lowest
and mean over sentences; and whether each sentence's nearest other sentence by cosine is the
same in both (plus the overlap of the --neighbours nearest). keras-hub's ``BertBackbone``
computes GELU with the tanh approximation where the checkpoint's config says exact (erf)
``gelu``, so a control runs our encoder again with exact GELU: ``ours_erf`` vs ``hf`` is what
remains without the approximation, ``ours`` vs ``ours_erf`` is the approximation alone.

Usage (from the repository root, in the project's virtualenv):
    python -m benchmarks.checkpoint_parity [--preset=all_minilm_l6_v2] [--data=../shared/data/sst2/dev.tsv] \
        [--output=benchmarks/results/checkpoint_parity.md]

Results: the markdown file --output and a JSON file of the same name beside it
(default benchmarks/results/checkpoint_parity.{md,json}). Exit code non-zero, with one line,
on a missing or unusable data file, an unknown or uninstalled preset, or a peer venv that
cannot be built.
"""

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from benchmarks import common  # noqa: E402

#: The systems compared, and the pairs reported (first vs second).
PAIRS = (("ours", "hf"), ("ours_erf", "hf"), ("ours", "ours_erf"))
LABELS = {"ours": "ours (keras-hub BertBackbone, tanh GELU)", "ours_erf": "ours with exact (erf) GELU",
          "hf": "HF transformers BertModel (PyTorch)"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="all_minilm_l6_v2",
                        help="Named preset or Hugging Face BERT directory (both systems read it).")
    parser.add_argument("--data", default="../shared/data/sst2/dev.tsv", help="TSV/CSV with a 'sentence' column.")
    parser.add_argument("--output", default=os.path.join(common.RESULTS, "checkpoint_parity.md"),
                        help="Markdown results file; the JSON goes beside it (same name, .json).")
    parser.add_argument("--batch_size", type=int, default=64, help="Sentences per forward pass (both systems).")
    parser.add_argument("--neighbours", type=int, default=10, help="k of the nearest-neighbour overlap.")
    parser.add_argument("--max_sentences", type=int, default=0, help="Only the first N sentences (0: all).")
    parser.add_argument("--threads", type=int, default=1,
                        help="Intra-op threads of TF and torch (0: their defaults).")
    parser.add_argument("--no_gelu_control", action="store_true", help="Skip the exact-GELU run of our encoder.")
    parser.add_argument("--peer_venv", default="", help="Peer virtualenv (default benchmarks/.peer_venv).")
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.neighbours < 1 or args.max_sentences < 0 or args.threads < 0:
        parser.error("--batch_size and --neighbours must be >= 1, --max_sentences and --threads >= 0")
    return args


def read_sentences(path: str, limit: int = 0) -> list[str]:
    """The ``sentence`` column of a TSV/CSV file (the first ``limit`` rows if > 0).

    Raises:
        SystemExit: One line, when the file is missing, unreadable, has no ``sentence`` column
            or no sentence.
    """
    from llm_tf.data import readers
    from llm_tf.data.rows import Row
    from llm_tf.errors import DataError

    if not os.path.isfile(path):
        sys.exit(f"checkpoint_parity: {path}: missing (--data must be a TSV/CSV file with a 'sentence' column)")
    try:
        source = readers.open_source(path)
        if "sentence" not in (source.columns or ()):
            sys.exit(f"checkpoint_parity: {path}: no 'sentence' column (columns: {', '.join(source.columns or ())})")
        sentences = [row.fields["sentence"] for row in source if isinstance(row, Row)]
    except DataError as e:
        sys.exit(f"checkpoint_parity: {e}")
    sentences = sentences[:limit] if limit else sentences
    if not sentences:
        sys.exit(f"checkpoint_parity: {path}: no sentences")
    return sentences


# --- Comparison (pure numpy) -------------------------------------------------------------------

def masked_abs_diff(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> dict:
    """Largest and mean |a - b| over the positions where ``mask`` is true, and b's mean |value| there.

    Args:
        a, b: [batch, length, hidden] (or any shape whose leading dims are ``mask``'s).
        mask: [batch, length] booleans (real tokens).
    """
    keep = np.asarray(mask, bool)
    diff = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))[keep]
    return {"max": float(diff.max()), "mean": float(diff.mean()),
            "reference_mean_abs": float(np.abs(np.asarray(b, np.float64)[keep]).mean())}


def mean_pool(sequence: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Sentence embeddings: the mean of ``sequence`` [batch, length, hidden] over real positions."""
    weights = np.asarray(mask, np.float64)[..., None]
    return (np.asarray(sequence, np.float64) * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1.0)


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``a`` with the same row of ``b`` ([n, d] each -> [n])."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def similarities(embeddings: np.ndarray) -> np.ndarray:
    """Cosine similarity of every pair of rows [n, n], with the diagonal (self) at -inf."""
    unit = np.asarray(embeddings, np.float64)
    unit = unit / np.linalg.norm(unit, axis=1, keepdims=True)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    return sims


def neighbour_agreement(a: np.ndarray, b: np.ndarray, k: int = 10) -> dict:
    """How far two embeddings of the same sentences agree on nearest neighbours by cosine.

    Args:
        a, b: [n, d] embeddings of the same n sentences by two systems (``b`` the reference).
        k: Size of the neighbourhoods whose overlap is measured (at most n - 1).

    Returns:
        ``same_nearest``: share of sentences whose nearest other sentence is the same in both;
        ``different_nearest``: how many differ; ``max_reference_margin``: for those, the largest
        gap in the reference's cosine between its own nearest and ``a``'s (0 when all agree: a
        small gap means a near tie that rounding can flip); ``top_k_overlap``: mean share of
        the k nearest that both have in common; ``k``.
    """
    sims_a, sims_b = similarities(a), similarities(b)
    n = len(sims_a)
    k = max(1, min(k, n - 1))
    nearest_a, nearest_b = sims_a.argmax(axis=1), sims_b.argmax(axis=1)
    differ = np.flatnonzero(nearest_a != nearest_b)
    margins = sims_b[differ, nearest_b[differ]] - sims_b[differ, nearest_a[differ]]
    top_a = np.argsort(-sims_a, axis=1, kind="stable")[:, :k]
    top_b = np.argsort(-sims_b, axis=1, kind="stable")[:, :k]
    overlap = np.mean([len(set(x) & set(y)) / k for x, y in zip(top_a, top_b)])
    return {"same_nearest": float(1 - len(differ) / n), "different_nearest": int(len(differ)),
            "max_reference_margin": float(margins.max()) if len(differ) else 0.0,
            "top_k_overlap": float(overlap), "k": k}


def compare(a: dict, b: dict, mask: np.ndarray, k: int = 10) -> dict:
    """Every figure of one pair: ``a`` and ``b`` hold ``sequence_output`` and ``pooled_output`` (``b`` the reference).

    Args:
        a, b: {"sequence_output": [n, length, hidden], "pooled_output": [n, hidden]}.
        mask: [n, length] booleans, the real tokens.
        k: See :func:`neighbour_agreement`.
    """
    sentences = len(mask)
    embeddings_a = mean_pool(a["sequence_output"], mask)
    embeddings_b = mean_pool(b["sequence_output"], mask)
    cosines = row_cosines(embeddings_a, embeddings_b)
    return {
        "sequence_output": masked_abs_diff(a["sequence_output"], b["sequence_output"], mask),
        "pooled_output": masked_abs_diff(a["pooled_output"], b["pooled_output"], np.ones(sentences, bool)),
        "embedding_cosine": {"min": float(cosines.min()), "mean": float(cosines.mean()),
                             "argmin": int(cosines.argmin())},
        "neighbours": neighbour_agreement(embeddings_a, embeddings_b, k),
    }


def gelu_share(pairs: dict) -> dict | None:
    """How much of ours-vs-HF's mean |diff| of ``sequence_output`` the exact-GELU control removes.

    Returns:
        ``ours_mean``, ``ours_erf_mean`` and ``share`` (1 - ours_erf / ours), or None without the control.
    """
    if "ours vs hf" not in pairs or "ours_erf vs hf" not in pairs:
        return None
    ours = pairs["ours vs hf"]["sequence_output"]["mean"]
    erf = pairs["ours_erf vs hf"]["sequence_output"]["mean"]
    return {"ours_mean": ours, "ours_erf_mean": erf, "share": 1 - erf / ours if ours else 0.0}


# --- Running the systems ----------------------------------------------------------------------

def use_exact_gelu(encoder) -> int:
    """Switches a keras-hub ``BertBackbone``'s feed-forward GELU to the exact (erf) form, in place.

    Returns:
        The number of transformer layers changed (0 when keras-hub's layers are not laid out as
        expected: the control is then skipped).
    """
    import keras

    def exact_gelu(x):
        return keras.activations.gelu(x, approximate=False)

    layers = getattr(encoder, "transformer_layers", [])
    denses = [getattr(layer, "_feedforward_intermediate_dense", None) for layer in layers]
    if not denses or any(dense is None or not hasattr(dense, "activation") for dense in denses):
        return 0
    for dense in denses:
        dense.activation = exact_gelu
    return len(denses)


def run_encoder(encoder, inputs: dict, batch_size: int) -> tuple[dict, float]:
    """Our encoder on ``inputs`` (int32 numpy, [n, length]) in batches, inference mode; (outputs, seconds).

    The encoder runs in a ``tf.function``, as training and serving run it (eagerly, keras-hub's
    tanh GELU alone costs about 4x its graph time on this CPU: 62 vs 7 ms a call at [64, 60, 1536]).
    The first batch runs once, untimed, before (tracing, one-time kernel set-up), as in the HF worker.
    """
    import tensorflow as tf

    signature = {name: tf.TensorSpec([None, None], tf.int32, name=name) for name in inputs}
    forward = tf.function(lambda batch: encoder(batch, training=False), input_signature=[signature])
    sequences, pooled = [], []
    n = len(inputs["token_ids"])
    forward({name: value[:batch_size] for name, value in inputs.items()})
    start = time.perf_counter()
    for i in range(0, n, batch_size):
        out = forward({name: value[i:i + batch_size] for name, value in inputs.items()})
        sequences.append(np.asarray(out["sequence_output"]))
        pooled.append(np.asarray(out["pooled_output"]))
    return {"sequence_output": np.concatenate(sequences), "pooled_output": np.concatenate(pooled)}, \
        time.perf_counter() - start


def run_hf(python: str, preset_dir: str, inputs: dict, batch_size: int, threads: int,
           work: str) -> tuple[dict, dict, dict]:
    """The HF worker on the same ids; (outputs, its ready reply, seconds: start and forward)."""
    from benchmarks import peers

    for name, value in inputs.items():
        np.save(os.path.join(work, f"{name}.npy"), value.astype(np.int32))
    save_to = {name: os.path.join(work, f"hf_{name}.npy") for name in ("sequence_output", "pooled_output")}
    argv = [python, peers.worker_script("hf_encode.py"), f"--model_dir={preset_dir}", f"--threads={threads}"]
    env = {"OMP_WAIT_POLICY": "PASSIVE", **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    start = time.perf_counter()
    with peers.Worker(argv, "hf", env=env, log_dir=work) as worker:
        ready_s = time.perf_counter() - start
        reply = worker.request({"op": "encode", "batch_size": batch_size, "save_to": save_to,
                                **{name: os.path.join(work, f"{name}.npy") for name in inputs}})
        info = worker.info
    outputs = {name: np.load(path) for name, path in save_to.items()}
    for path in [*save_to.values(), *(os.path.join(work, f"{name}.npy") for name in inputs)]:
        os.remove(path)  # tens of MB; the worker's log stays in ``work``
    return outputs, info, {"start_s": ready_s, "forward_s": reply["seconds"]}


def main(argv: list[str] | None = None) -> None:
    """Checks the inputs, runs the systems on the same ids, writes the results."""
    args = parse_args(argv)
    started = time.perf_counter()
    sentences = read_sentences(args.data, args.max_sentences)
    from llm_tf.errors import ConfigError, DataError
    from llm_tf.models import presets

    try:
        preset = presets.open_preset(args.preset, "--preset")
    except ConfigError as e:
        sys.exit(f"checkpoint_parity: {e}")
    from benchmarks import peers

    try:
        python = peers.ensure_venv(args.peer_venv or None)
    except ConfigError as e:
        sys.exit(f"checkpoint_parity: {e}")
    load_before = common.load_average()

    import tensorflow as tf

    if args.threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(args.threads)
            tf.config.threading.set_inter_op_parallelism_threads(args.threads)
        except RuntimeError:  # TensorFlow already initialised in this process (a test calling main)
            pass
    from llm_tf.export.tflite_eval import cpu_info
    from llm_tf.models.encoder import build_encoder
    from llm_tf.text.tokenizer import TextTokenizer
    from llm_tf.training.configs import ModelConfig

    seconds = {}
    start = time.perf_counter()
    max_length = preset.dimensions["max_sequence_length"]
    tokenizer = TextTokenizer(preset.vocab_file, lower_case=preset.lower_case, max_seq_length=max_length)
    packed = {name: value.numpy() for name, value in tokenizer(tf.constant(sentences)).items()}
    lengths = packed["padding_mask"].sum(axis=1)
    longest = int(lengths.max())
    inputs = {name: value[:, :longest].astype(np.int32) for name, value in packed.items()}
    mask = inputs["padding_mask"].astype(bool)
    seconds["tokenize"] = time.perf_counter() - start

    start = time.perf_counter()
    try:
        weights = presets.backbone_weights(preset)
    except DataError as e:
        sys.exit(f"checkpoint_parity: {e}")
    vocab_size = preset.backbone_config["vocabulary_size"]
    encoders = {"ours": build_encoder(ModelConfig(**preset.dimensions), vocab_size)}
    if not args.no_gelu_control:
        encoders["ours_erf"] = build_encoder(ModelConfig(**preset.dimensions), vocab_size)
    for encoder in encoders.values():
        presets.assign_weights(encoder, weights, preset.directory)
    gelu_layers = use_exact_gelu(encoders["ours_erf"]) if "ours_erf" in encoders else 0
    if not gelu_layers:
        encoders.pop("ours_erf", None)
    seconds["ours_load"] = time.perf_counter() - start

    outputs = {}
    for name, encoder in encoders.items():
        outputs[name], seconds[f"{name}_forward"] = run_encoder(encoder, inputs, args.batch_size)
        print(f"{name}: {seconds[f'{name}_forward']:.1f} s for {len(sentences)} sentences", file=sys.stderr)
    work = tempfile.mkdtemp(prefix="checkpoint_parity_")
    outputs["hf"], hf_info, hf_seconds = run_hf(python, preset.directory, inputs, args.batch_size, args.threads, work)
    seconds.update({"hf_start": hf_seconds["start_s"], "hf_forward": hf_seconds["forward_s"]})
    print(f"hf: {seconds['hf_forward']:.1f} s for {len(sentences)} sentences", file=sys.stderr)

    pairs = {f"{a} vs {b}": compare(outputs[a], outputs[b], mask, args.neighbours)
             for a, b in PAIRS if a in outputs and b in outputs}
    seconds["total"] = time.perf_counter() - started
    import keras_hub

    machine = common.machine_info()
    machine["load_average_before"] = load_before
    machine.update(cpu_info())
    machine["keras_hub"] = keras_hub.__version__
    machine["peers"] = peers.install_record(args.peer_venv or None).get("versions", {})
    command = "python -m benchmarks.checkpoint_parity " + " ".join(
        [f"--preset={args.preset}", f"--data={args.data}", f"--output={os.path.relpath(args.output)}"]
        + [flag for flag in (sys.argv[1:] if argv is None else argv)
           if not flag.startswith(("--preset=", "--data=", "--output="))])
    result = {"benchmark": "checkpoint_parity", "command": command, "machine": machine,
              "preset": {"name": args.preset, "directory": preset.directory, "format": preset.format,
                         **preset.dimensions, "vocabulary_size": vocab_size, "lower_case": preset.lower_case},
              "data": args.data, "sentences": len(sentences), "padded_length": longest,
              "mean_length": float(lengths.mean()), "truncated": int((lengths >= max_length).sum()),
              "batch_size": args.batch_size, "threads": args.threads, "hf_worker": hf_info,
              "gelu_control": {"layers_switched": gelu_layers, "skipped": not gelu_layers},
              "pairs": pairs, "gelu_share": gelu_share(pairs), "seconds": seconds}
    name = os.path.splitext(os.path.basename(args.output))[0]
    common.write_results(name, result, markdown(result), os.path.dirname(os.path.abspath(args.output)))


def markdown(result: dict) -> str:
    """The results as markdown: setup, one row per pair of systems, the GELU share, wall times."""
    m = result["machine"]
    p = result["preset"]
    hf = result["hf_worker"]
    s = result["seconds"]
    lines = [
        f"# Checkpoint parity: {p['name']} in llm-tf vs HF transformers BertModel (PyTorch)", "",
        f"`{result['command']}`", "",
        common.machine_line(m, f"; TF {m['tensorflow']}, keras-hub {m.get('keras_hub', '?')}"
                            + common.peer_version_text(m, "torch", "transformers")),
        f"CPU flags: {', '.join(m.get('cpu_features') or []) or '(none of the listed)'}.", "",
        f"Checkpoint: {p['directory']} ({p['format']} format; {p['num_layers']} layers, hidden {p['hidden_dim']}, "
        f"{p['num_heads']} heads, intermediate {p['intermediate_dim']}, vocabulary {p['vocabulary_size']}). "
        f"Data: {result['sentences']} sentences of {result['data']}, tokenized once by our in-graph tokenizer "
        f"(lower_case={p['lower_case']}), padded to the longest ({result['padded_length']} tokens; mean "
        f"{result['mean_length']:.1f}, {result['truncated']} truncated); every system runs on those same ids, in "
        f"batches of {result['batch_size']}, float32, inference mode (ours in a tf.function), "
        f"{result['threads'] or 'default'} intra-op thread(s). HF: `BertModel.from_pretrained`, "
        f"hidden_act={hf.get('hidden_act')}, attention {hf.get('attn_implementation') or '?'}.", "",
        "Sequence output over real (non-padding) positions; sentence embeddings = mean of the sequence output over "
        "real positions (sentence-transformers' pooling for this model), compared by cosine; nearest neighbour = the "
        "other sentence with the highest cosine.", "",
        "| systems (first vs reference) | sequence max abs diff | sequence mean abs diff | pooled max abs diff | "
        "pooled mean abs diff | embedding cosine min | embedding cosine mean | same nearest neighbour | "
        "top-k overlap |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    order = [f"{a} vs {b}" for a, b in PAIRS]  # the JSON file sorts its keys
    pairs = sorted(result["pairs"].items(), key=lambda item: order.index(item[0]) if item[0] in order else len(order))
    for pair, c in pairs:
        seq, pooled, cos, nn = c["sequence_output"], c["pooled_output"], c["embedding_cosine"], c["neighbours"]
        cosines = " | ".join(f"{cos[key]:.8f} (1 - {max(0.0, 1 - cos[key]):.1e})" for key in ("min", "mean"))
        lines.append(f"| {pair} | {seq['max']:.2e} | {seq['mean']:.2e} | {pooled['max']:.2e} | {pooled['mean']:.2e} | "
                     f"{cosines} | {100 * nn['same_nearest']:.2f}% ({nn['different_nearest']} differ) | "
                     f"{100 * nn['top_k_overlap']:.2f}% (k={nn['k']}) |")
    lines += ["", f"Scale: the reference's mean |sequence output| over real positions is "
              f"{pairs[0][1]['sequence_output']['reference_mean_abs']:.3f}."]
    for pair, c in pairs:
        if c["neighbours"]["different_nearest"]:
            lines.append(f"{pair}: where the nearest neighbours differ, the reference's cosine to its own nearest "
                         f"exceeds its cosine to the other's by at most {c['neighbours']['max_reference_margin']:.2e} "
                         "(near ties).")
    lines.append("")
    legend = "; ".join(f"{key} = {label}" for key, label in LABELS.items()
                       if key != "ours_erf" or not result["gelu_control"]["skipped"])
    lines.append(f"Systems: {legend}.")
    share = result.get("gelu_share")
    if share:
        lines += ["", f"GELU control: with exact GELU ({result['gelu_control']['layers_switched']} feed-forward layers "
                  f"switched) our mean |diff| to HF on the sequence output falls from {share['ours_mean']:.2e} to "
                  f"{share['ours_erf_mean']:.2e}: **{100 * share['share']:.1f}%** of the difference is keras-hub's "
                  "tanh approximation of GELU."]
    else:
        lines += ["", "GELU control skipped (keras-hub's layers not as expected, or --no_gelu_control)."]
    forwards = ", ".join(f"{name} {s[f'{name}_forward']:.1f} s" for name in ("ours", "ours_erf", "hf")
                         if f"{name}_forward" in s)
    encoders = "one encoder" if result["gelu_control"]["skipped"] else "two encoders"
    lines += ["", f"Wall times: tokenization {s['tokenize']:.1f} s; our load (keras-hub conversion + {encoders}) "
              f"{s['ours_load']:.1f} s; HF worker start (imports + from_pretrained) {s['hf_start']:.1f} s; forward "
              f"passes over all sentences (after one untimed batch): {forwards}; whole run {s['total']:.0f} s "
              "(a parity check, not a speed benchmark: one thread each, on a shared machine).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

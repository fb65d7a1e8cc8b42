"""Tokenizer throughput on SST-2 train: llm-tf's in-graph tokenizer vs keras-hub vs HF tokenizers.

Raw strings -> packed BERT inputs ([CLS] ... [SEP], truncated and padded to
--max_seq_length: token ids, segment ids, padding mask), in batches of --batch_size, over the
same vocabulary, for:

  * ``ours/in_graph``: ``TextTokenizer`` in a tf.function per batch; ``ours/tf_data``: the
    same as a tf.data map (batch, map with AUTOTUNE, prefetch), as training feeds it;
    ``ours/tflite``: the TFLite-converted tokenizer in the interpreter (first
    --tflite_sentences sentences);
  * ``keras_hub/in_graph``, ``keras_hub/tf_data``: keras-hub's ``BertTokenizer``
    (``WordPieceTokenizer``) + ``BertTextClassifierPreprocessor`` packer;
  * ``hf/encode_batch``: HF ``tokenizers`` ``BertWordPieceTokenizer.encode_batch`` with
    truncation and padding; ``hf/encode_batch_arrays``: the same plus the int32 arrays a model
    takes.

Each system runs in its own worker process (HF in the peer virtualenv, see
``benchmarks/peers.py``); rounds are interleaved and ratios are taken per round. The
agreement of token ids with ours on the first --agreement_sentences sentences is reported.

Usage (from the repository root, in the project's virtualenv):
    python -m benchmarks.tokenizer_throughput [--tokenizer_dir=runs/sst2_real/prepared/tokenizer] \
        [--rounds=5] [--systems=ours,keras_hub,hf]

Without a tokenizer directory (the default one missing) a WordPiece vocabulary of
--vocab_size is trained on the data first. Results: benchmarks/results/tokenizer_throughput.{json,md,png}.
"""

import json
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse  # noqa: E402

from benchmarks import common  # noqa: E402

#: (system, variant) pairs each system offers.
VARIANTS = {
    "ours": ["in_graph", "tf_data", "tflite"],
    "keras_hub": ["in_graph", "tf_data"],
    "hf": ["encode_batch", "encode_batch_arrays"],
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data/sst2/train.tsv", help="TSV with a 'sentence' column.")
    parser.add_argument("--tokenizer_dir", default="runs/sst2_real/prepared/tokenizer",
                        help="Tokenizer directory from llm_prepare (WordPiece); trained from --data when missing.")
    parser.add_argument("--vocab_size", type=int, default=8000, help="Vocabulary size when training one.")
    parser.add_argument("--batch_size", type=int, default=1024, help="Sentences per call.")
    parser.add_argument("--max_seq_length", type=int, default=128, help="Packed length.")
    parser.add_argument("--rounds", type=int, default=5, help="Timed, interleaved passes over the data per variant.")
    parser.add_argument("--tflite_sentences", type=int, default=8192,
                        help="Sentences for the TFLite variant (it is slower to feed).")
    parser.add_argument("--agreement_sentences", type=int, default=2000,
                        help="Sentences whose token ids are compared across systems.")
    parser.add_argument("--systems", type=lambda v: [s for s in v.split(",") if s], default=["ours", "keras_hub", "hf"],
                        help="Systems to measure, comma-separated (ours is always included).")
    parser.add_argument("--peer_venv", default="", help="Peer virtualenv (default benchmarks/.peer_venv).")
    parser.add_argument("--results_dir", default="", help="Where the results go (default benchmarks/results).")
    args = parser.parse_args(argv)
    unknown = [s for s in args.systems if s not in VARIANTS]
    if unknown:
        parser.error(f"--systems: unknown {', '.join(unknown)} (expected: {', '.join(VARIANTS)})")
    return args



def tokenizer_directory(path: str, data: str, vocab_size: int, max_seq_length: int) -> tuple[str, str]:
    """The tokenizer directory to use and where its vocabulary came from (trains one if ``path`` is missing)."""
    if path and os.path.isfile(os.path.join(path, "tokenizer_config.json")):
        return path, f"{path} (llm_prepare)"
    import tensorflow as tf

    from llm_tf.data import readers
    from llm_tf.data.rows import Row
    from llm_tf.text import tokenizer as tokenizer_lib
    from llm_tf.text import vocab as vocab_lib

    sentences = [row.fields["sentence"] for row in readers.open_source(data) if isinstance(row, Row)]
    directory = tempfile.mkdtemp(prefix="tokenizer-")
    words = vocab_lib.train_wordpiece(tf.data.Dataset.from_tensor_slices(sentences), vocab_size)
    vocab_lib.save_wordpiece(os.path.join(directory, "vocab.txt"), words)
    tokenizer_lib.TokenizerConfig(max_seq_length=max_seq_length).save(directory)
    return directory, f"trained on {data} (vocab_size {vocab_size})"


def agreement(reference: dict, other: dict) -> dict:
    """Share of sentences whose packed token ids (and lengths) equal the reference's."""
    same = sum(a == b for a, b in zip(reference["token_ids"], other["token_ids"]))
    same_len = sum(a == b for a, b in zip(reference["padding_mask"], other["padding_mask"]))
    n = len(reference["token_ids"])
    return {"sentences": n, "identical_token_ids": same / n, "identical_lengths": same_len / n}


def main() -> None:
    """Measures every system and variant, interleaved; writes the results."""
    args = parse_args()
    from benchmarks import peers
    from llm_tf.data import readers
    from llm_tf.data.rows import Row
    from llm_tf.errors import ConfigError

    systems = ["ours"] + [s for s in args.systems if s != "ours"]
    load_before = common.load_average()
    sentences = [row.fields["sentence"] for row in readers.open_source(args.data) if isinstance(row, Row)]
    directory, vocab_source = tokenizer_directory(args.tokenizer_dir, args.data, args.vocab_size, args.max_seq_length)
    work = tempfile.mkdtemp(prefix="tokenizer_bench_")
    sentences_file = os.path.join(work, "sentences.json")
    with open(sentences_file, "w", encoding="utf-8") as f:
        json.dump(sentences, f)
    common_flags = [f"--sentences={sentences_file}", f"--batch_size={args.batch_size}",
                    f"--max_seq_length={args.max_seq_length}"]
    tf_worker = peers.worker_script("tokenize_tf.py")
    argvs = {
        "ours": [peers.project_python(), tf_worker, "--system=ours", f"--tokenizer_dir={directory}",
                 f"--tflite_sentences={args.tflite_sentences}", *common_flags],
        "keras_hub": [peers.project_python(), tf_worker, "--system=keras_hub", f"--tokenizer_dir={directory}",
                      *common_flags],
    }
    peer_record = {}
    if "hf" in systems:
        try:
            python = peers.ensure_venv(args.peer_venv or None)
        except ConfigError as e:
            sys.exit(f"tokenizer_throughput: {e}")
        peer_record = peers.install_record(args.peer_venv or None)
        argvs["hf"] = [python, peers.worker_script("hf_tokenize.py"), f"--vocab={os.path.join(directory, 'vocab.txt')}",
                       *common_flags]
    workers = {s: peers.Worker(argvs[s], s, log_dir=work) for s in systems}
    try:
        ready = {s: w.start() for s, w in workers.items()}
        samples = {s: w.request({"op": "sample", "count": args.agreement_sentences}) for s, w in workers.items()}
        plan = [(f"{s}/{v}", workers[s], {"op": "round", "variant": v}) for s in systems for v in VARIANTS[s]]
        replies = peers.interleave(plan, args.rounds)
    finally:
        for worker in workers.values():
            worker.close()
    figures = {}
    for name, runs in replies.items():
        rates = [r["sentences"] / r["seconds"] for r in runs]
        figures[name] = {"sentences": runs[0]["sentences"], "sentences_per_s": common.spread(rates),
                         "seconds": common.spread([r["seconds"] for r in runs])}
    ours_rates = figures["ours/in_graph"]["sentences_per_s"]["runs"]
    ratios = {f"ours/in_graph vs {name}": common.ratio_summary(ours_rates, f["sentences_per_s"]["runs"])
              for name, f in figures.items() if not name.startswith("ours/")}
    ours_data = figures["ours/tf_data"]["sentences_per_s"]["runs"]
    ratios.update({f"ours/tf_data vs {name}": common.ratio_summary(ours_data, f["sentences_per_s"]["runs"])
                   for name, f in figures.items() if not name.startswith("ours/")})
    agreements = {s: agreement(samples["ours"], samples[s]) for s in systems if s != "ours"}
    command = ("python -m benchmarks.tokenizer_throughput " + " ".join(
        [f"--data={args.data}", f"--tokenizer_dir={args.tokenizer_dir}", f"--batch_size={args.batch_size}",
         f"--max_seq_length={args.max_seq_length}", f"--rounds={args.rounds}", f"--systems={','.join(systems)}"]))
    machine = common.machine_info()
    machine["load_average_before"] = load_before
    machine["peers"] = peer_record.get("versions", {})
    result = {"benchmark": "tokenizer_throughput", "command": command, "machine": machine, "vocabulary": vocab_source,
              "vocab_size": ready["ours"]["vocab_size"], "batch_size": args.batch_size,
              "max_seq_length": args.max_seq_length, "rounds": args.rounds, "workers": ready,
              "peer_install": peer_record, "figures": figures, "ratios": ratios, "agreement_with_ours": agreements}
    target = ratios.get("ours/in_graph vs hf/encode_batch")
    if target:
        result["target"] = {"what": "ours/in_graph >= 1x hf/encode_batch", "median_ratio": target["median"],
                            "met": target["median"] >= 1.0}
    results_dir = args.results_dir or common.RESULTS
    common.write_results("tokenizer_throughput", result, markdown(result), results_dir)
    plot(figures, os.path.join(results_dir, "tokenizer_throughput.png"))


def markdown(result: dict) -> str:
    """The results table and ratios as markdown."""
    m = result["machine"]
    lines = [
        "# Tokenizer throughput (SST-2 train)", "",
        f"`{result['command']}`", "",
        common.machine_line(m, f", TF {m['tensorflow']}, keras-hub {result['workers']['ours']['keras_hub']}"
                            + common.peer_version_text(m, "tokenizers")),
        f"Vocabulary {result['vocab_size']} ({result['vocabulary']}), batch {result['batch_size']}, packed to "
        f"{result['max_seq_length']}; {result['rounds']} interleaved rounds after one warm-up, each system in its own "
        "process.", "",
        "| system/variant | sentences | sentences/s (median) | min | max |", "|---|---|---|---|---|",
    ]
    for name, figure in result["figures"].items():
        rate = figure["sentences_per_s"]
        lines.append(f"| {name} | {figure['sentences']:,} | {rate['median']:,.0f} | {rate['min']:,.0f} | "
                     f"{rate['max']:,.0f} |")
    lines += ["", "| ratio (per round, same rounds) | median | min | max |", "|---|---|---|---|"]
    for name, r in result["ratios"].items():
        lines.append(f"| {name} | {r['median']:.2f}x | {r['min']:.2f}x | {r['max']:.2f}x |")
    if result["agreement_with_ours"]:
        lines += ["", "Token ids identical to ours (first sentences): " + ", ".join(
            f"{s} {100 * a['identical_token_ids']:.1f}% of {a['sentences']}"
            for s, a in result["agreement_with_ours"].items()) + "."]
    if "target" in result:
        t = result["target"]
        lines += ["", f"Target {t['what']}: **{t['median_ratio']:.2f}x** ({'met' if t['met'] else 'NOT met'})."]
    lines += ["", "![tokenizer throughput](tokenizer_throughput.png)", ""]
    return "\n".join(lines)


def plot(figures: dict, path: str) -> None:
    """Horizontal bars of median sentences/s with min-max whiskers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(figures)
    medians = [figures[n]["sentences_per_s"]["median"] for n in names]
    low = [m - figures[n]["sentences_per_s"]["min"] for n, m in zip(names, medians)]
    high = [figures[n]["sentences_per_s"]["max"] - m for n, m in zip(names, medians)]
    colors = ["tab:blue" if n.startswith("ours") else "tab:orange" if n.startswith("keras_hub") else "tab:green"
              for n in names]
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(names) + 1.5))
    ax.barh(names, medians, xerr=[low, high], color=colors)
    ax.invert_yaxis()
    ax.set_xlabel("sentences / s (median of interleaved rounds)")
    ax.set_title("Tokenize + pack SST-2 train (same vocabulary)")
    common.save_png(fig, path)


if __name__ == "__main__":
    main()

"""Batch-1 TFLite latency of quantized variants against float32, interleaved round by round.

``llm_quantize`` times each variant once, one after the other, so load that comes and goes on
a shared machine can land on one variant and not the next. This benchmark takes the
``.tflite`` files of one or more ``llm_quantize`` output directories and times them in turns:
in every round each (model, form, variant) runs ``--invokes`` invokes at batch 1, cycling
through the same eval sentences, and the speed-up of a variant is taken per round against
float32 of the same model and form (median over rounds). Only the interpreter's invoke is
timed (:class:`llm_tf.export.tflite_eval.InvokeTimer`), with the interpreter settings that
``llm_quantize`` and ``make_interpreter`` use (builtin kernels + XNNPACK, ``--num_threads``).

Usage (from the repository root, in the project's virtualenv):
    python -m benchmarks.tflite_latency --model=tiny=/tmp/tfl/tiny_q --model=mini=/tmp/tfl/mini_q \
        [--forms=tokens,text] [--variants=float32,dynamic_int8] [--rounds=5] [--invokes=100]

Token inputs come from the SavedModel named in each directory's ``report.json`` (its own
tokenizer). ``--gemm_shapes`` adds XNNPACK's matrix products alone: a chain of 8 ``[1, 64, K] x
[K, N]`` products (alternating ``K x N`` and ``N x K``, ReLU between), converted as float32 and as
dynamic int8, timed in turns (best of ``--gemm_invokes``): how much faster int8 GEMMs are on this
CPU, whatever the model. Results: benchmarks/results/tflite_latency.{json,md,png}.
"""

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse  # noqa: E402
import json  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks import common  # noqa: E402

BASELINE = "float32"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", required=True, metavar="NAME=DIR",
                        help="A name and an llm_quantize output directory (repeatable).")
    parser.add_argument("--forms", default="tokens,text", help="Input forms to time (tokens, text).")
    parser.add_argument("--variants", default="float32,dynamic_int8",
                        help="Variants to time; float32 must be among them (the baseline).")
    parser.add_argument("--eval_data", default="../shared/data/sst2/dev.tsv", help="TSV or text file of sentences.")
    parser.add_argument("--texts", type=int, default=64, help="Sentences to cycle through.")
    parser.add_argument("--rounds", type=int, default=5, help="Interleaved rounds.")
    parser.add_argument("--invokes", type=int, default=100, help="Timed invokes per variant per round.")
    parser.add_argument("--reference", default="", metavar="NAME",
                        help="A --model name: also report each variant's speed-up over that model's float32 in the "
                             "same form, per round (a student against its teacher).")
    parser.add_argument("--warmup", type=int, default=10, help="Untimed invokes per variant before the rounds.")
    parser.add_argument("--num_threads", type=int, default=1, help="Interpreter threads.")
    parser.add_argument("--gemm_shapes", default="128x512,256x1024,768x3072",
                        help="KxN matrix products to time alone (empty: none).")
    parser.add_argument("--gemm_invokes", type=int, default=200, help="Invokes per GEMM chain (best is kept).")
    parser.add_argument("--results_dir", default=common.RESULTS, help="Where to write tflite_latency.{json,md,png}.")
    args = parser.parse_args(argv)
    args.forms = [f for f in args.forms.split(",") if f]
    args.variants = [v for v in args.variants.split(",") if v]
    try:
        args.gemm_shapes = [tuple(int(x) for x in shape.split("x")) for shape in args.gemm_shapes.split(",") if shape]
    except ValueError:
        parser.error(f"--gemm_shapes must be KxN pairs such as 128x512, got {args.gemm_shapes!r}")
    if any(len(shape) != 2 or min(shape) < 1 for shape in args.gemm_shapes):
        parser.error(f"--gemm_shapes must be KxN pairs of positive sizes, got {args.gemm_shapes!r}")
    if BASELINE not in args.variants:
        parser.error(f"--variants must include {BASELINE} (the baseline of every speed-up)")
    if min(args.rounds, args.invokes, args.texts) < 1:
        parser.error("--rounds, --invokes and --texts must be >= 1")
    models = []
    for item in args.model:
        name, sep, directory = item.partition("=")
        if not sep or not name or not directory:
            parser.error(f"--model must be NAME=DIR, got {item!r}")
        models.append((name, directory))
    args.model = models
    return args


def model_files(directory: str, forms: list[str], variants: list[str]) -> dict[tuple[str, str], str]:
    """The ``<form>_<variant>.tflite`` files of an ``llm_quantize`` output directory.

    Raises:
        FileNotFoundError: A requested file is missing (named, with the files that are there).
    """
    files = {(form, variant): os.path.join(directory, f"{form}_{variant}.tflite")
             for form in forms for variant in variants}
    missing = [path for path in files.values() if not os.path.isfile(path)]
    if missing:
        present = sorted(f for f in os.listdir(directory) if f.endswith(".tflite")) if os.path.isdir(directory) else []
        raise FileNotFoundError(f"{', '.join(missing)} not found "
                                f"(the directory holds: {', '.join(present) or 'nothing'}); "
                                "run llm_quantize with those --forms/--variants first")
    return files


def saved_model_of(directory: str) -> str:
    """The SavedModel an ``llm_quantize`` output directory was made from (its ``report.json``).

    Raises:
        FileNotFoundError: No readable ``report.json`` naming one.
    """
    path = os.path.join(directory, "report.json")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)["saved_model"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise FileNotFoundError(
            f"{path}: no llm_quantize report naming its SavedModel ({type(e).__name__}: {e})") from None


def summarize(times_ms: dict[str, dict[str, list[list[float]]]], reference: str = "") -> dict:
    """Per model/form: each variant's p50s and its per-round speed-up over float32.

    Args:
        times_ms: ``{"<model>/<form>": {variant: [round 1 times, round 2 times, ...]}}``, in ms.
        reference: A model name: also give each variant's per-round speed-up over that
            model's float32 in the same form (e.g. a distilled student against its teacher).

    Returns:
        ``{"<model>/<form>": {variant: {"p50_ms", "best_round_p50_ms", "round_p50_ms",
        "speedup": common.spread of per-round float32 p50 / variant p50[, "speedup_vs_reference"]}}}``.
    """
    def round_p50s(rounds):
        return [float(np.percentile(r, 50)) for r in rounds]

    out = {}
    for key, variants in times_ms.items():
        base = round_p50s(variants[BASELINE])
        form = key.rsplit("/", 1)[1]
        ref_key = f"{reference}/{form}"
        ref = round_p50s(times_ms[ref_key][BASELINE]) if reference and ref_key in times_ms else None
        out[key] = {}
        for variant, rounds in variants.items():
            p50s = round_p50s(rounds)
            out[key][variant] = {
                "p50_ms": float(np.percentile(np.concatenate(rounds), 50)),
                "p99_ms": float(np.percentile(np.concatenate(rounds), 99)),
                "best_round_p50_ms": min(p50s), "round_p50_ms": p50s,
                "speedup": common.spread([b / v for b, v in zip(base, p50s)]),
            }
            if ref is not None:
                out[key][variant]["speedup_vs_reference"] = common.spread([b / v for b, v in zip(ref, p50s)])
    return out


def measure(args: argparse.Namespace) -> dict:
    """Loads every model, then times the variants in interleaved rounds."""
    from llm_tf.export import export_dir, representative, tflite_convert
    from llm_tf.export.tflite_eval import InvokeTimer, example_inputs
    from llm_tf.export.tflite_runtime import make_interpreter

    texts = representative.read_text_file(args.eval_data, args.texts).texts
    timers, inputs, sources = {}, {}, {}
    for name, directory in args.model:
        files = model_files(directory, args.forms, args.variants)
        saved_model = saved_model_of(directory)
        sources[name] = {"directory": os.path.abspath(directory), "saved_model": saved_model}
        tokens = export_dir.load_exported(saved_model).tokenize(texts) if "tokens" in args.forms else {}
        for form in args.forms:
            inputs[(name, form)] = [example_inputs(form, texts, tokens, i) for i in range(len(texts))]
        for (form, variant), path in files.items():
            timers[(name, form, variant)] = InvokeTimer(make_interpreter(model_path=path, num_threads=args.num_threads),
                                                        tflite_convert.classify_signature(form))
    for (name, form, _), timer in timers.items():
        for i in range(args.warmup):
            timer(**inputs[(name, form)][i % len(texts)])
    order = list(timers)
    times: dict[str, dict[str, list[list[float]]]] = {}
    for r in range(args.rounds):
        for name, form, variant in order[r % len(order):] + order[:r % len(order)]:  # a new first one each round
            feed = inputs[(name, form)]
            taken = [timer_ms(timers[(name, form, variant)], feed[i % len(feed)]) for i in range(args.invokes)]
            times.setdefault(f"{name}/{form}", {}).setdefault(variant, []).append(taken)
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    return {"sources": sources, "texts": len(texts), "times_ms": times}


def gemm_chain_model(k: int, n: int, quantize: bool, rows: int = 64, count: int = 8) -> bytes:
    """A ``.tflite`` chain of ``count`` ``[1, rows, k] x [k, n]`` / ``[n, k]`` products with ReLU.

    Args:
        k, n: The matrix sizes.
        quantize: Dynamic-range int8 (``Optimize.DEFAULT``) instead of float32.
        rows: Rows of the activations (a sequence length).
        count: Products in the chain.
    """
    import tensorflow as tf

    rng = np.random.default_rng(0)
    weights = [tf.constant(rng.normal(0, 0.05, (k, n) if i % 2 == 0 else (n, k)).astype("float32"))
               for i in range(count)]

    @tf.function(input_signature=[tf.TensorSpec([1, rows, k], tf.float32)])
    def chain(x):
        for w in weights:
            x = tf.nn.relu(tf.matmul(x, w))
        return x

    converter = tf.lite.TFLiteConverter.from_concrete_functions([chain.get_concrete_function()], chain)
    if quantize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter.convert()


def measure_gemms(shapes: list[tuple[int, int]], invokes: int, num_threads: int, rows: int = 64,
                  count: int = 8) -> list[dict]:
    """Best invoke time of each GEMM chain in float32 and dynamic int8, the two taking turns.

    Returns:
        One dict per shape: ``k``, ``n``, ``float32_ms``, ``dynamic_int8_ms``, their GFLOP/s and
        ``speedup`` (float32 / int8).
    """
    from llm_tf.export.tflite_runtime import make_interpreter

    out = []
    for k, n in shapes:
        interpreters = {}
        for name, quantize in (("float32", False), ("dynamic_int8", True)):
            interpreter = make_interpreter(model_content=gemm_chain_model(k, n, quantize, rows, count),
                                           num_threads=num_threads)
            interpreter.allocate_tensors()
            interpreter.set_tensor(interpreter.get_input_details()[0]["index"],
                                   np.random.default_rng(1).random((1, rows, k), dtype=np.float32))
            interpreter.invoke()
            interpreters[name] = interpreter
        best = {name: float("inf") for name in interpreters}
        for _ in range(invokes):
            for name, interpreter in interpreters.items():
                start = time.perf_counter()
                interpreter.invoke()
                best[name] = min(best[name], time.perf_counter() - start)
        flop = 2.0 * rows * k * n * count
        out.append({"k": k, "n": n, "float32_ms": best["float32"] * 1000,
                    "dynamic_int8_ms": best["dynamic_int8"] * 1000,
                    "float32_gflops": flop / best["float32"] / 1e9,
                    "dynamic_int8_gops": flop / best["dynamic_int8"] / 1e9,
                    "speedup": best["float32"] / best["dynamic_int8"]})
    return out


def timer_ms(timer, feed: dict) -> float:
    """One invoke's milliseconds."""
    return timer(**feed)[1] * 1000


def markdown(result: dict) -> str:
    """The results page."""
    m = result["machine"]
    lines = [
        "# TFLite batch-1 latency: quantized variants vs float32, interleaved", "",
        f"Command: `{result['command']}`  ",
        common.machine_line(m, f"; TF {m['tensorflow']}, LiteRT {m.get('tflite_runtime', '?')}")
        + f"\nInt8-relevant CPU features: {', '.join(m.get('cpu_features') or []) or 'none found'}.  ",
        f"Invoke only (inputs set beforehand), batch 1, {result['num_threads']} thread(s), XNNPACK (LiteRT's default "
        f"op resolver); {result['rounds']} rounds x {result['invokes']} invokes per variant over the same "
        f"{result['texts']} sentences, the variants taking turns within each round.", "",
        "| model / form | variant | p50 ms | p99 ms | best round p50 ms | "
        "speed-up vs float32 (median of rounds) | rounds |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for key, variants in result["summary"].items():
        for variant, s in variants.items():
            rounds = ", ".join(f"{x:.2f}" for x in s["speedup"]["runs"])
            lines.append(f"| {key} | {variant} | {s['p50_ms']:.3f} | {s['p99_ms']:.3f} | "
                         f"{s['best_round_p50_ms']:.3f} | **{s['speedup']['median']:.2f}x** | {rounds} |")
    reference = result.get("reference")
    if reference:
        lines += ["", f"Speed-up over `{reference}` float32 in the same form (per round: its p50 / the variant's p50, "
                  "median of rounds):", "", "| model / form | variant | speed-up vs reference float32 | rounds |",
                  "|---|---|---:|---|"]
        for key, variants in result["summary"].items():
            for variant, s in variants.items():
                if "speedup_vs_reference" in s:
                    vs = s["speedup_vs_reference"]
                    lines.append(f"| {key} | {variant} | **{vs['median']:.2f}x** | "
                                 f"{', '.join(f'{x:.2f}' for x in vs['runs'])} |")
    if result.get("gemms"):
        lines += ["", "XNNPACK matrix products alone (a chain of 8 `[1, 64, K] x [K, N]` products with ReLU, "
                  f"float32 vs dynamic int8, the two taking turns, best of {result['gemm_invokes']} invokes each):", "",
                  "| K x N | float32 ms (GFLOP/s) | dynamic int8 ms (GOP/s) | int8 speed-up |", "|---|---:|---:|---:|"]
        lines += [f"| {g['k']} x {g['n']} | {g['float32_ms']:.3f} ({g['float32_gflops']:.0f}) | "
                  f"{g['dynamic_int8_ms']:.3f} ({g['dynamic_int8_gops']:.0f}) | **{g['speedup']:.2f}x** |"
                  for g in result["gemms"]]
    lines += ["", "Models: " + "; ".join(f"{name}: `{src['directory']}` (from `{src['saved_model']}`)"
                                         for name, src in result["sources"].items()),
              "", "![chart](tflite_latency.png)", ""]
    return "\n".join(lines)


def chart(result: dict, path: str) -> None:
    """Bar chart of p50 latency per model/form and variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(result["summary"])
    variants = list(next(iter(result["summary"].values())))
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.8 / len(variants)
    for j, variant in enumerate(variants):
        ax.bar([i + j * width for i in range(len(keys))], [result["summary"][k][variant]["p50_ms"] for k in keys],
               width, label=variant)
    ax.set_xticks([i + width * (len(variants) - 1) / 2 for i in range(len(keys))], keys)
    ax.set_ylabel("p50 ms at batch 1")
    ax.legend()
    common.save_png(fig, path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark and writes the results."""
    args = parse_args(argv)
    if args.reference and args.reference not in dict(args.model):
        raise FileNotFoundError(f"--reference={args.reference}: not one of the --model names "
                                f"({', '.join(dict(args.model))})")
    from llm_tf.export.tflite_eval import machine as tflite_machine

    machine = common.machine_info()
    machine["load_average_before"] = machine.pop("load_average")
    started = time.perf_counter()
    measured = measure(args)
    gemms = measure_gemms(args.gemm_shapes, args.gemm_invokes, args.num_threads) if args.gemm_shapes else []
    machine.update({k: v for k, v in tflite_machine().items() if k in ("tflite_runtime", "cpu_features")})
    machine["load_average"] = common.load_average()
    result = {"command": "python -m benchmarks.tflite_latency " + " ".join(argv if argv is not None else sys.argv[1:]),
              "machine": machine, "rounds": args.rounds, "invokes": args.invokes, "num_threads": args.num_threads,
              "texts": measured["texts"], "sources": measured["sources"], "reference": args.reference,
              "summary": summarize(measured["times_ms"], args.reference),
              "gemms": gemms, "gemm_invokes": args.gemm_invokes,
              "wall_s": time.perf_counter() - started}
    common.write_results("tflite_latency", result, markdown(result), args.results_dir)
    chart(result, os.path.join(args.results_dir, "tflite_latency.png"))
    print("median speed-ups: " + ", ".join(f"{k} {v}: {s['speedup']['median']:.2f}x"
                                           for k, vs in result["summary"].items()
                                           for v, s in vs.items() if v != BASELINE), file=sys.stderr)
    return 0


if __name__ == "__main__":
    from llm_tf.errors import LlmTfError

    try:
        sys.exit(main())
    except (FileNotFoundError, LlmTfError) as error:
        print(f"tflite_latency: error: {error}", file=sys.stderr)
        sys.exit(1)

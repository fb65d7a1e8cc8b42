"""``llm_prepare`` on SST-2 train + dev: in-process vs Apache Beam's DirectRunner (and its multi-processing mode).

Each run is the installed ``llm_prepare`` console script in its own process (imports included,
as a user runs it), into a fresh output directory; rounds are interleaved and their order
alternates. Every run's output is checked against the first in-process run's: the same files
with the same bytes (``summary.json`` up to the run's details); a run that differs is reported
and makes the command exit 1.

Systems:
  * ``in_process``: ``llm_prepare`` (the default path);
  * ``direct``: ``--runner=DirectRunner`` (Beam's in-memory Python runner: one process);
  * ``direct_mp2``: ``--runner=DirectRunner --beam_pipeline_args=--direct_running_mode=multi_processing,
    --direct_num_workers=2`` (two worker processes).

Usage (from the repository root, in the project's virtualenv with the ``beam`` extra):
    python -m benchmarks.beam_prepare [--rounds=3] [--systems=in_process,direct,direct_mp2]

Results: benchmarks/results/beam_prepare.{json,md}.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse  # noqa: E402

from benchmarks import common  # noqa: E402

#: System -> the flags it adds to the common ``llm_prepare`` command.
SYSTEMS = {
    "in_process": [],
    "direct": ["--runner=DirectRunner"],
    "direct_mp2": ["--runner=DirectRunner",
                   "--beam_pipeline_args=--direct_running_mode=multi_processing,--direct_num_workers=2"],
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", default="../shared/data/sst2/train.tsv", help="SST-2 train.tsv.")
    parser.add_argument("--dev", default="../shared/data/sst2/dev.tsv", help="SST-2 dev.tsv.")
    parser.add_argument("--vocab_size", type=int, default=8000, help="WordPiece vocabulary to learn.")
    parser.add_argument("--rounds", type=int, default=3, help="Timed, interleaved runs per system.")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help=f"Comma-separated, of: {', '.join(SYSTEMS)}.")
    parser.add_argument("--results_dir", default=common.RESULTS)
    args = parser.parse_args(argv)
    unknown = [s for s in args.systems.split(",") if s not in SYSTEMS]
    if unknown:
        parser.error(f"unknown system(s) {', '.join(unknown)} (expected: {', '.join(SYSTEMS)})")
    for path in (args.train, args.dev):
        if not os.path.isfile(path):
            parser.error(f"{path}: missing (the real data lives in ../shared/data)")
    return args


def run_prepare(args: argparse.Namespace, system: str, output_dir: str) -> dict:
    """Runs ``llm_prepare`` for ``system`` into ``output_dir``; returns its wall time and reported seconds."""
    executable = shutil.which("llm_prepare") or os.path.join(os.path.dirname(sys.executable), "llm_prepare")
    command = [executable, f"--input={args.train}", f"--eval_input={args.dev}", "--text_field=sentence",
               "--label_field=label", f"--vocab_size={args.vocab_size}", f"--output_dir={output_dir}", "--json",
               *SYSTEMS[system]]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"beam_prepare: {system} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return {"wall_s": round(wall, 2), "prepare_s": json.loads(done.stdout)["seconds"]}


def differences(output_dir: str, reference_dir: str) -> list[str]:
    """Files that differ between two prepared directories (``summary.json`` up to the run's details)."""
    from llm_tf.data.beam_prepare import summary_without_run_details

    def files(top: str) -> dict[str, bytes]:
        found = {}
        for directory, _, names in os.walk(top):
            for name in names:
                path = os.path.join(directory, name)
                with open(path, "rb") as f:
                    found[os.path.relpath(path, top)] = f.read()
        return found

    ours, theirs = files(output_dir), files(reference_dir)
    differing = sorted(set(ours) ^ set(theirs))
    for name in sorted(set(ours) & set(theirs)):
        if name == "summary.json":
            same = (summary_without_run_details(json.loads(ours[name]))
                    == summary_without_run_details(json.loads(theirs[name])))
        else:
            same = ours[name] == theirs[name]
        if not same:
            differing.append(name)
    return differing


def main() -> None:
    """Runs the systems (interleaved), checks their outputs, writes the results."""
    args = parse_args()
    systems = args.systems.split(",")
    load_before = common.load_average()
    work = tempfile.mkdtemp(prefix="beam_prepare_")
    reference = os.path.join(work, "reference")
    runs: dict[str, list] = {s: [] for s in systems}
    identical = True
    try:
        run_prepare(args, "in_process", reference)  # the output every run is compared with (untimed)
        for r in range(args.rounds):
            for system in (systems if r % 2 == 0 else list(reversed(systems))):
                out = os.path.join(work, f"{system}-{r}")
                result = run_prepare(args, system, out)
                result["differs"] = differences(out, reference)
                identical = identical and not result["differs"]
                shutil.rmtree(out, ignore_errors=True)
                runs[system].append(result)
                print(f"round {r + 1} {system}: {result['wall_s']:.1f} s (prepare {result['prepare_s']:.1f} s)"
                      + (f"; DIFFERS: {', '.join(result['differs'])}" if result["differs"] else "; identical"),
                      file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    from llm_tf.bin.startup import usable_cores

    machine = dict(common.machine_info(), load_average_before=load_before, usable_cores=usable_cores())
    try:
        import apache_beam

        machine["apache_beam"] = apache_beam.__version__
    except ImportError:
        machine["apache_beam"] = ""
    summary = {s: {"wall_s": common.spread([x["wall_s"] for x in v]),
                   "prepare_s": common.spread([x["prepare_s"] for x in v]), "runs": v} for s, v in runs.items()}
    report = {"benchmark": "beam_prepare", "command": "python -m benchmarks.beam_prepare " + " ".join(sys.argv[1:]),
              "machine": machine, "train": args.train, "dev": args.dev, "vocab_size": args.vocab_size,
              "rounds": args.rounds, "systems": summary, "identical_outputs": identical}
    if "in_process" in runs:
        report["slowdown_vs_in_process"] = {
            s: common.ratio_summary([x["wall_s"] for x in runs[s]], [x["wall_s"] for x in runs["in_process"]])
            for s in systems if s != "in_process"}
    common.write_results("beam_prepare", report, markdown(report), args.results_dir)
    if not identical:
        sys.exit("beam_prepare: an output differs from the in-process output (see above)")


def markdown(report: dict) -> str:
    """The results table."""
    m = report["machine"]
    lines = [
        "# `llm_prepare` on SST-2 train + dev: in-process vs Apache Beam DirectRunner", "",
        f"`{report['command']}`", "",
        common.machine_line(m, f" ({m['usable_cores']} usable); TF {m['tensorflow']}, "
                               f"apache-beam {m['apache_beam'] or 'absent'}"),
        f"{report['train']} + {report['dev']}, WordPiece vocabulary of {report['vocab_size']}; "
        f"{report['rounds']} interleaved round(s) per system; each run is the `llm_prepare` console script in its "
        "own process (wall: the whole process; prepare: the `seconds` it reports, from the start of the "
        "preparation to its end).", "",
        "| system | wall s (median) | min | max | prepare s (median) | x in-process (wall, median) |",
        "|---|---|---|---|---|---|",
    ]
    for system, s in report["systems"].items():
        ratio = report.get("slowdown_vs_in_process", {}).get(system)
        times = s["wall_s"]
        lines.append(f"| {system} | {times['median']:.1f} | {times['min']:.1f} | {times['max']:.1f} "
                     f"| {s['prepare_s']['median']:.1f} | {ratio['median'] if ratio else 1:.2f} |")
    lines += ["", "Outputs: " + ("every run wrote the same files with the same bytes as the in-process run "
                                 "(`summary.json` up to time, output path and runner)." if report["identical_outputs"]
                                 else "**some run differed from the in-process output** (see the JSON)."), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

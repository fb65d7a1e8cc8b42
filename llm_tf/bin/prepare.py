"""llm_prepare: raw files (or a TFDS data set) to TFRecords, vocabulary, statistics and schema.

Reads TSV, CSV, JSONL, plain text or CoNLL files (or --tfds) row by row; a bad row stops the
run (--bad_rows=fail) or goes to rejected.jsonl (skip). Splits off the eval set by content
hash unless --eval_input is given, trains a WordPiece/SentencePiece vocabulary (or takes
--vocab_file / a --preset's), and writes the TFRecord shards, tokenizer, labels.txt,
statistics.json and schema.json to --output_dir, which appears only when everything
succeeded. With --validate_against=<schema.json>, anomalies exit 1. With --runner (DirectRunner,
DataflowRunner, ...) the same work runs as an Apache Beam pipeline and writes the same directory.

Example:
    llm_prepare --input=train.tsv --eval_input=dev.tsv --text_field=sentence \\
        --label_field=label --output_dir=prepared/sst2 --vocab_size=8000
    llm_prepare --input=train.tsv --eval_input=dev.tsv --text_field=sentence \\
        --label_field=label --output_dir=prepared/sst2_beam --runner=DirectRunner
"""

import dataclasses
import json
import sys

from absl import flags

from llm_tf.bin.common import run_main

FLAGS = flags.FLAGS

flags.DEFINE_multi_string("input", [], "Training input file(s); repeatable, globs allowed.")
flags.DEFINE_multi_string("eval_input", [], "Eval input file(s). Without them, --eval_percent of --input is split off.")
flags.DEFINE_string("tfds", "",
                    "A TensorFlow Datasets name instead of files (glue/sst2, imdb_reviews, conll2003, ...).")
flags.DEFINE_string("tfds_train_split", "", "TFDS training split (default: the data set's preset, else 'train').")
flags.DEFINE_string("tfds_eval_split", "", "TFDS eval split (default: the data set's preset).")
flags.DEFINE_string("tfds_data_dir", None, "TFDS data directory.")
flags.DEFINE_enum("format", "auto", ["auto", "tsv", "csv", "jsonl", "text", "conll"],
                  "Input format (auto: by extension).")
flags.DEFINE_enum("text_mode", "line", ["line", "document"],
                  "Plain text: one example a line, or blank-line separated documents.")
flags.DEFINE_list("column_names", [], "Column names for TSV/CSV without a header, or for CoNLL columns.")
flags.DEFINE_enum("task", "classification", ["classification", "token_classification", "text"],
                  "What the examples are for.")
flags.DEFINE_string("text_field", "text", "Field holding the text; a comma list gives alternatives (each file uses the "
                    "first it has). With --task=text, CoNLL files contribute their sentences.")
flags.DEFINE_string("text_pair_field", "", "Field holding the second text of a pair (sentence-pair tasks).")
flags.DEFINE_string("label_field", "label", "Field holding the class label.")
flags.DEFINE_string("tokens_field", "tokens", "Token classification: field holding the words.")
flags.DEFINE_string("tags_field", "tags", "Token classification: field holding the tags.")
flags.DEFINE_string("labels", "",
                    "Label vocabulary: comma list or a file (one a line). Default: inferred from the data.")
flags.DEFINE_integer("min_text_chars", 1, "Rows whose text is shorter than this are bad rows.")
flags.DEFINE_integer("max_text_chars", 0, "Rows whose text is longer than this are bad rows (0: no limit).")
flags.DEFINE_float("eval_percent", 10.0, "Percent of --input put in the eval split by content hash (no --eval_input).")
flags.DEFINE_string("split_salt", "llm_tf", "Salt of the hash split (changes the assignment, deterministically).")
flags.DEFINE_string("vocab_file", "",
                    "Use this vocabulary (vocab.txt or a SentencePiece .model) instead of training one.")
flags.DEFINE_string("preset", "", "A pre-trained BERT checkpoint: a Hugging Face directory (vocab.txt, "
                    "tokenizer_config.json), a keras-hub preset directory or a named preset (all_minilm_l6_v2); "
                    "tokenize with its vocabulary and lower-casing, to fine-tune it with task.init_preset.")
flags.DEFINE_integer("vocab_size", 8000, "Size of the vocabulary to train.")
flags.DEFINE_integer("vocab_cut", 0, "With --preset: keep only this many of the checkpoint's tokens, those the train "
                     "split uses most (plus special tokens and single characters), for a smaller embedding table "
                     "(a distillation student initialised from the checkpoint). 0: the whole vocabulary.")
flags.DEFINE_enum("tokenizer", "wordpiece", ["wordpiece", "sentencepiece"], "Vocabulary kind to train.")
flags.DEFINE_bool("lower_case", True, "Lower-case (and strip accents) before tokenizing.")
flags.DEFINE_integer("max_seq_length", 128, "Packed sequence length (with [CLS]/[SEP]) for training and statistics.")
flags.DEFINE_enum("bad_rows", "fail", ["fail", "skip"],
                  "fail: stop at the first bad row; skip: write it to rejected.jsonl.")
flags.DEFINE_integer("num_shards", 0, "TFRecord shards per split (0: one per 50,000 examples).")
flags.DEFINE_string("validate_against", "", "Validate every split against this schema.json; anomalies exit non-zero.")
flags.DEFINE_float("label_drift_threshold", 0.1, "Validation: max L-infinity distance between label distributions.")
flags.DEFINE_float("length_drift_threshold", 0.5, "Validation: max relative change of the median length.")
flags.DEFINE_string("runner", "", "Empty: prepare in this process. A Beam runner (DirectRunner, DataflowRunner, "
                    "FlinkRunner, SparkRunner, PortableRunner, PrismRunner): run reading, validation, the split, "
                    "TFRecord writing, statistics and the vocabulary's word counts as an Apache Beam pipeline, with "
                    "the same output (needs the beam extra: pip install 'llm-tf[beam]').")
flags.DEFINE_list("beam_pipeline_args", [], "With --runner: Beam pipeline options, comma-separated (Dataflow: "
                  "--project=P,--region=R,--temp_location=gs://B/tmp; DirectRunner: --direct_num_workers=2,"
                  "--direct_running_mode=multi_processing).")
flags.DEFINE_string("output_dir", None, "Directory to write (created atomically).")
flags.DEFINE_bool("overwrite", False, "Replace an existing --output_dir.")
flags.DEFINE_enum("progress", "auto", ["auto", "on", "off"], "Progress bar (auto: only on a terminal).")
flags.DEFINE_bool("json", False, "Print the summary as JSON instead of text.")
flags.mark_flag_as_required("output_dir")

#: --help's groups.
FLAG_GROUPS = {
    "input (files or --tfds)": ["input", "eval_input", "format", "text_mode", "column_names", "tfds",
                                "tfds_train_split", "tfds_eval_split", "tfds_data_dir"],
    "fields and labels": ["task", "text_field", "text_pair_field", "label_field", "tokens_field", "tags_field",
                          "labels"],
    "rows and splits": ["min_text_chars", "max_text_chars", "bad_rows", "eval_percent", "split_salt"],
    "vocabulary and tokenization": ["vocab_size", "tokenizer", "vocab_file", "preset", "vocab_cut", "lower_case",
                                    "max_seq_length"],
    "validation": ["validate_against", "label_drift_threshold", "length_drift_threshold"],
    "output (required: --output_dir)": ["output_dir", "overwrite", "num_shards", "progress", "json"],
    "Apache Beam (optional)": ["runner", "beam_pipeline_args"],
}


def config_from_flags():
    """Builds a :class:`PrepareConfig` from the parsed flags."""
    from llm_tf.data import labels as labels_lib
    from llm_tf.data.prepare import PrepareConfig

    values = {}
    for field in dataclasses.fields(PrepareConfig):
        if field.name in ("inputs", "eval_inputs", "labels", "progress"):
            continue
        values[field.name] = getattr(FLAGS, field.name)
    if FLAGS.preset:
        from llm_tf.models.presets import tokenizer_settings

        values.update(tokenizer_settings(FLAGS.preset, FLAGS.vocab_file, FLAGS.lower_case, FLAGS["lower_case"].present,
                                         FLAGS.tokenizer))
    labels = labels_lib.parse_labels(FLAGS.labels)
    return PrepareConfig(
        inputs=list(FLAGS.input),
        eval_inputs=list(FLAGS.eval_input),
        labels=list(labels) if labels else None,
        progress={"auto": None, "on": True, "off": False}[FLAGS.progress],
        **values,
    )


def format_summary(result) -> str:
    """Returns the short human summary printed on stdout."""
    lines = [f"wrote {result.output_dir} in {result.seconds:.1f}s"]
    for split, count in result.counts.items():
        stats = result.statistics[split]
        tokens = stats.get("tokens", {})
        lines.append(
            f"  {split}: {count:,} examples; tokens/example p50 {tokens.get('p50', 0):g}, "
            f"p95 {tokens.get('p95', 0):g}, "
            f"max {tokens.get('max', 0)}; truncated {stats.get('truncated_fraction', 0):.2%}; "
            f"OOV {stats.get('oov_rate', 0):.2%}; duplicates {stats.get('duplicates', 0):,}"
        )
    rejected = result.statistics["rejected"]
    if rejected["count"]:
        reasons = ", ".join(f"{reason}: {n:,}" for reason, n in rejected["by_reason"].items())
        lines.append(f"  rejected: {rejected['count']:,} rows ({reasons}) -> {result.output_dir}/rejected.jsonl")
    else:
        lines.append("  rejected: 0 rows")
    if result.labels:
        shown = ", ".join(result.labels[:12]) + (" ..." if len(result.labels) > 12 else "")
        lines.append(f"  labels ({len(result.labels)}): {shown}")
    lines.append(f"  vocabulary: {result.vocab_size:,} tokens")
    for anomaly in result.anomalies:
        lines.append(f"  ANOMALY [{anomaly['split']}] {anomaly['kind']}: {anomaly['description']}")
    return "\n".join(lines)


def main(argv) -> int:
    """Prepares the data set described by the flags; exit 1 when validation finds anomalies."""
    from llm_tf.bin import startup
    from llm_tf.data.prepare import prepare
    from llm_tf.io_utils import check_path

    for flag in ("input", "eval_input", "tfds_data_dir", "vocab_file", "preset", "validate_against", "output_dir"):
        value = getattr(FLAGS, flag)
        for path in value if isinstance(value, list) else [value]:
            check_path(path or "", f"--{flag}")
    startup.log_start()
    result = prepare(config_from_flags())
    if FLAGS.json:
        summary = dataclasses.asdict(result)
        print(json.dumps(summary, indent=2, sort_keys=True))
    else:
        print(format_summary(result))
    if result.anomalies:
        print(
            f"llm_prepare: error: {len(result.anomalies)} anomalies against {FLAGS.validate_against} "
            f"(report: {result.output_dir}/anomalies.json)",
            file=sys.stderr,
        )
        return 1
    return 0


def run() -> None:
    """Console-script entry point."""
    run_main(main, flag_groups=FLAG_GROUPS)


if __name__ == "__main__":
    run()

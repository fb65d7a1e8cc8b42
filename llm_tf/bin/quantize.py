"""llm_quantize: an exported SavedModel to TFLite variants, evaluated and gated on accuracy.

Example:
    llm_quantize --saved_model_dir=/models/sst2/1 --output_dir=tflite/sst2 \\
        --eval_data=../shared/data/sst2/dev.tsv
    # -> tflite/sst2/{text,tokens}_{float32,float16,dynamic_int8,full_int8}.tflite
    #    + report.json, report.md, report.png

Exit codes: 0 every gated variant passed; 1 error (one line); 3 the accuracy gate failed
(a gated variant lost more than --max_accuracy_drop points of accuracy; files and report
are written anyway).
"""

import json
import shlex
import sys

from absl import flags

from llm_tf.bin.common import run_main

FLAGS = flags.FLAGS
#: Exit code when a gated variant fails the accuracy gate.
GATE_FAILED_EXIT = 3

flags.DEFINE_string("saved_model_dir", None, "An llm_export version directory (<model_base_path>/<version>).")
flags.DEFINE_string("output_dir", None, "Where the .tflite variants and report.{json,md,png} go.")
flags.DEFINE_list("forms", ["text", "tokens"],
                  "Input forms: text (raw strings, tokenizer inside as tensorflow-text custom ops), "
                  "tokens (token ids, for runtimes without those ops).")
flags.DEFINE_list("variants", ["float32", "float16", "dynamic_int8", "full_int8"],
                  "Precisions: float32, float16, dynamic_int8 (int8 weights), full_int8 (int8 weights and "
                  "activations, calibrated on the representative dataset).")
flags.DEFINE_integer("representative_count", 200, "Calibration texts for full_int8.")
flags.DEFINE_string("representative_data", None,
                    "TSV (with a header; sentence/text column) or text file (one text a line) of calibration texts "
                    "(default: the train split of the prepared data named in llm_tf_export.json).")
flags.DEFINE_list("int8_float_ops", [],
                  "full_int8 only: TFLite op types to keep in float32 (selective quantization), e.g. SOFTMAX, or the "
                  "preset 'attention' (BATCH_MATMUL,SOFTMAX,SELECT_V2,TRANSPOSE,RESHAPE,BROADCAST_TO: the "
                  "attention path, which int8 ruins on BERT encoders); default: none (everything int8).")
flags.DEFINE_integer("batch_size", 0,
                     "0: the variants take any batch size. 1: their inputs are fixed at one example, what an app "
                     "classifying one text at a time runs; the shape arithmetic then folds into constants and "
                     "batch-1 invokes are faster.")
flags.DEFINE_bool("dynamic_length", False,
                  "Variants that run at any length up to seq_length, so a short text costs only its own tokens: the "
                  "tokens form's inputs are [batch, -1] (the app resizes them to the text's length before each call), "
                  "the text form cuts each batch to its longest text. Default: fixed at seq_length.")
flags.DEFINE_string("eval_data", None,
                    "Labelled TSV to evaluate on, e.g. SST-2 dev.tsv (default: the prepared data's eval split).")
flags.DEFINE_integer("eval_count", 0, "Evaluate on at most this many texts (0: all).")
flags.DEFINE_integer("latency_runs", 200, "Timed interpreter invokes at batch 1 per variant (p50/p99).")
flags.DEFINE_integer("num_threads", 1, "Interpreter threads for evaluation and latency (0: the runtime's default).")
flags.DEFINE_float("max_accuracy_drop", 1.0,
                   "Accuracy gate: a gated variant whose accuracy is more than this many percentage points below "
                   f"the SavedModel's fails, and llm_quantize exits {GATE_FAILED_EXIT}.")
flags.DEFINE_list("gate_variants", [],
                  "What the gate counts: variant names (tokens_full_int8), precisions (full_int8: both forms) "
                  "or forms (text); default: all.")
flags.DEFINE_string("prepared_dir", None,
                    "Prepared data directory (tokenizer settings, train/eval splits) if it moved.")
flags.DEFINE_bool("overwrite", False, "Replace an existing --output_dir.")
flags.mark_flags_as_required(["saved_model_dir", "output_dir"])

#: --help's groups.
FLAG_GROUPS = {
    "input (required: --saved_model_dir)": ["saved_model_dir", "prepared_dir"],
    "conversion": ["forms", "variants", "batch_size", "dynamic_length", "representative_data", "representative_count",
                   "int8_float_ops"],
    "evaluation and accuracy gate": ["eval_data", "eval_count", "max_accuracy_drop", "gate_variants", "latency_runs",
                                     "num_threads"],
    "output (required: --output_dir)": ["output_dir", "overwrite"],
}


def main(argv) -> int:
    """Converts, evaluates, writes the report, prints a JSON summary line; exit 3 when the gate fails."""
    from llm_tf import io_utils
    from llm_tf.bin import startup
    from llm_tf.export.tflite_quantize import QuantizeConfig, quantize

    for name in ("saved_model_dir", "output_dir", "representative_data", "eval_data", "prepared_dir"):
        io_utils.check_path(getattr(FLAGS, name) or "", f"--{name}")
    startup.log_start()
    config = QuantizeConfig(
        saved_model_dir=FLAGS.saved_model_dir, output_dir=FLAGS.output_dir, forms=FLAGS.forms,
        variants=FLAGS.variants, representative_count=FLAGS.representative_count,
        representative_data=FLAGS.representative_data, int8_float_ops=FLAGS.int8_float_ops,
        batch_size=FLAGS.batch_size, dynamic_length=FLAGS.dynamic_length,
        eval_data=FLAGS.eval_data, eval_count=FLAGS.eval_count,
        latency_runs=FLAGS.latency_runs, num_threads=FLAGS.num_threads or None,
        max_accuracy_drop=FLAGS.max_accuracy_drop, gate_variants=FLAGS.gate_variants,
        prepared_dir=FLAGS.prepared_dir, overwrite=FLAGS.overwrite,
        command=" ".join(shlex.quote(a) for a in ["llm_quantize"] + sys.argv[1:]))
    result = quantize(config)
    summary = {
        "output_dir": result.output_dir,
        "reference_accuracy": result.report["reference"]["accuracy"],
        "variants": {v["name"]: {"accuracy": v["accuracy"], "agreement": v["agreement"], "size_bytes": v["size_bytes"],
                                 "gzip_bytes": v["gzip_bytes"], "size_vs_float32": v["size_vs_float32"],
                                 "latency_ms_p50": v["latency_ms_p50"], "passed": v["passed"]}
                     for v in result.report["variants"]},
        "gate_passed": not result.failed,
    }
    print(json.dumps(summary, sort_keys=True))
    sys.stdout.flush()
    if result.failed:
        print(f"llm_quantize: accuracy gate failed: {', '.join(result.failed)} lost more than "
              f"{config.max_accuracy_drop} points (see {result.output_dir}/report.md)", file=sys.stderr)
        return GATE_FAILED_EXIT
    return 0


def run() -> None:
    """Console-script entry point."""
    run_main(main, flag_groups=FLAG_GROUPS)


if __name__ == "__main__":
    run()

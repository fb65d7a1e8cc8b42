"""llm_export: a training run's checkpoint to a new TF Serving version (raw-text SavedModel).

Example:
    llm_export --model_dir=runs/sst2_tiny --model_base_path=/models/sst2
    # -> /models/sst2/<next version>/ with serving_default, predict_tokens, classify; the JSON line
    #    it prints (and assets.extra/llm_tf_export.json) gives "weights": the variables' size,
    #    gzip size and share of zeros (how much a pruned model gains when compressed)
"""

import json
import sys

from absl import flags

from llm_tf.bin.common import run_main

FLAGS = flags.FLAGS

flags.DEFINE_string("model_dir", None, "Training directory of llm_train (params.yaml + checkpoints).")
flags.DEFINE_string("model_base_path", None, "Serving model base path; the export goes to <model_base_path>/<version>/.")
flags.DEFINE_integer("version", None, "Version number (default: one more than the highest existing version).")
flags.DEFINE_string("checkpoint", "best", "best (by eval metric; latest when never evaluated), latest, or a checkpoint prefix.")
flags.DEFINE_string("model_name", "", "Model name in the warm-up requests (default: the base path's last component).")
flags.DEFINE_integer("warmup_requests", 8, "Eval texts in assets.extra/tf_serving_warmup_requests (0: no warm-up file).")
flags.DEFINE_string("prepared_dir", None, "Prepared data directory (tokenizer, labels) if it moved since training.")
flags.mark_flags_as_required(["model_dir", "model_base_path"])


def main(argv) -> int:
    """Exports and prints the result as one JSON line."""
    from llm_tf.export.exporter import export_saved_model

    if FLAGS.warmup_requests < 0:
        from llm_tf.errors import ConfigError

        raise ConfigError(f"--warmup_requests must be >= 0, got {FLAGS.warmup_requests}")
    result = export_saved_model(FLAGS.model_dir, FLAGS.model_base_path, FLAGS.version, FLAGS.checkpoint,
                                FLAGS.model_name, FLAGS.warmup_requests, FLAGS.prepared_dir)
    print(json.dumps({"path": result.path, "version": result.version, "signatures": result.signatures,
                      "checkpoint": result.checkpoint, "step": result.step, "weights": result.weights}, sort_keys=True))
    sys.stdout.flush()
    return 0


def run() -> None:
    """Console-script entry point."""
    run_main(main)


if __name__ == "__main__":
    run()

"""llm_export: a training run's checkpoint to a new TF Serving version (raw-text SavedModel).

Restores the best (or --checkpoint) checkpoint of an llm_train --model_dir and writes a
SavedModel that takes raw strings (the tokenizer is inside), with warm-up requests, as the
next integer version under --model_base_path; and/or saves the encoder as a keras-hub preset.
Prints one JSON line describing what it wrote.

Example:
    llm_export --model_dir=runs/sst2_tiny --model_base_path=/models/sst2
    # -> /models/sst2/<next version>/ with serving_default, predict_tokens, classify; the JSON line
    #    it prints (and assets.extra/llm_tf_export.json) gives "weights": the variables' size,
    #    gzip size and share of zeros (how much a pruned model gains when compressed)
    llm_export --model_dir=runs/sst2_tiny --keras_hub_preset=presets/sst2_bert
    # -> a keras-hub preset (BertBackbone + BertTokenizer, no task head); the JSON line's
    #    "keras_hub_preset" gives its path (with --model_base_path too, both are written)
"""

import dataclasses
import json
import sys

from absl import flags

from llm_tf.bin.common import run_main

FLAGS = flags.FLAGS

flags.DEFINE_string("model_dir", None, "Training directory of llm_train (params.yaml + checkpoints).")
flags.DEFINE_string("model_base_path", None,
                    "Serving model base path; the export goes to <model_base_path>/<version>/.")
flags.DEFINE_string("keras_hub_preset", None, "Also (or only) save the BERT encoder and its tokenizer as a keras-hub "
                    "preset directory here (local or a bucket; no task head).")
flags.DEFINE_bool("overwrite", False, "Replace an existing non-empty --keras_hub_preset directory.")
flags.DEFINE_integer("version", None, "Version number (default: one more than the highest existing version).")
flags.DEFINE_string("checkpoint", "best",
                    "best (by eval metric; latest when never evaluated), latest, or a checkpoint prefix.")
flags.DEFINE_string("model_name", "", "Model name in the warm-up requests (default: the base path's last component).")
flags.DEFINE_integer("warmup_requests", 8,
                     "Eval texts in assets.extra/tf_serving_warmup_requests (0: no warm-up file).")
flags.DEFINE_string("prepared_dir", None, "Prepared data directory (tokenizer, labels) if it moved since training.")
flags.DEFINE_enum("tflite_model", "none", ["none", "float32", "float16", "dynamic_int8"],
                  "Also write the token form as TFLite, <version>/model.tflite, what TF Serving serves with "
                  "--prefer_tflite_model (warm-up requests then use predict_tokens).")
flags.mark_flags_as_required(["model_dir"])

#: --help's groups.
FLAG_GROUPS = {
    "input (required: --model_dir)": ["model_dir", "checkpoint", "prepared_dir"],
    "TF Serving export (--model_base_path)": ["model_base_path", "version", "model_name", "warmup_requests",
                                              "tflite_model"],
    "keras-hub preset (--keras_hub_preset)": ["keras_hub_preset", "overwrite"],
}


def main(argv) -> int:
    """Exports and prints the result as one JSON line."""
    from llm_tf import io_utils
    from llm_tf.bin import startup
    from llm_tf.errors import ConfigError

    for name in ("model_dir", "model_base_path", "keras_hub_preset", "prepared_dir", "checkpoint"):
        io_utils.check_path(getattr(FLAGS, name) or "", f"--{name}")
    if not FLAGS.model_base_path and not FLAGS.keras_hub_preset:
        raise ConfigError("give --model_base_path (a TF Serving export), --keras_hub_preset (a keras-hub preset "
                          "directory) or both")
    if FLAGS.warmup_requests < 0:
        raise ConfigError(f"--warmup_requests must be >= 0, got {FLAGS.warmup_requests}")
    startup.log_start(keras_hub=True)
    line = {}
    if FLAGS.keras_hub_preset:  # first: its refusals (existing directory, not BERT) come before a new serving version
        from llm_tf.export.keras_hub_preset import save_keras_hub_preset

        preset = save_keras_hub_preset(FLAGS.model_dir, FLAGS.keras_hub_preset, FLAGS.checkpoint, FLAGS.prepared_dir,
                                       overwrite=FLAGS.overwrite)
        line["keras_hub_preset"] = dataclasses.asdict(preset)
    if FLAGS.model_base_path:
        from llm_tf.export.exporter import export_saved_model

        result = export_saved_model(FLAGS.model_dir, FLAGS.model_base_path, FLAGS.version, FLAGS.checkpoint,
                                    FLAGS.model_name, FLAGS.warmup_requests, FLAGS.prepared_dir,
                                    tflite_model=FLAGS.tflite_model)
        line.update({"path": result.path, "version": result.version, "signatures": result.signatures,
                     "checkpoint": result.checkpoint, "step": result.step, "weights": result.weights,
                     "tflite_model": result.tflite_model})
    print(json.dumps(line, sort_keys=True))
    sys.stdout.flush()
    return 0


def run() -> None:
    """Console-script entry point."""
    run_main(main, flag_groups=FLAG_GROUPS)


if __name__ == "__main__":
    run()

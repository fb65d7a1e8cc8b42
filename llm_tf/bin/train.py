"""llm_train: train and evaluate experiments, TF Model Garden style.

The config is the experiment's registered defaults (sentence_classification,
token_classification, mlm_pretrain, causal_lm, distillation), then each --config_file
(configs/<experiment>/*.yaml), then --params_override, then the runtime flags. Checkpoints,
params.yaml, metrics and TensorBoard summaries go to --model_dir; the same command resumes
from its latest checkpoint. The final metrics are printed as one JSON line.

Example:
    llm_train --experiment=sentence_classification --mode=train_and_eval \\
        --model_dir=runs/sst2_tiny --config_file=configs/sentence_classification/sst2_tiny.yaml \\
        --params_override=task.data.prepared_dir=prepared/sst2,trainer.train_steps=2000
"""

import json
import sys

from absl import flags

from llm_tf.bin import prefer_onednn
from llm_tf.bin.common import run_main

prefer_onednn()  # before TensorFlow loads

FLAGS = flags.FLAGS

flags.DEFINE_string("experiment", None, "Registered experiment name (e.g. sentence_classification).")
flags.DEFINE_enum("mode", "train_and_eval",
                  ["train", "eval", "train_and_eval", "continuous_eval", "precompute_teacher_logits"],
                  "What to run. precompute_teacher_logits (experiment distillation): write the prepared records with "
                  "the teacher's logits to --model_dir, for task.distillation.teacher_logits_dir.")
flags.DEFINE_string("model_dir", None, "Directory for checkpoints, metrics, summaries and params.yaml.")
flags.DEFINE_multi_string("config_file", [], "YAML config file(s); repeatable, later files win.")
flags.DEFINE_string("params_override", "", "Dotted overrides applied last: 'a.b=1,c.d=x' or a YAML/JSON string.")
flags.DEFINE_enum("strategy", None, ["one_device", "mirrored", "multi_worker_mirrored", "tpu"],
                  "Distribution strategy (overrides runtime.strategy). multi_worker_mirrored reads TF_CONFIG.")
flags.DEFINE_integer("num_devices", None, "Devices for the strategy (overrides runtime.num_devices).")
flags.DEFINE_string("tpu", None, "TPU address for --strategy=tpu (overrides runtime.tpu).")
flags.DEFINE_float("eval_timeout", 600, "continuous_eval: seconds to wait for a new checkpoint.")
flags.mark_flags_as_required(["experiment", "model_dir"])

#: --help's groups.
FLAG_GROUPS = {
    "experiment (required: --experiment, --model_dir)": ["experiment", "model_dir", "mode", "eval_timeout"],
    "config": ["config_file", "params_override"],
    "runtime (distribution strategy)": ["strategy", "num_devices", "tpu"],
}


def resolve_config():
    """The experiment's defaults, then --config_file, --params_override, and the runtime flags."""
    from llm_tf.training import registry_imports, tasks  # noqa: F401  (registry_imports registers the experiments)

    return tasks.resolve_experiment(FLAGS.experiment, FLAGS.config_file, FLAGS.params_override,
                                    {k: getattr(FLAGS, k) for k in ("strategy", "num_devices", "tpu")})


def main(argv) -> int:
    """Resolves the config, runs the mode and prints the final metrics as one JSON line."""
    from llm_tf import io_utils
    from llm_tf.bin import startup
    from llm_tf.training import teacher_logits, train_lib

    io_utils.check_path(FLAGS.model_dir, "--model_dir")
    for path in FLAGS.config_file:
        io_utils.check_path(path, "--config_file")
    config = resolve_config()
    startup.log_start(strategy=startup.describe_strategy(config.runtime))
    if FLAGS.mode == teacher_logits.MODE:
        metrics = teacher_logits.precompute_from_config(config, FLAGS.model_dir)
    else:
        metrics = train_lib.run_experiment(config, FLAGS.mode, FLAGS.model_dir, FLAGS.eval_timeout)
    print(json.dumps({"model_dir": FLAGS.model_dir, "mode": FLAGS.mode, **metrics}, sort_keys=True))
    sys.stdout.flush()
    return 0


def run() -> None:
    """Console-script entry point."""
    run_main(main, flag_groups=FLAG_GROUPS)


if __name__ == "__main__":
    run()

"""llm_generate: continue prompts with a causal LM trained by ``llm_train --experiment=causal_lm``.

Example:
    llm_generate --model_dir=runs/imdb_clm_tiny --prompt="this movie was" \\
        --prompt="the acting" --strategy=top_p --top_p=0.9 --temperature=0.8 --seed=1

Settings left unset come from the run's ``task.generation`` (``params.yaml``). Prints one JSON
line per prompt: ``{"prompt": ..., "text": ...}``.
"""

import json
import sys

from absl import flags

from llm_tf.bin.common import run_main

FLAGS = flags.FLAGS

flags.DEFINE_string("model_dir", None, "model_dir of an llm_train --experiment=causal_lm run.")
flags.DEFINE_multi_string("prompt", [], "Prompt text; repeatable (one output line each).")
flags.DEFINE_string("prepared_dir", "", "Overrides task.data.prepared_dir (where the tokenizer is).")
flags.DEFINE_enum("strategy", None, ["greedy", "top_k", "top_p"], "Decoding strategy.")
flags.DEFINE_integer("max_new_tokens", None, "New tokens per prompt at most.")
flags.DEFINE_integer("top_k", None, "top_k: candidates; top_p: optional cap (0 = none).")
flags.DEFINE_float("top_p", None, "Nucleus probability mass for top_p, in (0, 1].")
flags.DEFINE_float("temperature", None, "Logit divisor for sampling (> 0).")
flags.DEFINE_integer("seed", None, "Sampling seed (the same seed gives the same text).")
flags.mark_flags_as_required(["model_dir"])

#: --help's groups.
FLAG_GROUPS = {
    "model (required: --model_dir)": ["model_dir", "prepared_dir"],
    "prompts (at least one)": ["prompt"],
    "decoding (default: the run's task.generation)": ["strategy", "max_new_tokens", "top_k", "top_p", "temperature",
                                                      "seed"],
}


def main(argv) -> int:
    """Loads the run, generates a continuation per prompt and prints them as JSON lines.

    Args:
        argv: Unused (absl's remaining arguments).

    Returns:
        0 on success.

    Raises:
        ConfigError: No prompt, not a causal LM run, or a setting out of range.
    """
    from llm_tf import io_utils
    from llm_tf.bin import startup
    from llm_tf.errors import ConfigError

    io_utils.check_path(FLAGS.model_dir, "--model_dir")
    io_utils.check_path(FLAGS.prepared_dir, "--prepared_dir")
    if not FLAGS.prompt:
        raise ConfigError("give at least one --prompt")
    from llm_tf.training.causal_lm import load_trained

    startup.log_start()
    task, model = load_trained(FLAGS.model_dir, FLAGS.prepared_dir)
    names = ("strategy", "max_new_tokens", "top_k", "top_p", "temperature", "seed")
    overrides = {name: getattr(FLAGS, name) for name in names if getattr(FLAGS, name) is not None}
    texts = task.generate(model, FLAGS.prompt, **overrides).numpy()
    for prompt, text in zip(FLAGS.prompt, texts):
        print(json.dumps({"prompt": prompt, "text": text.decode("utf-8", "replace")}))
    sys.stdout.flush()
    return 0


def run() -> None:
    """Console-script entry point."""
    run_main(main, flag_groups=FLAG_GROUPS)


if __name__ == "__main__":
    run()

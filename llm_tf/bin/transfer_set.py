"""llm_transfer_set: the distillation transfer set (labelled + extra sentences + augmented copies) as a TSV.

Writes ``--output`` (columns ``sentence``, ``label``, ``source``) and ``<output>.summary.json``,
and prints the summary JSON on stdout. No text of an ``--exclude`` file (the dev split) is
ever written. Feed the TSV to ``llm_prepare --text_field=sentence --label_field=label``.

Example:
    llm_transfer_set --labelled=../shared/data/sst2/train.tsv --extra=../shared/data/imdb/reviews.csv \\
        --label_map=positive:1,negative:0 --exclude=../shared/data/sst2/dev.tsv --augment_copies=2 \\
        --preset=all_minilm_l6_v2 --output=/tmp/transfer/sst2_transfer.tsv
"""

import json

from absl import flags

from llm_tf.bin.common import run_main
from llm_tf.data.transfer_set import parse_label_map

FLAGS = flags.FLAGS

flags.DEFINE_multi_string("labelled", [], "Labelled TSV/CSV/JSONL file(s) (text + label); repeatable, globs allowed.")
flags.DEFINE_string("text_field", "sentence", "Text field of the labelled and exclude files; a comma list gives "
                    "alternatives (each file uses the first it has).")
flags.DEFINE_string("label_field", "label", "Label field of the labelled files.")
flags.DEFINE_multi_string("extra", [], "File(s) of extra in-domain documents with a label field (IMDB reviews.csv); "
                          "split into sentences that inherit the document's label.")
flags.DEFINE_string("extra_text_field", "review", "Text field of the extra files (comma list of alternatives).")
flags.DEFINE_string("extra_label_field", "sentiment", "Label field of the extra files.")
flags.DEFINE_list("label_map", [], "Extra label to labelled-set label, as FROM:TO pairs (positive:1,negative:0). "
                  "An extra label neither mapped nor in the label set is a bad row, reported by file:line.")
flags.DEFINE_multi_string("exclude", [], "File(s) whose texts must never appear in the output (the dev/eval split); "
                          "compared after normalisation (case, accents, punctuation and spaces ignored).")
flags.DEFINE_integer("augment_copies", 0, "Augmented copies per labelled sentence (0: none); needs --preset.")
flags.DEFINE_float("replace_prob", 0.4, "Probability that a word of a copy is replaced by an embedding neighbour.")
flags.DEFINE_integer("neighbours", 15, "A word is replaced by one of its this many nearest whole-word tokens.")
flags.DEFINE_float("crop_prob", 0.25, "Probability that a copy is cropped to a contiguous span of at least "
                   "max(--min_words, half) of its words.")
flags.DEFINE_integer("min_words", 3, "Extra sentences, augmentation sources and crops have at least this many words.")
flags.DEFINE_integer("max_words", 64, "Extra sentences have at most this many words.")
flags.DEFINE_integer("seed", 42, "Seed of the augmentation and the output shuffle (same inputs + seed: same bytes).")
flags.DEFINE_string("preset", "", "Checkpoint whose token embedding table gives the replacement words: a named preset "
                    "(all_minilm_l6_v2), a Hugging Face or a keras-hub BERT directory.")
flags.DEFINE_integer("max_rows", 0, "Keep at most this many rows, labelled first, then extra, then augmented (0: all).")
flags.DEFINE_string("output", None, "The TSV to write (atomically); the summary goes to <output>.summary.json.")
flags.mark_flag_as_required("output")

#: --help's groups.
FLAG_GROUPS = {
    "labelled data": ["labelled", "text_field", "label_field"],
    "extra sentences": ["extra", "extra_text_field", "extra_label_field", "label_map", "min_words", "max_words"],
    "dev split kept out": ["exclude"],
    "augmentation (needs --preset)": ["augment_copies", "preset", "replace_prob", "neighbours", "crop_prob", "seed"],
    "output (required: --output)": ["output", "max_rows"],
}


def config_from_flags():
    """Builds a :class:`~llm_tf.data.transfer_set.TransferSetConfig` from the parsed flags."""
    import dataclasses

    from llm_tf.data.transfer_set import TransferSetConfig

    values = {field.name: getattr(FLAGS, field.name) for field in dataclasses.fields(TransferSetConfig)}
    values.update(labelled=list(FLAGS.labelled), extra=list(FLAGS.extra), exclude=list(FLAGS.exclude),
                  label_map=parse_label_map(FLAGS.label_map))
    return TransferSetConfig(**values)


def main(argv) -> int:
    """Builds the transfer set described by the flags and prints its summary as JSON."""
    from llm_tf.data.transfer_set import build_transfer_set
    from llm_tf.io_utils import check_path

    for flag in ("labelled", "extra", "exclude", "preset", "output"):
        value = getattr(FLAGS, flag)
        for path in value if isinstance(value, list) else [value]:
            check_path(path or "", f"--{flag}")
    if FLAGS.augment_copies:  # the embedding neighbours load the checkpoint with TensorFlow
        from llm_tf.bin import startup

        startup.log_start(keras_hub=True)
    summary = build_transfer_set(config_from_flags(), FLAGS.output)
    print(json.dumps(summary, indent=2, sort_keys=True, ensure_ascii=False))
    return 0


def run() -> None:
    """Console-script entry point."""
    run_main(main, flag_groups=FLAG_GROUPS)


if __name__ == "__main__":
    run()

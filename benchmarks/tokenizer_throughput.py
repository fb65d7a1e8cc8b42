"""Throughput of the in-graph tokenizer (raw strings -> packed BERT inputs) on SST-2 train.

Measures sentences/s for:
  * ``in_graph``: ``TextTokenizer`` in a tf.function over in-memory batches (tokenize + pack);
  * ``tf_data``: the same inside a tf.data pipeline (batch, map with AUTOTUNE, prefetch),
    as training uses it;
  * ``tflite``: the TFLite-converted tokenizer in the interpreter (batch of ``batch_size``).

Usage (from the repository root, in the project's virtualenv):
    python -m benchmarks.tokenizer_throughput --data=../shared/data/sst2/train.tsv \
        [--tokenizer_dir=prepared/tokenizer] [--repeats=5]

Without --tokenizer_dir a WordPiece vocabulary of --vocab_size is trained on the data first.
"""

import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("data", "../shared/data/sst2/train.tsv", "TSV with a 'sentence' column.")
flags.DEFINE_string("tokenizer_dir", "", "Tokenizer directory from llm_prepare (default: train one).")
flags.DEFINE_integer("vocab_size", 8000, "Vocabulary size when training one.")
flags.DEFINE_integer("batch_size", 1024, "Sentences per call.")
flags.DEFINE_integer("max_seq_length", 128, "Packed length.")
flags.DEFINE_integer("repeats", 5, "Timed passes over the data per variant.")
flags.DEFINE_integer("tflite_sentences", 8192, "Sentences for the TFLite variant (it is slower to feed).")


def main(argv):
    del argv
    import numpy as np
    import tensorflow as tf

    from benchmarks.common import machine_info, time_repeats, write_results
    from llm_tf.data import readers
    from llm_tf.data.rows import Row
    from llm_tf.export.tflite_runtime import make_interpreter
    from llm_tf.text import tflite, tokenizer as tokenizer_lib, vocab as vocab_lib

    sentences = [row.fields["sentence"] for row in readers.open_source(FLAGS.data) if isinstance(row, Row)]
    directory = FLAGS.tokenizer_dir
    if not directory:
        directory = tempfile.mkdtemp(prefix="tokenizer-")
        words = vocab_lib.train_wordpiece(tf.data.Dataset.from_tensor_slices(sentences), FLAGS.vocab_size)
        vocab_lib.save_wordpiece(os.path.join(directory, "vocab.txt"), words)
        tokenizer_lib.TokenizerConfig(max_seq_length=FLAGS.max_seq_length).save(directory)
    tokenizer = tokenizer_lib.TextTokenizer.from_directory(directory, max_seq_length=FLAGS.max_seq_length)
    n = len(sentences)
    batches = [tf.constant(sentences[i:i + FLAGS.batch_size]) for i in range(0, n, FLAGS.batch_size)]
    tokenize = tf.function(lambda t: tokenizer(t), input_signature=[tf.TensorSpec([None], tf.string)])

    def in_graph():
        for batch in batches:
            tokenize(batch)

    dataset = (tf.data.Dataset.from_tensor_slices(sentences).batch(FLAGS.batch_size)
               .map(tokenizer, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))

    def tf_data():
        for _ in dataset:
            pass

    runner = make_interpreter(model_content=tflite.convert_tokenizer(tokenizer)).get_signature_runner("serving_default")
    tflite_sentences = sentences[: FLAGS.tflite_sentences]
    tflite_batches = [np.array(tflite_sentences[i:i + FLAGS.batch_size]) for i in range(0, len(tflite_sentences), FLAGS.batch_size)]

    def tflite_run():
        for batch in tflite_batches:
            runner(text=batch)

    variants = {
        "in_graph": (in_graph, n),
        "tf_data": (tf_data, n),
        "tflite": (tflite_run, len(tflite_sentences)),
    }
    figures = {}
    for name, (function, count) in variants.items():
        timing = time_repeats(function, FLAGS.repeats)
        figures[name] = {
            "sentences": count,
            "sentences_per_s": {"median": count / timing["median"], "min": count / timing["max"], "max": count / timing["min"]},
            "seconds": timing,
        }
    command = (f"python -m benchmarks.tokenizer_throughput --data={FLAGS.data} --batch_size={FLAGS.batch_size} "
               f"--max_seq_length={FLAGS.max_seq_length} --repeats={FLAGS.repeats}"
               + (f" --tokenizer_dir={FLAGS.tokenizer_dir}" if FLAGS.tokenizer_dir else f" --vocab_size={FLAGS.vocab_size}"))
    result = {"benchmark": "tokenizer_throughput", "command": command, "machine": machine_info(),
              "vocab_size": tokenizer.vocab_size, "batch_size": FLAGS.batch_size, "max_seq_length": FLAGS.max_seq_length,
              "figures": figures}
    lines = [
        "# Tokenizer throughput (SST-2 train)", "",
        f"`{command}`", "",
        f"{result['machine']['cpu']}, {result['machine']['cores']} cores, TF {result['machine']['tensorflow']}; "
        f"vocabulary {tokenizer.vocab_size}, batch {FLAGS.batch_size}, packed to {FLAGS.max_seq_length}; "
        f"{FLAGS.repeats} timed passes after one warm-up.", "",
        "| variant | sentences | sentences/s (median) | min | max |", "|---|---|---|---|---|",
    ]
    for name, figure in figures.items():
        rate = figure["sentences_per_s"]
        lines.append(f"| {name} | {figure['sentences']:,} | {rate['median']:,.0f} | {rate['min']:,.0f} | {rate['max']:,.0f} |")
    write_results("tokenizer_throughput", result, "\n".join(lines) + "\n")


if __name__ == "__main__":
    app.run(main)

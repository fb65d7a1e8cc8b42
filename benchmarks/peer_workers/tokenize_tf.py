"""Tokenizer-throughput worker for the TensorFlow systems: llm-tf's tokenizer or keras-hub's.

Runs in the project's virtualenv. ``--system=ours``: :class:`llm_tf.text.tokenizer.TextTokenizer`
(``in_graph``: a tf.function per batch; ``tf_data``: batch + map + prefetch, as training
feeds it; ``tflite``: the converted tokenizer in the TFLite interpreter, on the first
``--tflite_sentences``). ``--system=keras_hub``: keras-hub's ``BertTokenizer`` (a
``WordPieceTokenizer``, lower-casing and accent stripping like ours) with
``BertTextClassifierPreprocessor``'s ``MultiSegmentPacker``, over the same vocabulary
(``in_graph`` and ``tf_data`` as above). Every variant produces token ids, segment ids and a
padding mask of [batch, max_seq_length].

Requests: ``{"op": "round", "variant": V}`` -> ``{"seconds": s, "sentences": n}`` (one pass);
``{"op": "sample", "count": n}`` -> ``{"token_ids": [[...], ...]}`` for the first n sentences.
"""

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def build(system: str, tokenizer_dir: str, max_seq_length: int):
    """(function from a string tensor [batch] to the packed dict for ``system``, our tokenizer)."""
    from llm_tf.text import tokenizer as tokenizer_lib

    ours = tokenizer_lib.TextTokenizer.from_directory(tokenizer_dir, max_seq_length=max_seq_length)
    if system == "ours":
        return ours, ours
    import keras_hub

    tokenizer = keras_hub.models.BertTokenizer(vocabulary=ours.vocab, lowercase=True, strip_accents=True)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(tokenizer, sequence_length=max_seq_length)

    return preprocessor, ours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--system", choices=["ours", "keras_hub"], required=True)
    parser.add_argument("--sentences", required=True, help="JSON file with the list of sentences")
    parser.add_argument("--tokenizer_dir", required=True)
    parser.add_argument("--batch_size", type=int, default=1024)
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument("--tflite_sentences", type=int, default=8192)
    args = parser.parse_args()

    import numpy as np
    import tensorflow as tf

    from benchmarks.worker_protocol import serve, tokenizer_handler

    with open(args.sentences, encoding="utf-8") as f:
        sentences = json.load(f)
    call, ours = build(args.system, args.tokenizer_dir, args.max_seq_length)
    batches = [tf.constant(sentences[i:i + args.batch_size]) for i in range(0, len(sentences), args.batch_size)]
    tokenize = tf.function(call, input_signature=[tf.TensorSpec([None], tf.string)])
    dataset = (tf.data.Dataset.from_tensor_slices(sentences).batch(args.batch_size)
               .map(call, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))

    def in_graph():
        for batch in batches:
            tokenize(batch)
        return len(sentences)

    def tf_data():
        for _ in dataset:
            pass
        return len(sentences)

    variants = {"in_graph": in_graph, "tf_data": tf_data}
    if args.system == "ours":
        from llm_tf.export.tflite_runtime import make_interpreter
        from llm_tf.text import tflite

        runner = make_interpreter(model_content=tflite.convert_tokenizer(ours)).get_signature_runner("serving_default")
        head = sentences[: args.tflite_sentences]
        tflite_batches = [np.array(head[i:i + args.batch_size]) for i in range(0, len(head), args.batch_size)]

        def tflite_run():
            for batch in tflite_batches:
                runner(text=batch)
            return len(head)

        variants["tflite"] = tflite_run

    def sample(count: int) -> dict:
        out = tokenize(tf.constant(sentences[:count]))
        return {"token_ids": np.asarray(out["token_ids"]).tolist(),
                "padding_mask": np.asarray(out["padding_mask"]).astype(int).sum(axis=1).tolist()}

    import keras_hub

    serve(tokenizer_handler(variants, sample),
          {"system": args.system, "variants": list(variants), "vocab_size": ours.vocab_size,
           "tensorflow": tf.__version__, "keras_hub": keras_hub.__version__,
           "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads()})


if __name__ == "__main__":
    main()

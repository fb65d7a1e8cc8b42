"""Tokenizer-throughput worker for Hugging Face ``tokenizers`` (runs in the peer virtualenv).

``BertWordPieceTokenizer`` over the same ``vocab.txt`` as ours, lower-casing and stripping
accents, with truncation and padding to ``--max_seq_length`` and the ``[CLS] ... [SEP]``
post-processor. Variants: ``encode_batch`` (a list of ``Encoding`` objects per batch) and
``encode_batch_arrays`` (the same, then token ids, type ids and attention mask as int32 numpy
arrays [batch, max_seq_length], the form a model takes; what ``return_tensors="np"`` does).

Requests as in ``tokenize_tf.py``.
"""

import argparse
import json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", required=True)
    parser.add_argument("--vocab", required=True, help="vocab.txt")
    parser.add_argument("--batch_size", type=int, default=1024)
    parser.add_argument("--max_seq_length", type=int, default=128)
    args = parser.parse_args()

    import numpy as np
    import tokenizers
    from tokenizers.implementations import BertWordPieceTokenizer

    from benchmarks.worker_protocol import serve, tokenizer_handler

    with open(args.sentences, encoding="utf-8") as f:
        sentences = json.load(f)
    tokenizer = BertWordPieceTokenizer(args.vocab, clean_text=True, handle_chinese_chars=True, strip_accents=True,
                                       lowercase=True)
    tokenizer.enable_truncation(max_length=args.max_seq_length)
    tokenizer.enable_padding(length=args.max_seq_length, pad_id=tokenizer.token_to_id("[PAD]"), pad_token="[PAD]")
    batches = [sentences[i:i + args.batch_size] for i in range(0, len(sentences), args.batch_size)]

    def encode_batch():
        for batch in batches:
            tokenizer.encode_batch(batch)
        return len(sentences)

    def encode_batch_arrays():
        for batch in batches:
            encodings = tokenizer.encode_batch(batch)
            np.array([e.ids for e in encodings], dtype=np.int32)
            np.array([e.type_ids for e in encodings], dtype=np.int32)
            np.array([e.attention_mask for e in encodings], dtype=np.int32)
        return len(sentences)

    variants = {"encode_batch": encode_batch, "encode_batch_arrays": encode_batch_arrays}

    def sample(count: int) -> dict:
        encodings = tokenizer.encode_batch(sentences[:count])
        return {"token_ids": [e.ids for e in encodings], "padding_mask": [sum(e.attention_mask) for e in encodings]}

    serve(tokenizer_handler(variants, sample),
          {"system": "hf_tokenizers", "variants": list(variants), "vocab_size": tokenizer.get_vocab_size(),
           "tokenizers": tokenizers.__version__})


if __name__ == "__main__":
    main()

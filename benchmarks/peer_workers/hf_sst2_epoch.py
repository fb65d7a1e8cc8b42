"""One epoch of SST-2 with HF transformers + PyTorch, the recommended way (runs in the peer virtualenv).

The fast ``BertTokenizer`` (transformers 5) over our ``vocab.txt`` (lower-casing) tokenizes the training
sentences with truncation and no padding; a ``DataLoader`` shuffles them and
``DataCollatorWithPadding`` pads each batch to its longest sentence (dynamic padding). A tiny
``BertForSequenceClassification`` (same dimensions as ours) trains for one epoch with AdamW
(weight decay 0.01, none on biases and LayerNorm, as the HF ``Trainer`` does), linear warm-up
and decay (``get_linear_schedule_with_warmup``) and global-norm clipping at 1.0, then is
evaluated on the dev set.

With ``--model_dir`` (a Hugging Face BERT directory, e.g. all-MiniLM-L6-v2's) the model is
``BertForSequenceClassification.from_pretrained`` on it (a new classification head) and the
tokenizer is the directory's own fast tokenizer; ``--bf16`` runs forward and loss under
``torch.autocast("cpu", dtype=torch.bfloat16)`` (PyTorch's recommended CPU mixed precision;
weights and optimizer stay float32).

Prints one JSON line: seconds for tokenization, training and evaluation, examples/s and dev
accuracy.
"""

import argparse
import csv
import json
import time

START = time.perf_counter()


def read_tsv(path: str) -> tuple[list[str], list[int]]:
    """Sentences and integer labels of an SST-2 TSV."""
    with open(path, encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [r["sentence"] for r in rows], [int(r["label"]) for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", required=True)
    parser.add_argument("--dev", required=True)
    parser.add_argument("--vocab", default="", help="vocab.txt of a model trained from scratch (--size)")
    parser.add_argument("--model_dir", default="", help="a pre-trained HF BERT directory (instead of --size)")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast")
    parser.add_argument("--dropout", type=float, default=-1.0,
                        help="hidden/attention dropout of a pre-trained model (default: its config's)")
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--max_seq_length", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--eval_batch_size", type=int, default=128)
    parser.add_argument("--learning_rate", type=float, default=5e-4)
    parser.add_argument("--warmup_fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--max_steps", type=int, default=0, help="stop after this many steps (0: one epoch)")
    args = parser.parse_args()

    import torch
    import transformers
    from torch.utils.data import DataLoader

    imported = time.perf_counter()
    torch.manual_seed(args.seed)
    sizes = {"tiny": (2, 128, 2), "mini": (4, 256, 4), "small": (4, 512, 8), "base": (12, 768, 12)}
    if args.model_dir:
        tokenizer = transformers.AutoTokenizer.from_pretrained(args.model_dir)
        tokenizer.model_max_length = args.max_seq_length
    else:
        layers, hidden, heads = sizes[args.size]
        # transformers 5: BertTokenizer is the fast (tokenizers-backed) one and takes ``vocab``; an
        # unknown keyword such as the old ``vocab_file`` is ignored and leaves a 5-token vocabulary.
        tokenizer = transformers.BertTokenizer(vocab=args.vocab, do_lower_case=True)
        with open(args.vocab, encoding="utf-8") as f:
            expected = sum(1 for line in f if line.strip())
        if len(tokenizer) != expected:
            raise SystemExit(f"{args.vocab}: tokenizer has {len(tokenizer)} tokens, the file {expected}")
    if not tokenizer.is_fast:
        raise SystemExit("the tokenizer is not the fast (tokenizers-backed) one")
    train_text, train_labels = read_tsv(args.train)
    dev_text, dev_labels = read_tsv(args.dev)
    start = time.perf_counter()
    train_enc = tokenizer(train_text, truncation=True, max_length=args.max_seq_length)
    dev_enc = tokenizer(dev_text, truncation=True, max_length=args.max_seq_length)
    train_rows = [{"input_ids": ids, "token_type_ids": tt, "attention_mask": am, "labels": y} for ids, tt, am, y in
                  zip(train_enc["input_ids"], train_enc["token_type_ids"], train_enc["attention_mask"], train_labels)]
    dev_rows = [{"input_ids": ids, "token_type_ids": tt, "attention_mask": am, "labels": y} for ids, tt, am, y in
                zip(dev_enc["input_ids"], dev_enc["token_type_ids"], dev_enc["attention_mask"], dev_labels)]
    tokenize_s = time.perf_counter() - start

    if args.model_dir:
        extra = ({"hidden_dropout_prob": args.dropout, "attention_probs_dropout_prob": args.dropout}
                 if args.dropout >= 0 else {})
        model = transformers.BertForSequenceClassification.from_pretrained(args.model_dir, num_labels=2, **extra)
    else:
        config = transformers.BertConfig(vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers,
                                         num_attention_heads=heads, intermediate_size=4 * hidden,
                                         max_position_embeddings=512, type_vocab_size=2, num_labels=2)
        model = transformers.BertForSequenceClassification(config)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16)
    collator = transformers.DataCollatorWithPadding(tokenizer)
    generator = torch.Generator().manual_seed(args.seed)
    loader = DataLoader(train_rows, batch_size=args.batch_size, shuffle=True, drop_last=True, collate_fn=collator,
                        generator=generator)
    no_decay = ("bias", "LayerNorm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)], "weight_decay": 0.01},
        {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=args.learning_rate)
    steps = min(len(loader), args.max_steps) if args.max_steps else len(loader)
    scheduler = transformers.get_linear_schedule_with_warmup(optimizer, int(args.warmup_fraction * steps), steps)
    model.train()
    start = time.perf_counter()
    for step, batch in enumerate(loader):
        if step == steps:
            break
        with autocast:
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    train_s = time.perf_counter() - start

    model.eval()
    start = time.perf_counter()
    correct = 0
    with torch.no_grad(), autocast:
        for batch in DataLoader(dev_rows, batch_size=args.eval_batch_size, collate_fn=collator):
            correct += int((model(**batch).logits.argmax(-1) == batch["labels"]).sum())
    eval_s = time.perf_counter() - start
    print(json.dumps({
        "system": "hf", "steps": steps, "examples": steps * args.batch_size, "import_s": imported - START,
        "tokenize_s": tokenize_s, "train_s": train_s, "eval_s": eval_s,
        "in_process_s": time.perf_counter() - START, "train_examples_per_s": steps * args.batch_size / train_s,
        "dev_accuracy": correct / len(dev_rows), "dev_examples": len(dev_rows), "last_loss": float(loss),
        "torch": torch.__version__, "transformers": transformers.__version__, "torch_threads": torch.get_num_threads(),
        "bf16": args.bf16, "pretrained": bool(args.model_dir),
    }))


if __name__ == "__main__":
    main()

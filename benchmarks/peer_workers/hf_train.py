"""Training-throughput worker for HF ``BertForSequenceClassification`` (runs in the peer virtualenv).

A plain PyTorch loop, as the transformers docs write one: forward with labels, backward,
global-norm clipping at 1.0 (the HF ``Trainer`` default), ``torch.optim.AdamW`` (weight decay
0.01), ``zero_grad``. ``--precision=bf16`` wraps the forward pass in
``torch.autocast("cpu", dtype=torch.bfloat16)``. Batches come from the same ``.npz`` the
TensorFlow systems read, cycled.

Requests: ``{"op": "round", "steps": n}`` -> ``{"seconds": s, "steps": n, "loss": l}``;
``{"op": "peak", "n": N, "dtype": ..., "repeats": k}`` -> torch matmul GFLOP/s.
"""

import argparse
import time


def matmul_gflops(n: int, dtype: str, repeats: int) -> dict:
    """GFLOP/s of an n x n @ n x n torch matmul (best and median of ``repeats``)."""
    import torch

    from benchmarks.worker_protocol import matmul_rate

    kind = torch.bfloat16 if dtype == "bfloat16" else torch.float32
    a = torch.randn(n, n).to(kind)
    b = torch.randn(n, n).to(kind)
    return matmul_rate(lambda: torch.matmul(a, b), n, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", help=".npz of synthetic batches (not needed with --peak)")
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--vocab_size", type=int, default=8000)
    parser.add_argument("--learning_rate", type=float, default=1e-4)
    parser.add_argument("--peak", action="store_true", help="only answer matmul peak requests")
    args = parser.parse_args()

    import numpy as np
    import torch
    import transformers

    from benchmarks.worker_protocol import serve

    versions = {"torch": torch.__version__, "transformers": transformers.__version__,
                "torch_threads": torch.get_num_threads(), "onednn": torch.backends.mkldnn.is_available()}
    if args.peak:
        def handle_peak(request: dict) -> dict:
            if request["op"] != "peak":
                raise ValueError(f"unknown op {request['op']!r}")
            return matmul_gflops(request["n"], request["dtype"], request.get("repeats", 5))

        serve(handle_peak, {"system": "torch_matmul", **versions})
        return

    sizes = {"tiny": (2, 128, 2), "mini": (4, 256, 4), "small": (4, 512, 8), "base": (12, 768, 12)}
    layers, hidden, heads = sizes[args.size]
    torch.manual_seed(42)
    config = transformers.BertConfig(vocab_size=args.vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                                     num_attention_heads=heads, intermediate_size=4 * hidden,
                                     max_position_embeddings=512, type_vocab_size=2, num_labels=2)
    model = transformers.BertForSequenceClassification(config)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=0.01)
    data = np.load(args.batches)
    batches = [{"input_ids": torch.from_numpy(data["token_ids"][i].astype(np.int64)),
                "token_type_ids": torch.from_numpy(data["segment_ids"][i].astype(np.int64)),
                "attention_mask": torch.from_numpy(data["padding_mask"][i].astype(np.int64)),
                "labels": torch.from_numpy(data["labels"][i].astype(np.int64))} for i in range(len(data["labels"]))]
    bf16 = args.precision == "bf16"
    position = [0]

    def step() -> float:
        batch = batches[position[0] % len(batches)]
        position[0] += 1
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss)

    def handle(request: dict) -> dict:
        if request["op"] != "round":
            raise ValueError(f"unknown op {request['op']!r}")
        start = time.perf_counter()
        loss = 0.0
        for _ in range(request["steps"]):
            loss = step()
        return {"seconds": time.perf_counter() - start, "steps": request["steps"], "loss": loss}

    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    serve(handle, {"system": "hf", "size": args.size, "precision": args.precision, "trainable_params": params,
                   "attn_implementation": getattr(model.config, "_attn_implementation", None), **versions})


if __name__ == "__main__":
    main()

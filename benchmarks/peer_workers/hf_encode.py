"""Encoder-output worker for Hugging Face ``transformers`` (runs in the peer virtualenv).

Loads ``transformers.BertModel.from_pretrained(--model_dir)`` in float32, eval mode (no
dropout), with transformers' default attention implementation, and runs it on token ids it is
given, so that both systems see the same ids (tokenization is compared elsewhere, see
``benchmarks/tokenizer_throughput.py``).

Requests: ``{"op": "encode", "token_ids": X, "segment_ids": X, "padding_mask": X,
"batch_size": n, "save_to": {"sequence_output": path, "pooled_output": path}}`` where each X is
a nested list [batch, length] or the path of an ``.npy`` file holding one. With ``save_to`` the
outputs (``last_hidden_state`` [batch, length, hidden] and ``pooler_output`` [batch, hidden],
float32) are written there as ``.npy`` files and the reply carries their shapes; without it the
reply carries them as nested lists (small inputs only). Either way the reply has ``seconds``
(the forward passes alone, after the first batch once untimed).
"""

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_dir", required=True,
                        help="Hugging Face BERT directory (config.json, model.safetensors)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0: torch's default)")
    args = parser.parse_args()

    import numpy as np
    import torch
    import transformers

    from benchmarks.worker_protocol import serve

    if args.threads:
        torch.set_num_threads(args.threads)
    model, loading = transformers.BertModel.from_pretrained(args.model_dir, dtype=torch.float32,
                                                             output_loading_info=True)
    model.eval()
    not_loaded = sorted(loading.get("missing_keys", []))
    if not_loaded:  # randomly initialised weights would make every comparison meaningless
        raise SystemExit(f"{args.model_dir}: weights missing from the checkpoint: {', '.join(not_loaded[:5])}")

    def array(value, dtype) -> np.ndarray:
        return np.load(value).astype(dtype) if isinstance(value, str) else np.asarray(value, dtype=dtype)

    def encode(request: dict) -> dict:
        token_ids = array(request["token_ids"], np.int64)
        segment_ids = array(request["segment_ids"], np.int64)
        padding_mask = array(request["padding_mask"], np.int64)
        batch_size = int(request.get("batch_size") or len(token_ids))
        sequences, pooled = [], []
        with torch.inference_mode():  # the first batch once untimed (one-time kernel set-up)
            model(input_ids=torch.from_numpy(token_ids[:batch_size]),
                  token_type_ids=torch.from_numpy(segment_ids[:batch_size]),
                  attention_mask=torch.from_numpy(padding_mask[:batch_size]))
        start = time.perf_counter()
        with torch.inference_mode():
            for i in range(0, len(token_ids), batch_size):
                out = model(input_ids=torch.from_numpy(token_ids[i:i + batch_size]),
                            token_type_ids=torch.from_numpy(segment_ids[i:i + batch_size]),
                            attention_mask=torch.from_numpy(padding_mask[i:i + batch_size]))
                sequences.append(out.last_hidden_state.float().numpy())
                pooled.append(out.pooler_output.float().numpy())
        seconds = time.perf_counter() - start
        outputs = {"sequence_output": np.concatenate(sequences), "pooled_output": np.concatenate(pooled)}
        save_to = request.get("save_to")
        if save_to:
            for name, path in save_to.items():
                np.save(path, outputs[name])
            return {"seconds": seconds, "shapes": {name: list(value.shape) for name, value in outputs.items()}}
        return {"seconds": seconds, **{name: value.tolist() for name, value in outputs.items()}}

    def handle(request: dict) -> dict:
        if request["op"] == "encode":
            return encode(request)
        raise ValueError(f"unknown op {request['op']!r}")

    config = model.config
    serve(handle, {"system": "hf_transformers", "model": "BertModel", "torch": torch.__version__,
                   "transformers": transformers.__version__, "torch_threads": torch.get_num_threads(),
                   "hidden_act": config.hidden_act, "attn_implementation": getattr(config, "_attn_implementation", ""),
                   "parameters": sum(p.numel() for p in model.parameters()), "dtype": str(model.dtype)})


if __name__ == "__main__":
    main()

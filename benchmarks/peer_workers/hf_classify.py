"""Sentence-classifier inference with PyTorch (HF transformers, eager) and ONNX Runtime (runs in the peer venv).

Loads a ``BertForSequenceClassification`` directory (``benchmarks/minilm_to_hf.py`` writes ours)
and its fast tokenizer, then prepares every system of ``--systems``:

* ``torch``: the model in PyTorch eager mode (``torch.inference_mode``, float32, transformers'
  default attention implementation).
* ``ort_fp32``: the model exported to ONNX (``torch.onnx.export``, TorchScript exporter, opset
  ``--opset``, dynamic batch and sequence axes; exported with transformers' ``eager`` attention,
  whose graph ONNX Runtime's BERT fusions recognise), run by ONNX Runtime's CPU provider with
  ``ORT_ENABLE_ALL`` graph optimizations.
* ``ort_int8``: that ONNX model through ``onnxruntime.quantization.quantize_dynamic`` (int8
  weights, ``QuantType.QInt8``; activations quantized at run time), same session settings.
* ``ort_opt_fp32`` / ``ort_opt_int8``: ONNX Runtime's recommended path for BERT: the ONNX
  model through ``onnxruntime.transformers.optimizer.optimize_model(model_type="bert")``
  (fused embedding layer norm, attention, GELU, skip layer norms), then, for int8,
  ``quantize_dynamic`` of the fused model.

Every system tokenizes as it would in deployment: the fast tokenizer (``truncation`` at
``--max_length``), batches padded to their longest sentence. Sentences come from
``--sentences`` (a JSON list, the parent's, so both sides see the same ones).

Requests (``benchmarks/worker_protocol.py``), each for one ``system``:

* ``{"op": "predict", "system", "batch_size", "save_to"}``: logits of every sentence (in order,
  batches of ``batch_size`` padded to their longest) saved as ``.npy``; reply ``seconds``.
* ``{"op": "batch1", "system", "indices"}``: each listed sentence alone, end to end (tokenize
  + forward) and model only (the same sentence tokenized beforehand); reply ``end_to_end_ms``
  and ``model_ms`` (lists, one per sentence).
* ``{"op": "batch32", "system", "count", "batch_size"}``: the first ``count`` sentences in
  batches, end to end and model only; reply ``end_to_end_s`` and ``model_s`` (totals).
* ``{"op": "tokens", "save_to"}``: the token ids of every sentence, padded to ``--max_length``
  (for the parent's tokenizer comparison).
"""

import argparse
import json
import os
import time

NAMES = ("input_ids", "attention_mask", "token_type_ids")
SYSTEMS = ("torch", "ort_fp32", "ort_int8", "ort_opt_fp32", "ort_opt_int8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_dir", required=True, help="BertForSequenceClassification directory")
    parser.add_argument("--sentences", required=True, help="JSON file: the list of sentences")
    parser.add_argument("--work_dir", required=True, help="Where the ONNX files go")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime intra-op threads")
    parser.add_argument("--max_length", type=int, default=64, help="Tokenizer truncation length")
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--per_channel", action="store_true", help="quantize_dynamic per-channel weights")
    args = parser.parse_args()
    systems = [s for s in args.systems.split(",") if s]
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown:
        raise SystemExit(f"unknown systems {unknown} (known: {', '.join(SYSTEMS)})")

    import numpy as np
    import torch
    import transformers

    from benchmarks.worker_protocol import serve

    torch.set_num_threads(args.threads)
    with open(args.sentences, encoding="utf-8") as f:
        sentences = json.load(f)
    seconds = {}
    start = time.perf_counter()
    tokenizer = transformers.AutoTokenizer.from_pretrained(args.model_dir)
    if not tokenizer.is_fast:
        raise SystemExit(f"{args.model_dir}: no fast tokenizer ({type(tokenizer).__name__})")
    model, loading = transformers.BertForSequenceClassification.from_pretrained(
        args.model_dir, dtype=torch.float32, output_loading_info=True)
    model.eval()
    missing = sorted(loading.get("missing_keys", []))
    if missing:  # randomly initialised weights would make every figure meaningless
        raise SystemExit(f"{args.model_dir}: weights missing from the checkpoint: {', '.join(missing[:5])}")
    seconds["load"] = time.perf_counter() - start

    def encode(texts, kind: str):
        return tokenizer(texts, padding=True, truncation=True, max_length=args.max_length, return_tensors=kind)

    def torch_forward(enc) -> np.ndarray:
        with torch.inference_mode():
            return model(**{n: enc[n] for n in NAMES}).logits.numpy()

    runners = {}  # system -> (run(numpy-or-torch encoding) -> logits, tensor kind)
    if "torch" in systems:
        runners["torch"] = (torch_forward, "pt")
    info: dict = {"onnx": {}}
    if any(s.startswith("ort_") for s in systems):
        import onnx
        import onnxruntime as ort
        from onnxruntime.quantization import QuantType, quantize_dynamic

        os.makedirs(args.work_dir, exist_ok=True)
        start = time.perf_counter()
        exported = transformers.BertForSequenceClassification.from_pretrained(
            args.model_dir, dtype=torch.float32, attn_implementation="eager").eval()

        class Logits(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, input_ids, attention_mask, token_type_ids):
                return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                                  token_type_ids=token_type_ids).logits

        wrapper = Logits(exported).eval()
        sample = encode(sentences[:2], "pt")
        paths = {"ort_fp32": os.path.join(args.work_dir, "model.onnx")}
        axes = {n: {0: "batch", 1: "sequence"} for n in NAMES}
        torch.onnx.export(wrapper, tuple(sample[n] for n in NAMES), paths["ort_fp32"], input_names=list(NAMES),
                          output_names=["logits"], dynamic_axes={**axes, "logits": {0: "batch"}},
                          opset_version=args.opset, dynamo=False)
        seconds["onnx_export"] = time.perf_counter() - start
        # Shape inference gives no type to the outputs of ORT's fused (contrib) ops; their tensors are float.
        extra = {"DefaultTensorType": onnx.TensorProto.FLOAT}
        # One set of quantize_dynamic settings for both int8 models; the report records them.
        settings = {"weight_type": QuantType.QInt8, "per_channel": args.per_channel, "reduce_range": False,
                    "extra_options": extra}
        quantize = {"weight_type": "QInt8", "per_channel": args.per_channel, "reduce_range": False,
                    "extra_options": "DefaultTensorType=FLOAT"}
        if "ort_int8" in systems:
            start = time.perf_counter()
            paths["ort_int8"] = os.path.join(args.work_dir, "model_int8.onnx")
            quantize_dynamic(paths["ort_fp32"], paths["ort_int8"], **settings)
            seconds["quantize"] = time.perf_counter() - start
        if "ort_opt_fp32" in systems or "ort_opt_int8" in systems:
            from onnxruntime.transformers import optimizer

            start = time.perf_counter()
            config = exported.config
            optimized = optimizer.optimize_model(paths["ort_fp32"], model_type="bert",
                                                 num_heads=config.num_attention_heads,
                                                 hidden_size=config.hidden_size, opt_level=0)
            info["onnx"]["fused_operators"] = {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}
            paths["ort_opt_fp32"] = os.path.join(args.work_dir, "model_opt.onnx")
            optimized.save_model_to_file(paths["ort_opt_fp32"])
            seconds["optimize"] = time.perf_counter() - start
            if "ort_opt_int8" in systems:
                start = time.perf_counter()
                paths["ort_opt_int8"] = os.path.join(args.work_dir, "model_opt_int8.onnx")
                quantize_dynamic(paths["ort_opt_fp32"], paths["ort_opt_int8"], **settings)
                seconds["opt_quantize"] = time.perf_counter() - start
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = args.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        for system in systems:
            if not system.startswith("ort_"):
                continue
            session = ort.InferenceSession(paths[system], options, providers=["CPUExecutionProvider"])
            inputs = [i.name for i in session.get_inputs()]

            def run(enc, session=session, inputs=inputs):
                return session.run(None, {n: enc[n] for n in inputs})[0]

            runners[system] = (run, "np")
            info["onnx"][system] = {"file_mb": round(os.path.getsize(paths[system]) / 1e6, 2)}
        info["onnx"].update({"opset": args.opset, "exporter": "torch.onnx.export (TorchScript, dynamo=False)",
                             "export_attention": "eager", "quantize_dynamic": quantize,
                             "session": {"graph_optimization_level": "ORT_ENABLE_ALL",
                                         "intra_op_num_threads": args.threads, "inter_op_num_threads": 1,
                                         "execution_mode": "ORT_SEQUENTIAL", "provider": "CPUExecutionProvider"},
                             "onnxruntime": ort.__version__, "onnx": onnx.__version__})

    # Token ids made once for the model-only timings, in each system's tensor kind.
    singles = {kind: [encode([s], kind) for s in sentences] for kind in {k for _, k in runners.values()}}

    def batches(kind: str, size: int, count: int):
        return [encode(sentences[i:min(i + size, count)], kind) for i in range(0, count, size)]

    def handle(request: dict) -> dict:
        op = request["op"]
        if op == "tokens":
            enc = tokenizer(sentences, padding="max_length", truncation=True, max_length=args.max_length,
                            return_tensors="np")
            np.save(request["save_to"], np.stack([enc[n].astype(np.int32) for n in NAMES]))
            return {"shape": list(enc["input_ids"].shape)}
        run, kind = runners[request["system"]]
        if op == "predict":
            size = int(request["batch_size"])
            start = time.perf_counter()
            logits = [run(encode(sentences[i:i + size], kind)) for i in range(0, len(sentences), size)]
            elapsed = time.perf_counter() - start
            np.save(request["save_to"], np.concatenate(logits).astype(np.float32))
            return {"seconds": elapsed}
        if op == "batch1":
            end_to_end, model_only = [], []
            for i in request["indices"]:
                start = time.perf_counter()
                run(encode([sentences[i]], kind))
                end_to_end.append((time.perf_counter() - start) * 1000)
                enc = singles[kind][i]
                start = time.perf_counter()
                run(enc)
                model_only.append((time.perf_counter() - start) * 1000)
            return {"end_to_end_ms": end_to_end, "model_ms": model_only}
        if op == "batch32":
            size, count = int(request["batch_size"]), min(int(request["count"]), len(sentences))
            start = time.perf_counter()
            for i in range(0, count, size):
                run(encode(sentences[i:min(i + size, count)], kind))
            end_to_end = time.perf_counter() - start
            prepared = batches(kind, size, count)
            start = time.perf_counter()
            for enc in prepared:
                run(enc)
            return {"end_to_end_s": end_to_end, "model_s": time.perf_counter() - start, "sentences": count}
        raise ValueError(f"unknown op {op!r}")

    import tokenizers

    config = model.config
    serve(handle, {"systems": list(runners), "torch": torch.__version__, "transformers": transformers.__version__,
                   "tokenizers": tokenizers.__version__, "torch_threads": torch.get_num_threads(),
                   "hidden_act": config.hidden_act, "attn_implementation": getattr(config, "_attn_implementation", ""),
                   "tokenizer": type(tokenizer).__name__, "parameters": sum(p.numel() for p in model.parameters()),
                   "seconds": seconds, **info})


if __name__ == "__main__":
    main()

"""Our trained sentence classifier as a Hugging Face ``BertForSequenceClassification`` directory.

llm-tf's classifier (:func:`llm_tf.models.classifier.build_classifier`) is a keras-hub
``BertBackbone`` whose ``pooled_output`` (the ``[CLS]`` vector through ``pooled_dense`` and
tanh) goes through dropout and a dense ``logits`` layer: the same computation as transformers'
``BertForSequenceClassification`` (``bert.pooler`` dense + tanh on ``[CLS]``, dropout,
``classifier``). This module writes the trained weights in that layout, the inverse of
keras-hub's own transformers converter (``keras_hub/src/utils/transformers/convert_bert.py``),
so that PyTorch and ONNX Runtime can run the very model we fine-tuned.

keras-hub's ``BertBackbone`` computes GELU with the tanh approximation whatever a checkpoint's
config names; the written ``config.json`` therefore says ``hidden_act: gelu_pytorch_tanh``
(transformers' ``GELUTanh``, the same function), not the original checkpoint's exact ``gelu``.

Files written (as ``save_pretrained`` lays them out): ``config.json`` (the original checkpoint's,
with the architecture, labels and activation set), ``model.safetensors``, and the tokenizer
files of the original checkpoint (``vocab.txt``, ``tokenizer.json`` without its fixed padding
and truncation, ``tokenizer_config.json`` with ``model_max_length`` = our packed length,
``special_tokens_map.json``).

Example:
    >>> trained = restore_trained_model("runs/sst2_minilm_s42")  # doctest: +SKIP
    >>> write_hf_directory(trained.model, "/tmp/minilm_hf", preset_dir, ["0", "1"], 64)  # doctest: +SKIP
"""

import json
import os
import shutil

import numpy as np

#: Tokenizer files copied from the original checkpoint when present.
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
#: transformers' name of the tanh-approximated GELU that keras-hub's BertBackbone computes.
HF_TANH_GELU = "gelu_pytorch_tanh"


def hf_state_dict(classifier) -> dict[str, np.ndarray]:
    """The weights of our classifier under ``BertForSequenceClassification``'s names and layouts.

    Args:
        classifier: A Keras model with an ``encoder`` layer (keras-hub ``BertBackbone``) and a
            ``logits`` dense layer on its ``pooled_output`` (llm-tf's sentence classifier).

    Returns:
        ``{name: float32 array}``, linear weights as ``[out, in]`` (PyTorch's layout).

    Raises:
        ValueError: The model is not laid out that way.
    """
    try:
        encoder = classifier.get_layer("encoder")
        logits = classifier.get_layer("logits")
    except ValueError as e:
        raise ValueError(f"not an llm-tf sentence classifier (needs 'encoder' and 'logits' layers): {e}") from None

    def value(variable) -> np.ndarray:
        return np.asarray(variable.numpy() if hasattr(variable, "numpy") else variable, dtype=np.float32)

    def linear(kernel, bias, prefix: str, out: dict) -> None:
        out[f"{prefix}.weight"] = np.ascontiguousarray(value(kernel).T)  # Keras [in, out] -> [out, in]
        out[f"{prefix}.bias"] = value(bias).reshape(-1)

    state: dict[str, np.ndarray] = {}
    state["bert.embeddings.word_embeddings.weight"] = value(encoder.get_layer("token_embedding").embeddings)
    state["bert.embeddings.position_embeddings.weight"] = value(
        encoder.get_layer("position_embedding").position_embeddings)
    state["bert.embeddings.token_type_embeddings.weight"] = value(encoder.get_layer("segment_embedding").embeddings)
    norm = encoder.get_layer("embeddings_layer_norm")
    state["bert.embeddings.LayerNorm.weight"] = value(norm.gamma)
    state["bert.embeddings.LayerNorm.bias"] = value(norm.beta)
    hidden = state["bert.embeddings.word_embeddings.weight"].shape[1]
    for i in range(encoder.num_layers):
        block = encoder.get_layer(f"transformer_layer_{i}")
        attention = block._self_attention_layer
        prefix = f"bert.encoder.layer.{i}"
        for name, dense in (("query", attention.query_dense), ("key", attention.key_dense),
                            ("value", attention.value_dense)):
            # keras-hub: kernel [hidden, heads, head_dim], bias [heads, head_dim].
            state[f"{prefix}.attention.self.{name}.weight"] = np.ascontiguousarray(
                value(dense.kernel).reshape(hidden, -1).T)
            state[f"{prefix}.attention.self.{name}.bias"] = value(dense.bias).reshape(-1)
        # keras-hub: kernel [heads, head_dim, hidden].
        state[f"{prefix}.attention.output.dense.weight"] = np.ascontiguousarray(
            value(attention.output_dense.kernel).reshape(-1, hidden).T)
        state[f"{prefix}.attention.output.dense.bias"] = value(attention.output_dense.bias).reshape(-1)
        state[f"{prefix}.attention.output.LayerNorm.weight"] = value(block._self_attention_layer_norm.gamma)
        state[f"{prefix}.attention.output.LayerNorm.bias"] = value(block._self_attention_layer_norm.beta)
        linear(block._feedforward_intermediate_dense.kernel, block._feedforward_intermediate_dense.bias,
               f"{prefix}.intermediate.dense", state)
        linear(block._feedforward_output_dense.kernel, block._feedforward_output_dense.bias,
               f"{prefix}.output.dense", state)
        state[f"{prefix}.output.LayerNorm.weight"] = value(block._feedforward_layer_norm.gamma)
        state[f"{prefix}.output.LayerNorm.bias"] = value(block._feedforward_layer_norm.beta)
    pooled = encoder.get_layer("pooled_dense")
    linear(pooled.kernel, pooled.bias, "bert.pooler.dense", state)
    linear(logits.kernel, logits.bias, "classifier", state)
    return state


def hf_config(classifier, base_config: dict, labels: list[str]) -> dict:
    """``config.json`` of the converted model: ``base_config`` (the original checkpoint's) with
    our dimensions, ``BertForSequenceClassification``, the labels and the tanh GELU."""
    encoder = classifier.get_layer("encoder")
    config = dict(base_config)
    config.pop("_name_or_path", None)
    config.update({
        "architectures": ["BertForSequenceClassification"],
        "model_type": "bert",
        "vocab_size": int(encoder.vocabulary_size),
        "hidden_size": int(encoder.hidden_dim),
        "num_hidden_layers": int(encoder.num_layers),
        "num_attention_heads": int(encoder.num_heads),
        "intermediate_size": int(encoder.intermediate_dim),
        "max_position_embeddings": int(encoder.max_sequence_length),
        "type_vocab_size": 2,
        "layer_norm_eps": 1e-12,
        "hidden_act": HF_TANH_GELU,
        "num_labels": len(labels),
        "id2label": {str(i): label for i, label in enumerate(labels)},
        "label2id": {label: i for i, label in enumerate(labels)},
        "problem_type": "single_label_classification",
        "torch_dtype": "float32",
    })
    return config


def write_hf_directory(classifier, output_dir: str, preset_dir: str, labels: list[str], seq_length: int) -> dict:
    """Writes the Hugging Face directory of our classifier (see the module docstring).

    Args:
        classifier: Our trained classifier (float32 Keras model).
        output_dir: Where to write (created; files there are replaced).
        preset_dir: The original Hugging Face checkpoint (``config.json`` and tokenizer files).
        labels: Label names in id order.
        seq_length: Our packed length: the tokenizer's ``model_max_length``.

    Returns:
        ``{"directory", "parameters", "hidden_act", "files"}``.
    """
    from safetensors.numpy import save_file

    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(preset_dir, "config.json"), encoding="utf-8") as f:
        base = json.load(f)
    state = hf_state_dict(classifier)
    config = hf_config(classifier, base, labels)
    with open(os.path.join(output_dir, "config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2, sort_keys=True)
    save_file(state, os.path.join(output_dir, "model.safetensors"), metadata={"format": "pt"})
    written = ["config.json", "model.safetensors"]
    for name in TOKENIZER_FILES:
        source = os.path.join(preset_dir, name)
        if not os.path.isfile(source):
            continue
        target = os.path.join(output_dir, name)
        if name == "tokenizer.json":
            with open(source, encoding="utf-8") as f:
                tokenizer = json.load(f)
            tokenizer["truncation"] = None  # the checkpoint's file pads and cuts every text to 128 tokens
            tokenizer["padding"] = None
            with open(target, "w", encoding="utf-8") as f:
                json.dump(tokenizer, f, ensure_ascii=False)
        elif name == "tokenizer_config.json":
            with open(source, encoding="utf-8") as f:
                settings = json.load(f)
            settings["model_max_length"] = seq_length
            settings.pop("name_or_path", None)
            with open(target, "w", encoding="utf-8") as f:
                json.dump(settings, f, indent=2)
        else:
            shutil.copyfile(source, target)
        written.append(name)
    return {"directory": output_dir, "parameters": int(sum(v.size for v in state.values())),
            "hidden_act": config["hidden_act"], "files": written}

"""Tiny keras-hub preset directories written in the test, as ``save_to_preset`` writes them.

Imported by tests/models/test_presets.py and tests/training/test_init_preset.py.
"""

#: Dimensions of the test presets: small enough to build and train in seconds.
TINY = {"num_layers": 1, "hidden_dim": 16, "num_heads": 2, "intermediate_dim": 32, "max_sequence_length": 32}


def save_bert_preset(directory: str, vocab: list[str], lowercase: bool = True, **dims) -> str:
    """Writes a randomly initialised ``BertBackbone`` and a ``BertTokenizer`` over ``vocab`` to ``directory``.

    Args:
        directory: The preset directory (created).
        vocab: WordPiece tokens; the backbone's vocabulary size is their number.
        lowercase: The tokenizer's ``lowercase``.
        **dims: Backbone dimensions overriding :data:`TINY`.

    Returns:
        ``directory``.
    """
    import keras_hub

    backbone = keras_hub.models.BertBackbone(vocabulary_size=len(vocab), **{**TINY, **dims})
    backbone.save_to_preset(directory)
    keras_hub.models.BertTokenizer(vocabulary=list(vocab), lowercase=lowercase).save_to_preset(directory)
    return directory


def save_gpt2_preset(directory: str) -> str:
    """Writes a tiny ``GPT2Backbone`` preset (a backbone that is not BERT's) to ``directory``."""
    import keras_hub

    dims = {k: v for k, v in TINY.items()}
    keras_hub.models.GPT2Backbone(vocabulary_size=10, **dims).save_to_preset(directory)
    return directory


def save_hf_bert_directory(directory: str, vocab: list[str], lowercase: bool = True, prefix: str = "", seed: int = 0,
                           **dims) -> str:
    """Writes a randomly initialised Hugging Face ``transformers`` BERT directory, as ``save_pretrained`` does.

    ``config.json`` (``model_type`` bert), ``model.safetensors`` (written with the ``safetensors``
    package, tensor names and PyTorch layouts of ``BertModel``), ``vocab.txt`` and
    ``tokenizer_config.json``; no transformers or PyTorch needed.

    Args:
        directory: Created.
        vocab: WordPiece tokens (the vocabulary size is their number).
        lowercase: ``do_lower_case``.
        prefix: Prepended to every tensor name (``"bert."`` as ``BertForMaskedLM`` saves).
        seed: Of the random weights.
        **dims: keras-hub dimension names overriding :data:`TINY`.

    Returns:
        ``directory``.
    """
    import json
    import os

    import numpy as np
    from safetensors.numpy import save_file

    d = {**TINY, **dims}
    hidden, inner = d["hidden_dim"], d["intermediate_dim"]
    rng = np.random.default_rng(seed)

    def normal(*shape):
        return (rng.standard_normal(shape) * 0.2).astype(np.float32)

    tensors = {
        "embeddings.word_embeddings.weight": normal(len(vocab), hidden),
        "embeddings.position_embeddings.weight": normal(d["max_sequence_length"], hidden),
        "embeddings.token_type_embeddings.weight": normal(2, hidden),
        "embeddings.LayerNorm.weight": 1 + normal(hidden), "embeddings.LayerNorm.bias": normal(hidden),
        "pooler.dense.weight": normal(hidden, hidden), "pooler.dense.bias": normal(hidden),
    }
    for i in range(d["num_layers"]):
        layer = f"encoder.layer.{i}."
        for name in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            tensors[f"{layer}{name}.weight"], tensors[f"{layer}{name}.bias"] = normal(hidden, hidden), normal(hidden)
        tensors[f"{layer}intermediate.dense.weight"], tensors[f"{layer}intermediate.dense.bias"] = (
            normal(inner, hidden), normal(inner))
        tensors[f"{layer}output.dense.weight"], tensors[f"{layer}output.dense.bias"] = (
            normal(hidden, inner), normal(hidden))
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            tensors[f"{layer}{norm}.weight"], tensors[f"{layer}{norm}.bias"] = 1 + normal(hidden), normal(hidden)
    os.makedirs(directory, exist_ok=True)
    save_file({prefix + name: value for name, value in tensors.items()}, os.path.join(directory, "model.safetensors"))
    config = {
        "architectures": ["BertModel"], "model_type": "bert", "hidden_act": "gelu", "layer_norm_eps": 1e-12,
        "type_vocab_size": 2, "position_embedding_type": "absolute", "vocab_size": len(vocab),
        "num_hidden_layers": d["num_layers"], "hidden_size": hidden, "num_attention_heads": d["num_heads"],
        "intermediate_size": inner, "max_position_embeddings": d["max_sequence_length"], "pad_token_id": 0,
    }
    tokenizer_config = {
        "do_lower_case": lowercase, "strip_accents": None, "tokenize_chinese_chars": True,
        "tokenizer_class": "BertTokenizer", "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
        "cls_token": "[CLS]", "mask_token": {"content": "[MASK]", "lstrip": True},
    }
    for name, value in (("config.json", config), ("tokenizer_config.json", tokenizer_config)):
        with open(os.path.join(directory, name), "w", encoding="utf-8") as f:
            json.dump(value, f, indent=2)
    with open(os.path.join(directory, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("".join(token + "\n" for token in vocab))
    return directory

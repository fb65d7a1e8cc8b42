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

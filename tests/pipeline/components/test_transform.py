"""Transform's executor alone: the examples' tokenizer directory and label vocabulary copied into its
artifact, with the vocabulary's hash, size, casing and origin; examples without a tokenizer named."""

import filecmp
import json
import os
import shutil

import pytest

from llm_tf.pipeline import artifacts
from llm_tf.pipeline.components import Transform
from llm_tf.pipeline.errors import PipelineError
from llm_tf.pipeline.fingerprint import file_sha256
from tests.pipeline.components.harness import artifact, execute, ref

EXAMPLES = ref(artifacts.EXAMPLES, "ExampleGen", "examples")
ORIGIN = "preset bert_tiny (/checkpoints/bert_tiny/vocab.txt)"


def _examples(directory, vocab_dir: str, labels: str | None = "0\n1\n") -> str:
    """An ExampleGen artifact directory: ``tokenizer/`` (the conftest vocabulary) and ``labels.txt``."""
    shutil.copytree(vocab_dir, os.path.join(directory, "tokenizer"))
    if labels is not None:
        with open(os.path.join(directory, "labels.txt"), "w", encoding="utf-8") as f:
            f.write(labels)
    return str(directory)


def test_the_tokenizer_and_labels_are_published_with_the_vocabularys_facts(tmp_path, vocab_dir):
    examples = artifact(artifacts.EXAMPLES, _examples(tmp_path / "examples", vocab_dir), vocab_size=300,
                        preset="bert_tiny", vocab_origin=ORIGIN)
    run = execute(Transform(EXAMPLES), tmp_path, {"examples": examples})
    out = run.outputs["transform_graph"]
    vocab = os.path.join(out, "tokenizer", "vocab.txt")
    assert run.props("transform_graph") == {"kind": "wordpiece", "vocab_file": vocab,
                                            "vocab_sha256": file_sha256(os.path.join(vocab_dir, "vocab.txt")),
                                            "lower_case": True, "vocab_size": 300, "preset": "bert_tiny",
                                            "vocab_origin": ORIGIN}
    assert not filecmp.dircmp(vocab_dir, os.path.join(out, "tokenizer")).diff_files
    assert sorted(os.listdir(os.path.join(out, "tokenizer"))) == sorted(os.listdir(vocab_dir))
    with open(os.path.join(out, "labels.txt"), encoding="utf-8") as f:
        assert f.read() == "0\n1\n"
    assert run.result.metrics == {"vocab_size": 300}


def test_unlabelled_cased_examples_without_a_preset(tmp_path, vocab_dir):
    directory = _examples(tmp_path / "examples", vocab_dir, labels=None)
    config = os.path.join(directory, "tokenizer", "tokenizer_config.json")
    with open(config, encoding="utf-8") as f:
        settings = json.load(f)
    with open(config, "w", encoding="utf-8") as f:
        json.dump({**settings, "lower_case": False}, f)
    run = execute(Transform(EXAMPLES), tmp_path, {"examples": artifact(artifacts.EXAMPLES, directory, vocab_size=300)})
    assert os.listdir(run.outputs["transform_graph"]) == ["tokenizer"]
    props = run.props("transform_graph")
    assert props["lower_case"] is False and props["preset"] == "" and props["vocab_origin"] == ""


def test_examples_without_a_tokenizer_are_named(tmp_path):
    (tmp_path / "examples").mkdir()
    with pytest.raises(PipelineError, match=r"^input 'examples' \(Examples at .*/examples\) has no tokenizer$"):
        execute(Transform(EXAMPLES), tmp_path, {"examples": artifact(artifacts.EXAMPLES, tmp_path / "examples")})
    assert os.listdir(tmp_path / "out" / "transform_graph") == []

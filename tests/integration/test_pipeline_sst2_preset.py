"""The SST-2 sample pipeline from a pre-trained checkpoint (``--options=preset=DIR``), end to end.

The checkpoint is a tiny Hugging Face BERT directory written by the test (tests/preset_fixtures.py)
over the vocabulary llm_prepare learned on the shipped sample; the Quantizer is skipped.
"""

import io
import os

import numpy as np
import yaml

from llm_tf.pipeline.definitions import load_pipeline_module
from llm_tf.pipeline.fingerprint import file_sha256
from llm_tf.pipeline.runner import LocalRunner
from llm_tf.text.tokenizer import load_vocab
from tests.conftest import REPO
from tests.preset_fixtures import TINY, save_hf_bert_directory

COMPONENTS = ["ExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Transform", "Trainer", "Exporter",
              "Evaluator", "InfraValidator", "Pusher"]


def _module():
    return load_pipeline_module(str(REPO / "pipelines" / "sst2_sentiment.py"))


def test_sample_pipeline_fine_tunes_the_checkpoint_with_its_vocabulary_and_pushes(prepared_sample, tmp_path):
    vocab = load_vocab(os.path.join(prepared_sample, "tokenizer", "vocab.txt"))
    hf_dir = save_hf_bert_directory(str(tmp_path / "hf_bert"), vocab, max_sequence_length=64)  # seq_length 64
    serving = str(tmp_path / "serving" / "sst2")
    pipeline = _module().create_pipeline(str(tmp_path / "pipeline"), serving,
                                         options={"preset": hf_dir, "quantize": "false"})
    result = LocalRunner(out=io.StringIO()).run(pipeline)
    assert [c.component for c in result.components] == COMPONENTS and result.succeeded

    graph = result["Transform"].outputs["transform_graph"].properties
    assert graph["preset"] == hf_dir and graph["vocab_sha256"] == file_sha256(os.path.join(hf_dir, "vocab.txt"))

    model = result["Trainer"].outputs["model"]
    assert model.properties["step"] == 8
    with open(os.path.join(model.uri, "params.yaml"), encoding="utf-8") as f:
        params = yaml.safe_load(f)
    assert params["task"]["init_preset"] == hf_dir and params["task"]["data"]["bucketing"] is True
    # The encoder's dimensions are the checkpoint's (no task.model.size has them) and its weights were loaded.
    dims = {**TINY, "max_sequence_length": 64}
    assert {key: params["task"]["model"][key] for key in dims} == dims
    # 8 steps at 5e-5 from the checkpoint's weights stay next to them (a random start is ~0.2 away).
    from llm_tf.models import presets
    from llm_tf.training import model_dir as model_dir_lib

    start = presets.backbone_weights(presets.open_preset(hf_dir))["token_embedding/embeddings"]
    trained = model_dir_lib.restore_trained_model(model.uri, "latest").model.get_layer("encoder")
    np.testing.assert_allclose(trained.get_layer("token_embedding").embeddings.numpy(), start, atol=2e-3)
    assert result["Pusher"].metrics == {"pushed": True, "version": 1}
    assert sorted(os.listdir(serving)) == ["1"]

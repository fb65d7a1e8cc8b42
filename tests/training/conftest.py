"""Fixtures for training tests: the shipped SST-2-style sample, prepared once per session."""

import pytest

from llm_tf.data.prepare import PrepareConfig, prepare
from tests.conftest import REPO

SAMPLE = REPO / "samples" / "sst2_sample"

#: Overrides that make the tiny encoder fast on the sample.
FAST = "task.data.seq_length=32,task.data.global_batch_size=16,task.data.eval_batch_size=16"


@pytest.fixture(scope="session")
def prepared_sample(tmp_path_factory) -> str:
    """The sample prepared by llm_prepare's library call (train 60, eval 16)."""
    out = tmp_path_factory.mktemp("prepared") / "sst2"
    prepare(PrepareConfig(output_dir=str(out), inputs=[str(SAMPLE / "train.tsv")], eval_inputs=[str(SAMPLE / "dev.tsv")],
                          text_field="sentence", vocab_size=300))
    return str(out)

"""Shared inputs of the executor tests: the Exporter's executor run once on the tiny classifier.

Its output is the ``saved_model`` artifact that the Quantizer and InfraValidator tests consume,
as in a pipeline; test_exporter.py checks the run itself.
"""

import pytest

from llm_tf.pipeline import artifacts
from llm_tf.pipeline.components import Exporter
from tests.pipeline.components.harness import Executed, artifact, execute, ref


@pytest.fixture(scope="session")
def exported(trained_classifier, tmp_path_factory) -> Executed:
    """Exporter(model_name="sst2", warmup_requests=2) executed on ``trained_classifier``."""
    exporter = Exporter(ref(artifacts.MODEL, "Trainer", "model"), "sst2", warmup_requests=2)
    return execute(exporter, tmp_path_factory.mktemp("exporter"),
                   {"model": artifact(artifacts.MODEL, trained_classifier)})


@pytest.fixture(scope="session")
def saved_model(exported) -> artifacts.Artifact:
    """The Exporter's ``saved_model`` output as the input artifact of a downstream component."""
    return artifact(artifacts.SAVED_MODEL, exported.outputs["saved_model"], **exported.props("saved_model"))

"""Exporter's ``tflite_model`` property: model.tflite in the version (llm_export --tflite_model)."""

import os

from llm_tf.export import export_dir
from llm_tf.pipeline import artifacts
from llm_tf.pipeline.components import Exporter
from llm_tf.pipeline.components.exporter import version_dir
from tests.pipeline.components.harness import artifact, execute, ref

MODEL = ref(artifacts.MODEL, "Trainer", "model")


def test_tflite_model_is_a_property_only_when_set():
    assert "tflite_model" not in Exporter(MODEL, "m").properties
    assert Exporter(MODEL, "m", tflite_model="dynamic_int8").properties["tflite_model"] == "dynamic_int8"


def test_the_version_gets_model_tflite(tmp_path, trained_classifier):
    run = execute(Exporter(MODEL, "sst2", warmup_requests=0, tflite_model="float16"), tmp_path,
                  {"model": artifact(artifacts.MODEL, trained_classifier)})
    props = run.props("saved_model")
    assert props["tflite_model"] == "float16"
    saved = artifact(artifacts.SAVED_MODEL, run.outputs["saved_model"], **props)
    assert os.path.isfile(os.path.join(version_dir(saved), export_dir.MODEL_TFLITE_FILE))

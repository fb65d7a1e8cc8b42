"""Shared, cached inputs of the TFLite tests: one export of the tiny classifier, its variants.

Imported by tests/export/test_tflite_*.py and tests/bin/test_quantize.py; the cache keeps
the export and the conversions to one of each per test session.
"""

import os

import pytest

from tests.conftest import SHARED_DATA, SST2_SAMPLE

_CACHE: dict = {}


def eval_texts(limit: int = 48) -> tuple[list[str], list[str], str]:
    """SST-2 dev sentences and labels (the shipped sample's dev file when ../shared is absent)."""
    from llm_tf.export.representative import read_text_file

    path = SHARED_DATA / "sst2" / "dev.tsv"
    path = path if path.is_file() else SST2_SAMPLE / "dev.tsv"
    found = read_text_file(str(path), limit)
    return found.texts, found.labels, str(path)


@pytest.fixture(scope="session")
def exported_version(trained_classifier, tmp_path_factory) -> str:
    """Version directory of the tiny classifier exported by llm_export's library call."""
    if "version" not in _CACHE:
        from llm_tf.export import exporter

        base = tmp_path_factory.mktemp("tflite_models") / "sst2"
        _CACHE["version"] = exporter.export_saved_model(trained_classifier, str(base), warmup_count=0).path
    return _CACHE["version"]


@pytest.fixture(scope="session")
def loaded_export(exported_version):
    """The export loaded by tflite_convert.load_exported."""
    if "loaded" not in _CACHE:
        from llm_tf.export import tflite_convert

        _CACHE["loaded"] = tflite_convert.load_exported(exported_version)
    return _CACHE["loaded"]


@pytest.fixture(scope="session")
def converted(loaded_export, tmp_path_factory) -> dict:
    """Every form x variant converted, metadata embedded, written to files: name -> (path, Conversion)."""
    if "converted" not in _CACHE:
        from llm_tf.export import representative, tflite_convert, tflite_metadata

        calibration = representative.representative_texts(32, prepared_dir=loaded_export.prepared_dir).texts
        directory = tmp_path_factory.mktemp("tflite_variants")
        vocab = open(loaded_export.vocab_path, "rb").read()
        out = {}
        for form in tflite_convert.FORMS:
            for variant in tflite_convert.VARIANTS:
                conversion = tflite_convert.convert_variant(loaded_export, form, variant, calibration)
                path = os.path.join(directory, conversion.name + ".tflite")
                with open(path, "wb") as f:
                    f.write(tflite_metadata.with_model_files(conversion.content, loaded_export.labels, vocab,
                                                             tflite_convert.export_info_json(loaded_export, conversion)))
                out[conversion.name] = (path, conversion)
        _CACHE["converted"] = out
    return _CACHE["converted"]

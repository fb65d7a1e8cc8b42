"""Shared inputs of the TFLite tests: the eval sentences.

The fixtures these tests share (``exported_version``, ``loaded_export``, ``converted``: one
export of the tiny classifier and its TFLite variants, once per test session) live in
tests/conftest.py.
"""

from tests.conftest import SHARED_DATA, SST2_SAMPLE


def eval_texts(limit: int = 48) -> tuple[list[str], list[str], str]:
    """SST-2 dev sentences and labels (the shipped sample's dev file when ../shared is absent)."""
    from llm_tf.export.representative import read_text_file

    path = SHARED_DATA / "sst2" / "dev.tsv"
    path = path if path.is_file() else SST2_SAMPLE / "dev.tsv"
    found = read_text_file(str(path), limit)
    return found.texts, found.labels, str(path)

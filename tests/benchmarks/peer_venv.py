"""The peer virtualenv for tests that run PyTorch: its Python, and the skip marker when it is not built."""

import os

import pytest

from benchmarks import peers


def peer_python() -> str | None:
    """The peer venv's Python (``LLM_TF_PEER_VENV`` or the default), or None when it is not built."""
    record = peers.install_record()
    python = peers.venv_python(os.path.abspath(os.environ.get("LLM_TF_PEER_VENV") or peers.DEFAULT_VENV))
    return python if record and os.path.isfile(python) else None


#: Marks a test that needs the peer venv (benchmarks build it; CI does not).
requires_peer_venv = pytest.mark.skipif(
    peer_python() is None, reason="peer venv not built (python -c 'from benchmarks import peers; peers.ensure_venv()')")

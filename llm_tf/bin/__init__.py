"""absl entry points, one module per binary: parse flags, call the library."""

import logging as _logging
import os

from absl import logging as _absl_logging

# Binaries keep TensorFlow's C++ start-up chatter (e.g. "failed call to cuInit" on CPU-only
# machines) out of the terminal; set TF_CPP_MIN_LOG_LEVEL=0 to see it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

#: The environment switch of TensorFlow's oneDNN CPU kernels (read once, when TensorFlow loads).
ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"


def prefer_onednn() -> None:
    """Turns TensorFlow's oneDNN CPU kernels on unless ``TF_ENABLE_ONEDNN_OPTS`` is already set.

    TensorFlow enables oneDNN by default only on CPUs with AVX-512; on the AVX2 machines we
    measured (AMD EPYC, 2 cores) training ran 1.55-1.65x faster with it (tiny 151 vs 90, small
    9.0 vs 5.8 examples/s; benchmarks/results/training_throughput.md). Training binaries call
    this at import, before TensorFlow loads; ``TF_ENABLE_ONEDNN_OPTS=0`` keeps TF's kernels.
    oneDNN changes float rounding slightly (results are not bit-identical to a run without it).
    """
    os.environ.setdefault(ONEDNN_ENV, "1")


class _QuietLibraries(_logging.Filter):
    """Drops INFO records logged from inside TensorFlow/Keras (saver timings, ...); keeps ours."""

    def filter(self, record: _logging.LogRecord) -> bool:
        path = record.pathname.replace("\\", "/")
        return record.levelno >= _logging.WARNING or not ("/tensorflow/" in path or "/keras/" in path)


_absl_logging.get_absl_handler().addFilter(_QuietLibraries())

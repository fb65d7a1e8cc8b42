"""absl entry points, one module per binary: parse flags, call the library."""

import os

# Binaries keep TensorFlow's C++ start-up chatter (e.g. "failed call to cuInit" on CPU-only
# machines) out of the terminal; set TF_CPP_MIN_LOG_LEVEL=0 to see it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import logging as _logging

from absl import logging as _absl_logging


class _QuietLibraries(_logging.Filter):
    """Drops INFO records logged from inside TensorFlow/Keras (saver timings, ...); keeps ours."""

    def filter(self, record: _logging.LogRecord) -> bool:
        path = record.pathname.replace("\\", "/")
        return record.levelno >= _logging.WARNING or not ("/tensorflow/" in path or "/keras/" in path)


_absl_logging.get_absl_handler().addFilter(_QuietLibraries())

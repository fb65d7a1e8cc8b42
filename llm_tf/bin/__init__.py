"""absl entry points, one module per binary: parse flags, call the library."""

import logging as _logging
import os
import warnings

from absl import logging as _absl_logging

from llm_tf.bin.logfilter import noise_enabled

#: TensorFlow's C++ log level variable (0 info, 1 warning, 2 error, 3 fatal), read when TensorFlow loads.
TF_CPP_ENV = "TF_CPP_MIN_LOG_LEVEL"
#: What the user set (empty counts as unset); when unset, binaries derive it from --verbosity.
USER_TF_CPP_MIN_LOG_LEVEL = os.environ.get(TF_CPP_ENV, "").strip()
# TensorFlow's C++ INFO lines (CUDA probing, oneDNN and CPU-feature notices, SavedModel reader
# progress) are noise to a user; its warnings and errors are not: level 1 by default. Known
# noise at warning/error level is filtered by llm_tf.bin.logfilter. LLM_TF_LOG_NOISE=1 leaves
# TensorFlow's default (0: everything) and filters nothing.
if not USER_TF_CPP_MIN_LOG_LEVEL and not noise_enabled():
    os.environ[TF_CPP_ENV] = "1"

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


#: Python logging records dropped as known noise: (logger name prefix, message prefix, why).
PYTHON_NOISE = (
    ("matplotlib.font_manager", "Matplotlib is building the font cache",
     "a one-time notice on a fresh machine (llm_quantize and llm_prepare draw report plots)"),
)


#: Python warnings ignored as known noise: (message regex, category, why).
PYTHON_WARNINGS = (
    (r"\s*Warning: tf\.lite\.Interpreter is deprecated", UserWarning,
     "TensorFlow's full-int8 calibration runs tf.lite.Interpreter itself; our interpreters are LiteRT's"),
)
if not noise_enabled():
    for _message, _category, _ in PYTHON_WARNINGS:
        warnings.filterwarnings("ignore", message=_message, category=_category)


class _QuietLibraries(_logging.Filter):
    """Drops INFO records logged from inside TensorFlow/Keras (saver timings, ...) and :data:`PYTHON_NOISE`.

    Ours always pass. With --verbosity=1 (debug) TensorFlow/Keras INFO records pass too; with
    ``LLM_TF_LOG_NOISE=1`` everything passes.
    """

    def filter(self, record: _logging.LogRecord) -> bool:
        if noise_enabled():
            return True
        for logger, prefix, _ in PYTHON_NOISE:
            if record.name.startswith(logger) and str(record.msg).startswith(prefix):
                return False
        if record.levelno >= _logging.WARNING or _logging.root.getEffectiveLevel() <= _logging.DEBUG:
            return True
        path = record.pathname.replace("\\", "/")
        return not ("/tensorflow/" in path or "/keras/" in path)


_absl_logging.get_absl_handler().addFilter(_QuietLibraries())

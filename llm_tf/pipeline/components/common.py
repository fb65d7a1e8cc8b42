"""What several components share: input files (local or on a bucket), and how a checkpoint is recorded.

ExampleGen and TransferSetGen both take input files (globs allowed) whose contents enter their
cache keys, and a ``preset`` they record the same way; kept here so that neither imports the
other (ExampleGen reads a TransferSetGen artifact through :mod:`.transfer_set_gen`).
"""

import glob

from llm_tf import io_utils


def _glob(pattern: str) -> list[str]:
    if not io_utils.is_remote(pattern):
        return glob.glob(pattern)
    import tensorflow as tf

    io_utils.check_path(pattern)
    with io_utils.storage_errors(pattern):
        return tf.io.gfile.glob(pattern)


def expand_files(patterns: list[str]) -> list[str]:
    """Paths (local or ``scheme://``), globs expanded (sorted); a pattern without a match expands to nothing."""
    paths = []
    for pattern in patterns:
        paths.extend(sorted(_glob(pattern)) if any(c in pattern for c in "*?[") else [pattern])
    return paths


def preset_property(preset: str) -> str:
    """How components record a checkpoint: a named preset by its name, a directory by its
    absolute path (as ``presets.resolve_directory`` resolves it); empty stays empty."""
    from llm_tf.models import named_presets

    return preset if not preset or named_presets.is_named(preset) else io_utils.abspath(preset)

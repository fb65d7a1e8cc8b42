"""What several components share: local input files, and how a checkpoint is recorded.

ExampleGen and TransferSetGen both take input files (globs allowed) whose contents enter their
cache keys, and a ``preset`` they record the same way; kept here so that neither imports the
other (ExampleGen reads a TransferSetGen artifact through :mod:`.transfer_set_gen`).
"""

import glob
import os


def expand_files(patterns: list[str]) -> list[str]:
    """Local paths, globs expanded (sorted); a pattern without a match expands to nothing."""
    paths = []
    for pattern in patterns:
        paths.extend(sorted(glob.glob(pattern)) if any(c in pattern for c in "*?[") else [pattern])
    return paths


def preset_property(preset: str) -> str:
    """How components record a checkpoint: a named preset by its name, a directory by its
    absolute path (as ``presets.resolve_directory`` resolves it); empty stays empty."""
    from llm_tf.models import named_presets

    return preset if not preset or named_presets.is_named(preset) else os.path.abspath(preset)

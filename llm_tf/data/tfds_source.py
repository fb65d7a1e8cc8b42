"""TensorFlow Datasets as a source: ``--tfds=glue/sst2``, ``imdb_reviews``, ``conll2003``.

Rows come out with the same field names as the data set's features (class labels turned into
their names), so the rest of the data layer treats them like rows of a file. Known data sets
come with presets (which fields are the text, label, tokens and tags, and the eval split).
Loading needs the data set prepared or downloadable; these machines have no internet, so
tests use ``tfds.testing.mock_data``.
"""

import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np

from llm_tf.data.rows import Row
from llm_tf.errors import DataError


@dataclasses.dataclass(frozen=True)
class TfdsPreset:
    """Field mapping and splits of a known TFDS data set."""

    task: str
    train_split: str
    eval_split: str
    text_field: str = "text"
    label_field: str | None = "label"
    tokens_field: str = "tokens"
    tags_field: str = "tags"


PRESETS = {
    "glue/sst2": TfdsPreset("classification", "train", "validation", text_field="sentence"),
    "imdb_reviews": TfdsPreset("classification", "train", "test"),
    "conll2003": TfdsPreset("token_classification", "train", "dev", tags_field="ner", label_field=None),
}


def preset_for(name: str) -> TfdsPreset | None:
    """Returns the preset of ``name`` (a version suffix such as ``:1.0.0`` is ignored)."""
    return PRESETS.get(name.split(":")[0])


def tfds_rows(name: str, split: str, data_dir: str | None = None, download: bool = True) -> Iterator[Row]:
    """Streams a TFDS split as rows of Python strings.

    Args:
        name: The data set, e.g. ``glue/sst2``.
        split: The split, e.g. ``train`` or ``validation[:10%]``.
        data_dir: TFDS data directory (default: TFDS's own).
        download: Allow TFDS to download and prepare the data set.

    Yields:
        Rows whose ``source`` is ``tfds:<name>/<split>`` and ``line`` the 1-based index.

    Raises:
        DataError: The data set or split cannot be loaded (the reason is included).
    """
    import tensorflow_datasets as tfds

    source = f"tfds:{name}/{split}"
    try:
        builder = tfds.builder(name, data_dir=data_dir)
        if download:
            builder.download_and_prepare()
        dataset = builder.as_dataset(split=split)
    except Exception as e:  # TFDS raises many types (DatasetNotFoundError, ValueError, OSError...)
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{source}: cannot load from TensorFlow Datasets: {reason}") from None
    decoders = {key: _decoder(feature) for key, feature in builder.info.features.items()}
    for index, example in enumerate(tfds.as_numpy(dataset), start=1):
        fields = {key: decoders[key](value) for key, value in example.items() if key in decoders}
        yield Row(source, index, fields, _raw(fields))


def _decoder(feature):
    """Returns a function turning this feature's numpy value into str / list of str."""
    import tensorflow_datasets as tfds

    features = tfds.features
    inner = feature.feature if isinstance(feature, features.Sequence) else None
    if isinstance(feature, features.ClassLabel):
        return lambda v: feature.int2str(int(v))
    if inner is not None and isinstance(inner, features.ClassLabel):
        return lambda v: [inner.int2str(int(x)) for x in np.asarray(v).tolist()]
    return _to_python


def _to_python(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if isinstance(value, np.ndarray):
        return [_to_python(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _raw(fields: dict) -> str:
    import json

    return json.dumps(fields, ensure_ascii=False, default=str)

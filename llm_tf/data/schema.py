"""Schemas inferred from training statistics, and validation of new data against them.

A schema (``schema.json``) records the task, the features, the label domain, the length
bounds and the label distribution of the training split. :func:`validate` compares the
statistics of a new split with it and returns anomalies, in the spirit of TFDV:

* ``unseen_label``: a label outside the domain;
* ``empty_text``: rows whose text was empty (see :func:`rejected_anomalies`);
* ``length_drift``: median token (or character) length moved by more than a relative threshold;
* ``label_drift``: L-infinity distance between label distributions above a threshold;
* ``task_mismatch`` / ``missing_feature``: the data has another shape than the schema.
"""

import dataclasses
from collections.abc import Mapping
from typing import Any

from llm_tf.errors import DataError

SCHEMA_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """Drift thresholds for :func:`validate`.

    Attributes:
        label_drift: Max L-infinity distance between label distributions (0 to 1).
        length_drift: Max relative change of the median length (0.5 = +-50%).
    """

    label_drift: float = 0.1
    length_drift: float = 0.5


@dataclasses.dataclass(frozen=True)
class Anomaly:
    """One way the new data departs from the schema."""

    kind: str
    feature: str
    description: str

    def to_json(self) -> dict:
        """Returns the anomaly as a JSON-ready dict."""
        return dataclasses.asdict(self)


def infer_schema(stats: Mapping[str, Any], features: list[str], labels: list[str] | tuple[str, ...] | None) -> dict:
    """Builds a schema from the training split's statistics.

    Args:
        stats: Statistics of the training split (see ``statistics.StatisticsBuilder``).
        features: Canonical features present (e.g. ``["text", "label"]``).
        labels: The label vocabulary (domain), or None for unlabelled data.

    Returns:
        The schema as a JSON-ready dict.
    """
    schema: dict[str, Any] = {
        "version": SCHEMA_VERSION,
        "task": stats["task"],
        "features": {name: {"type": "string", "list": name in ("tokens", "tags"), "required": True}
                     for name in features},
        "count": stats["count"],
        "length": {"chars": _bounds(stats["chars"])},
    }
    if "tokens" in stats:
        schema["length"]["tokens"] = _bounds(stats["tokens"])
    if labels is not None:
        label_feature = "tags" if "tags" in features else "label"
        schema["features"][label_feature]["domain"] = list(labels)
        schema["label_distribution"] = {k: v["fraction"] for k, v in stats.get("labels", {}).items()}
    return schema


def _bounds(summary: Mapping[str, Any]) -> dict:
    return {k: summary[k] for k in ("min", "max", "p50", "mean") if k in summary}


def validate(stats: Mapping[str, Any], schema: Mapping[str, Any], thresholds: Thresholds = Thresholds(),
             features: list[str] | None = None) -> list[Anomaly]:
    """Compares a split's statistics with a schema.

    Args:
        stats: Statistics of the new split (``rejected`` counts are read when present).
        schema: A schema from :func:`infer_schema` (or ``schema.json``).
        thresholds: Drift thresholds.
        features: The canonical features the new data has (checked against the schema).

    Returns:
        The anomalies found (empty when the split conforms).

    Raises:
        DataError: The schema is not one we wrote.
    """
    if schema.get("version") != SCHEMA_VERSION or "features" not in schema:
        raise DataError(f"not an llm-tf schema (version {schema.get('version')!r}, expected {SCHEMA_VERSION})")
    anomalies: list[Anomaly] = []
    if stats.get("task") != schema["task"]:
        anomalies.append(Anomaly("task_mismatch", "",
                                 f"data is for task '{stats.get('task')}', schema for '{schema['task']}'"))
        return anomalies
    if features is not None:
        for name, spec in schema["features"].items():
            if spec.get("required") and name not in features:
                anomalies.append(Anomaly("missing_feature", name,
                                         f"feature '{name}' is required by the schema but absent"))
    label_feature, domain = next(
        ((name, spec["domain"]) for name, spec in schema["features"].items() if "domain" in spec), (None, None)
    )
    seen = stats.get("labels", {})
    if domain is not None:
        unseen = sorted(set(seen) - set(domain))
        if unseen:
            counts = ", ".join(f"'{label}' ({seen[label]['count']} rows)" for label in unseen[:10])
            anomalies.append(Anomaly("unseen_label", label_feature, f"labels outside the schema's domain: {counts}"))
        expected = schema.get("label_distribution", {})
        if expected and seen:
            names = set(expected) | set(seen)
            diffs = {n: abs(expected.get(n, 0.0) - seen.get(n, {}).get("fraction", 0.0)) for n in names}
            worst = max(diffs, key=diffs.get)
            if diffs[worst] > thresholds.label_drift:
                anomalies.append(Anomaly(
                    "label_drift", label_feature,
                    f"label distribution drifted: L-infinity distance {diffs[worst]:.3f} > {thresholds.label_drift} "
                    f"(label '{worst}': {expected.get(worst, 0.0):.3f} in schema, "
                    f"{seen.get(worst, {}).get('fraction', 0.0):.3f} now)",
                ))
    unit = "tokens" if "tokens" in schema["length"] and "tokens" in stats else "chars"
    expected_median = schema["length"][unit].get("p50")
    median = stats.get(unit, {}).get("p50")
    if expected_median and median is not None:
        change = (median - expected_median) / expected_median
        if abs(change) > thresholds.length_drift:
            anomalies.append(Anomaly(
                "length_drift", unit,
                f"median length in {unit} moved {change:+.0%} ({expected_median} in schema, {median} now; "
                f"threshold +-{thresholds.length_drift:.0%})",
            ))
    return anomalies


def rejected_anomalies(rejected_by_reason: Mapping[str, int]) -> list[Anomaly]:
    """Anomalies visible only in the rows the bad-row policy rejected (e.g. empty text).

    Args:
        rejected_by_reason: Reason kind to count, as in ``statistics.json``'s ``rejected``.
    """
    empty = sum(n for reason, n in rejected_by_reason.items() if reason.startswith("empty"))
    if empty:
        return [Anomaly("empty_text", "text", f"{empty} rows have empty text")]
    return []

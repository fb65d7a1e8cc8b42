"""Model Garden config values read as ours: the converters and value tables of ``model_garden_keys``.

A converter takes ``(value, key)`` (``key`` is the dotted Model Garden key, for the message) and
returns our value, :data:`SKIP` (nothing to set) or raises :class:`Invalid`, which
:func:`llm_tf.training.model_garden_keys.translate` turns into a ``ConfigError`` naming the source.
"""

import math
from collections.abc import Callable

#: A converter's "nothing to set" (e.g. a Model Garden None meaning "default").
SKIP = object()


class Invalid(Exception):
    """A converter's bad value (``translate`` names the source)."""


#: Model Garden's ``distribution_strategy`` values -> ours (``llm_tf.training.strategies``).
#: ``off`` (no strategy: TensorFlow's default one, also YAML's boolean ``off``) is our ``one_device``.
STRATEGIES = {"one_device": "one_device", "off": "one_device", "mirrored": "mirrored",
              "multi_worker_mirrored": "multi_worker_mirrored", "tpu": "tpu"}
#: Model Garden's ``mixed_precision_dtype`` -> our ``trainer.mixed_precision`` (Keras policy names).
MIXED_PRECISION = {"bfloat16": "mixed_bfloat16", "float16": "mixed_float16", "float32": ""}
#: Model Garden's eval metric names -> ours, for ``best_checkpoint_eval_metric``.
METRICS = {"cls_accuracy": "accuracy", "masked_lm_accuracy": "accuracy", "validation_loss": "loss"}


def integer(minimum: int) -> Callable:
    """A converter to an integer >= ``minimum`` (a whole float such as 1e3 is accepted, a bool is not)."""

    def convert(value, key):
        if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value) or value < minimum:
            raise Invalid(f"{key}: expected an integer >= {minimum}, got {value!r}")
        return int(value)

    return convert


def number(value, key):
    """Converter: a float (not a bool)."""
    try:
        if isinstance(value, bool):
            raise ValueError
        return float(value)
    except (TypeError, ValueError):
        raise Invalid(f"{key}: expected a number, got {value!r}") from None


def rate(value, key):
    """Converter: a float in [0, 1) (a dropout rate)."""
    value = number(value, key)
    if not 0 <= value < 1:
        raise Invalid(f"{key}: expected a rate in [0, 1), got {value}")
    return value


def boolean(value, key):
    """Converter: true or false, as given."""
    if not isinstance(value, bool):
        raise Invalid(f"{key}: expected true or false, got {value!r}")
    return value


def strategy(value, key):
    """Converter: ``runtime.distribution_strategy`` -> our ``runtime.strategy`` (:data:`STRATEGIES`)."""
    name = "off" if value is False else str(value).lower()
    if name not in STRATEGIES:
        hint = (" (parameter servers are not supported: use mirrored on one host or multi_worker_mirrored)"
                if name == "parameter_server" else "")
        raise Invalid(f"{key}: unknown strategy '{value}' (expected one of: {', '.join(STRATEGIES)}){hint}")
    return STRATEGIES[name]


def num_gpus(value, key):
    """Converter: ``runtime.num_gpus`` -> our ``runtime.num_devices``."""
    # 0 GPUs is Model Garden's "run on the CPU": one device here.
    return max(integer(0)(value, key), 1)


def mixed_precision(value, key):
    """Converter: ``runtime.mixed_precision_dtype`` -> our ``trainer.mixed_precision`` (:data:`MIXED_PRECISION`)."""
    if value is None:
        return ""
    if value not in MIXED_PRECISION:
        raise Invalid(f"{key}: unknown dtype '{value}' (expected one of: {', '.join(MIXED_PRECISION)})")
    return MIXED_PRECISION[value]


def validation_steps(value, key):
    """Converter: ``trainer.validation_steps`` (-1: the whole split) -> our ``trainer.eval_steps`` (0: the whole)."""
    steps = integer(-1)(value, key)
    if steps == 0:
        raise Invalid(f"{key}: expected -1 (the whole eval split) or a number of steps > 0, got 0")
    return 0 if steps == -1 else steps


def best_metric(value, key):
    """Converter: ``trainer.best_checkpoint_eval_metric`` -> our ``trainer.best_metric`` (:data:`METRICS`)."""
    if value in (None, ""):
        return SKIP  # Model Garden: no best checkpoint; ours always keeps one (by trainer.best_metric)
    return METRICS.get(value, value)


def optional(convert: Callable) -> Callable:
    """``convert``, with None read as "nothing to set" (:data:`SKIP`)."""
    return lambda value, key: SKIP if value is None else convert(value, key)


def same(a, b) -> bool:
    """Whether two config values are equal, numbers compared as floats (``1e3`` is ``1000``; bools exactly)."""
    if a == b:
        return True
    try:
        return not isinstance(a, bool) and not isinstance(b, bool) and math.isclose(float(a), float(b))
    except (TypeError, ValueError):
        return False

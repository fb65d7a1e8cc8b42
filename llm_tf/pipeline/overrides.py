"""Config overrides as pipeline definitions handle them: ``--params_override`` parsed into a
nested dict, and nested dicts merged (what a pipeline wires in, then what the user gives).

Example:
    >>> merge_overrides({"trainer": {"train_steps": 8}}, parse_overrides("trainer.optimizer.learning_rate=0.1"))
    {'trainer': {'train_steps': 8, 'optimizer': {'learning_rate': 0.1}}}
"""

from typing import Any

from llm_tf.errors import ConfigError


def parse_overrides(params_override: str | dict) -> dict[str, Any]:
    """``--params_override`` (dotted pairs, YAML/JSON or a YAML file) as a nested dict, as ``llm_train`` reads it.

    Raises:
        ConfigError: It does not parse (the text is named).
    """
    if isinstance(params_override, dict):
        return params_override
    if not params_override:
        return {}
    from official.modeling.hyperparams import params_dict

    parsed = params_dict.ParamsDict()
    try:
        params_dict.override_params_dict(parsed, params_override, is_strict=False)
    except Exception as e:  # noqa: BLE001 (yaml, tf.io.gfile and the CSV parser raise many types)
        raise ConfigError(f"--params_override: cannot parse '{params_override}': {e}") from None
    return parsed.as_dict()


def merge_overrides(base: dict, extra: dict) -> dict:
    """``base`` with ``extra`` merged in, key by key through nested dicts (``extra`` wins)."""
    merged = dict(base)
    for key, value in extra.items():
        both = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = merge_overrides(merged[key], value) if both else value
    return merged

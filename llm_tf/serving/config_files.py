"""Reads and writes TF Serving's config files (text protos) as :mod:`llm_tf.serving.config` settings.

``models.config`` (``--model_config_file``), ``batching_parameters.txt``
(``--batching_parameters_file``) and ``monitoring.config`` (``--monitoring_config_file``): the
embedded server reads the same files as ``tensorflow_model_server``. Like it, they may be on a
bucket (``gs://...``, through ``tf.io.gfile``).

Every loader raises :class:`llm_tf.errors.ConfigError` naming the file, the line where it can
tell, and the model or field at fault. Every writer validates first and writes atomically.

Example:
    >>> specs = [ModelSpec("sst2", "/models/sst2", version_labels={"stable": 1})]  # doctest: +SKIP
    >>> write_serving_configs("serving", specs, BatchingSpec(), MonitoringSpec())  # doctest: +SKIP
"""

import os
import re
from collections.abc import Sequence

from google.protobuf import message as message_lib
from google.protobuf import text_format

from llm_tf import io_utils
from llm_tf.errors import ConfigError, DataError
from llm_tf.io_utils import atomic_write_text
from llm_tf.serving import protos
from llm_tf.serving.config import (
    BatchingSpec,
    ModelSpec,
    MonitoringSpec,
    batching_parameters,
    batching_spec_from_proto,
    model_server_config,
    model_specs_from_proto,
    monitoring_config,
    monitoring_spec_from_proto,
    validate_batching,
    validate_model_specs,
    validate_monitoring,
)

MODEL_CONFIG_FILENAME = "models.config"
BATCHING_FILENAME = "batching_parameters.txt"
MONITORING_FILENAME = "monitoring.config"


def load_model_config(path: str) -> list[ModelSpec]:
    """Reads a ``--model_config_file`` (``ModelServerConfig`` text proto).

    Base paths are kept exactly as written, relative ones included (they are not resolved
    against the file's directory; ``tensorflow_model_server`` itself refuses relative base
    paths unless given ``--model_config_list_root_dir``).

    Args:
        path: The file.

    Returns:
        The models, in file order.

    Raises:
        ConfigError: The file is missing or unreadable, is not a valid text proto
            (``file:line:column: reason``), or a model is invalid (``file:line: model 'x':
            field: reason``, the line being that of the model's name where it can be found).
    """
    text = _read(path)
    proto = _parse(text, protos.ModelServerConfig(), path)
    try:
        return model_specs_from_proto(proto, path)
    except ConfigError as e:
        raise _with_model_line(e, text, path) from None


def write_model_config(path: str, specs: Sequence[ModelSpec]) -> None:
    """Validates ``specs`` and writes them atomically as a ``--model_config_file``.

    Args:
        path: The file to write; its directory must exist.
        specs: The models.

    Raises:
        ConfigError: See :func:`validate_model_specs` (nothing is written).
    """
    try:
        proto = model_server_config(specs)
    except ConfigError as e:
        raise ConfigError(f"{path}: {_strip_source(e, 'model config')}") from None
    _write(path, proto, "TF Serving model config (--model_config_file): tensorflow.serving.ModelServerConfig")


def load_batching_parameters(path: str) -> BatchingSpec:
    """Reads a ``--batching_parameters_file`` (``BatchingParameters`` text proto).

    Args:
        path: The file.

    Returns:
        The batching settings; absent fields take TF Serving's defaults.

    Raises:
        ConfigError: The file is missing, unparsable (``file:line:column: reason``) or
            inconsistent (``file:line: field: reason``).
    """
    text = _read(path)
    proto = _parse(text, protos.BatchingParameters(), path)
    try:
        return batching_spec_from_proto(proto, path)
    except ConfigError as e:
        raise _with_field_line(e, text, path) from None


def write_batching_parameters(path: str, spec: BatchingSpec) -> None:
    """Validates ``spec`` and writes it atomically as a ``--batching_parameters_file``.

    Args:
        path: The file to write; its directory must exist.
        spec: The batching settings.

    Raises:
        ConfigError: See :func:`validate_batching` (nothing is written).
    """
    try:
        proto = batching_parameters(spec)
    except ConfigError as e:
        raise ConfigError(f"{path}: {_strip_source(e, 'batching parameters')}") from None
    _write(path, proto, "TF Serving batching (--batching_parameters_file): tensorflow.serving.BatchingParameters",
           spell_out_zero_wrappers=True)


def load_monitoring_config(path: str) -> MonitoringSpec:
    """Reads a ``--monitoring_config_file`` (``MonitoringConfig`` text proto).

    Args:
        path: The file.

    Returns:
        The monitoring settings.

    Raises:
        ConfigError: The file is missing, unparsable (``file:line:column: reason``) or the
            path is invalid.
    """
    text = _read(path)
    proto = _parse(text, protos.MonitoringConfig(), path)
    try:
        return monitoring_spec_from_proto(proto, path)
    except ConfigError as e:
        raise _with_field_line(e, text, path) from None


def write_monitoring_config(path: str, spec: MonitoringSpec) -> None:
    """Validates ``spec`` and writes it atomically as a ``--monitoring_config_file``.

    Args:
        path: The file to write; its directory must exist.
        spec: The monitoring settings.

    Raises:
        ConfigError: See :func:`validate_monitoring` (nothing is written).
    """
    try:
        proto = monitoring_config(spec)
    except ConfigError as e:
        raise ConfigError(f"{path}: {_strip_source(e, 'monitoring config')}") from None
    _write(path, proto, "TF Serving monitoring (--monitoring_config_file): tensorflow.serving.MonitoringConfig")


def write_serving_configs(
    directory: str,
    specs: Sequence[ModelSpec],
    batching: BatchingSpec | None = None,
    monitoring: MonitoringSpec | None = None,
) -> dict[str, str]:
    """Writes models.config, batching_parameters.txt and monitoring.config into ``directory``.

    Everything is validated before the first file is written; each file is written
    atomically. Other files in ``directory`` are left alone.

    Args:
        directory: Output directory (created if missing).
        specs: The models.
        batching: Batching settings; None writes no batching file.
        monitoring: Monitoring settings; None writes no monitoring file.

    Returns:
        ``{"model_config_file": path, "batching_parameters_file": path,
        "monitoring_config_file": path}``, the keys named after TF Serving's flags, for the
        files written.

    Raises:
        ConfigError: Invalid settings (nothing is written) or ``directory`` is not a directory.
    """
    paths = {"model_config_file": os.path.join(directory, MODEL_CONFIG_FILENAME)}
    validate_model_specs(specs, paths["model_config_file"])
    if batching is not None:
        paths["batching_parameters_file"] = os.path.join(directory, BATCHING_FILENAME)
        validate_batching(batching, paths["batching_parameters_file"])
    if monitoring is not None:
        paths["monitoring_config_file"] = os.path.join(directory, MONITORING_FILENAME)
        validate_monitoring(monitoring, paths["monitoring_config_file"])
    try:
        io_utils.makedirs(directory)
    except OSError as e:
        raise ConfigError(f"{directory}: cannot create output directory: {e.strerror}") from None
    write_model_config(paths["model_config_file"], specs)
    if batching is not None:
        write_batching_parameters(paths["batching_parameters_file"], batching)
    if monitoring is not None:
        write_monitoring_config(paths["monitoring_config_file"], monitoring)
    return paths


def _read(path: str) -> str:
    if io_utils.is_remote(path):
        return _read_remote(path)
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, expected a text proto file") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None


def _read_remote(path: str) -> str:
    try:
        if not io_utils.exists(path):
            raise ConfigError(f"{path}: no such file")
        if io_utils.isdir(path):
            raise ConfigError(f"{path}: is a directory, expected a text proto file")
        return io_utils.read_text(path)
    except DataError as e:
        raise ConfigError(str(e)) from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def _parse(text: str, proto: message_lib.Message, path: str) -> message_lib.Message:
    try:
        return text_format.Parse(text, proto)
    except text_format.ParseError as e:
        line, column = e.GetLine(), e.GetColumn()
        reason = str(e)
        reason = reason.split(" : ", 1)[1] if " : " in reason else reason
        location = f"{path}:{line}:{column}" if line else path
        raise ConfigError(f"{location}: not a valid {proto.DESCRIPTOR.name} text proto: {reason}") from None


def _write(path: str, proto: message_lib.Message, title: str, spell_out_zero_wrappers: bool = False) -> None:
    header = f"# {title}\n# Written by llm_tf.serving.config; edit freely, text-proto syntax.\n"
    body = text_format.MessageToString(proto)
    # proto3 text leaves out a wrapper's zero value (`batch_timeout_micros {\n}`); spell it out.
    if spell_out_zero_wrappers:
        body = re.sub(r"^(\w+) \{\n\}$", r"\1 {\n  value: 0\n}", body, flags=re.MULTILINE)
    atomic_write_text(path, header + body)


def _strip_source(error: ConfigError, source: str) -> str:
    message = str(error)
    prefix = f"{source}: "
    return message[len(prefix):] if message.startswith(prefix) else message


def _with_model_line(error: ConfigError, text: str, path: str) -> ConfigError:
    """Adds the line of the offending model's ``name:`` to ``path: model 'x': ...``."""
    message = str(error)
    match = re.match(re.escape(path) + r": model '([^']*)'", message)
    if match:
        occurrence = 2 if "listed more than once" in message else 1
        line = _find_line(text, r"\bname\s*:\s*[\"']" + re.escape(match.group(1)) + r"[\"']", occurrence=occurrence)
        if line:
            return ConfigError(f"{path}:{line}:{message[len(path) + 1:]}")
    return error


def _with_field_line(error: ConfigError, text: str, path: str) -> ConfigError:
    """Adds the line of the offending field to ``path: field: ...``."""
    message = str(error)
    match = re.match(re.escape(path) + r": ([A-Za-z_.]+):", message)
    if match:
        field = match.group(1).rsplit(".", 1)[-1]
        occurrence = -1 if field == "allowed_batch_sizes" else 1  # a repeated field: point at its last line
        line = _find_line(text, r"\b" + re.escape(field) + r"\b", occurrence=occurrence)
        if line:
            return ConfigError(f"{path}:{line}:{message[len(path) + 1:]}")
    return error


def _find_line(text: str, pattern: str, occurrence: int = 1) -> int | None:
    """1-based line of the ``occurrence``-th (-1: last) line matching ``pattern`` outside comments."""
    lines = [n for n, line in enumerate(text.splitlines(), start=1) if re.search(pattern, line.split("#", 1)[0])]
    if occurrence == -1:
        return lines[-1] if lines else None
    return lines[occurrence - 1] if len(lines) >= occurrence else None

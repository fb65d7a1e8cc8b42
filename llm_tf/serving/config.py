"""TF Serving's config files as dataclasses: models.config, batching parameters, monitoring.

The three files are the text protos that ``tensorflow_model_server`` reads with
``--model_config_file`` (``ModelServerConfig``), ``--batching_parameters_file``
(``BatchingParameters``) and ``--monitoring_config_file`` (``MonitoringConfig``). This module
holds their settings (:class:`ModelSpec`, :class:`BatchingSpec`, :class:`MonitoringSpec`), TF
Serving's rules for them and the conversions to and from the protos;
:mod:`llm_tf.serving.config_files` reads and writes the files, so one set of files serves both
servers.

Every check raises :class:`llm_tf.errors.ConfigError` naming the source and the model or field
at fault.

Example:
    >>> specs = [ModelSpec("sst2", "/models/sst2", version_labels={"stable": 1})]
    >>> model_server_config(specs).model_config_list.config[0].version_labels["stable"]
    1
"""

import dataclasses
import os
import re
from collections.abc import Sequence

from absl import logging

from llm_tf.errors import ConfigError
from llm_tf.serving import protos

VERSION_POLICIES = ("latest", "all", "specific")
DEFAULT_PROMETHEUS_PATH = "/monitoring/prometheus/metrics"  # TF Serving's PrometheusExporter::kPrometheusPath

# What TF Serving uses for a field absent from the batching parameters file (TensorFlow's
# SharedBatchScheduler::QueueOptions and Options); num_batch_threads is the machine's parallelism.
TF_SERVING_BATCHING_DEFAULTS = {"max_batch_size": 1000, "batch_timeout_micros": 0, "max_enqueued_batches": 10}

_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")


@dataclasses.dataclass
class ModelSpec:
    """One model of a ``ModelServerConfig`` (``model_config_list { config { ... } }``).

    Attributes:
        name: Model name used in requests (``model_spec.name``); ``[A-Za-z0-9_.-]+``.
        base_path: Directory holding integer version subdirectories. Kept exactly as given:
            ``tensorflow_model_server`` requires it absolute (or relative to
            ``--model_config_list_root_dir``), so write absolute paths for the real server.
        version_policy: ``latest`` (the ``num_versions`` highest versions), ``all`` or
            ``specific`` (exactly ``versions``).
        num_versions: With ``latest``: how many versions to serve (>= 1).
        versions: With ``specific``: the versions to serve.
        version_labels: Label -> version (for example ``{"stable": 1, "canary": 2}``); requests
            may name a label instead of a version.
    """

    name: str
    base_path: str
    version_policy: str = "latest"
    num_versions: int = 1
    versions: tuple[int, ...] = ()
    version_labels: dict[str, int] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class BatchingSpec:
    """Server-side batching (``BatchingParameters``); used with ``--enable_batching``.

    The defaults are what we write. A file that leaves a field out gets TF Serving's default
    for it instead (:data:`TF_SERVING_BATCHING_DEFAULTS`), as ``tensorflow_model_server`` would.

    Attributes:
        max_batch_size: Largest batch the model runs (>= 1).
        batch_timeout_micros: How long a partial batch waits for more requests (>= 0).
        allowed_batch_sizes: Sizes batches are padded up to; increasing, the last equal to
            ``max_batch_size``. Empty: any size.
        num_batch_threads: Threads running batches (>= 1).
        max_enqueued_batches: Queue length in batches before requests are refused (>= 1).
        pad_variable_length_inputs: Pad inputs of different lengths to a common shape.
    """

    max_batch_size: int = 32
    batch_timeout_micros: int = 1000
    allowed_batch_sizes: tuple[int, ...] = ()
    num_batch_threads: int = 2
    max_enqueued_batches: int = 100
    pad_variable_length_inputs: bool = False


@dataclasses.dataclass
class MonitoringSpec:
    """Prometheus metrics endpoint (``MonitoringConfig.prometheus_config``) on the REST port.

    Attributes:
        enable: Expose metrics.
        path: URL path of the metrics (starts with ``/``).
    """

    enable: bool = True
    path: str = DEFAULT_PROMETHEUS_PATH


# ----------------------------------------------------------------------------- validation


def validate_model_specs(specs: Sequence[ModelSpec], source: str = "model config") -> None:
    """Checks what TF Serving would refuse, or would serve surprisingly.

    Args:
        specs: The models.
        source: What to name in messages (the file path).

    Raises:
        ConfigError: A duplicate or malformed name, an empty base path, an unknown policy,
            ``num_versions`` < 1, a ``specific`` policy without versions, a negative or
            repeated version, or a label that is malformed or names a version a ``specific``
            policy does not serve.
    """
    seen: set[str] = set()
    for spec in specs:
        where = f"{source}: model {spec.name!r}"
        if not spec.name or not _NAME_RE.match(spec.name):
            raise ConfigError(f"{where}: name: must be non-empty and use only letters, digits, '_', '.' and '-'")
        if spec.name in seen:
            raise ConfigError(f"{where}: name: listed more than once "
                              "(TF Serving: illegal to list a model multiple times)")
        seen.add(spec.name)
        if not spec.base_path or not spec.base_path.strip():
            raise ConfigError(f"{where}: base_path: must not be empty")
        if spec.version_policy not in VERSION_POLICIES:
            raise ConfigError(f"{where}: version_policy: {spec.version_policy!r} is not one of "
                              f"{', '.join(VERSION_POLICIES)}")
        if spec.version_policy == "latest" and spec.num_versions < 1:
            raise ConfigError(f"{where}: num_versions: must be >= 1, got {spec.num_versions}")
        if spec.version_policy == "specific":
            if not spec.versions:
                raise ConfigError(f"{where}: versions: the specific policy needs at least one version")
            if len(set(spec.versions)) != len(spec.versions):
                raise ConfigError(f"{where}: versions: {_join(spec.versions)} repeats a version")
        for version in spec.versions:
            if version < 0:
                raise ConfigError(f"{where}: versions: {version} is negative")
        for label, version in spec.version_labels.items():
            if not label or not _NAME_RE.match(label):
                raise ConfigError(f"{where}: version_labels: label {label!r} must be non-empty and use only letters, "
                                  "digits, '_', '.' and '-'")
            if label.isdigit():
                raise ConfigError(f"{where}: version_labels: label {label!r} is a number; it would read as a version")
            if version < 0:
                raise ConfigError(f"{where}: version_labels: label {label!r} points at negative version {version}")
            if spec.version_policy == "specific" and version not in spec.versions:
                raise ConfigError(f"{where}: version_labels: label {label!r} points at version {version}, which the "
                                  f"specific policy does not serve (versions: {_join(spec.versions)})")


def validate_batching(spec: BatchingSpec, source: str = "batching parameters") -> None:
    """Checks the batching parameters as TF Serving does when it loads a model.

    Args:
        spec: The parameters.
        source: What to name in messages (the file path).

    Raises:
        ConfigError: A size, count or timeout out of range, or ``allowed_batch_sizes`` not
            increasing or not ending at ``max_batch_size``.
    """
    for field, minimum in (("max_batch_size", 1), ("batch_timeout_micros", 0), ("num_batch_threads", 1),
                           ("max_enqueued_batches", 1)):
        value = getattr(spec, field)
        if value < minimum:
            raise ConfigError(f"{source}: {field}: must be >= {minimum}, got {value}")
    sizes = list(spec.allowed_batch_sizes)
    if not sizes:
        return
    if sizes[0] < 1:
        raise ConfigError(f"{source}: allowed_batch_sizes: entries must be >= 1, got {sizes[0]}")
    for previous, size in zip(sizes, sizes[1:]):
        if size <= previous:
            raise ConfigError(f"{source}: allowed_batch_sizes: entries must be increasing; {size} follows {previous}")
    if sizes[-1] != spec.max_batch_size:
        raise ConfigError(f"{source}: allowed_batch_sizes: last entry must equal max_batch_size; last entry was "
                          f"{sizes[-1]}; expected {spec.max_batch_size}")


def validate_monitoring(spec: MonitoringSpec, source: str = "monitoring config") -> None:
    """Checks the metrics path.

    Args:
        spec: The monitoring settings.
        source: What to name in messages (the file path).

    Raises:
        ConfigError: The path does not start with ``/`` or contains whitespace.
    """
    if not spec.path.startswith("/") or any(c.isspace() for c in spec.path):
        raise ConfigError(f"{source}: prometheus_config.path: {spec.path!r} must start with '/' and contain no spaces")


# ----------------------------------------------------------------------------- to and from protos


def model_server_config(specs: Sequence[ModelSpec]) -> "protos.ModelServerConfig":
    """Returns the ``ModelServerConfig`` proto of ``specs`` (validated).

    Args:
        specs: The models.

    Returns:
        A ``tensorflow.serving.ModelServerConfig`` with a ``model_config_list``.

    Raises:
        ConfigError: See :func:`validate_model_specs`.
    """
    validate_model_specs(specs)
    proto = protos.ModelServerConfig()
    models = proto.model_config_list
    models.SetInParent()
    for spec in specs:
        config = models.config.add(name=spec.name, base_path=spec.base_path, model_platform="tensorflow")
        policy = config.model_version_policy
        if spec.version_policy == "latest":
            policy.latest.num_versions = spec.num_versions
        elif spec.version_policy == "all":
            policy.all.SetInParent()
        else:
            policy.specific.versions.extend(spec.versions)
        for label, version in sorted(spec.version_labels.items(), key=lambda item: (item[1], item[0])):
            config.version_labels[label] = version
    return proto


def model_specs_from_proto(proto: "protos.ModelServerConfig", source: str = "model config") -> list[ModelSpec]:
    """Converts a parsed ``ModelServerConfig`` to validated :class:`ModelSpec` s.

    A policy left out, or ``latest`` without ``num_versions``, means the latest one version,
    as in TF Serving. ``logging_config`` is ignored (with a warning).

    Args:
        proto: The parsed config.
        source: What to name in messages (the file path).

    Returns:
        One spec per ``config`` entry, in file order.

    Raises:
        ConfigError: ``custom_model_config`` instead of ``model_config_list``, a platform
            other than ``tensorflow``, or anything :func:`validate_model_specs` refuses.
    """
    if proto.WhichOneof("config") != "model_config_list":
        kind = proto.WhichOneof("config") or "nothing"
        raise ConfigError(f"{source}: expected a model_config_list, found {kind}")
    specs = []
    for config in proto.model_config_list.config:
        where = f"{source}: model {config.name!r}"
        _check_platform(config, where)
        if config.HasField("logging_config"):
            logging.warning("%s: logging_config is ignored by llm_tf", where)
        policy = config.model_version_policy
        choice = policy.WhichOneof("policy_choice") or "latest"
        specs.append(ModelSpec(
            name=config.name,
            base_path=config.base_path,
            version_policy=choice,
            num_versions=max(policy.latest.num_versions, 1) if choice == "latest" else 1,
            versions=tuple(policy.specific.versions) if choice == "specific" else (),
            version_labels=dict(config.version_labels),
        ))
    validate_model_specs(specs, source)
    return specs


def _check_platform(config: "protos.ModelConfig", where: str) -> None:
    platform = config.model_platform
    if config.model_type:  # deprecated ModelType enum: 1 is TENSORFLOW
        if platform:
            raise ConfigError(f"{where}: set both model_type (deprecated) and model_platform; keep model_platform")
        platform = "tensorflow" if config.model_type == 1 else "other"
    if not platform:
        raise ConfigError(f"{where}: model_platform: missing (TF Serving requires model_platform: \"tensorflow\")")
    if platform != "tensorflow":
        raise ConfigError(f"{where}: model_platform: {platform!r} is not supported (only \"tensorflow\")")


def batching_parameters(spec: BatchingSpec) -> "protos.BatchingParameters":
    """Returns the ``BatchingParameters`` proto of ``spec`` (validated), every field set.

    Args:
        spec: The batching settings.

    Returns:
        A ``tensorflow.serving.BatchingParameters``.

    Raises:
        ConfigError: See :func:`validate_batching`.
    """
    validate_batching(spec)
    proto = protos.BatchingParameters()
    proto.max_batch_size.value = spec.max_batch_size
    proto.batch_timeout_micros.value = spec.batch_timeout_micros
    proto.max_enqueued_batches.value = spec.max_enqueued_batches
    proto.num_batch_threads.value = spec.num_batch_threads
    proto.allowed_batch_sizes.extend(spec.allowed_batch_sizes)
    proto.pad_variable_length_inputs = spec.pad_variable_length_inputs
    return proto


def batching_spec_from_proto(proto: "protos.BatchingParameters", source: str = "batching parameters") -> BatchingSpec:
    """Converts parsed ``BatchingParameters`` to a validated :class:`BatchingSpec`.

    Fields left out take TF Serving's defaults (:data:`TF_SERVING_BATCHING_DEFAULTS`; threads:
    the CPU count). ``thread_pool_name`` is ignored; ``enable_large_batch_splitting`` and
    ``max_execution_batch_size`` are ignored with a warning (the embedded server refuses
    requests larger than ``max_batch_size`` instead of splitting them).

    Args:
        proto: The parsed parameters.
        source: What to name in messages (the file path).

    Returns:
        The batching settings.

    Raises:
        ConfigError: See :func:`validate_batching`.
    """
    def value(field: str, default: int) -> int:
        return getattr(proto, field).value if proto.HasField(field) else default

    for field in ("enable_large_batch_splitting", "max_execution_batch_size"):
        if proto.HasField(field):
            logging.warning("%s: %s is ignored by the embedded server", source, field)
    defaults = TF_SERVING_BATCHING_DEFAULTS
    spec = BatchingSpec(
        max_batch_size=value("max_batch_size", defaults["max_batch_size"]),
        batch_timeout_micros=value("batch_timeout_micros", defaults["batch_timeout_micros"]),
        allowed_batch_sizes=tuple(proto.allowed_batch_sizes),
        num_batch_threads=value("num_batch_threads", os.cpu_count() or 1),
        max_enqueued_batches=value("max_enqueued_batches", defaults["max_enqueued_batches"]),
        pad_variable_length_inputs=proto.pad_variable_length_inputs,
    )
    validate_batching(spec, source)
    return spec


def monitoring_config(spec: MonitoringSpec) -> "protos.MonitoringConfig":
    """Returns the ``MonitoringConfig`` proto of ``spec`` (validated).

    Args:
        spec: The monitoring settings.

    Returns:
        A ``tensorflow.serving.MonitoringConfig``.

    Raises:
        ConfigError: See :func:`validate_monitoring`.
    """
    validate_monitoring(spec)
    proto = protos.MonitoringConfig()
    proto.prometheus_config.enable = spec.enable
    proto.prometheus_config.path = spec.path
    return proto


def monitoring_spec_from_proto(proto: "protos.MonitoringConfig", source: str = "monitoring config") -> MonitoringSpec:
    """Converts a parsed ``MonitoringConfig`` to a validated :class:`MonitoringSpec`.

    No ``prometheus_config`` means metrics are off; an empty path means TF Serving's default
    path (:data:`DEFAULT_PROMETHEUS_PATH`).

    Args:
        proto: The parsed config.
        source: What to name in messages (the file path).

    Returns:
        The monitoring settings.

    Raises:
        ConfigError: See :func:`validate_monitoring`.
    """
    prometheus = proto.prometheus_config
    spec = MonitoringSpec(enable=prometheus.enable, path=prometheus.path or DEFAULT_PROMETHEUS_PATH)
    validate_monitoring(spec, source)
    return spec


def _join(values: Sequence[int]) -> str:
    return ", ".join(str(v) for v in values)

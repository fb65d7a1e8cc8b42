"""TF Serving config messages the ``tensorflow-serving-api`` pip package does not ship.

``tensorflow-serving-api`` 2.20 has ``ModelServerConfig`` (``--model_config_file``) but not
``BatchingParameters`` (``--batching_parameters_file``, from
``tensorflow_serving/servables/tensorflow/session_bundle_config.proto``) nor
``MonitoringConfig`` (``--monitoring_config_file``, from
``tensorflow_serving/config/monitoring_config.proto``). This module declares both at import
time with TF Serving's package (``tensorflow.serving``), message names, field names, types and
numbers, so a text proto written for ``tensorflow_model_server`` parses here identically, and
what we write parses there.

The declarations live in a private descriptor pool: a later import of a package that registers
the real files in the default pool cannot clash with them.

Example:
    >>> from google.protobuf import text_format
    >>> from llm_tf.serving import protos
    >>> params = text_format.Parse("max_batch_size { value: 32 }", protos.BatchingParameters())
    >>> params.max_batch_size.value
    32
"""

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2
from tensorflow_serving.config import file_system_storage_path_source_pb2, model_server_config_pb2

_PACKAGE = "tensorflow.serving"
_F = descriptor_pb2.FieldDescriptorProto

# Config messages that the pip package does ship, re-exported so callers import one module.
ModelServerConfig = model_server_config_pb2.ModelServerConfig
ModelConfigList = model_server_config_pb2.ModelConfigList
ModelConfig = model_server_config_pb2.ModelConfig
ServableVersionPolicy = file_system_storage_path_source_pb2.FileSystemStoragePathSourceConfig.ServableVersionPolicy


def _field(name: str, number: int, type_: int, label: int = _F.LABEL_OPTIONAL, type_name: str = "") -> _F:
    field = _F(name=name, number=number, type=type_, label=label, json_name=_json_name(name))
    if type_name:
        field.type_name = type_name
    return field


def _json_name(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _batching_file() -> descriptor_pb2.FileDescriptorProto:
    """session_bundle_config.proto, reduced to BatchingParameters (the batching flag file's message)."""
    int64 = ".google.protobuf.Int64Value"
    proto = descriptor_pb2.FileDescriptorProto(
        name="tensorflow_serving/servables/tensorflow/session_bundle_config.proto",
        package=_PACKAGE,
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    message = proto.message_type.add(name="BatchingParameters")
    message.field.extend([
        _field("max_batch_size", 1, _F.TYPE_MESSAGE, type_name=int64),
        _field("batch_timeout_micros", 2, _F.TYPE_MESSAGE, type_name=int64),
        _field("max_enqueued_batches", 3, _F.TYPE_MESSAGE, type_name=int64),
        _field("num_batch_threads", 4, _F.TYPE_MESSAGE, type_name=int64),
        _field("thread_pool_name", 5, _F.TYPE_MESSAGE, type_name=".google.protobuf.StringValue"),
        _field("allowed_batch_sizes", 6, _F.TYPE_INT64, label=_F.LABEL_REPEATED),
        _field("pad_variable_length_inputs", 7, _F.TYPE_BOOL),
        _field("enable_large_batch_splitting", 8, _F.TYPE_MESSAGE, type_name=".google.protobuf.BoolValue"),
        _field("max_execution_batch_size", 9, _F.TYPE_MESSAGE, type_name=int64),
    ])
    return proto


def _monitoring_file() -> descriptor_pb2.FileDescriptorProto:
    """monitoring_config.proto: MonitoringConfig { PrometheusConfig prometheus_config = 1; }."""
    proto = descriptor_pb2.FileDescriptorProto(
        name="tensorflow_serving/config/monitoring_config.proto", package=_PACKAGE, syntax="proto3"
    )
    prometheus = proto.message_type.add(name="PrometheusConfig")
    prometheus.field.extend([
        _field("enable", 1, _F.TYPE_BOOL),
        _field("path", 2, _F.TYPE_STRING),
    ])
    monitoring = proto.message_type.add(name="MonitoringConfig")
    monitoring.field.append(
        _field("prometheus_config", 1, _F.TYPE_MESSAGE, type_name=f".{_PACKAGE}.PrometheusConfig")
    )
    return proto


def _build_pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    pool.Add(_batching_file())
    pool.Add(_monitoring_file())
    return pool


POOL = _build_pool()
"""The private descriptor pool holding the messages below (and google/protobuf/wrappers.proto)."""

BatchingParameters = message_factory.GetMessageClass(POOL.FindMessageTypeByName(f"{_PACKAGE}.BatchingParameters"))
"""``tensorflow.serving.BatchingParameters``: the message of ``--batching_parameters_file``."""

PrometheusConfig = message_factory.GetMessageClass(POOL.FindMessageTypeByName(f"{_PACKAGE}.PrometheusConfig"))
"""``tensorflow.serving.PrometheusConfig``: ``enable`` and ``path`` of the metrics endpoint."""

MonitoringConfig = message_factory.GetMessageClass(POOL.FindMessageTypeByName(f"{_PACKAGE}.MonitoringConfig"))
"""``tensorflow.serving.MonitoringConfig``: the message of ``--monitoring_config_file``."""

__all__ = [
    "BatchingParameters",
    "ModelConfig",
    "ModelConfigList",
    "ModelServerConfig",
    "MonitoringConfig",
    "POOL",
    "PrometheusConfig",
    "ServableVersionPolicy",
]

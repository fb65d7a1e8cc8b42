"""Tests for llm_tf/serving/protos.py: TF Serving's BatchingParameters and MonitoringConfig."""

import pytest
from google.protobuf import descriptor_pool, text_format
from google.protobuf.descriptor import FieldDescriptor as FD

from llm_tf.serving import protos

# tensorflow_serving/servables/tensorflow/session_bundle_config.proto (TF Serving 2.20).
BATCHING_FIELDS = {
    "max_batch_size": (1, FD.TYPE_MESSAGE, "google.protobuf.Int64Value"),
    "batch_timeout_micros": (2, FD.TYPE_MESSAGE, "google.protobuf.Int64Value"),
    "max_enqueued_batches": (3, FD.TYPE_MESSAGE, "google.protobuf.Int64Value"),
    "num_batch_threads": (4, FD.TYPE_MESSAGE, "google.protobuf.Int64Value"),
    "thread_pool_name": (5, FD.TYPE_MESSAGE, "google.protobuf.StringValue"),
    "allowed_batch_sizes": (6, FD.TYPE_INT64, None),
    "pad_variable_length_inputs": (7, FD.TYPE_BOOL, None),
    "enable_large_batch_splitting": (8, FD.TYPE_MESSAGE, "google.protobuf.BoolValue"),
    "max_execution_batch_size": (9, FD.TYPE_MESSAGE, "google.protobuf.Int64Value"),
}


def _fields(message_class):
    return {
        f.name: (f.number, f.type, f.message_type.full_name if f.message_type else None)
        for f in message_class.DESCRIPTOR.fields
    }


def test_batching_parameters_has_tf_serving_names_numbers_and_types():
    assert protos.BatchingParameters.DESCRIPTOR.full_name == "tensorflow.serving.BatchingParameters"
    assert _fields(protos.BatchingParameters) == BATCHING_FIELDS
    repeated = [f.name for f in protos.BatchingParameters.DESCRIPTOR.fields if f.is_repeated]
    assert repeated == ["allowed_batch_sizes"]


def test_monitoring_config_has_tf_serving_names_numbers_and_types():
    assert protos.MonitoringConfig.DESCRIPTOR.full_name == "tensorflow.serving.MonitoringConfig"
    assert _fields(protos.MonitoringConfig) == {
        "prometheus_config": (1, FD.TYPE_MESSAGE, "tensorflow.serving.PrometheusConfig")
    }
    assert _fields(protos.PrometheusConfig) == {"enable": (1, FD.TYPE_BOOL, None), "path": (2, FD.TYPE_STRING, None)}


def test_a_batching_file_written_for_tensorflow_model_server_parses():
    text = """
    # the example of TF Serving's batching guide
    max_batch_size { value: 128 }
    batch_timeout_micros { value: 0 }
    max_enqueued_batches { value: 1000000 }
    num_batch_threads { value: 8 }
    allowed_batch_sizes: 32
    allowed_batch_sizes: 128
    pad_variable_length_inputs: true
    thread_pool_name { value: "batch_threads" }
    """
    params = text_format.Parse(text, protos.BatchingParameters())
    assert params.max_batch_size.value == 128
    assert params.HasField("batch_timeout_micros") and params.batch_timeout_micros.value == 0
    assert not params.HasField("enable_large_batch_splitting")
    assert list(params.allowed_batch_sizes) == [32, 128]
    assert params.pad_variable_length_inputs is True
    assert params.thread_pool_name.value == "batch_threads"


def test_wire_format_matches_the_real_messages():
    params = protos.BatchingParameters()
    params.max_batch_size.value = 32
    params.allowed_batch_sizes.extend([8, 32])
    # field 1 (Int64Value{value: 32}), field 6 packed [8, 32] as proto3 encodes repeated int64.
    assert params.SerializeToString() == b"\x0a\x02\x08\x20" + b"\x32\x02\x08\x20"
    monitoring = protos.MonitoringConfig()
    monitoring.prometheus_config.enable = True
    monitoring.prometheus_config.path = "/m"
    assert monitoring.SerializeToString() == b"\x0a\x06\x08\x01\x12\x02/m"


def test_monitoring_text_parses_and_unknown_fields_are_refused():
    text = 'prometheus_config { enable: true, path: "/monitoring/prometheus/metrics" }'
    config = text_format.Parse(text, protos.MonitoringConfig())
    assert config.prometheus_config.enable and config.prometheus_config.path.endswith("/metrics")
    with pytest.raises(text_format.ParseError, match="no field named \"max_batch\""):
        text_format.Parse("max_batch { value: 1 }", protos.BatchingParameters())


def test_messages_live_in_a_private_pool_and_reexports_are_the_pip_package_classes():
    from tensorflow_serving.config import model_server_config_pb2

    assert protos.BatchingParameters.DESCRIPTOR.file.pool is protos.POOL
    with pytest.raises(KeyError):
        descriptor_pool.Default().FindMessageTypeByName("tensorflow.serving.MonitoringConfig")
    assert protos.ModelServerConfig is model_server_config_pb2.ModelServerConfig
    assert protos.ServableVersionPolicy.DESCRIPTOR.full_name.endswith("ServableVersionPolicy")

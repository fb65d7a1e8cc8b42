"""TF Serving's REST model status and metadata: the service's responses as TF Serving prints them."""

from typing import Any

from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2

from llm_tf.serving.errors import internal


def model_status_to_json(response: get_model_status_pb2.GetModelStatusResponse) -> dict:
    """Renders a ``GetModelStatusResponse`` as TF Serving does (fields with defaults included).

    Every version gets a ``status`` object (``{"error_code": "OK", "error_message": ""}``
    when the service left it unset).

    Args:
        response: The service's response.

    Returns:
        ``{"model_version_status": [{"version": "1", "state": "AVAILABLE", "status": {...}}]}``.
    """
    copy = get_model_status_pb2.GetModelStatusResponse()
    copy.CopyFrom(response)
    for version_status in copy.model_version_status:
        version_status.status.SetInParent()
    return json_format.MessageToDict(copy, always_print_fields_with_no_presence=True)


def signature_def_map(response: get_model_metadata_pb2.GetModelMetadataResponse) -> Any:
    """Unpacks the ``signature_def`` metadata of a ``GetModelMetadataResponse``.

    Args:
        response: The service's response.

    Returns:
        The ``SignatureDefMap`` proto.

    Raises:
        ServingError: INTERNAL when the metadata has no (or an unreadable) ``signature_def``.
    """
    if "signature_def" not in response.metadata:
        raise internal("Failed to find 'signature_def' key in the GetModelMetadataResponse metadata map.")
    out = get_model_metadata_pb2.SignatureDefMap()
    if not response.metadata["signature_def"].Unpack(out):
        raise internal("Failed to unpack 'Any' object to 'SignatureDefMap'.")
    return out


def model_metadata_to_json(response: get_model_metadata_pb2.GetModelMetadataResponse) -> dict:
    """Renders a ``GetModelMetadataResponse`` as TF Serving's REST API does.

    Args:
        response: The service's response (with ``signature_def`` metadata).

    Returns:
        ``{"model_spec": {...}, "metadata": {"signature_def": {"signature_def": {...}}}}``
        with proto field names preserved.

    Raises:
        ServingError: INTERNAL when the ``signature_def`` metadata is missing.
    """
    options = {"always_print_fields_with_no_presence": True, "preserving_proto_field_name": True}
    return {
        "model_spec": json_format.MessageToDict(response.model_spec, **options),
        "metadata": {"signature_def": json_format.MessageToDict(signature_def_map(response), **options)},
    }

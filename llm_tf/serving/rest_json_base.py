"""What TF Serving's REST JSON codecs share: request bodies in, response bodies out, JSON values.

The formats are the documented ones (https://www.tensorflow.org/tfx/serving/api_rest), with
TF Serving's own error texts, so a client sees the same JSON from ``tensorflow_model_server``
and from the embedded server. The codecs built on this module:

- :mod:`llm_tf.serving.rest_predict_request`: ``"instances"`` / ``"inputs"`` -> ``PredictRequest``.
- :mod:`llm_tf.serving.rest_predict_response`: ``PredictResponse`` -> ``"predictions"`` / ``"outputs"``.
- :mod:`llm_tf.serving.rest_classify_regress`: ``"examples"`` -> ``tf.Example`` s, results -> JSON.
- :mod:`llm_tf.serving.rest_status_metadata`: model status and metadata as TF Serving prints them.

Every request-level failure raises :class:`llm_tf.serving.errors.ServingError`.
"""

import base64
import binascii
import json
from typing import Any

from llm_tf.serving.errors import ServingError, invalid_argument

SIGNATURE_KEY = "signature_name"
BASE64_KEY = "b64"

# Error messages quote at most this much of the offending JSON value (as TF Serving does).
_MAX_DEBUG_CHARS = 256


def json_type_name(value: Any) -> str:
    """Returns the JSON type of a parsed value as TF Serving names it ("Number", "Array"...).

    Args:
        value: A value produced by ``json.loads``.

    Returns:
        One of Null, False, True, Object, Array, String, Number.
    """
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def debug_string(value: Any) -> str:
    """Returns compact JSON for ``value``, cut after 256 characters (for error messages).

    Args:
        value: A value produced by ``json.loads``.

    Returns:
        The (possibly truncated) JSON text.
    """
    out: list[str] = []
    size = 0
    encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=True)
    for chunk in encoder.iterencode(value):
        out.append(chunk)
        size += len(chunk)
        if size >= _MAX_DEBUG_CHARS:
            break
    return "".join(out)[:_MAX_DEBUG_CHARS]


def format_error(doc: Any, *parts: str) -> ServingError:
    """INVALID_ARGUMENT ``JSON Value: <doc> <parts>`` (TF Serving's "not formatted correctly" errors)."""
    return invalid_argument(f"JSON Value: {debug_string(doc)} " + "".join(parts))


def parse_json_object(body: bytes) -> dict:
    """Parses a request body that must be one JSON object.

    ``NaN``, ``Infinity`` and ``-Infinity`` are accepted as numbers (as TF Serving does).

    Args:
        body: The raw HTTP request body (UTF-8).

    Returns:
        The parsed object.

    Raises:
        ServingError: INVALID_ARGUMENT "JSON Parse error: ..." for an empty, undecodable or
            malformed body, or "... Is not object" when the document is not an object.
    """
    if not body.strip():
        raise invalid_argument("JSON Parse error: The document is empty")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise invalid_argument(f"JSON Parse error: Invalid encoding in string. at offset: {e.start}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise invalid_argument(f"JSON Parse error: {e.msg} at offset: {e.pos}") from None
    except (ValueError, RecursionError) as e:  # over-long integers, too deep nesting
        raise invalid_argument(f"JSON Parse error: {e}") from None
    if not isinstance(doc, dict):
        raise format_error(doc, "Is not object")
    return doc


def signature_name_from_json(doc: dict) -> str:
    """Returns the optional ``signature_name`` of a request ("" when absent).

    Args:
        doc: The parsed request object.

    Returns:
        The signature name, or "" (the server's default signature).

    Raises:
        ServingError: INVALID_ARGUMENT when ``signature_name`` is not a string.
    """
    value = doc.get(SIGNATURE_KEY, "")
    if not isinstance(value, str):
        raise invalid_argument(
            f"JSON Value: {debug_string(doc)} not formatted correctly. "
            "'signature_name' key must be a string value."
        )
    return value


def is_b64_object(value: Any) -> bool:
    """Whether ``value`` is ``{"b64": "<text>"}``."""
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(BASE64_KEY), str)


def decode_b64_object(value: Any) -> bytes:
    """Decodes ``{"b64": "<base64>"}`` (standard alphabet, padding optional).

    Args:
        value: A parsed JSON value.

    Returns:
        The decoded bytes.

    Raises:
        ServingError: INVALID_ARGUMENT when ``value`` is not such an object or not base64.
    """
    if not is_b64_object(value):
        raise format_error(value, "not formatted correctly for base64 data")
    text = value[BASE64_KEY]
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise invalid_argument("Unable to base64 decode") from None


def encode_utf8(value: str) -> bytes:
    """Encodes a JSON string as UTF-8; a lone surrogate escape is INVALID_ARGUMENT."""
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise invalid_argument(
            f"JSON Value: {debug_string(value)} is not valid Unicode (lone surrogate escape)"
        ) from None


def error_to_json(message: str) -> dict:
    """Returns TF Serving's error body ``{"error": message}``."""
    return {"error": message}


def dumps(obj: Any, indent: int | None = None) -> bytes:
    """Encodes a response object as UTF-8 JSON (``NaN``/``Infinity`` as TF Serving writes them).

    Args:
        obj: A JSON-ready object.
        indent: Pretty-print with this indent (None: one line).

    Returns:
        The encoded body, ending in a newline.
    """
    text = json.dumps(obj, ensure_ascii=False, allow_nan=True, indent=indent)
    # A lone surrogate (only possible when echoing request text) becomes a JSON \u escape.
    return text.encode("utf-8", errors="backslashreplace") + b"\n"

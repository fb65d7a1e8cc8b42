"""Labels, vocabulary and model facts embedded in a ``.tflite`` file.

Two places, so both kinds of reader find them:

* the flatbuffer's ``metadata`` field (``Model.metadata``: name -> buffer), entries
  :data:`LABELS_ENTRY`, :data:`VOCAB_ENTRY` and :data:`INFO_ENTRY` (JSON); read back with
  :func:`read_metadata` or any flatbuffers reader of the TFLite schema;
* associated files in a zip archive appended to the flatbuffer, the convention of TFLite
  Support's metadata (``unzip -l model.tflite`` lists ``labels.txt``, ``vocab.txt``,
  ``llm_tf_tflite.json``; Android's ``MetadataExtractor.getAssociatedFile`` reads them). The
  interpreter ignores the bytes after the flatbuffer.

``tflite_support``'s metadata writers are not used: its last release (0.4.4, 2023) pins
protobuf 3 and does not install beside TensorFlow 2.20. The schema comes from
``ai_edge_litert`` (``schema_py_generated``), which is a dependency already.
"""

import io
import zipfile

import flatbuffers

LABELS_ENTRY = "llm_tf.labels"
VOCAB_ENTRY = "llm_tf.vocab"
INFO_ENTRY = "llm_tf.info"
#: Associated file names in the appended zip, by metadata entry.
ASSOCIATED_FILES = {LABELS_ENTRY: "labels.txt", VOCAB_ENTRY: "vocab.txt", INFO_ENTRY: "llm_tf_tflite.json"}
_IDENTIFIER = b"TFL3"


def _schema():
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def embed_metadata(content: bytes, entries: dict[str, bytes],
                   associated_files: dict[str, bytes] | None = None) -> bytes:
    """Returns ``content`` with metadata entries added (replacing same-named ones) and files zipped on.

    Args:
        content: A ``.tflite`` flatbuffer (without an appended archive).
        entries: Metadata name -> bytes, stored in the flatbuffer's ``metadata`` field.
        associated_files: File name -> bytes, appended as a zip archive (None: none).

    Returns:
        The new ``.tflite`` bytes.
    """
    import numpy as np

    schema = _schema()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(content, 0))
    model.metadata = [m for m in (model.metadata or []) if m.name.decode("utf-8") not in entries]
    model.buffers = model.buffers or []
    for name, data in entries.items():
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(data, dtype=np.uint8)
        model.buffers.append(buffer)
        metadata = schema.MetadataT()
        metadata.name = name.encode("utf-8")
        metadata.buffer = len(model.buffers) - 1
        model.metadata.append(metadata)
    builder = flatbuffers.Builder(len(content) + sum(len(v) for v in entries.values()) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=_IDENTIFIER)
    out = bytes(builder.Output())
    if associated_files:
        stream = io.BytesIO()
        stream.write(out)
        with zipfile.ZipFile(stream, "a", compression=zipfile.ZIP_STORED) as archive:
            for name, data in associated_files.items():
                archive.writestr(name, data)
        out = stream.getvalue()
    return out


def read_metadata(content: bytes) -> dict[str, bytes]:
    """The flatbuffer's metadata entries, name -> bytes (the converter's own entries included).

    Args:
        content: ``.tflite`` bytes (an appended archive is ignored).

    Returns:
        Name -> bytes.
    """
    schema = _schema()
    model = schema.Model.GetRootAs(content, 0)
    out = {}
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        buffer = model.Buffers(entry.Buffer())
        out[entry.Name().decode("utf-8")] = buffer.DataAsNumpy().tobytes() if buffer.DataLength() else b""
    return out


def archive_offset(content: bytes) -> int:
    """Where the appended zip archive starts in ``content`` (``len(content)`` when there is none)."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            offsets = [info.header_offset for info in archive.infolist()]  # absolute: zipfile adds the prefix
    except zipfile.BadZipFile:
        return len(content)
    return min(offsets) if offsets else len(content)


def size_breakdown(content: bytes) -> dict:
    """What the bytes of a ``.tflite`` file are.

    Every buffer is counted once (subgraphs share them), under the first category that fits:

    * ``tokenizer_models``: constant inputs of custom ops (the tensorflow-text tokenizer and
      normaliser models of the ``text`` form);
    * ``constants``: other constant tensors by type (``float32``, ``float16``, ``int8``, ``int32``,
      ...): the weights, their precision as stored;
    * ``metadata``: the flatbuffer's metadata entries by name (``llm_tf.vocab``, ...);
    * ``associated_files``: the appended zip archive (``labels.txt``, ``vocab.txt``, ...);
    * ``other``: the rest: graph structure, tensor descriptions, alignment.

    Args:
        content: ``.tflite`` bytes.

    Returns:
        Dict with ``total`` and the categories above (bytes).
    """
    schema = _schema()
    model = schema.Model.GetRootAs(content, 0)
    type_names = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    metadata = {model.Metadata(i).Buffer(): model.Metadata(i).Name().decode("utf-8")
                for i in range(model.MetadataLength())}
    custom_codes = {i for i in range(model.OperatorCodesLength())
                    if max(model.OperatorCodes(i).BuiltinCode(), model.OperatorCodes(i).DeprecatedBuiltinCode())
                    == schema.BuiltinOperator.CUSTOM}
    tensor_type: dict[int, str] = {}
    custom_inputs: set[int] = set()
    for g in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(g)
        for t in range(subgraph.TensorsLength()):
            tensor = subgraph.Tensors(t)
            tensor_type.setdefault(tensor.Buffer(), type_names.get(tensor.Type(), str(tensor.Type())))
        for o in range(subgraph.OperatorsLength()):
            op = subgraph.Operators(o)
            if op.OpcodeIndex() in custom_codes:
                custom_inputs |= {subgraph.Tensors(i).Buffer() for i in op.InputsAsNumpy() if i >= 0}
    out = {"total": len(content), "tokenizer_models": 0, "constants": {}, "metadata": {}, "associated_files": 0}
    for b in range(model.BuffersLength()):
        buffer = model.Buffers(b)
        size = buffer.DataLength() or int(buffer.Size())
        if not size:
            continue
        if b in metadata:
            out["metadata"][metadata[b]] = size
        elif b in custom_inputs:
            out["tokenizer_models"] += size
        else:
            kind = tensor_type.get(b, "unreferenced")
            out["constants"][kind] = out["constants"].get(kind, 0) + size
    out["associated_files"] = len(content) - archive_offset(content)
    out["other"] = (len(content) - out["tokenizer_models"] - sum(out["constants"].values())
                    - sum(out["metadata"].values()) - out["associated_files"])
    return out


def read_associated_files(content: bytes) -> dict[str, bytes]:
    """The files of the zip archive appended to a ``.tflite``.

    Args:
        content: ``.tflite`` bytes.

    Returns:
        File name -> bytes (empty when there is no archive).
    """
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            return {name: archive.read(name) for name in archive.namelist()}
    except zipfile.BadZipFile:
        return {}


def with_model_files(content: bytes, labels: list[str], vocab: bytes, info_json: str) -> bytes:
    """Embeds labels, vocabulary and the model facts both as metadata entries and associated files.

    Args:
        content: The converter's ``.tflite`` bytes.
        labels: Label names in id order.
        vocab: The vocabulary file's bytes (``vocab.txt``; a SentencePiece model as is).
        info_json: JSON describing the variant (signatures, seq_length, tokenizer ids).

    Returns:
        The ``.tflite`` bytes to ship.
    """
    entries = {LABELS_ENTRY: "".join(label + "\n" for label in labels).encode("utf-8"),
               VOCAB_ENTRY: vocab, INFO_ENTRY: info_json.encode("utf-8")}
    return embed_metadata(content, entries, {ASSOCIATED_FILES[k]: v for k, v in entries.items()})

"""Denormal float32 weights of an ONNX graph set to zero before onnxruntime loads it.

A denormal (non-zero, below 1.18e-38 in magnitude) costs an x86 core a microcode assist on every
multiplication it takes part in, unless the thread runs with flush-to-zero and denormals-are-zero
set, which neither Python, numpy nor onnxruntime's calling thread does (onnxruntime's
``session.set_denormal_as_zero`` is applied once per process, from the first session created, to
the thread creating it). The Cydral age network holds 6,667 of them (1,332 in the 7×7 first
convolution, 5,335 in a 3×3 one), the gender network 145; YuNet and u2netp none. Measured on this
machine, one 64 px chip, one thread, onnxruntime 1.32 at ``ORT_ENABLE_ALL``: the age network took
10.3 ms as shipped and 1.3 ms with them zeroed, the gender network 0.34 ms either way
(docs/performance.md, Peers). Their products are some 30 orders of magnitude below the sums they
join, so the networks' outputs do not change: bit for bit the same on every face of
``../shared/testdata`` and ``../shared/devset`` (tests/models/test_weights.py checks it on the
test photos).

Edited on the wire (:mod:`faceflow.models.protowire`), as the detector's input shape is: only the
data of float initializers with denormals changes, every other byte of the model stays.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from faceflow.models import protowire

# ONNX's protobuf field numbers (onnx/onnx.proto): ModelProto.graph, GraphProto.initializer,
# TensorProto.data_type / float_data / raw_data, and TensorProto.DataType.FLOAT.
_MODEL_GRAPH = 7
_GRAPH_INITIALIZER = 5
_TENSOR_DATA_TYPE = 2
_TENSOR_FLOAT_DATA = 4
_TENSOR_RAW_DATA = 9
_FLOAT = protowire.encode_varint(1)


def without_denormal_weights(model: bytes) -> bytes:
    """``model`` (a serialized ONNX ModelProto) with every denormal float32 initializer value set
    to zero; the same bytes object when it has none."""
    edited = _edit_fields(model, _MODEL_GRAPH, _flushed_graph)
    return model if edited is None else edited


def _edit_fields(
    message: bytes, number: int, edit: Callable[[bytes], bytes | None]
) -> bytes | None:
    """``message`` with the payload of each length-delimited field ``number`` replaced by what
    ``edit`` makes of it (None: left as it is); None when no field changed."""
    edited = False
    fields: list[protowire.Field] = []
    for field in protowire.parse(message):
        if field.number == number and field.wire_type == protowire.LEN:
            payload = edit(field.payload)
            if payload is not None:
                field, edited = field._replace(payload=payload), True
        fields.append(field)
    return protowire.encode(fields) if edited else None


def _flushed_tensor(tensor: bytes) -> bytes | None:
    fields = protowire.parse(tensor)
    if not any(f.number == _TENSOR_DATA_TYPE and f.payload == _FLOAT for f in fields):
        return None
    edited = False
    for index, field in enumerate(fields):
        # raw_data, or float_data: packed (length-delimited) or, for one value, a fixed 32 bits;
        # either way the payload is the little-endian floats themselves.
        if field.number in (_TENSOR_RAW_DATA, _TENSOR_FLOAT_DATA) and field.wire_type in (
            protowire.LEN,
            protowire.I32,
        ):
            values = np.frombuffer(field.payload, dtype="<f4")
            denormal = (values != 0) & (np.abs(values) < np.finfo(np.float32).tiny)
            if denormal.any():
                flushed = values.copy()
                flushed[denormal] = 0
                fields[index] = field._replace(payload=flushed.tobytes())
                edited = True
    return protowire.encode(fields) if edited else None


def _flushed_graph(graph: bytes) -> bytes | None:
    return _edit_fields(graph, _GRAPH_INITIALIZER, _flushed_tensor)

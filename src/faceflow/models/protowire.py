"""Just enough of the protobuf wire format to edit a few fields of an ONNX graph in place.

The detector's graph needs its declared input size made symbolic before onnxruntime loads it
(:func:`faceflow.models.detector.with_symbolic_input_size`). Doing that with the ``onnx``
package cost every inference process ≈ 1.6 s of CPU at start (``onnx`` imports ``ml_dtypes``)
and ≈ 22 MB of memory for a single edit of shape declarations. A message here is a flat list
of its fields, each kept as the raw bytes it was read as, so editing one nested message and
encoding the list again leaves every other byte of the model as it was.

Supported: the wire types protobuf 3 writes (varint, 64-bit, length-delimited, 32-bit); the
deprecated group types are refused, and so is a truncated or malformed message.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

VARINT = 0
I64 = 1
LEN = 2
I32 = 5

_FIXED_SIZE = {I64: 8, I32: 4}


class Field(NamedTuple):
    """One field of a message: its number, wire type and payload.

    ``payload`` is a length-delimited field's content without its length prefix, a varint's
    encoded bytes, or a fixed-size field's 4 or 8 bytes.
    """

    number: int
    wire_type: int
    payload: bytes


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    """The varint at ``at`` and the offset just after it."""
    value = 0
    shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise ValueError("malformed protobuf: truncated or oversized varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def encode_varint(value: int) -> bytes:
    if value < 0:
        raise ValueError("negative varints are not used here")
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def parse(message: bytes) -> list[Field]:
    """The fields of ``message`` in the order they were written (ValueError if malformed)."""
    fields: list[Field] = []
    at = 0
    while at < len(message):
        tag, at = _read_varint(message, at)
        number, wire_type = tag >> 3, tag & 7
        if number == 0:
            raise ValueError("malformed protobuf: field number 0")
        if wire_type == VARINT:
            _, end = _read_varint(message, at)
            payload, at = message[at:end], end
        elif wire_type == LEN:
            size, at = _read_varint(message, at)
            payload = message[at : at + size]
            if len(payload) != size:
                raise ValueError("malformed protobuf: truncated length-delimited field")
            at += size
        elif wire_type in _FIXED_SIZE:
            size = _FIXED_SIZE[wire_type]
            payload = message[at : at + size]
            if len(payload) != size:
                raise ValueError("malformed protobuf: truncated fixed-size field")
            at += size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire_type}")
        fields.append(Field(number, wire_type, payload))
    return fields


def encode(fields: Iterable[Field]) -> bytes:
    """The message made of ``fields``, in order (the inverse of :func:`parse`)."""
    out = bytearray()
    for field in fields:
        out += encode_varint(field.number << 3 | field.wire_type)
        if field.wire_type == LEN:
            out += encode_varint(len(field.payload))
        out += field.payload
    return bytes(out)


def text(number: int, value: str) -> Field:
    """A string field."""
    return Field(number, LEN, value.encode())

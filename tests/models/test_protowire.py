"""The protobuf wire reader and writer the detector's graph edit uses."""

from __future__ import annotations

import pytest

from faceflow.models import protowire
from faceflow.models.protowire import I32, I64, LEN, VARINT, Field


@pytest.mark.parametrize(
    ("value", "encoded"),
    [(0, b"\x00"), (1, b"\x01"), (127, b"\x7f"), (128, b"\x80\x01"), (300, b"\xac\x02")],
)
def test_varints_encode_as_protobuf_writes_them(value: int, encoded: bytes) -> None:
    assert protowire.encode_varint(value) == encoded


def test_a_message_of_every_wire_type_parses_back_to_its_bytes() -> None:
    message = (
        b"\x08\x96\x01"  # 1: varint 150
        b"\x12\x07testing"  # 2: string
        b"\x19"
        + bytes(range(8))  # 3: 64-bit
        + b"\x25"
        + bytes(range(4))  # 4: 32-bit
        + b"\x12\x00"  # 2 again, empty
    )

    fields = protowire.parse(message)

    assert fields == [
        Field(1, VARINT, b"\x96\x01"),
        Field(2, LEN, b"testing"),
        Field(3, I64, bytes(range(8))),
        Field(4, I32, bytes(range(4))),
        Field(2, LEN, b""),
    ]
    assert protowire.encode(fields) == message


def test_a_nested_message_is_rewritten_with_its_new_length() -> None:
    inner = protowire.encode([protowire.text(2, "height")])
    outer = protowire.encode([Field(1, LEN, inner)])

    longer = protowire.encode([protowire.text(2, "a much longer name")])
    rewritten = protowire.encode([Field(1, LEN, longer)])

    assert protowire.parse(protowire.parse(rewritten)[0].payload) == [
        Field(2, LEN, b"a much longer name")
    ]
    assert len(rewritten) == len(outer) + len("a much longer name") - len("height")


@pytest.mark.parametrize(
    "message",
    [
        b"\x12\x07test",  # length beyond the end
        b"\x08\x96",  # varint cut off
        b"\x19\x00\x01",  # 64-bit field cut off
        b"\x0b",  # a group (wire type 3)
        b"\x00\x01",  # field number 0
        b"\x08" + b"\xff" * 11,  # a varint longer than 64 bits
    ],
)
def test_malformed_messages_are_refused(message: bytes) -> None:
    with pytest.raises(ValueError, match="protobuf"):
        protowire.parse(message)

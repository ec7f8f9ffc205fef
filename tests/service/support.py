"""Helpers for the HTTP tests: unique uploads, error-body checks, latency sampling."""

from __future__ import annotations

import struct
import uuid
from typing import Any

import httpx


def jpeg_with_comment(jpeg: bytes, text: str) -> bytes:
    """``jpeg`` with a COM segment inserted after SOI: new bytes (a new cache key), same pixels."""
    if jpeg[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")
    payload = text.encode()
    return jpeg[:2] + b"\xff\xfe" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def fresh(jpeg: bytes) -> bytes:
    """A never-seen variant of ``jpeg`` (same pixels, so the same faces)."""
    return jpeg_with_comment(jpeg, uuid.uuid4().hex)


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The ``error`` object of an error response, after checking the body has the one shape every
    faceflow error has: ``{"error": {"code": str, "message": str, ...}}``."""
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = response.json()
    assert isinstance(body, dict), body
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict), body
    assert isinstance(error.get("code"), str), body
    assert isinstance(error.get("message"), str), body
    assert error["message"], body
    return error


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """``response`` is an error with this status and code; returns its ``error`` object."""
    assert response.status_code == status, (response.status_code, response.text)
    error = error_of(response)
    assert error["code"] == code, error
    return error


def multipart_image(data: bytes, field: str = "image", filename: str = "upload.jpg") -> Any:
    """``files=`` for one image part (its content type is ignored by the server)."""
    return {field: (filename, data, "application/octet-stream")}

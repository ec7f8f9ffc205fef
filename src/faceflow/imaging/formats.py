"""Which image formats faceflow accepts, decided from magic bytes alone, and which it writes.

A file name or a Content-Type header is a claim made by the client; the first bytes are what the
decoder will actually see. So the format is sniffed here and nowhere else, and everything that is
not JPEG, PNG, WebP or GIF is refused before any decoder is involved.
"""

from __future__ import annotations

import re
from enum import StrEnum

from faceflow.errors import EmptyInput, JsonScalar, UnsupportedFormat


class ImageFormat(StrEnum):
    """An accepted input format. The value is the stable lower-case name used in APIs."""

    JPEG = "jpeg"
    PNG = "png"
    WEBP = "webp"
    GIF = "gif"

    @property
    def mime_type(self) -> str:
        return f"image/{self.value}"

    @property
    def lossless(self) -> bool:
        """True for the formats whose pixel budget is ``limits.max_pixels_lossless``.

        Lossless formats compress flat areas far better than JPEG, so the same upload size can
        hide many more pixels; they get the smaller budget.
        """
        return self is not ImageFormat.JPEG


_ALLOWED_NAMES = ("JPEG", "PNG", "WebP", "GIF")
ALLOWED_FORMATS = ", ".join(_ALLOWED_NAMES)
"""The formats an upload may be in, as the ``allowed`` detail of ``unsupported_format`` says."""


class OutputFormat(StrEnum):
    """A format faceflow encodes its images in. Here, not beside the encoder: options and
    requests name it in the API process, which never imports the encoder's numpy and Pillow."""

    JPEG = "jpeg"
    PNG = "png"

    @property
    def mime_type(self) -> str:
        return f"image/{self.value}"


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Formats people commonly send by mistake, named in the error so the client knows what happened.
_KNOWN_OTHERS: tuple[tuple[int, bytes, str], ...] = (
    (0, b"BM", "BMP"),
    (0, b"II*\x00", "TIFF"),
    (0, b"MM\x00*", "TIFF"),
    (0, b"%PDF-", "PDF"),
    (0, b"8BPS", "PSD"),
    (0, b"\x00\x00\x01\x00", "ICO"),
    (0, b"\xff\x0a", "JPEG XL"),
    (4, b"ftypheic", "HEIC"),
    (4, b"ftypheix", "HEIC"),
    (4, b"ftypmif1", "HEIF"),
    (4, b"ftypavif", "AVIF"),
    (4, b"JXL ", "JPEG XL"),
)


def sniff_format(data: bytes) -> ImageFormat:
    """Return the format announced by ``data``'s magic bytes.

    Only the signature is checked; whether the rest of the file is valid is the decoder's business.

    Raises:
        EmptyInput: ``data`` is empty.
        UnsupportedFormat: the signature is not one of JPEG, PNG, WebP or GIF (text, SVG, PDF,
            BMP, TIFF, HEIC, ...). The message names the allowed formats.
    """
    if not data:
        raise EmptyInput("the image is empty (0 bytes)")
    if data.startswith(b"\xff\xd8\xff"):
        return ImageFormat.JPEG
    if data.startswith(_PNG_SIGNATURE):
        return ImageFormat.PNG
    if data.startswith((b"GIF87a", b"GIF89a")):
        return ImageFormat.GIF
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ImageFormat.WEBP
    detected = _name_other(data)
    seen = f"this looks like {detected}, which is not supported" if detected else "unknown format"
    details: dict[str, JsonScalar] = {"allowed": ALLOWED_FORMATS}
    if detected:
        details["detected"] = detected
    if detected == FORM_FIELDS:
        raise UnsupportedFormat(
            "not an image but a form's fields (name=value&…): an HTML form posted without"
            ' enctype="multipart/form-data" sends the file\'s name, not the file; send the image'
            f" ({', '.join(_ALLOWED_NAMES)}) as multipart/form-data or as the raw request body",
            details,
        )
    raise UnsupportedFormat(
        f"unsupported image format ({seen}); send {', '.join(_ALLOWED_NAMES[:-1])} or"
        f" {_ALLOWED_NAMES[-1]}",
        details,
    )


FORM_FIELDS = "form fields"
"""``detected`` of an upload that is an URL-encoded form's fields: what an HTML form without
``enctype="multipart/form-data"`` sends (``image=photo.jpg``, the file's name alone). Told by
its bytes, not its Content-Type: ``curl --data-binary @photo.jpg`` labels a raw image so too."""

# A form's fields as browsers encode them (letters, digits and `*-._` as they are, a space as
# `+`, any other byte as `%XX`), then `~` and a trailing line end some clients add.
_FORM = re.compile(rb"[\w.*~%+-]+=[\w.*~%+-]*(?:&[\w.*~%+-]+=[\w.*~%+-]*)*\r?\n?")
_FORM_MAX_BYTES = 16 * 1024
"""Uploads longer are not tried as a form (a file input's name and a few text fields are a few
hundred bytes): the match runs on the event loop, and stays within microseconds."""


def _name_other(data: bytes) -> str | None:
    for offset, magic, name in _KNOWN_OTHERS:
        if data[offset : offset + len(magic)] == magic:
            return name
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith((b"<?xml", b"<svg", b"<!doctype svg")) and b"<svg" in head:
        return "SVG"
    if len(data) <= _FORM_MAX_BYTES and _FORM.fullmatch(data):
        return FORM_FIELDS
    return None

"""Format sniffing: magic bytes decide, nothing else."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from faceflow.errors import EmptyInput, UnsupportedFormat
from faceflow.imaging.formats import ImageFormat, sniff_format
from tests.fixtures.images import SVG


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", ImageFormat.JPEG),
        (b"\xff\xd8\xff\xe1\x00\x10Exif\x00", ImageFormat.JPEG),
        (b"\xff\xd8\xff\xdb\x00\x43\x00", ImageFormat.JPEG),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR", ImageFormat.PNG),
        (b"GIF87a\x10\x00\x10\x00", ImageFormat.GIF),
        (b"GIF89a\x10\x00\x10\x00", ImageFormat.GIF),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", ImageFormat.WEBP),
        (b"RIFF\x24\x00\x00\x00WEBPVP8L", ImageFormat.WEBP),
    ],
)
def test_magic_bytes_name_the_format(head: bytes, expected: ImageFormat) -> None:
    assert sniff_format(head + b"\x00" * 32) is expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("obama.jpg", ImageFormat.JPEG),
        ("cat.jpg", ImageFormat.JPEG),
        ("obama_rgba.png", ImageFormat.PNG),
        # Named .jpg but a WebP inside: the name must not matter.
        ("portrait_1.jpg", ImageFormat.WEBP),
    ],
)
def test_real_files_are_recognised_by_content_not_name(
    photo_bytes: Callable[[str], bytes], name: str, expected: ImageFormat
) -> None:
    assert sniff_format(photo_bytes(name)) is expected


@pytest.mark.parametrize(
    ("data", "detected"),
    [
        (b"hello, this is plain text\n", None),
        (b'{"image": "base64..."}', None),
        (SVG, "SVG"),
        (b"\xef\xbb\xbf  \n<svg xmlns='http://www.w3.org/2000/svg'></svg>", "SVG"),
        (b"<!DOCTYPE html><html><body>hi</body></html>", None),
        (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", "PDF"),
        (b"BM\x36\x00\x0c\x00\x00\x00\x00\x00\x36\x00\x00\x00", "BMP"),
        (b"II*\x00\x08\x00\x00\x00", "TIFF"),
        (b"MM\x00*\x00\x00\x00\x08", "TIFF"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", "HEIC"),
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00", "AVIF"),
        (b"RIFF\x24\x00\x00\x00AVI LIST", None),  # RIFF, but not WebP
        (b"\x89PNG\r\n", None),  # a cut-off PNG signature is not a PNG
        (b"GIF88a", None),
        (b"\xff\xd8", None),
        # An HTML form without enctype="multipart/form-data": the file's name, not the file.
        (b"image=photo.jpg", "form fields"),
        (b"image=my+photo+%281%29.jpg&spec=cn-1inch", "form fields"),
        (b"image=&note=\r\n", "form fields"),
        (b"image=photo.jpg&" + b"x" * 20_000 + b"=1", None),  # too long to be tried
        (b"image = photo.jpg", None),
    ],
)
def test_everything_else_is_unsupported_and_names_the_allowed_formats(
    data: bytes, detected: str | None
) -> None:
    with pytest.raises(UnsupportedFormat) as caught:
        sniff_format(data)
    error = caught.value
    assert (error.code, error.status) == ("unsupported_format", 415)
    for allowed in ("JPEG", "PNG", "WebP", "GIF"):
        assert allowed in error.message
    assert error.details.get("detected") == detected


def test_a_forms_fields_are_told_to_send_the_image_as_a_form_file_or_the_raw_body() -> None:
    # It said "unsupported image format (unknown format)", true of its bytes and no help.
    with pytest.raises(UnsupportedFormat) as caught:
        sniff_format(b"image=photo.jpg")

    assert caught.value.message == (
        "not an image but a form's fields (name=value&…): an HTML form posted without"
        ' enctype="multipart/form-data" sends the file\'s name, not the file; send the image'
        " (JPEG, PNG, WebP, GIF) as multipart/form-data or as the raw request body"
    )


def test_empty_input_is_its_own_error() -> None:
    with pytest.raises(EmptyInput) as caught:
        sniff_format(b"")
    assert (caught.value.code, caught.value.status) == ("empty", 400)


@pytest.mark.parametrize(
    ("fmt", "mime", "lossless"),
    [
        (ImageFormat.JPEG, "image/jpeg", False),
        (ImageFormat.PNG, "image/png", True),
        (ImageFormat.WEBP, "image/webp", True),
        (ImageFormat.GIF, "image/gif", True),
    ],
)
def test_format_properties(fmt: ImageFormat, mime: str, lossless: bool) -> None:
    assert fmt.mime_type == mime
    assert fmt.lossless is lossless

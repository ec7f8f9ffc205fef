"""Forms split whole (one image per request) come out exactly as python-multipart splits them as
they stream: the same parts, or the same refusal (service/upload.py)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faceflow.cache.keys import content_hash
from faceflow.errors import FaceflowError
from faceflow.service import upload
from faceflow.service.upload import (
    MAX_DELIMITERS,
    MAX_HEADER_OPTIONS,
    MAX_PART_HEADER_BYTES,
    Part,
    _memoised_options,
    _MultipartReader,
    _split_form,
    parse_options_header,
)

TOKEN = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'()+_,-./:=?"

boundaries = st.text(TOKEN, min_size=1, max_size=70).map(str.encode)


def mostly(usual: bytes, *unusual: bytes) -> st.SearchStrategy[bytes]:
    """``usual`` four times in five, else one of ``unusual``."""
    return st.sampled_from([usual] * (4 * len(unusual)) + list(unusual))


header_names = st.sampled_from([b"Content-Disposition", b"content-disposition", b"Content-Type"])
header_values = st.sampled_from(
    [
        b'form-data; name="image"; filename="upload.jpg"',
        b'form-data; name="image"',
        b"form-data; name=image",
        b'form-data; name="other"; filename="a.png"',
        b"image/jpeg",
        b"",
    ]
)
odd_headers = st.tuples(
    st.sampled_from([b"X-Note", b"Bad Name", b"", b"N\x00"]), st.binary(max_size=40)
)


@st.composite
def forms(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """A boundary and a form body: mostly as clients write them, often bent out of shape."""
    boundary = draw(boundaries)
    delimiter = b"--" + boundary
    body = draw(mostly(b"", b"\r\n", b"preamble\r\n"))
    for _ in range(draw(st.integers(0, 3))):
        body += delimiter + draw(mostly(b"\r\n", b"  \r\n", b"-", b"\n"))
        for _ in range(draw(st.integers(0, 3))):
            separator = draw(mostly(b": ", b":", b":  ", b" : ", b"\t:"))
            name, value = draw(header_names), draw(header_values)
            if draw(st.integers(0, 9)) == 0:
                name, value = draw(odd_headers)
            body += name + separator + value + b"\r\n"
        body += b"\r\n"
        inner = draw(mostly(b"", b"\r\n" + delimiter + b"x", b"\r\n--", b"\r"))
        body += draw(st.binary(max_size=200)) + inner + draw(st.binary(max_size=50))
        body += b"\r\n"
    body += delimiter + draw(mostly(b"--", b"--\r\n", b"--\r\nepilogue", b"", b"-x"))
    if draw(st.integers(0, 4)) == 0:  # cut short
        body = body[: draw(st.integers(0, len(body)))]
    return boundary, body


def _chunked(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(body), *(min(c, len(body)) for c in cuts)})
    return [body[a:b] for a, b in itertools.pairwise(points)]


def _read(boundary: bytes, chunks: list[bytes], whole: bool, hashed: str | None = None) -> object:
    content_type = f"multipart/form-data; boundary={boundary.decode()}"
    try:
        reader = _MultipartReader(content_type, whole=whole, hashed=hashed)
        for chunk in chunks:
            reader.write(chunk)
        return [(p.name, p.filename, p.content_type, p.data) for p in reader.finish()]
    except FaceflowError as exc:
        return (type(exc).__name__, exc.message)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(form=forms(), cuts=st.lists(st.integers(0, 2000), max_size=4))
def test_a_form_split_whole_gives_what_python_multipart_gives(
    form: tuple[bytes, bytes], cuts: list[int]
) -> None:
    boundary, body = form
    chunks = _chunked(body, cuts)
    # A disagreement would hand the cache and the model different bytes than the routes see.
    assert _read(boundary, chunks, whole=True) == _read(boundary, chunks, whole=False)
    # As the hot path reads it, twice: the second time its part's bytes may have been seen.
    expected = _read(boundary, chunks, whole=False)
    assert _read(boundary, chunks, whole=True, hashed="image") == expected
    assert _read(boundary, chunks, whole=True, hashed="image") == expected


def _one_image_form(boundary: bytes, data: bytes) -> bytes:
    return (
        b"--" + boundary + b"\r\n"
        b'Content-Disposition: form-data; name="image"; filename="a.jpg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n" + data + b"\r\n--" + boundary + b"--\r\n"
    )


def _hashed_parts(boundary: bytes, body: bytes) -> list[Part]:
    reader = _MultipartReader(
        f"multipart/form-data; boundary={boundary.decode()}", whole=True, hashed="image"
    )
    reader.write(body)
    return reader.finish()


def test_an_image_seen_before_is_split_without_a_scan_and_comes_with_its_hash() -> None:
    image = b"\xff\xd8\xff" + bytes(range(256)) * 40 + b"\xff\xd9"
    for boundary in (b"b0undary", b"other-boundary"):  # clients pick a new one each time
        [part] = _hashed_parts(boundary, _one_image_form(boundary, image))
        assert (part.name, part.filename, part.content_type) == ("image", "a.jpg", "image/jpeg")
        assert bytes(part.data) == image
        assert part.digest == content_hash(image)
    assert content_hash(image) in upload._clean


def test_a_form_with_a_field_beside_its_image_is_not_hashed_as_one_part() -> None:
    # A field before or after the image (requests and httpx write fields first): the bytes
    # from the first part's data to the last delimiter are no part, and hashing them would
    # hash the image twice; the split then scans, as for any form not yet seen.
    image = b"\xff\xd8\xff" + bytes(range(256)) * 40 + b"\xff\xd9"
    field = b'--zz\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n'
    picture = b"--zz\r\n" + _one_image_form(b"zz", image).split(b"\r\n", 1)[1]
    for body in (field + picture, picture.replace(b"\r\n--zz--\r\n", b"\r\n") + field + b"--zz--"):
        assert upload._seen_split(body, b"\r\n--zz", [], "image") is None
        parts = _hashed_parts(b"zz", body)
        assert sorted((p.name, bytes(p.data)) for p in parts) == [
            ("image", image),
            ("note", b"hello"),
        ]


def test_an_image_seen_before_still_ends_at_another_boundary_s_delimiter_inside_it() -> None:
    # Whole as the first form's one part (its own boundary is not in it), but holding a
    # delimiter of the second form's boundary: there python-multipart ends the part inside it
    # (and refuses the form, the delimiter being followed by neither CRLF nor "--").
    image = b"\xff\xd8 data \r\n--zz-X tail \xff\xd9"
    first = _one_image_form(b"b0undary", image)
    assert [bytes(p.data) for p in _hashed_parts(b"b0undary", first)] == [image]
    second = _one_image_form(b"zz-X", image)
    expected = _read(b"zz-X", [second], whole=False)
    assert _read(b"zz-X", [second], whole=True, hashed="image") == expected
    assert isinstance(expected, tuple)
    assert expected[0] == "InvalidParameter"


def test_forms_as_clients_write_them_are_split_without_python_multipart() -> None:
    # As httpx, curl -F and browsers write a one-image form: the cheap way must take it.
    body = (
        b"--b0undary\r\n"
        b'Content-Disposition: form-data; name="image"; filename="upload.jpg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n" + b"\xff\xd8\xff\r\n--b0undar" + b"\r\n--b0undary--\r\n"
    )
    parts: list[Part] = []
    assert _split_form(body, b"b0undary", parts)
    assert [(p.name, p.filename, p.content_type, p.data) for p in parts] == [
        ("image", "upload.jpg", "image/jpeg", b"\xff\xd8\xff\r\n--b0undar")
    ]


def test_a_form_full_of_delimiters_is_refused_before_python_multipart_reads_it() -> None:
    # python-multipart steps through every delimiter byte by byte in Python, on the event loop:
    # a 10 MB part of "\r\n--zz-X" held it 1.5-2.8 s. The form split whole hands it over past
    # its own bound, and either way it is refused unread.
    body = (
        b"--b0undary\r\n"
        b'Content-Disposition: form-data; name="image"\r\n\r\n'
        + b"\r\n--b0undary-" * (MAX_DELIMITERS + 1)
        + b"\r\n--b0undary--\r\n"
    )
    parts: list[Part] = []
    assert not _split_form(body, b"b0undary", parts)
    refused = (
        "InvalidParameter",
        "the form's boundary occurs more than 600 times: a boundary may not occur inside a part"
        " (RFC 2046)",
    )
    for whole in (True, False):
        assert _read(b"b0undary", [body], whole=whole) == refused
        assert _read(b"b0undary", _chunked(body, [len(body) // 3]), whole=whole) == refused


def _padded_form(padding: bytes) -> bytes:
    return (
        b'--b0undary\r\nContent-Disposition: form-data; name="note"\r\n\r\nhi\r\n--b0undary'
        + padding
        + b'\r\nContent-Disposition: form-data; name="image"\r\n\r\n\xff\xd8\xff\r\n--b0undary--'
    )


def test_padding_after_a_delimiter_is_bounded_however_the_body_is_cut() -> None:
    # python-multipart steps through padding one byte at a time: 10 MB of tabs after a form's
    # second delimiter held the event loop 2.2 s.
    allowed, refused = _padded_form(b" \t" * 32), _padded_form(b" \t" * 32 + b" ")
    start = allowed.index(b"\r\n--b0undary ")
    for cut in range(start, start + 90):
        for whole in (True, False):
            read = _read(b"b0undary", _chunked(allowed, [cut]), whole=whole)
            assert isinstance(read, list), (cut, read)
            assert [name for name, *_ in read] == ["note", "image"], (cut, read)
            refusal = _read(b"b0undary", _chunked(refused, [cut]), whole=whole)
            assert refusal == ("InvalidParameter", "more than 64 bytes of padding after a boundary")


def _form_of(parts: list[bytes]) -> bytes:
    return b"".join(b"--b0undary\r\n" + part for part in parts) + b"--b0undary--\r\n"


def test_part_headers_are_bounded_in_all_however_the_form_is_read() -> None:
    # python-multipart skips the spaces before a header's value one byte at a time: 299 parts of
    # 7 headers, each after 4,000 spaces (8.4 MB), held the event loop 1.6 s.
    spaced = b"".join(b"X-%d:" % i + b" " * 4000 + b"v\r\n" for i in range(7))
    body = _form_of([spaced + b'Content-Disposition: form-data; name="x"\r\n\r\nv\r\n'] * 299)
    refused = ("InvalidParameter", f"the form's part headers pass {MAX_PART_HEADER_BYTES} bytes")
    for whole in (True, False):
        assert _read(b"b0undary", _chunked(body, [70_000]), whole=whole) == refused
    # A batch as large as the setting allows (256 images) with long file names still fits.
    named = b'Content-Disposition: form-data; name="images"; filename="' + b"n" * 100
    batch = _form_of([named + b'.jpg"\r\nContent-Type: image/jpeg\r\n\r\nimg\r\n'] * 256)
    for whole in (True, False):
        read = _read(b"b0undary", _chunked(batch, [70_000]), whole=whole)
        assert isinstance(read, list), read
        assert len(read) == 256


def _form_at_the_header_limit(extra: int) -> tuple[bytes, int]:
    """A batch whose part headers are ``extra`` bytes over :data:`MAX_PART_HEADER_BYTES` (0: at
    it), its last part's data beginning as a delimiter does; and where those data begin."""

    def part(pad: int, data: bytes) -> bytes:
        head = b'Content-Disposition: form-data; name="images"\r\nX-Pad: ' + b"p" * pad
        return b"--b0undary\r\n" + head + b"\r\n\r\n" + data + b"\r\n"

    head_bytes = len(part(0, b"")) - len(b"--b0undary\r\n\r\n")  # counted of a part
    pad = 3900
    last_pad = MAX_PART_HEADER_BYTES + extra - 16 * (head_bytes + pad) - head_bytes
    body = b"".join([part(pad, b"img")] * 16) + part(last_pad, b"\r\n--b0unXimg")
    return body + b"--b0undary--\r\n", body.rindex(b"\r\n--b0unX")


def test_part_headers_are_counted_to_their_blank_line_however_the_data_after_are_cut() -> None:
    # Data beginning as a delimiter does, cut there, come first from python-multipart's own
    # copy of the delimiter: counted to the chunk's start then, their first bytes were counted
    # as headers, and a form at the limit was refused for some cuts.
    at_limit, data_at = _form_at_the_header_limit(0)
    over, _ = _form_at_the_header_limit(1)
    refused = ("InvalidParameter", f"the form's part headers pass {MAX_PART_HEADER_BYTES} bytes")
    for cut in range(data_at - 3, data_at + 12):
        for whole in (True, False):
            read = _read(b"b0undary", _chunked(at_limit, [cut]), whole=whole)
            assert isinstance(read, list), (cut, whole, read)
            assert read[-1][3] == b"\r\n--b0unXimg"
            assert _read(b"b0undary", _chunked(over, [cut]), whole=whole) == refused, cut


def test_a_header_of_many_semicolons_is_refused_before_it_is_walked() -> None:
    # python-multipart walks each ";"-separated piece in Python: a form's Content-Type of 60,000
    # semicolons held the event loop 38 ms a request.
    refused = (
        "InvalidParameter",
        "a multipart header (the form's Content-Type or a part's Content-Disposition) with"
        f" {MAX_HEADER_OPTIONS + 1} semicolons; at most {MAX_HEADER_OPTIONS} are read",
    )
    image = b'Content-Disposition: form-data; name="image"\r\n\r\nimg\r\n'
    body = _form_of([image])
    semicolons = ";" * (MAX_HEADER_OPTIONS - 1)
    for whole in (True, False):
        for content_type, refusal in (
            (f"multipart/form-data; boundary=b0undary{semicolons}", None),
            (f"multipart/form-data; boundary=b0undary{semicolons};", refused),
            (f"multipart/form-data; boundary=b0undary{';' * 60_000}", refused),
        ):
            try:
                reader = _MultipartReader(content_type, whole=whole)
                reader.write(body)
                read: object = [p.name for p in reader.finish()]
            except FaceflowError as exc:
                read = (type(exc).__name__, exc.message)
            if refusal is None:
                assert read == ["image"]
            else:
                assert isinstance(read, tuple)
                assert read[0] == "InvalidParameter"
                assert "semicolons" in str(read[1])
    # A part's Content-Disposition, whether the form is split whole or streamed.
    named = b'Content-Disposition: form-data; name="image"; filename="a' + b";" * 14 + b'.jpg"'
    for whole in (True, False):
        read = _read(b"b0undary", [_form_of([named + b"\r\n\r\nimg\r\n"])], whole=whole)
        assert isinstance(read, list), read
        assert read[0][:2] == ("image", "a" + ";" * 14 + ".jpg")
        read = _read(b"b0undary", [_form_of([named + b";\r\n\r\nimg\r\n"])], whole=whole)
        assert read == refused


def test_a_long_header_value_is_parsed_but_not_memoised() -> None:
    # A Content-Type may be as long as the headers (64 KiB); memoised whole, 400 requests with
    # one of 60 KB each grew the API process by 28 MB.
    _memoised_options.cache_clear()
    long_value = "multipart/form-data; boundary=abc; x=" + "y" * 60_000
    short_value = "multipart/form-data; boundary=abc"

    assert parse_options_header(long_value)[1][b"boundary"] == b"abc"
    assert parse_options_header(short_value)[1][b"boundary"] == b"abc"

    assert _memoised_options.cache_info().currsize == 1  # the short one only


def test_a_header_block_longer_than_a_part_may_have_is_left_to_python_multipart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # One image's form is split whole on the event loop: a part "header" of 10 MB of `a:b`
    # lines was copied and cut into 2 million lines (115 ms) before it was found too long.
    read_blocks: list[int] = []
    real = upload._head

    def recording(block: bytes) -> object:
        read_blocks.append(len(block))
        return real.__wrapped__(block)

    recording.__wrapped__ = recording  # type: ignore[attr-defined]
    monkeypatch.setattr(upload, "_head", recording)
    body = _form_of([b"a:b\r\n" * 200_000 + b"\r\nimg\r\n"])
    streamed = _read(b"b0undary", _chunked(body, [70_000]), whole=False)

    assert _read(b"b0undary", [body], whole=True) == streamed
    assert streamed == (
        "InvalidParameter",
        "malformed multipart body: Maximum header count exceeded",
    )
    assert max(read_blocks, default=0) <= upload._MAX_HEAD_BLOCK

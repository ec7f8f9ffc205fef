"""/v1/id-photo, /v1/id-photo/sheet and /v1/id-photo/specs through a real server
(routes/idphoto.py): exact sizes and DPI, backgrounds, the head placed by rule (the detector run
on the output), size caps, reports, print sheets, the cached matte, and refusals.

Queries are written out as a client would type them (``background=%23336699``). Every test but
the cache test uploads the plain test photos, so the server mattes each of them once and the rest
only renders.
"""

from __future__ import annotations

import base64
import io
import math
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from blake3 import blake3
from numpy.typing import NDArray
from PIL import Image

from faceflow.domain import Face
from faceflow.models.registry import ModelSet
from faceflow.pipeline.idphoto.nudge import nudge_ranges
from faceflow.pipeline.idphoto.specs import IdPhotoSpec, get_spec, list_specs
from faceflow.service.routes import idphoto as idphoto_routes
from tests.fixtures.environment import require
from tests.fixtures.idphoto import (
    FindFaces,
    assert_placed_by_rule,
    face_finder,
    opened,
    placement,
)
from tests.fixtures.live_server import LiveServer, Scrape
from tests.service.in_process import InProcess
from tests.service.support import assert_error, error_of, fresh

PHOTO = "/v1/id-photo"
SHEET = "/v1/id-photo/sheet"
STATUSES = {"pass", "warn", "fail"}
MATTE = "matte_task"
RENDER = "render_task"
SHEET_TASK = "sheet_task"

Photo = Callable[[str], bytes]


@pytest.fixture(scope="module")
def find_faces(model_set: ModelSet) -> FindFaces:
    return face_finder(model_set.detector)


@pytest.fixture(scope="module")
def photo(testdata: Path) -> Photo:
    """A shared test photo's bytes by name (the same bytes every time: one matte each)."""
    return lambda name: (testdata / name).read_bytes()


def post(client: httpx.Client, data: bytes, query: str = "", path: str = PHOTO) -> httpx.Response:
    """POST the upload as the raw body to ``path?query``, ``query`` sent exactly as written."""
    return client.post(f"{path}?{query}" if query else path, content=data)


def ok(response: httpx.Response, media_type: str) -> bytes:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == media_type
    return response.content


def jfif_density(data: bytes) -> tuple[int, int, int]:
    """(units, x, y) of the JFIF APP0 segment that must follow SOI; units 1 = dots per inch."""
    assert data[:4] == b"\xff\xd8\xff\xe0", data[:4]
    assert data[6:11] == b"JFIF\x00"
    units = data[13]
    x, y = struct.unpack(">HH", data[14:18])
    return units, x, y


def png_phys(data: bytes) -> tuple[int, int, int]:
    """(x, y, unit) of the PNG pHYs chunk; unit 1 = pixels per metre."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    offset = 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        if kind == b"pHYs":
            x, y, unit = struct.unpack(">IIB", data[offset + 8 : offset + 17])
            return x, y, unit
        if kind == b"IDAT":
            break  # pHYs must come before the image data
        offset += 12 + length
    raise AssertionError("no pHYs chunk before IDAT")


def assert_dpi(data: bytes, dpi: int) -> None:
    """The file says ``dpi`` where printers read it: JFIF density or PNG pHYs."""
    if data[:2] == b"\xff\xd8":
        assert jfif_density(data) == (1, dpi, dpi)
    else:
        per_metre = round(dpi / 0.0254)
        assert png_phys(data) == (per_metre, per_metre, 1)


def rgb_of(data: bytes) -> NDArray[np.int_]:
    return np.asarray(opened(data).convert("RGB")).astype(int)


def alpha_of(data: bytes) -> NDArray[np.uint8]:
    image = opened(data)
    assert image.mode == "RGBA"
    return np.asarray(image)[..., 3]


def border(array: NDArray[Any]) -> NDArray[Any]:
    """The outermost ring of pixels, top row, bottom row, then the side columns."""
    return np.concatenate([array[0], array[-1], array[1:-1, 0], array[1:-1, -1]])


@pytest.mark.parametrize(
    ("query", "media_type", "size", "dpi"),
    [
        ("spec=cn-1inch", "image/jpeg", (295, 413), 300),
        ("spec=cn-1inch&format=png", "image/png", (295, 413), 300),
        ("spec=icao", "image/jpeg", (413, 531), 300),
        ("spec=us-passport", "image/jpeg", (600, 600), 300),
        ("spec=us-passport&format=png", "image/png", (600, 600), 300),
        ("spec=cn-id-card", "image/jpeg", (358, 441), 350),
        ("spec=cn-id-card&format=png", "image/png", (358, 441), 350),
        # 40 × 50 mm at 600 dpi: 944.9 × 1181.1 px.
        ("width=40&height=50&unit=mm&dpi=600", "image/jpeg", (945, 1181), 600),
        ("width=480&height=640&unit=px&format=png", "image/png", (480, 640), 300),
        ("width=480&height=640&unit=px&dpi=200", "image/jpeg", (480, 640), 200),
    ],
)
def test_exact_size_and_dpi(
    client: httpx.Client,
    photo: Photo,
    query: str,
    media_type: str,
    size: tuple[int, int],
    dpi: int,
) -> None:
    data = ok(post(client, photo("portrait_2.jpg"), query), media_type)

    assert opened(data).size == size
    assert_dpi(data, dpi)


@pytest.mark.parametrize("name", ["portrait_1.jpg", "obama.jpg"])
@pytest.mark.parametrize(
    ("background", "colour"),
    [
        ("white", (255, 255, 255)),
        ("blue", (0x43, 0x8E, 0xDB)),
        ("red", (0xD9, 0x00, 0x1B)),
        ("%23336699", (0x33, 0x66, 0x99)),
    ],
)
def test_corners_and_edges_are_the_background(
    client: httpx.Client, photo: Photo, name: str, background: str, colour: tuple[int, int, int]
) -> None:
    upload = photo(name)
    png = ok(post(client, upload, f"background={background}&format=png"), "image/png")
    jpeg = ok(post(client, upload, f"background={background}"), "image/jpeg")
    clear = ok(post(client, upload, "format=png&transparent=true"), "image/png")

    alpha = alpha_of(clear)
    outside = border(alpha) == 0
    # The ring is mostly background (the shoulders reach the bottom), and always at the top
    # corners, so the checks below cannot pass on an empty selection.
    assert outside.mean() > 0.5
    assert alpha[0, 0] == alpha[0, -1] == 0
    expected = np.array(colour)
    assert np.abs(border(rgb_of(png))[outside] - expected).max() <= 2
    # JPEG: the top corners and the top row, away from the hair's edge, within JPEG's error.
    pixels = rgb_of(jpeg)
    assert np.abs(pixels[0] - expected).max() <= 8
    assert np.abs(pixels[: pixels.shape[0] // 4, [0, -1]] - expected).max() <= 8


def test_vertical_gradient_runs_from_the_colour_at_the_top_to_white(
    client: httpx.Client, photo: Photo
) -> None:
    upload = photo("portrait_1.jpg")
    faded = ok(
        post(client, upload, "spec=icao&background=blue&gradient=vertical&format=png"), "image/png"
    )
    clear = ok(post(client, upload, "spec=icao&format=png&transparent=true"), "image/png")

    pixels = rgb_of(faded)
    alpha = alpha_of(clear)
    height = pixels.shape[0]
    blue = np.array([0x43, 0x8E, 0xDB])
    assert np.abs(pixels[0, 0] - blue).max() <= 2
    for column in (0, -1):
        rows = np.flatnonzero(alpha[:, column] == 0)
        lowest = int(rows.max())
        # Background shows beside the head well below the top, so the fade is visible there.
        assert lowest > height // 3
        lighter = pixels[lowest, column] - pixels[0, column]
        assert lighter.min() > 0
        assert lighter[0] > 100  # red: 0x43 at the top, near 255 at the bottom
        # Every background pixel of the edge is the colour mixed with white by its height.
        t = (rows / (height - 1))[:, None]
        expected = blue * (1 - t) + 255 * t
        assert np.abs(pixels[rows, column] - expected).max() <= 2


@pytest.mark.parametrize("name", ["portrait_1.jpg", "portrait_2.jpg", "obama.jpg"])
@pytest.mark.parametrize("key", ["cn-1inch", "icao", "us-passport", "cn-id-card"])
def test_detector_on_the_output_finds_the_head_placed_by_rule(
    client: httpx.Client, photo: Photo, find_faces: FindFaces, name: str, key: str
) -> None:
    upload = photo(name)
    jpeg = ok(post(client, upload, f"spec={key}"), "image/jpeg")
    clear = ok(post(client, upload, f"spec={key}&format=png&transparent=true"), "image/png")

    spec = get_spec(key)
    assert_placed_by_rule(spec, placement(spec, jpeg, clear, find_faces))


def test_max_kb_is_honoured_and_the_file_decodes(client: httpx.Client, photo: Photo) -> None:
    upload = photo("portrait_1.jpg")
    unlimited = ok(post(client, upload, "spec=cn-1inch"), "image/jpeg")
    capped = post(client, upload, "spec=cn-1inch&max_kb=15")
    report = post(client, upload, "spec=cn-1inch&max_kb=15&response=json").json()

    data = ok(capped, "image/jpeg")
    assert len(unlimited) > 15 * 1000  # so the cap has work to do
    assert len(data) <= 15 * 1000  # KB of 1,000 bytes
    assert opened(data).size == (295, 413)
    assert_dpi(data, 300)
    assert data.endswith(b"\xff\xd9")
    assert capped.headers["X-Compliance"] in STATUSES
    assert report["bytes"] == len(data)
    assert report["quality"] < 95


def test_an_impossible_max_kb_is_refused_with_the_smallest_size_possible(
    client: httpx.Client, photo: Photo
) -> None:
    upload = photo("portrait_1.jpg")

    error = assert_error(post(client, upload, "spec=cn-1inch&max_kb=1"), 400, "invalid_parameter")

    smallest = error["min_achievable_kb"]
    assert isinstance(smallest, int)
    assert smallest > 1
    assert error["max_kb"] == 1
    # The size it names is achievable.
    data = ok(post(client, upload, f"spec=cn-1inch&max_kb={smallest}"), "image/jpeg")
    assert len(data) <= smallest * 1024
    assert opened(data).size == (295, 413)


def test_a_repeated_impossible_max_kb_is_answered_from_the_cache(
    client: httpx.Client, live_server: LiveServer, photo: Photo
) -> None:
    """It fails the same way every time (1.1 s of CPU on a 4000 × 4000 photo): a repeat is
    the cached failure, the same status, code and body, and runs nothing."""
    upload = fresh(photo("portrait_2.jpg"))
    first = post(client, upload, "spec=cn-1inch&max_kb=1")
    before = live_server.metrics()
    again = post(client, upload, "spec=cn-1inch&max_kb=1")
    after = live_server.metrics()

    assert_error(first, 400, "invalid_parameter")
    assert (again.status_code, again.content) == (first.status_code, first.content)
    assert (first.headers["X-Cache"], again.headers["X-Cache"]) == ("miss", "hit")
    for task in (MATTE, RENDER):
        for outcome in ("true", "false"):
            assert after.value("faceflow_inferences_total", task=task, ok=outcome) == (
                before.value("faceflow_inferences_total", task=task, ok=outcome)
            )


def test_a_photo_without_a_face_is_looked_at_once_for_every_size(
    client: httpx.Client, live_server: LiveServer, photo: Photo
) -> None:
    upload = fresh(photo("coffee.jpg"))
    first = post(client, upload, "spec=cn-1inch")
    before = live_server.metrics()
    others = [
        post(client, upload, "spec=cn-1inch"),
        post(client, upload, "spec=us-passport&background=blue"),
        post(client, upload, "sheet=6inch", path=SHEET),
    ]
    after = live_server.metrics()

    assert_error(first, 422, "no_face")
    for response in others:
        assert (response.status_code, response.content) == (first.status_code, first.content)
    assert [r.headers["X-Cache"] for r in others] == ["hit", "miss", "miss"]
    runs = "faceflow_inferences_total"
    assert after.value(runs, task=MATTE, ok="false") == before.value(runs, task=MATTE, ok="false")


def test_json_response_has_the_photo_and_its_report(client: httpx.Client, photo: Photo) -> None:
    upload = photo("portrait_2.jpg")
    image = post(client, upload, "spec=icao&background=blue")
    as_json = post(client, upload, "spec=icao&background=blue&response=json")

    data = ok(image, "image/jpeg")
    assert as_json.status_code == 200, as_json.text
    assert as_json.headers["content-type"] == "application/json"
    body = as_json.json()
    decoded = base64.b64decode(body["image_base64"], validate=True)
    assert decoded == data
    assert opened(decoded).size == (body["width"], body["height"]) == (413, 531)
    assert (body["media_type"], body["dpi"], body["bytes"]) == ("image/jpeg", 300, len(data))
    report = body["report"]
    checks = report["checks"]
    assert {"face_count", "head_height_ratio", "eye_line"} <= {c["name"] for c in checks}
    assert all(check["status"] in STATUSES for check in checks)
    worst = max((check["status"] for check in checks), key=["pass", "warn", "fail"].index)
    assert report["status"] == worst
    assert image.headers["X-Compliance"] == as_json.headers["X-Compliance"] == report["status"]


def test_a_photo_cut_above_the_shoulders_is_a_visible_fail(
    client: httpx.Client, testdata: Path
) -> None:
    # portrait_2 cut just below the chin: no framing inside China's 1-inch rules fits.
    source = Image.open(testdata / "portrait_2.jpg")
    cropped = io.BytesIO()
    source.crop((0, 0, source.width, 400)).save(cropped, "JPEG", quality=92)
    upload = cropped.getvalue()

    image = post(client, upload, "spec=cn-1inch")
    as_json = post(client, upload, "spec=cn-1inch&response=json")

    ok(image, "image/jpeg")
    assert image.headers["X-Compliance"] == "fail"
    assert as_json.status_code == 200, as_json.text
    assert as_json.headers["X-Compliance"] == "fail"
    checks = {c["name"]: c for c in as_json.json()["report"]["checks"]}
    cut = checks["subject_cut_off"]
    assert cut["status"] == "fail"
    assert "mm above the shoulder line" in cut["hint"]
    assert cut["hint_zh"]


def test_transparent_png_is_clear_at_the_corners_and_opaque_on_the_face(
    client: httpx.Client, photo: Photo
) -> None:
    data = ok(
        post(client, photo("portrait_2.jpg"), "spec=icao&format=png&transparent=true"), "image/png"
    )

    alpha = alpha_of(data)
    assert alpha.shape == (531, 413)
    assert alpha[0, 0] == alpha[0, -1] == 0
    # The bottom corners are the shoulders of a head-and-shoulders photo.
    assert alpha[-1, 0] == alpha[-1, -1] == 255
    assert alpha[531 // 2, 413 // 2] == 255
    assert_dpi(data, 300)


def test_six_inch_sheet_of_one_inch_photos_has_twelve_faces(
    client: httpx.Client, photo: Photo, find_faces: FindFaces
) -> None:
    upload = photo("portrait_2.jpg")
    query = "spec=cn-1inch&sheet=6inch&background=blue"
    single = post(client, upload, "spec=cn-1inch&background=blue")
    answers = [post(client, upload, query), post(client, upload, query, path=SHEET)]
    by_query, by_route = (ok(answer, "image/jpeg") for answer in answers)

    # A sheet says how its photo fares, as the photo does.
    assert {a.headers["X-Compliance"] for a in answers} == {single.headers["X-Compliance"]}

    # 4×6 in upright, 3 mm margins, 2 mm gaps: 3 columns × 4 rows of 25×35 mm.
    assert opened(by_query).size == (1200, 1800)
    assert_dpi(by_query, 300)
    assert len(find_faces(rgb_of(by_query).astype(np.uint8))) == 12
    assert by_route == by_query


def test_mixed_sheet_has_six_faces(
    client: httpx.Client, photo: Photo, find_faces: FindFaces
) -> None:
    response = post(client, photo("portrait_2.jpg"), "layout=cn-1inch:4,cn-2inch:2", path=SHEET)

    data = ok(response, "image/jpeg")
    assert sorted(opened(data).size) == [1200, 1800]
    assert_dpi(data, 300)
    assert len(find_faces(rgb_of(data).astype(np.uint8))) == 6


def test_sheet_of_a_350_dpi_preset_is_printed_at_300_dpi(
    client: httpx.Client, photo: Photo
) -> None:
    data = ok(post(client, photo("portrait_2.jpg"), "spec=cn-id-card&sheet=5inch"), "image/jpeg")

    assert opened(data).size == (1050, 1500)
    assert_dpi(data, 300)


def test_sheet_in_the_photo_route_keeps_the_format_asked_for(
    client: httpx.Client, photo: Photo
) -> None:
    data = ok(post(client, photo("portrait_2.jpg"), "sheet=6inch&format=png"), "image/png")

    assert opened(data).size == (1200, 1800)
    assert_dpi(data, 300)


def test_recolouring_a_cached_upload_runs_no_inference(
    client: httpx.Client, live_server: LiveServer, photo: Photo
) -> None:
    upload = fresh(photo("portrait_2.jpg"))
    start = live_server.metrics()

    first = post(client, upload, "spec=cn-1inch")
    after_first = live_server.metrics()
    others = [
        post(client, upload, query)
        for query in (
            "spec=cn-1inch&background=blue",
            "spec=icao&background=red",
            "spec=us-passport&background=%23336699&gradient=vertical",
            "spec=cn-1inch&format=png&transparent=true",
            "width=480&height=640&unit=px&format=png",
            "spec=cn-1inch&max_kb=20",
            "spec=cn-1inch&response=json",
        )
    ]
    sheet = post(client, upload, "sheet=6inch", path=SHEET)
    after_others = live_server.metrics()
    again = post(client, upload, "spec=cn-1inch")
    after_again = live_server.metrics()

    def runs(scrape: Scrape, task: str) -> float:
        return scrape.value("faceflow_inferences_total", task=task)

    ok(first, "image/jpeg")
    assert first.headers["X-Cache"] == "miss"
    assert runs(after_first, MATTE) == runs(start, MATTE) + 1
    assert runs(after_first, RENDER) == runs(start, RENDER) + 1
    for response in [*others, sheet]:
        assert response.status_code == 200, response.text
        assert response.headers["X-Cache"] == "miss"
    assert runs(after_others, MATTE) == runs(after_first, MATTE)
    assert runs(after_others, RENDER) == runs(after_first, RENDER) + len(others)
    assert runs(after_others, SHEET_TASK) == runs(after_first, SHEET_TASK) + 1
    assert again.headers["X-Cache"] == "hit"
    assert again.content == first.content
    for task in (MATTE, RENDER, SHEET_TASK):
        assert runs(after_again, task) == runs(after_others, task)


@pytest.mark.parametrize("path", [PHOTO, SHEET])
def test_two_faces_are_refused_with_the_count(
    client: httpx.Client, photo: Photo, path: str
) -> None:
    error = assert_error(post(client, photo("two_people.jpg"), path=path), 422, "multiple_faces")

    assert error["face_count"] == 2
    assert "choose one with the face option, 1 to 2 counted from the left" in error["message"]


@pytest.mark.parametrize("path", [PHOTO, SHEET])
def test_no_face_is_refused(client: httpx.Client, photo: Photo, path: str) -> None:
    assert_error(post(client, photo("coffee.jpg"), path=path), 422, "no_face")


@pytest.mark.parametrize(
    ("query", "path"),
    [("spec=passport", PHOTO), ("spec=passport", SHEET), ("layout=cn-1inch:2,passport:2", SHEET)],
)
def test_unknown_spec_is_refused_with_every_known_key(
    client: httpx.Client, photo: Photo, query: str, path: str
) -> None:
    error = assert_error(
        post(client, photo("portrait_2.jpg"), query, path), 400, "invalid_parameter"
    )

    assert error["parameter"] == "spec"
    assert "'passport'" in error["message"]
    for spec in list_specs():
        assert spec.key in error["message"]


@pytest.mark.parametrize(
    "background", ["purple", "%23GG0000", "%2312345", "%23", "%231234567", "rgb(1,2,3)"]
)
def test_bad_background_is_refused(client: httpx.Client, photo: Photo, background: str) -> None:
    response = post(client, photo("portrait_2.jpg"), f"background={background}")

    assert assert_error(response, 400, "invalid_parameter")["parameter"] == "background"


@pytest.mark.parametrize(
    ("query", "path"),
    [
        ("format=jpeg&transparent=true", PHOTO),
        ("format=png&max_kb=20", PHOTO),
        ("width=30", PHOTO),
        ("width=30&height=40&unit=px", PHOTO),
        ("width=30&height=200", PHOTO),
        ("gradient=diagonal", PHOTO),
        ("format=gif", PHOTO),
        ("max_kb=0", PHOTO),
        ("sheet=letter", PHOTO),
        ("sheet=6inch&format=png&transparent=true", PHOTO),
        ("sheet=letter", SHEET),
        ("layout=cn-1inch", SHEET),
        ("layout=cn-1inch:0", SHEET),
        ("layout=cn-2inch:9", SHEET),
    ],
)
def test_bad_options_are_refused(client: httpx.Client, photo: Photo, query: str, path: str) -> None:
    assert_error(post(client, photo("portrait_2.jpg"), query, path), 400, "invalid_parameter")


@pytest.mark.parametrize(
    "layout",
    [
        "cn-1inch",  # no count
        "cn-1inch:0",
        "cn-1inch:500",
        "cn-2inch:9",  # 9 do not fit a 6-inch sheet
    ],
)
def test_a_sheet_s_bad_layout_is_named_as_the_parameter_at_fault(
    client: httpx.Client, photo: Photo, layout: str
) -> None:
    # The sheet plan names its own arguments ("count", or none for what fits); the client sent
    # `layout`.
    response = post(client, photo("portrait_2.jpg"), f"layout={layout}", SHEET)

    assert assert_error(response, 400, "invalid_parameter")["parameter"] == "layout"


def test_specs_lists_every_preset_with_pixel_sizes(client: httpx.Client) -> None:
    response = client.get(f"{PHOTO}/specs")

    assert response.status_code == 200, response.text
    body = response.json()
    listed = {spec["key"]: spec for spec in body["specs"]}
    assert list(listed) == [spec.key for spec in list_specs()]
    for spec in listed.values():
        assert spec["width_px"] == round(spec["width_mm"] / 25.4 * spec["dpi"]), spec
        assert spec["height_px"] == round(spec["height_mm"] / 25.4 * spec["dpi"]), spec
        assert len(spec["head_height_mm"]) == len(spec["eye_line_from_bottom_mm"]) == 2
        assert spec["title_zh"], spec
        assert spec["authority"], spec
    assert listed["cn-large-2inch"]["title_zh"] == "大二寸"
    sizes = {
        key: (spec["width_px"], spec["height_px"], spec["dpi"]) for key, spec in listed.items()
    }
    assert sizes["cn-1inch"] == (295, 413, 300)
    assert sizes["icao"] == (413, 531, 300)
    assert sizes["us-passport"] == (600, 600, 300)
    assert sizes["cn-id-card"] == (358, 441, 350)
    assert [paper["key"] for paper in body["sheets"]] == ["6inch", "5inch", "a4"]


def test_a_later_render_refers_to_the_upload_by_its_source_key(
    client: httpx.Client, photo: Photo
) -> None:
    """Upload once: X-Source names the upload; source=<it> with no body renders another colour
    and sheet from the cached cut-out; an unknown key is 404 source_expired; a malformed one 4xx."""
    data = photo("portrait_1.jpg")
    first = post(client, data, "background=white")
    ok(first, "image/jpeg")
    digest = first.headers["x-source"]
    assert digest == blake3(data).hexdigest()

    blue = client.post(f"{PHOTO}?background=blue&source={digest}")
    assert blue.headers["x-source"] == digest
    with opened(ok(blue, "image/jpeg")) as image:
        corner = image.convert("RGB").getpixel((2, 2))
    assert isinstance(corner, tuple)
    red, _, blue_level = corner
    assert blue_level > red + 40
    sheet = client.post(f"{PHOTO}?sheet=6inch&source={digest}")
    with opened(ok(sheet, "image/jpeg")) as image:
        assert image.width > get_spec("cn-1inch").width_px

    # A photo and a source at once: which was meant? (The photo was dropped unread.)
    other = photo("portrait_2.jpg")
    both = client.post(f"{PHOTO}?source={digest}", content=other)
    assert assert_error(both, 400, "invalid_parameter")["parameter"] == "source"
    chunked = client.post(f"{PHOTO}?source={digest}", content=iter([other]))
    assert assert_error(chunked, 400, "invalid_parameter")["parameter"] == "source"
    # A chunked body that ends empty (a client streaming whatever it was given, nothing here)
    # sends no photo, as Content-Length: 0 does: it was refused as "not both".
    streamed_nothing = client.post(f"{PHOTO}?source={digest}", content=iter([b""]))
    ok(streamed_nothing, "image/jpeg")
    assert streamed_nothing.headers["x-source"] == digest

    unknown = "0" * 64
    assert_error(client.post(f"{PHOTO}?source={unknown}"), 404, "source_expired")
    malformed = client.post(f"{PHOTO}?source=not-a-digest")
    assert 400 <= malformed.status_code < 500
    assert error_of(malformed)["code"] == "invalid_parameter"


def test_server_timing_shows_the_cut_out_s_stages_when_this_request_made_it(
    client: httpx.Client, photo: Photo
) -> None:
    # The cut-out is most of an ID photo's time (u2netp): a first upload's Server-Timing named
    # only the render (74 ms of a 1.85 s answer). A render from the cached cut-out names only
    # what it spent.
    data = fresh(photo("portrait_2.jpg"))

    def stages(response: httpx.Response) -> list[str]:
        assert response.status_code == 200, response.text
        timing = response.headers["server-timing"]
        return [part.split(";")[0].strip() for part in timing.split(",")]

    assert stages(post(client, data)) == ["decode", "detect", "matte", "render"]
    assert stages(post(client, data, "background=blue")) == ["render"]


def eye_angle_deg(face: Face) -> float:
    marks = face.landmarks
    dx = marks.left_eye.x - marks.right_eye.x
    return math.degrees(math.atan2(marks.left_eye.y - marks.right_eye.y, dx))


def checks_of(response: httpx.Response) -> dict[str, dict[str, Any]]:
    assert response.status_code == 200, response.text
    return {check["name"]: check for check in response.json()["report"]["checks"]}


def test_nudges_set_the_head_height_and_eye_line_and_move_and_turn_the_face(
    client: httpx.Client, photo: Photo, find_faces: FindFaces
) -> None:
    """A person's corrections win over the automatic framing: the report measures the head
    height and eye line asked for, and the detector finds the face moved and turned."""
    spec = get_spec("cn-1inch")
    upload = photo("portrait_1.jpg")
    head_low, _ = nudge_ranges(spec)["head_mm"]
    _, eye_high = nudge_ranges(spec)["eye_line_mm"]
    nudged = checks_of(
        post(client, upload, f"head_mm={head_low}&eye_line_mm={eye_high}&response=json")
    )
    assert nudged["head_height_ratio"]["value"] * spec.height_mm == pytest.approx(head_low, abs=0.1)
    assert nudged["eye_line"]["value"] == pytest.approx(eye_high, abs=0.1)
    assert "note" not in nudged["eye_line"]  # not "moved to respect the crown margin"
    auto = checks_of(post(client, upload, "response=json"))
    assert auto["head_height_ratio"]["value"] * spec.height_mm > head_low + 0.3

    def eyes(query: str) -> tuple[float, float]:
        faces = find_faces(np.asarray(opened(ok(post(client, upload, query), "image/jpeg"))))
        assert len(faces) == 1
        marks = faces[0].landmarks
        return (marks.right_eye.x + marks.left_eye.x) / 2, eye_angle_deg(faces[0])

    plain_x, plain_angle = eyes("")
    shifted_x, _ = eyes("shift_mm=-2")
    assert shifted_x - plain_x == pytest.approx(-2 * spec.px_per_mm, abs=3)
    _, turned_angle = eyes("roll_deg=4")
    # Clockwise as seen: the eye on the image's right goes down (the landmarks read a turn short,
    # so only its direction and size are checked here; tests/pipeline measure it exactly).
    assert 1.5 < turned_angle - plain_angle < 6.5


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("head_mm=20.9", "head_mm"),
        ("head_mm=30", "head_mm"),
        ("eye_line_mm=25", "eye_line_mm"),
        ("shift_mm=2.6", "shift_mm"),
        ("shift_mm=-2.6", "shift_mm"),
        ("roll_deg=5.5", "roll_deg"),
        ("roll_deg=-90", "roll_deg"),
        ("spec=icao&head_mm=37", "head_mm"),
    ],
)
def test_nudges_outside_the_sizes_ranges_are_refused_with_the_range(
    client: httpx.Client, photo: Photo, query: str, parameter: str
) -> None:
    error = assert_error(post(client, photo("portrait_2.jpg"), query), 400, "out_of_range")

    assert error["parameter"] == parameter
    spec = get_spec("icao" if "icao" in query else "cn-1inch")
    assert [error["min"], error["max"]] == list(nudge_ranges(spec)[parameter])


@pytest.mark.parametrize(
    "query",
    [
        "head_mm=0",
        "head_mm=nan",
        "shift_mm=nan",
        "roll_deg=inf",
        "head_mm=big",
        "roll_deg=",
        "face=0",
        "face=x",
    ],
)
def test_malformed_nudges_and_faces_are_refused(
    client: httpx.Client, photo: Photo, query: str
) -> None:
    assert_error(post(client, photo("portrait_2.jpg"), query), 400, "invalid_parameter")


def test_a_person_the_cut_out_leaves_out_is_a_422_not_a_photo_of_background(
    client: httpx.Client, testdata: Path
) -> None:
    # devset df_img54: the leftmost face is a bystander behind the photo's subject.
    source = testdata.parent / "devset" / "df_img54.jpg"
    require(source.is_file(), f"devset photo not found at {source}")

    error = assert_error(post(client, source.read_bytes(), "face=1"), 422, "no_subject")

    assert "main subject" in error["message"]


def test_face_chooses_one_person_of_several(
    client: httpx.Client, photo: Photo, find_faces: FindFaces
) -> None:
    """face=N cuts out the N-th person from the left, and later renders by source= keep to it."""
    upload = photo("two_people.jpg")
    left = post(client, upload, "face=1&format=png&transparent=true")
    right = post(client, upload, "face=2&format=png&transparent=true")
    digest = left.headers["x-source"]
    again = client.post(f"{PHOTO}?face=2&format=png&transparent=true&source={digest}")
    assert again.content == ok(right, "image/png")
    assert ok(left, "image/png") != right.content
    for response in (left, right):
        rgb = np.asarray(opened(response.content).convert("RGB"))
        assert len(find_faces(rgb)) == 1  # one person cut out, the other gone

    error = assert_error(post(client, upload, "face=3"), 400, "out_of_range")
    assert (error["parameter"], error["max"], error["face_count"]) == ("face", 2, 2)


def test_face_chooses_one_person_of_several_for_a_print_sheet_too(
    client: httpx.Client, photo: Photo
) -> None:
    """The sheet endpoint takes face=N as the photo endpoint does (its multiple_faces error
    tells the client to), and matches /v1/id-photo?sheet= for the same person."""
    upload = photo("two_people.jpg")
    left = post(client, upload, "face=1&sheet=6inch", path=SHEET)
    right = post(client, upload, "face=2&sheet=6inch", path=SHEET)

    assert ok(left, "image/jpeg") != ok(right, "image/jpeg")
    via_photo = post(client, upload, "face=2&sheet=6inch")
    assert ok(via_photo, "image/jpeg") == right.content
    error = assert_error(post(client, upload, "face=3", path=SHEET), 400, "out_of_range")
    assert (error["parameter"], error["max"]) == ("face", 2)


@pytest.mark.asyncio(loop_scope="session")
async def test_specs_are_made_once_and_answered_from_then_on(
    service_app: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Built and validated by FastAPI at each request, the 12.5 KB of presets, papers and bounds
    # cost the API process 0.5-1.2 ms a request (a /healthz 0.2-0.4); they are the code's own,
    # and the web page asks for them at each load.
    async with service_app.client() as client:
        first = await client.get(f"{PHOTO}/specs")
        built: list[int] = []

        def counted() -> tuple[IdPhotoSpec, ...]:
            built.append(1)
            return list_specs()

        monkeypatch.setattr(idphoto_routes, "list_specs", counted)
        again = await client.get(f"{PHOTO}/specs")
    assert first.status_code == again.status_code == 200
    assert first.headers["content-type"] == again.headers["content-type"] == "application/json"
    assert again.content == first.content
    assert [spec["key"] for spec in again.json()["specs"]] == [s.key for s in list_specs()]
    assert built == []


def test_specs_publish_the_option_bounds_the_api_checks(client: httpx.Client, photo: Photo) -> None:
    """The web page checks these before sending: each is the edge the API itself refuses past."""
    bounds = client.get(f"{PHOTO}/specs").json()["bounds"]

    assert set(bounds) == {"dpi", "max_kb", "quality", "face"}
    document = client.get("/openapi.json").json()
    answer = document["paths"][f"{PHOTO}/specs"]["get"]["responses"]["200"]["content"]
    schema = answer["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert "bounds" in document["components"]["schemas"][schema]["properties"]
    for name, (low, high) in bounds.items():
        for outside in (low - 1, high + 1):
            # A custom size, which dpi needs (with a preset it is refused whatever its value).
            response = post(client, photo("portrait_2.jpg"), f"width=35&height=45&{name}={outside}")
            assert assert_error(response, 400, "invalid_parameter")["parameter"] == name, outside
            assert f"{name}: Input should be" in response.json()["error"]["message"]


def test_specs_list_each_sizes_nudge_ranges(client: httpx.Client) -> None:
    listed = {spec["key"]: spec for spec in client.get(f"{PHOTO}/specs").json()["specs"]}
    for spec in list_specs():
        nudges = listed[spec.key]["nudges"]
        assert nudges == {name: list(limits) for name, limits in nudge_ranges(spec).items()}
        assert nudges["shift_mm"] == [-round(spec.width_mm / 10, 1), round(spec.width_mm / 10, 1)]
        assert nudges["roll_deg"] == [-5.0, 5.0]

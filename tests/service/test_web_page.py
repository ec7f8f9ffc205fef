"""The web page (service/static/) in headless Chromium, against a real server.

Every test loads the page from a ``faceflow serve`` subprocess and drives it as a person would:
picking or dropping photos, the keyboard, the ID-photo controls, the API-key dialog. Only the
busy/rate-limited answers and a proxy's own pages are staged (``page.route``), because a healthy
test server does not give them on demand; everything else is the server's own answer.

The desktop screenshots in docs/ (English and Chinese) are refreshed with
``scripts/docs-screenshots.sh`` (``FACEFLOW_UPDATE_DOCS=1`` and ``-k docs_screenshot``).
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import re
import time
from collections.abc import Callable, Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from PIL import Image, ImageChops, ImageStat
from playwright.sync_api import CDPSession, Locator, Page, Request, Route, expect

from faceflow.errors import FaceflowError, RetryableError
from faceflow.service.security import hash_api_key
from tests.fixtures.browser import (
    ARTIFACTS,
    DESKTOP,
    ID_PHOTO_TIMEOUT_MS,
    PHONE,
    BrowserPage,
    OpenPage,
)
from tests.fixtures.environment import PROJECT_ROOT
from tests.fixtures.live_server import LiveServer, LiveServerFactory, started_early

pytestmark = pytest.mark.browser

DOCS_SCREENSHOT = PROJECT_ROOT / "docs" / "web-page.png"
DOCS_SCREENSHOT_MAX_BYTES = 300_000
API_KEY = "ff-web-page-test-key"
LABEL = re.compile(r"[MF] \d+ \(\d+–\d+\)")
STATUS_POLL_MS = 5_000  # static/js/main.js: the server badge's readiness poll
CLOCK_STEP_MS = 250
CLOCK_SETTLE_MS = 25
RETRY_AFTER_S = 2  # the staged busy answers' Retry-After
MAX_PHOTOS = 100  # static/js/uploads.js: the photos the queue takes at a time
# How many lines an element's text runs to.
LINES = """element => {
  const range = document.createRange();
  range.selectNodeContents(element);
  return new Set([...range.getClientRects()].map((rect) => Math.round(rect.top))).size;
}"""
PROXY_502 = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
# A page has asked for all it shows once it is loaded (what its HTML names), its fonts are in and
# every image it shows has loaded or failed; an image put off until scrolled to asks for nothing.
DRAWN = """() => document.readyState === "complete"
  && document.fonts.status === "loaded"
  && [...document.images].every((image) => image.complete || image.loading === "lazy")"""
TWO_FRAMES = "() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))"


def load(
    open_page: OpenPage, server: LiveServer, viewport: Any = DESKTOP, locale: str = "en-US"
) -> BrowserPage:
    """The page, opened and connected (server status shows the version)."""
    probe = open_page(viewport, locale)
    probe.page.goto(server.url + "/")
    expect(probe.page.locator("#server-status")).to_have_attribute("data-state", "ok")
    return probe


def wait_until_drawn(page: Page) -> None:
    """Wait until the page has asked for everything it shows: call it once the page shows what
    its scripts draw. Two frames first, so that what the scripts last put in the document (a logo,
    text in a web font) has been styled and asked for.

    Not Playwright's ``networkidle``: in Playwright 1.65 it is lost for good when a page works
    for over 500 ms with nothing in flight, then asks for something that is answered before
    DOMContentLoaded (microsoft/playwright#42598) -- Swagger UI starting on a busy machine, its
    1 MB bundle run and then its schema fetched -- and /docs waited 20 s for it with nothing in
    flight. Nor does this wait on a request the page leaves open (a poll, a stream): each
    request is seen when it is sent, not when it ends."""
    page.evaluate(TWO_FRAMES)
    page.wait_for_function(DRAWN)


def pick(page: Page, *paths: Path) -> None:
    page.set_input_files("#file-input", [str(path) for path in paths])


def wait_for_id_photo(page: Page) -> None:
    expect(page.locator("#idphoto-result")).to_be_visible(timeout=ID_PHOTO_TIMEOUT_MS)
    expect(page.locator("#idphoto-busy")).to_be_hidden(timeout=ID_PHOTO_TIMEOUT_MS)
    expect(page.locator("#report-summary")).to_have_text(re.compile(r"passed|通过"))


def specs_of(server: LiveServer) -> dict[str, dict[str, Any]]:
    response = httpx.get(f"{server.url}/v1/id-photo/specs", timeout=30.0)
    response.raise_for_status()
    return {spec["key"]: spec for spec in response.json()["specs"]}


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("/", "#server-status[data-state=ok]"),
        ("/docs", ".swagger-ui .opblock-tag"),
        ("/redoc", "[role=menuitem]"),
    ],
)
def test_no_request_leaves_the_machine(
    open_page: OpenPage, live_server: LiveServer, path: str, shown: str
) -> None:
    """The page and the API docs load every asset from faceflow itself: a machine without
    internet sees them whole, and no third party learns that someone opened them."""
    probe = open_page(fresh=True)  # an empty cache: every asset is fetched, and seen
    page = probe.page
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    page.goto(live_server.url + path)
    expect(page.locator(shown).first).to_be_visible()
    wait_until_drawn(page)
    fetched = [url for url in urls if urlsplit(url).scheme not in ("data", "blob")]
    assert len(fetched) > 1, urls  # the page and its assets, at least
    assert {urlsplit(url).hostname for url in fetched} == {"127.0.0.1"}, fetched
    assert probe.errors == []


# A page shaped as /docs on a busy machine: a script works for 1.5 s with nothing in flight (three
# times Playwright's 500 ms of quiet), then asks for more before DOMContentLoaded, here a script
# it writes into the document. Served by the test's route: nothing listens on port 9 (discard).
BUSY_PAGE_URL = "http://127.0.0.1:9/busy/"
BUSY_PAGE = {
    "": ("text/html", '<!doctype html><title>busy</title><body><script src="app.js"></script>'),
    "app.js": (
        "text/javascript",
        "{ const until = Date.now() + 1500; while (Date.now() < until) {} }\n"
        "document.write('<script src=\"more.js\"></' + 'script>');",
    ),
    "more.js": ("text/javascript", "document.body.dataset.ready = 'yes';"),
}


def serve_busy_page(route: Route) -> None:
    kind, body = BUSY_PAGE[route.request.url.removeprefix(BUSY_PAGE_URL)]
    route.fulfill(body=body, content_type=kind)


def test_a_drawn_page_is_seen_whole_where_networkidle_is_lost(open_page: OpenPage) -> None:
    """The wait the docs pages' test makes ends on a page whose network went quiet in the way
    Playwright's networkidle loses (see ``wait_until_drawn``), having seen all it asked for."""
    probe = open_page()
    page = probe.page
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    page.route(BUSY_PAGE_URL + "**", serve_busy_page)
    page.goto(BUSY_PAGE_URL)
    expect(page.locator("body")).to_have_attribute("data-ready", "yes")
    wait_until_drawn(page)
    assert urls == [BUSY_PAGE_URL + name for name in BUSY_PAGE], urls
    assert probe.errors == []


def test_the_page_runs_only_its_own_scripts_and_is_framed_by_no_one(
    open_page: OpenPage, live_server: LiveServer
) -> None:
    """The page's Content-Security-Policy as Chromium enforces it: a script written into the
    page (what an injected string would become) does not run, and a page of another origin
    cannot frame it (to trick a person into an upload, or into turning the camera on)."""
    probe = load(open_page, live_server)
    page = probe.page
    page.evaluate(
        """() => {
            const script = document.createElement("script");
            script.textContent = "window.injected = true";
            document.body.append(script);
        }"""
    )
    assert page.evaluate("() => window.injected === undefined")
    assert any("Content Security Policy" in error for error in probe.errors), probe.errors

    framer = open_page(fresh=True)
    framer.page.set_content(f'<iframe src="{live_server.url}/"></iframe>')  # waits for its load
    assert any("frame-ancestors" in error for error in framer.errors), framer.errors
    assert framer.page.frames[-1].locator("#server-status").count() == 0


def test_two_people_are_drawn_over_the_photo_and_listed(
    open_page: OpenPage, live_server: LiveServer, testdata: Path
) -> None:
    photo = testdata / "two_people.jpg"
    probe = load(open_page, live_server)
    page = probe.page
    pick(page, photo)

    expect(page.locator("#face-rows tr")).to_have_count(2)
    expect(page.locator("#overlay .face__box")).to_have_count(2)
    expect(page.locator("#face-count")).to_have_text("2")
    labels = page.locator(".face-label").all_inner_texts()
    assert len(labels) == 2
    assert all(LABEL.search(label) for label in labels), labels
    expect(page.locator("#timings")).to_contain_text("round trip")
    expect(page.locator("#cache-badge")).to_have_text(re.compile(r"^cache (hit|miss)$"))
    # A screen reader is told the analysis is done, and what it found, without looking for it.
    announce = page.locator("#photo-announce")
    expect(announce).to_have_attribute("aria-live", "polite")
    expect(announce).to_have_text("two_people.jpg, 2 faces found")

    # The overlay is scaled to the displayed photo: each box sits where the API put it.
    report = httpx.post(
        f"{live_server.url}/v1/analyze", files={"image": photo.read_bytes()}, timeout=60.0
    ).json()
    shown = page.locator("#photo").bounding_box()
    assert shown is not None
    scale = shown["width"] / report["width"]
    faces = sorted(report["faces"], key=lambda face: face["box"][0])
    for index, face in enumerate(faces):
        x1, y1, x2, _ = face["box"]
        drawn = page.locator("#overlay .face__box").nth(index).bounding_box()
        assert drawn is not None
        assert drawn["x"] == pytest.approx(shown["x"] + x1 * scale, abs=3)
        assert drawn["y"] == pytest.approx(shown["y"] + y1 * scale, abs=3)
        assert drawn["width"] == pytest.approx((x2 - x1) * scale, abs=4)

    # The table is one Tab stop (not one per face: 40 for a group photo), the arrow keys go from
    # row to row, and the focused row's face is picked out on the photo.
    rows = page.locator("#face-rows tr")
    page.locator("#download-annotated").focus()
    page.keyboard.press("Shift+Tab")
    expect(rows.nth(0)).to_be_focused()
    page.keyboard.press("Shift+Tab")
    expect(page.locator("#queue-clear")).to_be_focused()
    rows.nth(0).focus()
    page.keyboard.press("ArrowDown")
    expect(rows.nth(1)).to_be_focused()
    expect(page.locator("#overlay .face--active")).to_have_attribute("data-face", "2")
    page.keyboard.press("ArrowUp")
    expect(rows.nth(0)).to_be_focused()

    # An ID photo is of one person: the panel says there are two and lets the person choose.
    expect(page.locator("#idphoto-notice [role=status]")).to_contain_text("2 faces")
    expect(page.locator("#face-pick option")).to_have_count(2)
    assert probe.errors == []


def test_under_a_proxy_prefix_every_request_of_the_page_stays_under_it(
    open_page: OpenPage, live_server: LiveServer, testdata: Path
) -> None:
    """Behind a proxy serving faceflow at /faces/ and stripping the prefix (server.root_path),
    a request for /v1/analyze would leave faceflow: the page's own requests are relative to it.
    The test's route is that proxy; anything asked for outside /faces/ is refused and noted."""
    prefix = f"{live_server.url}/faces/"
    outside: list[str] = []

    def proxy(route: Route) -> None:
        url = route.request.url
        if not url.startswith(prefix):
            outside.append(url)
            route.abort()
            return
        # Continued, not fetched: route.fetch() sends an upload (a Blob) without its body.
        route.continue_(url=f"{live_server.url}/{url.removeprefix(prefix)}")

    probe = open_page(fresh=True)  # nothing from the cache: every request is seen
    page = probe.page
    page.route(f"{live_server.url}/**", proxy)
    page.goto(prefix)
    expect(page.locator("#server-status")).to_have_attribute("data-state", "ok")
    pick(page, testdata / "two_people.jpg")
    expect(page.locator("#face-rows tr")).to_have_count(2)
    wait_until_drawn(page)

    assert outside == []
    assert probe.errors == []


def test_upload_progress_is_shown(
    open_page: OpenPage, live_server: LiveServer, testdata: Path
) -> None:
    page = load(open_page, live_server).page
    # A crawling uplink holds the 488 kB photo on its way up while the test watches it go...
    devtools = throttle(page, CRAWL)
    pick(page, testdata / "two_people.jpg")
    expect(page.locator("#progress-label")).to_have_text("Uploading two_people.jpg")
    expect(page.locator("#progress-value")).to_have_text(re.compile(r"^[1-9]\d?% of 476 KB$"))
    # ...then lets the rest of it through at once.
    devtools.send("Network.emulateNetworkConditions", NO_THROTTLE)
    expect(page.locator("#face-rows tr")).to_have_count(2)
    expect(page.locator("#progress")).to_be_hidden()


def test_leaving_while_a_photo_is_on_its_way_is_asked_first(
    open_page: OpenPage, live_server: LiveServer, testdata: Path
) -> None:
    """Back, a reload or closing the tab while a photo is on its way up would lose it without a
    word (the page keeps no photo anywhere): the browser asks first. Once nothing is on its way
    (the photo analysed, its ID photo made), the page leaves without asking."""
    page = open_page(fresh=True).page  # the page is closed here: its context goes with it
    page.goto(live_server.url + "/")
    expect(page.locator("#server-status")).to_have_attribute("data-state", "ok")
    devtools = throttle(page, CRAWL)
    pick(page, testdata / "two_people.jpg")
    expect(page.locator("#progress-label")).to_have_text("Uploading two_people.jpg")
    page.locator(".thumb").click()  # a person's click: the browser asks only a page used
    with page.expect_event("dialog") as asked:
        page.close(run_before_unload=True)
    assert asked.value.type == "beforeunload"
    asked.value.dismiss()  # "stay on the page"
    devtools.send("Network.emulateNetworkConditions", NO_THROTTLE)
    expect(page.locator("#face-rows tr")).to_have_count(2)
    wait_for_id_photo(page)
    page.on("dialog", lambda dialog: dialog.dismiss())  # a second question would keep it open
    with page.expect_event("close"):
        page.close(run_before_unload=True)


def test_id_photo_preview_report_and_downloads(
    open_page: OpenPage, live_server: LiveServer, testdata: Path, tmp_path: Path
) -> None:
    spec = specs_of(live_server)["cn-1inch"]
    probe = load(open_page, live_server)
    page = probe.page
    pick(page, testdata / "portrait_1.jpg")
    expect(page.locator("#face-rows tr")).to_have_count(1)
    wait_for_id_photo(page)
    expect(page.locator("#spec")).to_have_value("cn-1inch")
    expect(page.locator("#report-status")).to_be_visible()
    # The whole report is one click away, each check with a pass / warn / fail badge.
    page.locator("#all-checks-summary").click()
    badges = page.locator("#checks .badge")
    expect(badges.first).to_be_visible()
    assert badges.count() >= 5
    assert {text.lower() for text in badges.all_inner_texts()} <= {"pass", "warn", "fail"}
    # A fraction reads in percent, as its limit does ("23% · allowed ≤ 50%"), not as 0.227.
    contrast = page.locator("#checks .check", has_text="Clothes stand out from the background")
    expect(contrast.locator(".check__value")).to_have_text(re.compile(r"^[\d.]+% · allowed ≤ 50%"))
    # What the server could not measure (null: the leftover backdrop, on this photo's busy
    # street) says so, not "–".
    leftover = page.locator("#checks .check", has_text="Old background removed")
    expect(leftover.locator(".check__value")).to_have_text(re.compile(r"^not measured · allowed"))

    # A new background re-renders the preview by itself, at once, with the new colour.
    with page.expect_response(
        lambda r: "/v1/id-photo?" in r.url and "background=blue" in r.url
    ) as recoloured:
        page.locator("label.swatch", has_text="Blue").click()
    assert recoloured.value.ok
    wait_for_id_photo(page)

    with page.expect_download() as download:
        page.click("#download-photo")
    # Downloads are named after the source photo.
    assert download.value.suggested_filename == "portrait_1-id-photo-cn-1inch.jpg"
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    with Image.open(saved) as image:
        assert image.format == "JPEG"
        assert image.size == (spec["width_px"], spec["height_px"])
        # The blue background reached the file: the top-left corner is blue, not white.
        corner = image.convert("RGB").getpixel((2, 2))
        assert isinstance(corner, tuple)
        assert corner[2] > corner[0] + 40

    with page.expect_download() as report_download:
        page.click("#download-report")
    assert report_download.value.suggested_filename == "portrait_1-id-photo-cn-1inch-report.json"
    report_path = tmp_path / "report.json"
    report_download.value.save_as(report_path)
    report = json.loads(report_path.read_text())
    assert report["photo"] == "portrait_1.jpg"
    assert report["choices"]["background"] == "blue"
    assert report["report"]["status"] in {"pass", "warn", "fail"}
    assert len(report["report"]["checks"]) == badges.count()

    with page.expect_download() as sheet_download:
        page.click("#download-sheet")
    sheet = tmp_path / sheet_download.value.suggested_filename
    sheet_download.value.save_as(sheet)
    with Image.open(sheet) as image:
        assert image.format == "JPEG"
        assert image.width > spec["width_px"]
        assert image.height > spec["height_px"]
    assert probe.errors == []


def test_the_size_caps_range_is_the_servers(open_page: OpenPage, live_server: LiveServer) -> None:
    """The page checks max_kb against the bounds /v1/id-photo/specs publishes (the options
    model's), not a copy of its own: the real server's range, and another one staged as a server
    whose model had another would publish it, are each the page's, in both languages."""
    served = httpx.get(f"{live_server.url}/v1/id-photo/specs", timeout=30.0).json()
    low, high = served["bounds"]["max_kb"]
    page = load(open_page, live_server).page
    max_kb, error = page.locator("#max-kb"), page.locator("#max-kb-error")
    expect(max_kb).to_have_attribute("min", str(low))
    expect(max_kb).to_have_attribute("max", str(high))
    page.fill("#max-kb", str(high + 1))
    expect(error).to_have_text(f"Enter a whole number from {low} to {high}.")

    staged = {**served, "bounds": {**served["bounds"], "max_kb": [5, 500]}}
    for locale, said in (("en-US", "Enter a whole number from 5 to 500."), ("zh-CN", "5 到 500")):
        probe = open_page(DESKTOP, locale)
        other = probe.page
        other.route("**/v1/id-photo/specs", lambda route: route.fulfill(json=staged))
        other.goto(live_server.url + "/")
        expect(other.locator("#server-status")).to_have_attribute("data-state", "ok")
        other_max_kb, other_error = other.locator("#max-kb"), other.locator("#max-kb-error")
        expect(other_max_kb).to_have_attribute("max", "500")
        other.fill("#max-kb", "501")
        expect(other_error).to_be_visible()
        expect(other_error).to_contain_text(said)
        other.fill("#max-kb", "4")
        expect(other_error).to_be_visible()
        other.fill("#max-kb", "500")
        expect(other_error).to_be_hidden()
        assert probe.errors == []


def test_size_cap_is_applied_and_validated(
    open_page: OpenPage, live_server: LiveServer, testdata: Path, tmp_path: Path
) -> None:
    """A photo on show that no longer matches the choices (a field to fix, a failed render) says
    so and cannot be downloaded or enlarged, until one that matches is shown."""
    spec = specs_of(live_server)["jp-visa"]
    page = load(open_page, live_server).page
    pick(page, testdata / "portrait_1.jpg")
    wait_for_id_photo(page)
    result, stale = page.locator("#idphoto-result"), page.locator("#idphoto-stale")
    download_button = page.locator("#download-photo")
    enlarge = page.locator("#preview-open")

    page.fill("#max-kb", "0")
    expect(page.locator("#max-kb-error")).to_be_visible()
    # Another size cannot be made while the cap is wrong: the old size's photo stays, marked.
    page.select_option("#spec", "jp-visa")
    expect(stale).to_have_text("Out of date — fix the size cap")
    expect(result).to_have_class(re.compile(r"idphoto__result--stale"))
    expect(download_button).to_be_disabled()
    expect(enlarge).to_be_disabled()
    expect(page.locator("#idphoto-facts")).not_to_contain_text(
        f"{spec['width_px']}×{spec['height_px']} px"
    )
    with page.expect_response(lambda r: "/v1/id-photo?" in r.url and "max_kb=20" in r.url):
        page.fill("#max-kb", "20")
    expect(page.locator("#max-kb-error")).to_be_hidden()
    wait_for_id_photo(page)
    expect(stale).to_be_hidden()
    expect(result).not_to_have_class(re.compile(r"idphoto__result--stale"))
    expect(page.locator("#idphoto-facts")).to_contain_text(
        f"{spec['width_px']}×{spec['height_px']} px"
    )
    with page.expect_download() as download:
        page.click("#download-photo")
    saved = tmp_path / "capped.jpg"
    download.value.save_as(saved)
    assert saved.stat().st_size <= 20 * 1000  # KB of 1,000 bytes

    # The network fails: the last good photo stays, marked, with the error and Retry above it.
    page.route("**/v1/id-photo?*", lambda route: route.abort("connectionrefused"))
    page.locator("label.swatch", has_text="Blue").click()
    expect(page.locator("#idphoto-notice [role=alert]")).to_contain_text("Retry")
    expect(result).to_be_visible()
    expect(page.locator("#idphoto-img")).to_have_attribute("src", re.compile(r"^blob:"))
    expect(stale).to_have_text("Out of date — the update failed")
    expect(download_button).to_be_disabled()
    expect(enlarge).to_be_disabled()
    page.unroute("**/v1/id-photo?*")
    page.locator("label.swatch", has_text="Red").click()
    wait_for_id_photo(page)
    expect(stale).to_be_hidden()
    expect(download_button).to_be_enabled()
    expect(enlarge).to_be_enabled()


def test_a_text_file_is_not_an_image(
    open_page: OpenPage, live_server: LiveServer, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a photo\n")
    page = load(open_page, live_server).page
    pick(page, notes)
    alert = page.locator("#photo-notice [role=alert]")
    expect(alert).to_contain_text("Not an image")
    expect(alert).to_contain_text("JPEG, PNG, WebP or GIF")
    expect(page.locator("#stage")).to_be_hidden()


def test_a_photo_over_the_upload_limit_is_too_large(
    open_page: OpenPage, constrained_server: LiveServer, testdata: Path
) -> None:
    page = load(open_page, constrained_server).page
    pick(page, testdata / "two_people.jpg")  # 488 kB; this server takes 200 kB
    alert = page.locator("#photo-notice [role=alert]")
    expect(alert).to_contain_text("File too large")
    expect(alert).to_contain_text("at most 195 KB")


def over_the_pixel_limit(server: LiveServer, kind: Literal["JPEG", "PNG"]) -> bytes:
    """A plain square image one row and column past the server's pixel limit for ``kind``
    (``/v1/info``'s limits), still far under its upload limit."""
    limits = httpx.get(f"{server.url}/v1/info", timeout=30.0).json()["limits"]
    budget = limits["max_pixels"] if kind == "JPEG" else limits["max_pixels_lossless"]
    side = math.isqrt(budget) + 1
    out = io.BytesIO()
    Image.new("L", (side, side), 90).save(out, format=kind)
    assert len(out.getvalue()) < limits["max_upload_bytes"]
    return out.getvalue()


SAID = """async (error) => {
    const { describeError } = await import("./js/messages.js");
    const { code, message, ...details } = error;
    const { title, text } = describeError({ code, message, details });
    return [title, text];
}"""
"""What the page says for a server's error answer (its ``error`` object): [title, text]."""


def chosen_and_refused(page: Page, name: str, data: bytes) -> tuple[Locator, list[str]]:
    """Choose ``data`` as the file ``name`` and wait for the page to refuse it: the refusal's
    alert, and the URLs of every request the page sent from the choice on."""
    sent: list[str] = []
    page.on("request", lambda request: sent.append(request.url))
    kind = name.rpartition(".")[2]
    page.set_input_files("#file-input", {"name": name, "mimeType": f"image/{kind}", "buffer": data})
    expect(page.locator(".thumb--error")).to_have_count(1)
    return page.locator("#photo-notice [role=alert]"), sent


@pytest.mark.parametrize("kind", ["JPEG", "PNG"])
def test_a_photo_over_the_pixel_limit_is_refused_before_its_upload(
    open_page: OpenPage, live_server: LiveServer, kind: Literal["JPEG", "PNG"]
) -> None:
    """Its header says it: the page refuses it as the server would (too_many_pixels, the limit
    of its format, in either language) and sends nothing, instead of uploading it whole first."""
    data = over_the_pixel_limit(live_server, kind)
    refused = httpx.post(f"{live_server.url}/v1/analyze", files={"image": data}, timeout=60.0)
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["code"] == "too_many_pixels"
    probe = load(open_page, live_server)
    page = probe.page
    alert, sent = chosen_and_refused(page, f"huge.{kind.lower()}", data)
    # What the page says for the server's own answer, word for word, in English and in Chinese.
    expect(alert).to_contain_text(f"at most {round(error['max_pixels'] / 1e6)} megapixels")
    for words in page.evaluate(SAID, error):
        expect(alert).to_contain_text(words)
    page.click("#lang-switch")
    expect(alert).to_contain_text(f"最多 {error['max_pixels'] // 10_000} 万像素")
    for words in page.evaluate(SAID, error):
        expect(alert).to_contain_text(words)
    assert [url for url in sent if "/v1/analyze" in url] == []
    assert probe.errors == []


@pytest.mark.parametrize("side", ["long", "short"])
def test_a_photo_with_a_side_out_of_range_is_refused_before_its_upload(
    open_page: OpenPage, live_server: LiveServer, side: Literal["long", "short"]
) -> None:
    """Its header says it: a strip one pixel longer than the server's longest side (a JPEG), or a
    square one pixel under its shortest (a PNG), is refused as the server would refuse it
    (bad_dimensions, with its sides and the limits, in either language), and nothing is sent."""
    limits = httpx.get(f"{live_server.url}/v1/info", timeout=30.0).json()["limits"]
    low, high = limits["min_side_px"], limits["max_side_px"]
    kind, size = ("JPEG", (high + 1, low)) if side == "long" else ("PNG", (low - 1, low - 1))
    data = encoded(size, kind)
    refused = httpx.post(f"{live_server.url}/v1/analyze", files={"image": data}, timeout=60.0)
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["code"] == "bad_dimensions"
    probe = load(open_page, live_server)
    page = probe.page
    alert, sent = chosen_and_refused(page, f"odd.{kind.lower()}", data)
    width, height = size
    expect(alert).to_contain_text(
        f"The image is {width}×{height} px; each side must be between {low} and {high} px."
    )
    for words in page.evaluate(SAID, error):
        expect(alert).to_contain_text(words)
    page.click("#lang-switch")
    expect(alert).to_contain_text(
        f"图片为 {width}×{height} 像素，每条边须在 {low} 到 {high} 像素之间。"
    )
    for words in page.evaluate(SAID, error):
        expect(alert).to_contain_text(words)
    assert [url for url in sent if "/v1/analyze" in url] == []
    assert probe.errors == []


def encoded(size: tuple[int, int], kind: str, **options: Any) -> bytes:
    alpha = options.pop("alpha", False)
    out = io.BytesIO()
    image = Image.new("RGBA", size, (200, 120, 40, 128)) if alpha else Image.new("RGB", size, "tan")
    image.save(out, format=kind, **options)
    return out.getvalue()


def test_the_pages_header_reading_gives_the_servers_pixel_size(
    open_page: OpenPage, live_server: LiveServer
) -> None:
    """What the page reads of each format the server takes, as Pillow wrote it: the format and
    size the server counts, or nothing (null: the photo is sent and the server decides)."""
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: the stored size is what is counted
    exif[0x010E] = "x" * 60_000  # a big APP1 segment before the frame header
    images = {
        "baseline.jpg": (encoded((301, 203), "JPEG"), ["jpeg", 301, 203]),
        "progressive.jpg": (encoded((203, 301), "JPEG", progressive=True), ["jpeg", 203, 301]),
        "exif.jpg": (encoded((640, 480), "JPEG", exif=exif.tobytes()), ["jpeg", 640, 480]),
        "image.png": (encoded((333, 222), "PNG"), ["png", 333, 222]),
        "image.gif": (encoded((120, 90), "GIF"), ["gif", 120, 90]),
        "lossy.webp": (encoded((321, 123), "WEBP", quality=80), ["webp", 321, 123]),
        "lossless.webp": (encoded((4001, 17), "WEBP", lossless=True), ["webp", 4001, 17]),
        "alpha.webp": (encoded((99, 77), "WEBP", alpha=True, quality=80), ["webp", 99, 77]),
        "notes.txt": (b"not an image at all", None),
        "cut.jpg": (encoded((301, 203), "JPEG")[:20], None),
    }
    page = load(open_page, live_server).page
    read: dict[str, list[str | int] | None] = page.evaluate(
        """async (images) => {
            const { readImageSize } = await import("./js/imagesize.js");
            const sizes = {};
            for (const [name, data] of Object.entries(images)) {
                const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
                const size = await readImageSize(new File([bytes], name));
                sizes[name] = size && [size.format, size.width, size.height];
            }
            return sizes;
        }""",
        {name: base64.b64encode(data).decode() for name, (data, _) in images.items()},
    )
    assert read == {name: size for name, (_, size) in images.items()}


def test_a_photo_without_a_face_cannot_become_an_id_photo(
    open_page: OpenPage, live_server: LiveServer, testdata: Path
) -> None:
    page = load(open_page, live_server).page
    pick(page, testdata / "cat.jpg")
    expect(page.locator("#faces-empty")).to_have_text("No faces found in this photo.")
    # Nothing to ask the server: the button is off, and says why beside it.
    make, reason = page.locator("#make-idphoto"), page.locator("#make-reason")
    expect(make).to_be_disabled()
    expect(reason).to_have_text("No face found in this photo.")
    expect(make).to_have_attribute("aria-describedby", "make-reason")
    notice = page.locator("#idphoto-notice [role=alert]")
    expect(notice).to_contain_text("No face found")
    page.click("#lang-switch")
    expect(notice).to_contain_text("没有找到人脸")
    expect(reason).to_have_text("这张照片里没有找到人脸。")


def clocked_page(open_page: OpenPage, live_server: LiveServer) -> Page:
    """The page, loaded and ready, on a clock of the test's own (the clock is the context's: a
    fresh one) that the test can pause and move on."""
    page = open_page(fresh=True).page
    page.clock.install()
    page.goto(live_server.url + "/")
    expect(page.locator("#server-status")).to_have_attribute("data-state", "ok")
    return page


def refusing(status: int, code: str, seen: list[str] | None = None) -> Callable[[Route], None]:
    """A route handler answering every request ``status`` with ``code`` and a Retry-After of
    :data:`RETRY_AFTER_S`, noting each request's URL in ``seen``."""
    body = json.dumps({"error": {"code": code, "message": "staged by the test"}})

    def refuse(route: Route) -> None:
        if seen is not None:
            seen.append(route.request.url)
        route.fulfill(
            status=status,
            headers={"Retry-After": str(RETRY_AFTER_S), "Content-Type": "application/json"},
            body=body,
        )

    return refuse


def proxy_page(status: int, retry_after: int | None = None) -> Callable[[Route], None]:
    """A route handler answering as a proxy in front of faceflow does by itself (nginx's
    client_max_body_size, limit_req, auth_basic, an upstream down): ``status`` with an HTML page
    of its own, not faceflow's JSON error, and a Retry-After only when ``retry_after`` is given."""
    title = f"{status} {HTTPStatus(status).phrase}"
    body = f"<html><head><title>{title}</title></head><body><h1>{title}</h1><hr>nginx</body></html>"
    headers = {"Content-Type": "text/html"}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)

    def answer(route: Route) -> None:
        route.fulfill(status=status, headers=headers, body=body)

    return answer


@pytest.mark.parametrize(
    ("status", "code", "title"),
    [
        (503, "overloaded", "The server is busy"),
        (503, "queue_full", "The server is busy"),
        (503, "deadline_exceeded", "The server is busy"),
        (503, "not_ready", "The server is starting"),
    ],
)
def test_busy_answers_count_down_retry_after(
    open_page: OpenPage,
    live_server: LiveServer,
    testdata: Path,
    status: int,
    code: str,
    title: str,
) -> None:
    page = clocked_page(open_page, live_server)
    page.route("**/v1/analyze*", refusing(status, code))
    # From here the clock moves only when the test moves it, so the countdown reads exactly.
    page.clock.pause_at(page.evaluate("Date.now()") + 1)
    pick(page, testdata / "obama_small.jpg")
    alert = page.locator("#photo-notice [role=alert]")
    expect(alert).to_contain_text(title)
    expect(alert).to_contain_text(f"Retry after {RETRY_AFTER_S} s")
    expect(alert.get_by_role("button", name="Retry")).to_be_disabled()
    # Another language counts on from where it was, not from the start.
    run_clock(page, 1000)
    expect(alert).to_contain_text("Retry after 1 s")
    page.click("#lang-switch")
    expect(alert).to_contain_text("1 秒后可重试")
    retry = alert.get_by_role("button", name="重试")
    expect(retry).to_be_disabled()

    # Once Retry-After has passed the button works, and the next answer is the server's.
    page.unroute("**/v1/analyze*")
    run_clock(page, (RETRY_AFTER_S - 1) * 1000)
    expect(retry).to_be_enabled()
    retry.click()
    expect(page.locator("#face-rows tr")).to_have_count(1)
    expect(alert).to_have_count(0)


def test_a_countdown_is_said_once_not_every_second(
    open_page: OpenPage, live_server: LiveServer, testdata: Path
) -> None:
    """A notice is a live region (an alert): a screen reader reads it whole whenever it changes.
    The seconds of its countdown tick on screen only; what is read (its accessible text) says
    the wait as the notice appears and changes once more when Retry can be pressed. Until
    2026-12-07 the countdown was in the live region, and the whole alert was read out again
    every second of a Retry-After."""
    page = clocked_page(open_page, live_server)
    page.route("**/v1/analyze*", refusing(503, "overloaded"))
    page.clock.pause_at(page.evaluate("Date.now()") + 1)
    pick(page, testdata / "obama_small.jpg")
    alert = page.locator("#photo-notice [role=alert]")
    countdown = alert.locator(".notice__countdown")
    expect(countdown).to_have_text(f"Retry after {RETRY_AFTER_S} s.")
    read = alert.aria_snapshot()
    assert f"Retry after {RETRY_AFTER_S} s." in read, read

    run_clock(page, 1000)
    expect(countdown).to_have_text("Retry after 1 s.")
    assert alert.aria_snapshot() == read

    run_clock(page, 1000)
    expect(countdown).to_have_text("You can retry now.")
    read = alert.aria_snapshot()
    assert "You can retry now." in read, read
    assert f"Retry after {RETRY_AFTER_S} s." not in read, read


def tried_again_once_on_its_own(page: Page, alert: Locator, refused: list[str]) -> Locator:
    """The rule of static/js/retry.js, after a request's first 429 (``refused`` holds it, the
    page's clock paused): the alert says it goes again on its own (in both languages); once
    Retry-After is over it does, once, and is refused again; after the next Retry-After Retry
    is the person's, and nothing more was sent. Returns the Retry button."""
    expect(alert).to_contain_text("Too many requests")
    expect(alert).to_contain_text(f"Trying again on its own in {RETRY_AFTER_S} s")
    page.click("#lang-switch")
    expect(alert).to_contain_text(f"{RETRY_AFTER_S} 秒后自动重试")
    page.click("#lang-switch")
    assert len(refused) == 1

    # The wait is over: sent again, refused again; now the person is told to retry.
    run_clock(page, RETRY_AFTER_S * 1000)
    expect(alert).to_contain_text(f"Retry after {RETRY_AFTER_S} s")
    assert len(refused) == 2
    run_clock(page, RETRY_AFTER_S * 1000)
    expect(alert).to_contain_text("You can retry now")
    assert len(refused) == 2
    return alert.get_by_role("button", name="Retry")


def test_a_rate_limited_photo_is_tried_again_once_on_its_own(
    open_page: OpenPage, live_server: LiveServer, testdata: Path
) -> None:
    """429: when Retry-After is over the photo goes again by itself, once; a second 429 says it is
    the person's turn (Retry after… then "You can retry now"), and nothing more is sent."""
    page = clocked_page(open_page, live_server)
    refused: list[str] = []
    page.route("**/v1/analyze*", refusing(429, "rate_limited", refused))
    page.clock.pause_at(page.evaluate("Date.now()") + 1)
    pick(page, testdata / "obama_small.jpg")
    alert = page.locator("#photo-notice [role=alert]")
    expect(alert.get_by_role("button", name="Retry")).to_be_disabled()
    retry = tried_again_once_on_its_own(page, alert, refused)
    expect(retry).to_be_enabled()

    # Retry is the person's, and the next answer is the server's.
    page.unroute("**/v1/analyze*")
    retry.click()
    expect(page.locator("#face-rows tr")).to_have_count(1)
    expect(alert).to_have_count(0)


def test_a_rate_limited_id_photo_is_made_again_once_on_its_own(
    open_page: OpenPage, live_server: LiveServer, testdata: Path
) -> None:
    """The ID photo follows the photos' rule (static/js/retry.js): after a 429 it is asked for
    again by itself once Retry-After is over, once; a second 429 leaves Retry to the person."""
    page = clocked_page(open_page, live_server)
    refused: list[str] = []
    page.route("**/v1/id-photo?*", refusing(429, "rate_limited", refused))
    page.clock.pause_at(page.evaluate("Date.now()") + 1)
    pick(page, testdata / "portrait_1.jpg")
    alert = page.locator("#idphoto-notice [role=alert]")
    retry = tried_again_once_on_its_own(page, alert, refused)

    page.unroute("**/v1/id-photo?*")
    retry.click()
    wait_for_id_photo(page)
    expect(alert).to_have_count(0)


def test_a_rate_limited_print_sheet_comes_on_its_own_after_retry_after(
    open_page: OpenPage, live_server: LiveServer, testdata: Path
) -> None:
    """The print sheet's download follows the same rule (retry.js): a 429, then the sheet."""
    page = clocked_page(open_page, live_server)
    pick(page, testdata / "portrait_1.jpg")
    wait_for_id_photo(page)
    refused: list[str] = []
    page.route("**/v1/id-photo?*sheet=*", refusing(429, "rate_limited", refused), times=1)
    page.clock.pause_at(page.evaluate("Date.now()") + 1)
    page.click("#download-sheet")
    alert = page.locator("#idphoto-notice [role=alert]")
    expect(alert).to_contain_text(f"Trying again on its own in {RETRY_AFTER_S} s")
    with page.expect_download() as sheet:
        run_clock(page, RETRY_AFTER_S * 1000)
    assert sheet.value.suggested_filename.endswith("-sheet-6inch.jpg")
    assert len(refused) == 1
    expect(alert).to_have_count(0)


@pytest.mark.usefixtures("pulled_examples")
def test_a_rate_limited_annotated_image_follows_the_same_rule(
    open_page: OpenPage, live_server: LiveServer, testdata: Path
) -> None:
    """The annotated image's download too (retry.js): after a 429 it is asked for again on its
    own, once; then Retry is the person's, and brings it. Its notice outlives a language switch
    (the photo's own notice is redrawn with the photo, and once took it away)."""
    page = clocked_page(open_page, live_server)
    pick(page, testdata / "obama_small.jpg")
    expect(page.locator("#face-rows tr")).to_have_count(1)
    refused: list[str] = []
    page.route("**/v1/annotate*", refusing(429, "rate_limited", refused))
    page.clock.pause_at(page.evaluate("Date.now()") + 1)
    page.click("#download-annotated")
    alert = page.locator("#annotate-notice [role=alert]")
    retry = tried_again_once_on_its_own(page, alert, refused)
    expect(retry).to_be_enabled()

    page.unroute("**/v1/annotate*")
    with page.expect_download() as annotated:
        retry.click()
    assert annotated.value.suggested_filename == "obama_small-annotated.jpg"
    expect(alert).to_have_count(0)
    # The button is busy with its download: the keyboard's place is its card, not the page's top.
    expect(page.locator("section[aria-labelledby=faces-title]")).to_be_focused()


def test_a_rate_limited_example_photo_is_fetched_again_once_on_its_own(
    open_page: OpenPage, live_server: LiveServer
) -> None:
    """An example photo follows the same rule as the photos and the ID photo (retry.js)."""
    page = clocked_page(open_page, live_server)
    example = page.locator("[data-example=astronaut]")
    expect(example).to_be_visible()
    refused: list[str] = []
    page.route("**/v1/examples/astronaut", refusing(429, "rate_limited", refused))
    page.clock.pause_at(page.evaluate("Date.now()") + 1)
    example.click()
    alert = page.locator("#example-notice [role=alert]")
    retry = tried_again_once_on_its_own(page, alert, refused)

    page.unroute("**/v1/examples/astronaut")
    retry.click()
    expect(page.locator("#photo-meta")).to_contain_text("astronaut.png")
    expect(alert).to_have_count(0)


@pytest.mark.usefixtures("pulled_examples")
def test_a_rate_limited_example_list_and_thumbnail_are_fetched_again_on_their_own(
    open_page: OpenPage, live_server: LiveServer
) -> None:
    """The examples' list and thumbnails, which say nothing when they fail, are asked for again
    after a 429 as the rest is (retry.js): the row and the thumbnail still come."""
    page = open_page(fresh=True).page
    page.clock.install()
    listed: list[str] = []
    thumbnails: list[str] = []
    page.route("**/v1/examples", refusing(429, "rate_limited", listed), times=1)
    thumbnail = "**/v1/examples/astronaut/thumbnail"
    page.route(thumbnail, refusing(429, "rate_limited", thumbnails), times=1)
    page.goto(live_server.url + "/")
    expect(page.locator("#server-status")).to_have_attribute("data-state", "ok")
    run_clock(page, RETRY_AFTER_S * 1000)
    expect(page.locator("#examples")).to_be_visible()
    assert len(listed) == 1
    run_clock(page, RETRY_AFTER_S * 1000)
    expect(page.locator("[data-example=astronaut] .example__thumb")).to_be_visible()
    assert len(thumbnails) == 1


def test_retry_leaves_the_focus_on_what_was_retried(
    open_page: OpenPage, live_server: LiveServer, testdata: Path
) -> None:
    """Retry goes with its notice; the keyboard's focus must not go with it to the page's top."""
    page = clocked_page(open_page, live_server)  # the test moves it past each Retry-After
    busy = json.dumps({"error": {"code": "overloaded", "message": "staged by the test"}})

    def refuse(route: Route) -> None:
        route.fulfill(
            status=503,
            headers={"Retry-After": "1", "Content-Type": "application/json"},
            body=busy,
        )

    # A photo answered 503: Retry, pressed from the keyboard, leaves the focus on its thumbnail.
    page.route("**/v1/analyze*", refuse, times=1)
    pick(page, testdata / "portrait_1.jpg")
    retry = page.locator("#photo-notice [role=alert]").get_by_role("button", name="Retry")
    expect(retry).to_be_disabled()
    page.clock.run_for(1000)
    expect(retry).to_be_enabled()
    retry.focus()
    page.keyboard.press("Enter")
    expect(page.locator(".thumb")).to_be_focused()
    expect(page.locator("#face-rows tr")).to_have_count(1)

    # The ID photo's update lost to the network: the focus stays in the ID photo's card.
    wait_for_id_photo(page)
    page.route("**/v1/id-photo?*", lambda route: route.abort("connectionrefused"), times=1)
    page.locator("label.swatch", has_text="Blue").click()
    retry = page.locator("#idphoto-notice [role=alert]").get_by_role("button", name="Retry")
    expect(retry).to_be_disabled()
    page.clock.run_for(2000)  # a network error's own wait (messages.js)
    expect(retry).to_be_enabled()
    retry.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#idphoto")).to_be_focused()
    wait_for_id_photo(page)


HELD_BECAUSE = {
    "gone": "It cannot be reached.",
    "busy": "It is busy.",
    "starting": "It is starting.",
    "proxy-busy": "It is busy.",
    "proxy-limited": "It asks for fewer requests.",
}


@pytest.mark.parametrize("why", list(HELD_BECAUSE))
def test_a_batch_waits_for_the_server_and_goes_on_when_it_answers(
    open_page: OpenPage, live_server: LiveServer, testdata: Path, why: str
) -> None:
    """A photo refused for the moment (the server out of reach, busy or starting with a
    Retry-After, or a proxy's own 503 or 429 page without one) holds the photos waiting after
    it: they are not sent, not marked failed, and the batch says once that it waits, and why.
    The page tries again on its own (/readyz first for a server out of reach, the refused photo
    itself after Retry-After or the page's own wait) and goes on when the server answers.
    Until 2026-12-07 the waiting photos were sent one after another, each failing within a
    second, and the batch stood failed whole; until later that day a proxy's 503 or 429 page
    failed them so too, and a server starting was said to be busy."""
    page = clocked_page(open_page, live_server)
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if "/v1/analyze" in r.url else None)
    routes: dict[str, Callable[[Route], None]] = {}
    if why == "gone":
        routes["**/v1/analyze*"] = lambda route: route.abort("connectionrefused")
        routes["**/readyz"] = lambda route: route.abort("connectionrefused")
    elif why == "busy":
        routes["**/v1/analyze*"] = refusing(503, "overloaded")
    elif why == "starting":
        routes["**/v1/analyze*"] = refusing(503, "not_ready")
    else:
        routes["**/v1/analyze*"] = proxy_page(503 if why == "proxy-busy" else 429)
    for url, handler in routes.items():
        page.route(url, handler)
    page.clock.pause_at(page.evaluate("Date.now()") + 1)
    names = ("two_people.jpg", "obama_small.jpg", "portrait_1.jpg", "portrait_2.jpg")
    pick(page, *(testdata / name for name in names))
    thumbs = page.locator(".thumb")
    expect(thumbs.nth(0)).to_contain_text("Failed")

    run_clock(page, 10_000)
    for index in range(1, len(names)):
        expect(thumbs.nth(index)).to_contain_text("Waiting")
    if why == "gone":
        assert len(sent) == 1, sent  # /readyz is asked, nothing is uploaded again
    else:
        # The refused photo, tried again (a proxy's page named no wait: after 2 s, then 4).
        assert 2 <= len(sent) <= 1 + 10 // RETRY_AFTER_S, sent
    hold = page.locator("#queue-hold [role=status]")
    expect(hold).to_contain_text("Waiting for the server")
    expect(hold).to_contain_text(HELD_BECAUSE[why])
    expect(hold).to_contain_text("3 photos wait")
    expect(hold).to_contain_text("Trying again on its own")
    expect(page.locator("#photo-notice [role=alert]")).to_contain_text("Trying again on its own")
    page.click("#lang-switch")
    expect(hold).to_contain_text("正在等待服务器")
    expect(hold).to_contain_text("3 张照片在等待")
    page.click("#lang-switch")

    for url in routes:
        page.unroute(url)
    run_clock(page, 16_000)  # at most 8 s to the next try for a server out of reach
    for index, faces in enumerate(("2 faces", "1 face", "1 face", "1 face")):
        expect(thumbs.nth(index)).to_contain_text(faces)
    expect(hold).to_have_count(0)


def test_one_retry_sends_again_every_photo_the_server_was_gone_for(
    open_page: OpenPage, live_server: LiveServer, testdata: Path
) -> None:
    """Photos chosen one at a time while the server is gone each fail on their own (none waits
    behind another, so nothing is held); once it is back, one Retry sends them all again, not
    the one on show only. Until 2026-12-07 each photo needed choosing and its own Retry."""
    page = clocked_page(open_page, live_server)  # the test moves it past the network's wait
    gone = "**/v1/analyze*"
    page.route(gone, lambda route: route.abort("connectionrefused"))
    names = ("two_people.jpg", "obama_small.jpg", "portrait_1.jpg")
    thumbs = page.locator(".thumb")
    for index, name in enumerate(names):
        pick(page, testdata / name)
        expect(thumbs.nth(index)).to_contain_text("Failed")
    retry = page.locator("#photo-notice [role=alert]").get_by_role("button", name="Retry")
    page.clock.run_for(2000)  # a network error's own wait (messages.js)
    expect(retry).to_be_enabled()

    page.unroute(gone)
    retry.focus()
    page.keyboard.press("Enter")
    expect(thumbs.nth(2)).to_be_focused()
    for index, faces in enumerate(("2 faces", "1 face", "1 face")):
        expect(thumbs.nth(index)).to_contain_text(faces)


def _error_classes() -> list[type[FaceflowError]]:
    """Every error class, the root and its subclasses, by code."""
    found: list[type[FaceflowError]] = []
    pending: list[type[FaceflowError]] = [FaceflowError]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        found.append(cls)
    return sorted(found, key=lambda cls: cls.code)


def _client_errors() -> list[type[FaceflowError]]:
    """Every error class a client can get with a 4xx or 503 status, subclasses included."""
    return [cls for cls in _error_classes() if 400 <= cls.status < 500 or cls.status == 503]


def test_every_client_error_code_has_its_own_message(
    open_page: OpenPage, live_server: LiveServer
) -> None:
    errors = _client_errors()
    page = load(open_page, live_server).page
    described: list[dict[str, Any]] = page.evaluate(
        """async (codes) => {
            const { describeError } = await import("./js/messages.js");
            return codes.map((code) => describeError(
                {code, message: "from the server", details: {face_count: 3}, retryAfter: 4}));
        }""",
        [cls.code for cls in errors],
    )
    for cls, description in zip(errors, described, strict=True):
        assert description["title"] != "Something went wrong", cls.code
        assert description["text"], cls.code
        if issubclass(cls, RetryableError):
            assert description["retryAfter"] == 4, cls.code
    by_code = {cls.code: description for cls, description in zip(errors, described, strict=True)}
    assert "3 faces" in by_code["multiple_faces"]["text"]
    assert by_code["unauthorized"]["needsKey"]
    # A limit is quoted as each language counts: 40 megapixels, 4000 万 (ten thousand) pixels.
    pixels: list[str] = page.evaluate(
        """async () => {
            const { describeError } = await import("./js/messages.js");
            const { setLanguage } = await import("./js/i18n.js");
            const said = () => describeError({code: "too_many_pixels"}, {max_pixels: 40e6}).text;
            const english = said();
            setLanguage("zh");
            return [english, said()];
        }"""
    )
    assert "at most 40 megapixels" in pixels[0]
    assert "最多 4000 万像素" in pixels[1]


def test_a_servers_own_fault_is_said_in_the_pages_language(
    open_page: OpenPage, live_server: LiveServer
) -> None:
    """A 500 (the server's fault: a model missing, an error of its own) is said in words of the
    page's language, in English and in Chinese, not as the server's English message: until
    2026-12-07 the Chinese page showed "出错了" over the server's English sentence."""
    faults = [cls.code for cls in _error_classes() if cls.status >= 500 and cls.status != 503]
    assert {"internal", "model_error", "model_missing"} <= set(faults)
    page = load(open_page, live_server).page
    said: list[list[dict[str, str]]] = page.evaluate(
        """async (codes) => {
            const { describeError } = await import("./js/messages.js");
            const { setLanguage } = await import("./js/i18n.js");
            const describe = () => codes.concat(["some_new_code"]).map((code) => describeError(
                {code, status: 500, message: "ENGLISH FROM THE SERVER", details: {}}));
            const english = describe();
            setLanguage("zh");
            return [english, describe()];
        }""",
        faults,
    )
    for english, chinese in zip(*said, strict=True):
        assert english["title"] == "Something went wrong"
        assert "log" in english["text"]
        assert chinese["title"] == "出错了"
        assert "日志" in chinese["text"]
        assert "ENGLISH" not in english["text"] + chinese["text"]


@pytest.mark.parametrize(
    ("code", "details", "english", "chinese"),
    [
        ("invalid_parameter", {"parameter": "sheet"}, "page sent (sheet)", "设置（sheet）"),
        ("invalid_parameter", {}, "Reload the page", "刷新页面"),
        ("missing_field", {}, "photo did not reach the server", "照片没有随请求到达服务器"),
        ("bad_request", {}, "could not read the request", "无法读取这个页面发送的请求"),
        ("conflict", {}, "Wait a moment and try again", "请稍等片刻再试"),
    ],
    ids=["setting-named", "setting", "missing-field", "bad-request", "conflict"],
)
def test_a_request_the_server_refused_is_said_in_the_pages_language(
    open_page: OpenPage,
    live_server: LiveServer,
    code: str,
    details: dict[str, str],
    english: str,
    chinese: str,
) -> None:
    """A setting refused, a field missing, a request not understood or a conflict (the page
    sends nothing that earns them, but a proxy in between or a newer server may) is said in
    words of the page's language with what a person can do: until 2026-12-07 the Chinese page
    showed "请求被拒绝" over the server's English sentence."""
    page = load(open_page, live_server).page
    said: list[dict[str, str]] = page.evaluate(
        """async ([code, details]) => {
            const { describeError } = await import("./js/messages.js");
            const { setLanguage } = await import("./js/i18n.js");
            const describe = () => describeError(
                {code, status: 400, message: "ENGLISH FROM THE SERVER", details});
            const english = describe();
            setLanguage("zh");
            const chinese = describe();
            setLanguage("en");
            return [english, chinese];
        }""",
        [code, details],
    )
    assert english in said[0]["text"]
    assert chinese in said[1]["text"]
    assert "ENGLISH" not in said[0]["text"] + said[1]["text"]
    assert re.search(r"[\u4e00-\u9fff]", said[1]["title"])


def test_phone_layout_has_no_horizontal_scroll(
    open_page: OpenPage, live_server: LiveServer, testdata: Path
) -> None:
    probe = load(open_page, live_server, PHONE)
    page = probe.page
    pick(page, testdata / "two_people.jpg", testdata / "portrait_1.jpg")
    expect(page.locator(".thumb")).to_have_count(2)
    page.locator(".thumb").nth(1).click()
    wait_for_id_photo(page)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web-page-phone.png"), full_page=True)
    assert probe.errors == []


def test_keyboard_reaches_and_opens_the_file_picker(
    open_page: OpenPage, live_server: LiveServer, testdata: Path
) -> None:
    page = load(open_page, live_server).page
    # Listening for file choosers is what turns their interception on, and that takes a round
    # trip: start before any key is pressed, or the first chooser can open natively, unseen.
    page.on("filechooser", lambda _: None)
    dropzone = page.locator("#dropzone")
    for _ in range(10):
        page.keyboard.press("Tab")
        if dropzone.evaluate("element => element === document.activeElement"):
            break
    expect(dropzone).to_be_focused()
    # The focus is visible: the focused drop zone has a focus ring.
    assert dropzone.evaluate("element => getComputedStyle(element).boxShadow") != "none"

    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Enter")
    chooser.value.set_files(str(testdata / "two_people.jpg"))
    expect(page.locator("#face-rows tr")).to_have_count(2)

    dropzone.focus()
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Space")
    assert chooser.value.is_multiple()

    # The API docs open beside the page, which keeps its photo: in the same tab, Back came to an
    # empty page.
    docs_link = page.get_by_role("link", name="API docs (opens in a new tab)")
    with page.context.expect_page() as docs:
        docs_link.focus()
        page.keyboard.press("Enter")
    docs.value.close()
    expect(page.locator("#face-rows tr")).to_have_count(2)


# Whether the focused element shows where the focus is: an outline, or the page's two-tone ring
# (a box-shadow in the accent colour) on itself, its ::before (a photo's ×) or the next element
# (a background swatch's chip, drawn beside its radio button).
FOCUS_SHOWN = """(element) => {
  const ring = (style) => (style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 2)
    || /rgb\\((47, 91, 234|125, 151, 255)\\)/.test(style.boxShadow);
  return element.matches(":focus-visible") && (ring(getComputedStyle(element))
    || ring(getComputedStyle(element, "::before"))
    || (element.nextElementSibling !== null && ring(getComputedStyle(element.nextElementSibling))));
}"""
FOCUSED = "() => { const e = document.activeElement; return e.id || e.className || e.tagName; }"


def tab_to(page: Page, target: Locator, presses: int = 40) -> list[str]:
    """Press Tab until ``target`` has the focus (failing after ``presses``), checking that every
    stop on the way shows its focus. Returns the stops, for the order."""
    stops: list[str] = []
    for _ in range(presses):
        page.keyboard.press("Tab")
        stops.append(page.evaluate(FOCUSED))
        assert page.evaluate(f"({FOCUS_SHOWN})(document.activeElement)"), f"no focus ring: {stops}"
        if target.evaluate("element => element === document.activeElement"):
            return stops
    raise AssertionError(f"{target} not reached with Tab: {stops}")


def test_a_keyboard_alone_chooses_a_photo_reads_its_report_and_downloads_everything(
    open_page: OpenPage, live_server: LiveServer, testdata: Path
) -> None:
    """The whole of the page with the keyboard alone, every stop showing its focus: choose a photo
    from the drop zone, read its faces and its ID photo's report, change the background, and
    download the annotated image, the results (JSON, CSV), the ID photo, its report and a print
    sheet, each named after the photo."""
    page = load(open_page, live_server).page
    page.on("filechooser", lambda _: None)  # see test_keyboard_reaches_and_opens_the_file_picker
    tab_to(page, page.locator("#dropzone"), presses=10)
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Enter")
    chooser.value.set_files(str(testdata / "portrait_1.jpg"))
    expect(page.locator("#face-rows tr")).to_have_count(1)
    wait_for_id_photo(page)
    expect(page.locator("#photo-announce")).to_have_text("portrait_1.jpg, 1 face found")
    expect(page.locator("#dropzone")).to_be_focused()

    # Past the other ways in and the strip of photos, the faces table is one stop, and the
    # analysis's downloads follow it.
    tab_to(page, page.locator("#face-rows tr").first, presses=10)
    downloads = {
        "#download-annotated": "portrait_1-annotated.jpg",
        "#download-json": "portrait_1-faces.json",
        "#download-csv": "portrait_1-faces.csv",
    }
    for selector, name in downloads.items():
        tab_to(page, page.locator(selector), presses=2)
        with page.expect_download() as download:
            page.keyboard.press("Enter")
        assert download.value.suggested_filename == name

    # A background chosen with the arrow keys makes the photo again.
    tab_to(page, page.locator("input[name=background]:checked"), presses=6)
    with page.expect_response(lambda r: "/v1/id-photo?" in r.url and "background=blue" in r.url):
        page.keyboard.press("ArrowRight")
    wait_for_id_photo(page)

    # The whole report opens from the keyboard.
    tab_to(page, page.locator("#all-checks-summary"))
    page.keyboard.press("Enter")
    expect(page.locator("#checks .check").first).to_be_visible()
    assert page.locator("#checks .check").count() >= 5

    downloads = {
        "#download-report": "portrait_1-id-photo-cn-1inch-report.json",
        "#download-photo": "portrait_1-id-photo-cn-1inch.jpg",
        "#download-sheet": "portrait_1-id-photo-cn-1inch-sheet-6inch.jpg",
    }
    for selector, name in downloads.items():
        tab_to(page, page.locator(selector), presses=6)
        with page.expect_download() as download:
            page.keyboard.press("Space" if selector == "#download-sheet" else "Enter")
        assert download.value.suggested_filename == name


def test_dropped_photos_are_queued_and_selectable(
    open_page: OpenPage, live_server: LiveServer, testdata: Path
) -> None:
    page = load(open_page, live_server).page
    files = [
        {"name": name, "data": base64.b64encode((testdata / name).read_bytes()).decode()}
        for name in ("two_people.jpg", "obama_small.jpg")
    ]
    page.evaluate(
        """files => {
            const transfer = new DataTransfer();
            for (const {name, data} of files) {
                const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
                transfer.items.add(new File([bytes], name, {type: "image/jpeg"}));
            }
            const zone = document.getElementById("dropzone");
            for (const type of ["dragenter", "dragover", "drop"]) {
                zone.dispatchEvent(new DragEvent(type, {bubbles: true, cancelable: true,
                                                        dataTransfer: transfer}));
            }
        }""",
        files,
    )
    thumbs = page.locator(".thumb")
    expect(thumbs).to_have_count(2)
    expect(thumbs.nth(0)).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#face-rows tr")).to_have_count(2)
    expect(thumbs.nth(1)).to_contain_text("1 face")
    thumbs.nth(1).click()
    expect(thumbs.nth(1)).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#face-rows tr")).to_have_count(1)
    expect(page.locator("#photo-meta")).to_contain_text("obama_small.jpg")


def drop_paths(page: Page, *paths: Path) -> None:
    """Drop files and folders from the disk on the page, as a file manager does (a script's
    DataTransfer cannot hold a folder): Chromium's own drag, through the DevTools protocol."""
    cdp = page.context.new_cdp_session(page)
    data = {"items": [], "files": [str(path) for path in paths], "dragOperationsMask": 1}
    page.evaluate(
        "() => document.addEventListener('dragover', () => { window.draggedOver = true; })"
    )
    for kind in ("dragEnter", "dragOver"):
        cdp.send("Input.dispatchDragEvent", {"type": kind, "x": 400, "y": 300, "data": data})
    # The drop only once the page has taken the drag over (its handler accepted the copy): sent
    # at once, on a busy machine (two workers' browsers), it reached a page that had not, and
    # Chromium did not drop (no photo came, 2 of 3 runs in two workers).
    page.wait_for_function("() => window.draggedOver === true")
    cdp.send("Input.dispatchDragEvent", {"type": "drop", "x": 400, "y": 300, "data": data})
    cdp.detach()


def test_a_dropped_folder_brings_its_photos_and_an_unreadable_file_says_so(
    open_page: OpenPage, live_server: LiveServer, testdata: Path, tmp_path: Path
) -> None:
    """A folder dropped on the page is its photos, in name order (its folders' too, not its
    other files), and a folder with none is said to be unreadable, not the server unreachable:
    until 2026-12-07 the folder itself went up, failed at once, and read "Connection problem"."""
    trip = tmp_path / "trip"
    (trip / "later").mkdir(parents=True)
    (trip / "2.jpg").write_bytes((testdata / "obama_small.jpg").read_bytes())
    (trip / "10.jpg").write_bytes((testdata / "two_people.jpg").read_bytes())
    (trip / "later" / "1.jpg").write_bytes((testdata / "obama_small.jpg").read_bytes())
    (trip / "notes.txt").write_text("not a photo")
    (trip / ".hidden.jpg").write_bytes(b"\xff\xd8 not one either")
    empty = tmp_path / "empty"
    empty.mkdir()
    probe = load(open_page, live_server)
    page = probe.page
    drop_paths(page, trip, empty)

    thumbs = page.locator(".thumb")
    expect(thumbs).to_have_count(4)
    names = [
        label.split(":")[0]
        for label in thumbs.evaluate_all(
            "buttons => buttons.map((button) => button.getAttribute('aria-label'))"
        )
    ]
    assert names == ["2.jpg", "10.jpg", "1.jpg", "empty"]
    expect(thumbs.nth(1)).to_contain_text("2 faces")
    thumbs.nth(3).click()
    notice = page.locator("#photo-notice")
    expect(notice).to_contain_text("Cannot read this file")
    expect(notice).not_to_contain_text("Connection problem")
    expect(notice.get_by_role("button", name="Retry")).to_have_count(0)
    expect(page.locator("#server-status")).to_have_attribute("data-state", "ok")
    expect(thumbs.nth(2)).to_contain_text("1 face")


def test_a_folder_of_too_many_photos_brings_as_many_as_the_page_takes_and_says_so(
    open_page: OpenPage, live_server: LiveServer, testdata: Path, tmp_path: Path
) -> None:
    """A folder brings at most the queue's room in photos, the first in name order, and says
    how many it left out; choosing files follows the same rule. Until 2026-12-07 a folder of
    2,000 photos came whole: 16 s before the page showed them, then its one thread busy for
    good, about 4 s per photo analysed (docs/web-page.md)."""
    given = MAX_PHOTOS + 5
    folder = tmp_path / "many"
    folder.mkdir()
    photo = (testdata / "obama_small.jpg").read_bytes()
    for index in range(given):
        (folder / f"{index:03d}.jpg").write_bytes(photo)
    page = load(open_page, live_server).page
    drop_paths(page, folder)
    thumbs = page.locator(".thumb")
    said = page.locator("#queue-notice [role=status]")
    expect(thumbs).to_have_count(MAX_PHOTOS)
    expect(said).to_contain_text(f"{MAX_PHOTOS} of the {given} given were added and 5 left out")
    expect(thumbs.last).to_have_attribute("aria-label", re.compile(f"^{MAX_PHOTOS - 1:03d}.jpg:"))
    page.click("#lang-switch")
    expect(said).to_contain_text(f"加入了 {MAX_PHOTOS} 张，5 张未加入")
    page.click("#lang-switch")

    # A full queue takes no more from the picker either; Clear all makes room, and the notice goes.
    pick(page, testdata / "portrait_1.jpg")
    expect(said).to_contain_text("0 of the 1 given were added and 1 left out")
    expect(thumbs).to_have_count(MAX_PHOTOS)
    page.click("#queue-clear")
    expect(said).to_have_count(0)
    pick(page, testdata / "portrait_1.jpg")
    expect(thumbs).to_have_count(1)
    expect(said).to_have_count(0)


@pytest.fixture(scope="module")
def keyed_server_starting(live_server_factory: LiveServerFactory) -> Iterator[LiveServer]:
    """A server that wants a key, started but not waited for; stopped with the module rather than
    kept to the session's end."""
    server = live_server_factory(
        wait=False, SERVER__API_KEY_HASHES=json.dumps([hash_api_key(API_KEY)])
    )
    yield server
    server.stop()


_start_servers_early = started_early("keyed_server", "keyed_server_starting")


@pytest.fixture
def keyed_server(keyed_server_starting: LiveServer) -> LiveServer:
    keyed_server_starting.wait_ready()
    return keyed_server_starting


def test_api_key_is_asked_for_kept_for_the_session_and_sent(
    open_page: OpenPage, keyed_server: LiveServer, testdata: Path
) -> None:
    page = open_page().page
    page.goto(keyed_server.url + "/")
    dialog = page.locator("#key-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#key-input")).to_be_focused()

    page.fill("#key-input", "not-the-key")
    page.click("#key-submit")
    expect(page.locator("#key-error")).to_contain_text("not accepted")
    expect(dialog).to_be_visible()

    page.fill("#key-input", API_KEY)
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    expect(page.locator("#server-status")).to_have_attribute("data-state", "ok")
    expect(page.locator("#key-button")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('faceflow.apiKey')") == API_KEY
    assert page.evaluate("localStorage.length") == 0
    assert page.context.cookies() == []

    with page.expect_request(lambda r: "/v1/analyze" in r.url) as sent:
        pick(page, testdata / "two_people.jpg")
    assert sent.value.headers.get("authorization") == f"Bearer {API_KEY}"
    expect(page.locator("#face-rows tr")).to_have_count(2)

    # The key lasts for the tab's session: a reload does not ask again.
    page.reload()
    expect(page.locator("#server-status")).to_have_attribute("data-state", "ok")
    expect(dialog).to_be_hidden()


@pytest.mark.parametrize(
    ("locale", "spec", "name"),
    [("en-US", "eu-passport", "web-page.png"), ("zh-CN", "cn-2inch", "web-page-zh.png")],
    ids=["en", "zh"],
)
def test_docs_screenshot(
    open_page: OpenPage, live_server: LiveServer, testdata: Path, locale: str, spec: str, name: str
) -> None:
    probe = load(open_page, live_server, locale=locale)
    page = probe.page
    pick(page, testdata / "two_people.jpg", testdata / "portrait_1.jpg")
    expect(page.locator(".thumb")).to_have_count(2)
    expect(page.locator(".thumb").nth(0)).to_contain_text(re.compile(r"2 (faces|张人脸)"))
    page.locator(".thumb").nth(1).click()
    wait_for_id_photo(page)
    with page.expect_response(lambda r: "/v1/id-photo?" in r.url and f"spec={spec}" in r.url):
        page.select_option("#spec", spec)
    wait_for_id_photo(page)
    # The example photos' thumbnails, when the server has them, are in the picture too.
    for thumb in page.locator(".example__thumb").all():
        expect(thumb).to_be_visible()
    page.mouse.move(0, 0)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = page.screenshot(path=str(ARTIFACTS / f"desktop-{name}"), full_page=True)
    target = DOCS_SCREENSHOT.parent / name
    if os.environ.get("FACEFLOW_UPDATE_DOCS") == "1":
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(small_png(shot))
    assert probe.errors == []
    assert target.is_file(), "run scripts/docs-screenshots.sh to create it"
    assert target.stat().st_size < DOCS_SCREENSHOT_MAX_BYTES


def small_png(png: bytes) -> bytes:
    """The screenshot with a 256-colour palette: a fraction of the size, same look."""
    with Image.open(io.BytesIO(png)) as image:
        quantized = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    out = io.BytesIO()
    quantized.save(out, format="PNG", optimize=True)
    return out.getvalue()


# A phone's mobile link as Lighthouse emulates it, with the 750 kbit/s uplink the issue measured
# (a 676 KB photo took 8 s per change when every change uploaded it again).
PHONE_LINK = {
    "offline": False,
    "latency": 150,
    "downloadThroughput": 1_600_000 / 8,
    "uploadThroughput": 750_000 / 8,
}
# An uplink slow enough (10 kB/s) to hold a photo of a few hundred kB on its way up for as long
# as a test needs to see its progress, and the network as it is, to let it through at once.
CRAWL = {"offline": False, "latency": 20, "downloadThroughput": -1, "uploadThroughput": 10_000}
NO_THROTTLE = {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
# The product asks for a change to render in under 1 s on that link. On this shared 2-core
# machine the server's own part (lay out, recolour, encode a cached cut-out) varies several-fold,
# so the test allows 5x; what makes it fast, no upload, is asserted exactly.
CHANGE_REQUIREMENT_S = 1.0
CHANGE_MARGIN = 5


# Playwright does not see a multipart body made of a Blob, so the page's own XMLHttpRequest
# notes what each request sends: the byte size of every file in it.
RECORD_UPLOADS = """
const open = XMLHttpRequest.prototype.open;
const send = XMLHttpRequest.prototype.send;
window.sentBytes = {};
XMLHttpRequest.prototype.open = function (method, url, ...rest) {
  this.recordedUrl = new URL(url, document.baseURI).href;
  return open.call(this, method, url, ...rest);
};
XMLHttpRequest.prototype.send = function (body) {
  let size = 0;
  if (body instanceof FormData) for (const [, value] of body) size += value.size ?? 0;
  window.sentBytes[this.recordedUrl] = size;
  return send.call(this, body);
};
"""


def recording_uploads(page: Page) -> None:
    page.add_init_script(RECORD_UPLOADS)


def body_size(request: Request) -> int:
    """Bytes of files the page sent with ``request`` (needs :func:`recording_uploads`)."""
    frame = request.frame
    return int(frame.evaluate("url => window.sentBytes[url]", request.url))


def throttle(page: Page, conditions: dict[str, Any]) -> CDPSession:
    """The page's network under ``conditions``; send ``Network.emulateNetworkConditions`` to the
    session returned to change them."""
    devtools = page.context.new_cdp_session(page)
    devtools.send("Network.enable")
    devtools.send("Network.emulateNetworkConditions", conditions)
    return devtools


# Elements inside a card whose right edge passes the card's content edge: neither positioned on
# purpose (a thumbnail's remove badge) nor inside something that scrolls (the faces table).
STICKING_OUT = """() => {
  const out = [];
  for (const card of document.querySelectorAll('.card')) {
    const box = card.getBoundingClientRect();
    const style = getComputedStyle(card);
    const edge = box.right - parseFloat(style.paddingRight) - parseFloat(style.borderRightWidth);
    for (const el of card.querySelectorAll('*')) {
      const rect = el.getBoundingClientRect();
      if (!rect.width || rect.right <= edge + 0.5) continue;
      let free = true;
      for (let up = el; up && up !== card; up = up.parentElement) {
        const cs = getComputedStyle(up);
        if (cs.position === 'absolute' || cs.position === 'fixed' || cs.overflowX !== 'visible')
          free = false;
      }
      if (free) out.push(`${el.tagName.toLowerCase()}#${el.id}.${el.className} ends at ` +
                         `${Math.round(rect.right)}, the card's content at ${Math.round(edge)}`);
    }
  }
  return out;
}"""


def test_nothing_sticks_out_of_its_card_on_the_narrowest_phones(
    open_page: OpenPage, live_server: LiveServer, testdata: Path
) -> None:
    """A 320 px phone and a folded Galaxy Fold (280 px), with an ID photo made: every control
    stays inside its card (the ID-photo form's ran past its edge at 320 px) and the page does
    not scroll sideways."""
    probe = load(open_page, live_server, PHONE)
    page = probe.page
    pick(page, testdata / "portrait_1.jpg")
    wait_for_id_photo(page)
    for width in (320, 280):
        page.set_viewport_size({"width": width, "height": 800})
        assert page.evaluate(STICKING_OUT) == [], width
        assert page.evaluate("document.documentElement.scrollWidth") == width
    assert probe.errors == []


def test_chinese_page_at_phone_size(
    open_page: OpenPage, live_server: LiveServer, testdata: Path
) -> None:
    """A Chinese browser gets the page in Chinese: its own strings, preset and check names,
    status words and errors; an ID photo made at phone size, without horizontal scroll."""
    probe = load(open_page, live_server, PHONE, locale="zh-CN")
    page = probe.page
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator("h1")).to_have_count(1)
    expect(page.locator("#server-status")).to_contain_text("就绪")
    expect(page.locator("#dropzone")).to_contain_text("选择文件")
    expect(page.locator("#spec option[value=cn-1inch]")).to_have_text(re.compile(r"^一寸"))
    # Every size by its Chinese name, as the server gives it (机动车驾驶证, not "China driving
    # licence").
    options = page.locator("#spec option")
    titles = [spec["title_zh"] for spec in specs_of(live_server).values()]
    expect(options).to_have_text([re.compile("^" + re.escape(title)) for title in titles])
    expect(page.locator("#lang-switch")).to_have_text("English")
    pick(page, testdata / "portrait_1.jpg")
    wait_for_id_photo(page)
    expect(page.locator("#report-status")).to_have_text(
        re.compile(r"符合要求|请查看警告|不符合要求")
    )
    # The report reads across the card, under the photo, not in a narrow column beside it.
    result = page.locator("#idphoto-result").bounding_box()
    preview = page.locator("#idphoto-preview").bounding_box()
    report = page.locator(".idphoto__report").bounding_box()
    assert result
    assert preview
    assert report
    assert report["y"] >= preview["y"] + preview["height"]
    assert report["width"] >= result["width"] - 1
    page.locator("#all-checks-summary").click()
    badges = set(page.locator("#checks .badge").all_inner_texts())
    assert badges, "no check badges"
    assert badges <= {"通过", "警告", "不通过"}, badges
    names = page.locator("#checks .check__name").all_inner_texts()
    assert "头部高度" in names
    latin = [name for name in names if re.search(r"[A-Za-z]", name)]
    assert latin == []
    # What each check allows is worded by the page from the server's limits: no English left
    # (millimetres stay "mm", as on Chinese ID-photo forms).
    allowed = page.locator("#checks .check__value small").all_inner_texts()
    assert len(allowed) == len(names)
    assert any("距底边" in text for text in allowed), allowed
    values = page.locator("#checks .check__value").all_inner_texts()
    words = [re.sub(r"#[0-9a-f]{6}|mm", "", text) for text in values]
    english = [text for text in words if re.search(r"[A-Za-z]", text)]
    assert english == []
    expect(page.locator("#face-rows tr")).to_have_count(1)
    expect(page.locator("#face-rows tr").first).to_contain_text(re.compile(r"[男女]"))
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    # A change on its way (held here) labels the photo on one line, not "正在更" over "新…".
    held: list[Route] = []
    page.route("**/v1/id-photo?*", lambda route: held.append(route), times=1)
    page.locator("label.swatch", has_text="蓝色").click()
    busy = page.locator("#idphoto-busy")
    expect(busy).to_have_text("正在更新…")
    assert busy.evaluate(LINES) == 1
    held[0].continue_()
    wait_for_id_photo(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web-page-zh-phone.png"), full_page=True)

    pick(page, testdata / "cat.jpg")
    expect(page.locator("#faces-empty")).to_have_text("这张照片里没有找到人脸。")
    expect(page.locator("#make-idphoto")).to_be_disabled()
    expect(page.locator("#make-reason")).to_have_text("这张照片里没有找到人脸。")
    expect(page.locator("#idphoto-notice [role=alert]")).to_contain_text("没有找到人脸")
    assert probe.errors == []


def test_language_switch_is_remembered(open_page: OpenPage, live_server: LiveServer) -> None:
    page = load(open_page, live_server).page
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("#make-idphoto")).to_have_text("Make ID photo")
    page.click("#lang-switch")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator("#make-idphoto")).to_have_text("制作证件照")
    expect(page.locator("#server-status")).to_contain_text("就绪")
    expect(page.locator("#lang-switch")).to_have_attribute("lang", "en")
    assert page.evaluate("localStorage.getItem('faceflow.lang')") == "zh"

    # The choice outlives a reload, over the browser's English.
    page.reload()
    expect(page.locator("#server-status")).to_have_attribute("data-state", "ok")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator("#idphoto-title")).to_have_text("证件照")
    page.click("#lang-switch")
    expect(page.locator("#idphoto-title")).to_have_text("ID photo")


def test_first_id_photo_shows_its_progress_and_is_announced(
    open_page: OpenPage, live_server: LiveServer, testdata: Path
) -> None:
    page = load(open_page, live_server).page
    # Once the photo is analysed, its upload is held back, then a crawling uplink holds the
    # 354 kB photo on its way up to be cut out while the test watches it go...
    devtools = throttle(page, NO_THROTTLE)
    held: list[Route] = []
    page.route("**/v1/id-photo?*", lambda route: held.append(route), times=1)
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if "/v1/id-photo?" in r.url else None)
    pick(page, testdata / "biden.jpg")
    progress = page.locator("#idphoto-progress")
    label = page.locator("#idphoto-progress-label")
    expect(label).to_have_text("Uploading biden.jpg")
    expect(progress).to_be_visible()
    # Nothing has moved (the request is held): the progress is said again in another language.
    page.click("#lang-switch")
    expect(label).to_have_text("正在上传 biden.jpg")
    page.click("#lang-switch")
    expect(label).to_have_text("Uploading biden.jpg")
    devtools.send("Network.emulateNetworkConditions", CRAWL)
    held[0].continue_()
    expect(page.locator("#idphoto-result")).to_be_hidden()
    expect(page.locator("#idphoto-progress-value")).to_have_text(re.compile(r"^\d+%$"))
    # A change on the way up does not send the photo again from 0 %: the upload goes on, and the
    # new choice is made from the server's copy once the upload is answered.
    page.locator("label.swatch", has_text="Blue").click()
    expect(page.locator("#idphoto-progress-label")).to_have_text("Uploading biden.jpg")
    # ...then lets the rest of it through at once.
    with page.expect_response(lambda r: "source=" in r.url and "background=blue" in r.url):
        devtools.send("Network.emulateNetworkConditions", NO_THROTTLE)
        # The cut-out takes the server a second or more: the page says so.
        expect(page.locator("#idphoto-progress-label")).to_have_text("Cutting out…")
    wait_for_id_photo(page)
    assert [url for url in sent if "source=" not in url] == [sent[0]]  # one upload
    expect(progress).to_be_hidden()
    announce = page.locator("#idphoto-announce")
    expect(announce).to_have_attribute("aria-live", "polite")
    expect(announce).to_have_text(re.compile(r"^ID photo ready: (Compliant|Check warnings)"))


def test_a_change_reuses_the_upload_on_a_phone_link(
    open_page: OpenPage, live_server: LiveServer, testdata: Path
) -> None:
    probe = open_page(PHONE)
    page = probe.page
    recording_uploads(page)
    page.goto(live_server.url + "/")
    expect(page.locator("#server-status")).to_have_attribute("data-state", "ok")
    photo = testdata / "portrait_1.jpg"
    with page.expect_response(lambda r: "/v1/id-photo?" in r.url) as first:
        pick(page, photo)
    wait_for_id_photo(page)
    digest = first.value.headers["x-source"]
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert body_size(first.value.request) == photo.stat().st_size

    devtools = throttle(page, PHONE_LINK)
    started = time.monotonic()
    with page.expect_response(
        lambda r: "/v1/id-photo?" in r.url and "background=blue" in r.url
    ) as changed:
        page.locator("label.swatch", has_text="Blue").click()
    assert changed.value.ok
    wait_for_id_photo(page)
    expect(page.locator("#idphoto-busy")).to_be_hidden()
    elapsed = time.monotonic() - started
    request = changed.value.request
    assert f"source={digest}" in request.url
    assert body_size(request) == 0  # nothing uploaded again
    print(f"a change on the phone link rendered in {elapsed:.2f} s (requirement 1 s)")
    assert elapsed < CHANGE_REQUIREMENT_S * CHANGE_MARGIN

    # The server forgot the cut-out: the page sends the photo again, once, and carries on. A
    # change made while it is on its way (held there by a crawling uplink) waits for it and is
    # made by the new source=, not by sending the photo again from 0 %.
    expired = json.dumps({"error": {"code": "source_expired", "message": "staged by the test"}})
    forgotten: list[str] = []
    uploads: list[Request] = []

    def forget_once(route: Route) -> None:
        if "source=" not in route.request.url:
            uploads.append(route.request)
            devtools.send("Network.emulateNetworkConditions", CRAWL)
            route.continue_()
        elif not forgotten:
            forgotten.append(route.request.url)
            route.fulfill(status=404, content_type="application/json", body=expired)
        else:
            route.continue_()

    page.route("**/v1/id-photo?*", forget_once)
    page.locator("label.swatch", has_text="Red").click()
    expect(page.locator("#idphoto-progress-label")).to_have_text("Uploading portrait_1.jpg")
    page.locator("label.swatch", has_text="Grey").click()
    expect(page.locator("#idphoto-progress-label")).to_have_text("Uploading portrait_1.jpg")
    with page.expect_response(lambda r: "source=" in r.url and "background=grey" in r.url) as grey:
        devtools.send("Network.emulateNetworkConditions", NO_THROTTLE)
    assert grey.value.ok
    wait_for_id_photo(page)
    assert len(uploads) == 1, [request.url for request in uploads]
    assert "background=red" in uploads[0].url
    assert body_size(uploads[0]) == photo.stat().st_size
    assert f"source={digest}" in grey.value.url  # the same photo: the same content key
    expect(page.locator("#idphoto-progress")).to_be_hidden()
    expect(page.locator("#idphoto-notice [role=alert]")).to_have_count(0)
    # Chromium logs every 404 it gets, the staged one included; nothing else went wrong.
    assert [error for error in probe.errors if "status of 404" not in error] == []


# Each decode of a file on the page: a frame WebCodecs' ImageDecoder made ([width, height]), or
# createImageBitmap given the file itself (["whole", bytes]), which decodes all of it first; and
# the last image sent, as base64.
RECORD_DECODES = """
window.decodes = [];
const send = XMLHttpRequest.prototype.send;
XMLHttpRequest.prototype.send = function (body) {
  const image = body instanceof FormData ? body.get("image") : null;
  if (image instanceof Blob) {
    const reader = new FileReader();
    reader.onload = () => { window.sentImage = reader.result.split(",")[1]; };
    reader.readAsDataURL(image);
  }
  return send.call(this, body);
};
if (window.ImageDecoder) {
  window.ImageDecoder = class extends window.ImageDecoder {
    async decode(options) {
      const decoded = await super.decode(options);
      window.decodes.push([decoded.image.displayWidth, decoded.image.displayHeight]);
      return decoded;
    }
  };
}
const createImageBitmap = window.createImageBitmap;
window.createImageBitmap = function (source, ...rest) {
  if (source instanceof Blob) window.decodes.push(["whole", source.size]);
  return createImageBitmap.call(this, source, ...rest);
};
"""


def test_a_big_photo_is_made_smaller_before_its_id_photo_upload(
    open_page: OpenPage, live_server: LiveServer, testdata: Path
) -> None:
    """Sent at the size its ID photo needs, as the same picture (its EXIF orientation applied),
    and made from a JPEG decoded at a fraction of its size: decoded whole, a big photo took
    most of the memory the tab still held after choosing eight of them (docs/web-page.md)."""
    with Image.open(testdata / "portrait_1.jpg") as original:
        # 2292×3438: the face is about 1,100 px tall, nearly twice what any preset needs.
        big = original.resize((original.width * 3, original.height * 3), Image.Resampling.LANCZOS)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored on its side, to be turned a quarter clockwise
    out = io.BytesIO()
    big.transpose(Image.Transpose.ROTATE_90).save(out, format="JPEG", quality=92, exif=exif)
    data = out.getvalue()
    analysed = httpx.post(f"{live_server.url}/v1/analyze", files={"image": data}, timeout=120.0)
    analysed.raise_for_status()
    result = analysed.json()
    assert (result["width"], result["height"]) == big.size
    [face] = result["faces"]
    scale = 600 / (face["box"][3] - face["box"][1])
    expected = (round(big.width * scale), round(big.height * scale))
    page = open_page().page
    recording_uploads(page)
    page.add_init_script(RECORD_DECODES)
    page.goto(live_server.url + "/")
    # A 9 MP photo: analysis and cut-out take a busy machine a while.
    with page.expect_response(lambda r: "/v1/id-photo?" in r.url, timeout=90_000) as made:
        page.set_input_files(
            "#file-input", {"name": "big.jpg", "mimeType": "image/jpeg", "buffer": data}
        )
    wait_for_id_photo(page)
    sent = body_size(made.value.request)
    assert 0 < sent < len(data) / 2, (sent, len(data))
    body = made.value.json()
    resolution = {check["name"]: check for check in body["report"]["checks"]}["resolution"]
    assert resolution["status"] == "pass", resolution

    # What went up: the photo upright, at the size the face needs, the same picture as Pillow
    # makes of it (the page's JPEG at quality 0.92 is within a few levels of it).
    sent_image = page.wait_for_function("() => window.sentImage").json_value()
    upload = Image.open(io.BytesIO(base64.b64decode(sent_image)))
    assert upload.size == expected
    wanted = big.resize(expected, Image.Resampling.LANCZOS)
    difference = ImageStat.Stat(ImageChops.difference(upload.convert("RGB"), wanted)).mean
    assert max(difference) < 2.5, difference
    # Never decoded whole: a frame at n/8 of its size, no smaller than what went up.
    decodes = page.evaluate("window.decodes")
    assert ["whole", len(data)] not in decodes, decodes
    assert any(
        expected[0] <= width < big.width and expected[1] <= height < big.height
        for width, height in decodes
    ), decodes


# For each URL, whether an image loaded from it fails (the page's CSP lets only images have blob:).
LOADS_NOTHING = """(urls) => Promise.all(urls.map((url) => new Promise((done) => {
  const image = new Image();
  image.onload = () => done(false);
  image.onerror = () => done(true);
  image.src = url;
})))"""


def test_a_big_photo_is_shown_from_pictures_the_size_of_the_screen(
    open_page: OpenPage, live_server: LiveServer, testdata: Path
) -> None:
    """A browser keeps an <img>'s picture decoded at full size: the thumbnail and the photo card
    show scaled copies (pictures.js), not the 18.6 MP photo itself, the faces still drawn where
    the server found them; a removed photo's pictures are let go."""
    with Image.open(testdata / "two_people.jpg") as original:
        big = original.resize((original.width * 5, original.height * 5), Image.Resampling.BILINEAR)
    out = io.BytesIO()
    big.save(out, format="JPEG", quality=85)
    probe = open_page()
    page = probe.page
    page.add_init_script(RECORD_DECODES)
    page.goto(live_server.url + "/")
    page.set_input_files(
        "#file-input", {"name": "big.jpg", "mimeType": "image/jpeg", "buffer": out.getvalue()}
    )
    expect(page.locator("#overlay .face__box")).to_have_count(2, timeout=90_000)
    thumb = page.locator(".thumb img")
    photo = page.locator("#photo")
    expect(thumb).to_have_attribute("src", re.compile("^blob:"))
    expect(photo).to_have_attribute("src", re.compile("^blob:"))
    page.wait_for_function("() => [...document.images].every((image) => image.complete)")
    natural = "(img) => [img.naturalWidth, img.naturalHeight]"
    assert 0 < thumb.evaluate(natural)[0] <= 256
    width, height = photo.evaluate(natural)
    # At most the card's 640 CSS px tall and the layout's 1320 wide, here at density 1.
    assert 0 < width <= 1320, (width, height)
    assert 0 < height <= 640, (width, height)
    # Scaled down from a frame at least its size, not up from a smaller one: asked for just the
    # view's pixels, the decoder rounded down to 1/8 of the photo, 704×413 for a 1090×640 view.
    decodes = page.evaluate("window.decodes")
    assert ["whole", len(out.getvalue())] not in decodes, decodes
    assert any(width <= w < big.width and height <= h < big.height for w, h in decodes), decodes

    # Shown as the photo itself would be, and the faces drawn over it where the API put them.
    report = httpx.post(
        f"{live_server.url}/v1/analyze", files={"image": out.getvalue()}, timeout=90.0
    ).json()
    assert (report["width"], report["height"]) == big.size
    shown = photo.bounding_box()
    assert shown is not None
    assert shown["width"] / shown["height"] == pytest.approx(big.width / big.height, abs=0.01)
    assert shown["height"] <= 640.5
    scale = shown["width"] / report["width"]
    for index, face in enumerate(sorted(report["faces"], key=lambda face: face["box"][0])):
        x1, y1, x2, y2 = face["box"]
        drawn = page.locator("#overlay .face__box").nth(index).bounding_box()
        assert drawn is not None
        assert drawn["x"] == pytest.approx(shown["x"] + x1 * scale, abs=3)
        assert drawn["y"] == pytest.approx(shown["y"] + y1 * scale, abs=3)
        assert drawn["width"] == pytest.approx((x2 - x1) * scale, abs=4)
        assert drawn["height"] == pytest.approx((y2 - y1) * scale, abs=4)

    # Removed, its pictures are released: their URLs no longer give a picture.
    urls = [thumb.get_attribute("src"), photo.get_attribute("src")]
    page.click(".thumb__remove")
    expect(page.locator("#stage")).to_be_hidden()
    assert photo.get_attribute("src") is None
    assert probe.errors == []
    assert page.evaluate(LOADS_NOTHING, urls) == [True, True]

    # A photo stored on its side (EXIF orientation 6): its thumbnail stands, as the server sees it.
    exif = Image.Exif()
    exif[0x0112] = 6
    sideways = io.BytesIO()
    Image.new("RGB", (1600, 800), "tan").save(sideways, format="JPEG", exif=exif.tobytes())
    page.set_input_files(
        "#file-input",
        {"name": "sideways.jpg", "mimeType": "image/jpeg", "buffer": sideways.getvalue()},
    )
    expect(thumb).to_have_attribute("src", re.compile("^blob:"))
    page.wait_for_function("() => document.querySelector('.thumb img').complete")
    assert thumb.evaluate(natural) == [256, 512]


def run_clock(page: Page, ms: int) -> None:
    """Move the page's clock (``page.clock.install()``) on by ``ms``, a step at a time, with a
    moment of real time after each step for what its timers started (a fetch, its handler, the
    next timer). A handler late for its step only delays the timers it sets, as a busy machine
    would: no poll comes sooner than it should."""
    for _ in range(ms // CLOCK_STEP_MS):
        page.clock.run_for(CLOCK_STEP_MS)
        page.wait_for_timeout(CLOCK_SETTLE_MS)


# Counts what the badge's polls write: its text (window.badgeWrites) and, as each poll sets its
# data-state even when unchanged, the polls answered (<body data-polls>).
BADGE_WRITES = """
window.badgeWrites = 0;
let polls = 0;
new MutationObserver((records) => {
  for (const record of records) {
    if (record.type === "childList") window.badgeWrites += 1;
    else document.body.dataset.polls = String((polls += 1));
  }
}).observe(document.getElementById("server-status"), {
  childList: true, subtree: true, attributes: true, attributeFilter: ["data-state"],
});
"""


def test_the_status_badge_turns_red_when_the_server_is_gone(
    open_page: OpenPage, live_server: LiveServer
) -> None:
    probe = open_page(DESKTOP, "en-US", fresh=True)  # the clock is the context's
    page = probe.page
    page.clock.install()  # each readiness poll comes when the test moves the clock on
    page.goto(live_server.url + "/")
    status = page.locator("#server-status")
    expect(status).to_have_attribute("data-state", "ok")
    # The badge is a live region (role=status): a poll finding the server as it was leaves its
    # text alone, or a screen reader would read "ready" out every 5 s.
    page.evaluate(BADGE_WRITES)
    run_clock(page, STATUS_POLL_MS)
    expect(page.locator("body")).to_have_attribute("data-polls", "1")  # the poll was answered
    assert page.evaluate("window.badgeWrites") == 0
    # The server "goes away": its readiness probe cannot be reached any more.
    page.route("**/readyz", lambda route: route.abort("connectionrefused"))
    run_clock(page, STATUS_POLL_MS)
    expect(status).to_have_attribute("data-state", "error")
    expect(status).to_have_text("Server unreachable")
    assert page.evaluate("getComputedStyle(document.getElementById('server-status')).color")
    page.unroute("**/readyz")
    run_clock(page, STATUS_POLL_MS)
    expect(status).to_have_attribute("data-state", "ok")
    # Behind a proxy (deploy/nginx.conf), a faceflow that is gone is the proxy's 502 page.
    page.route("**/readyz", lambda route: route.fulfill(status=502, body=PROXY_502))
    run_clock(page, STATUS_POLL_MS)
    expect(status).to_have_attribute("data-state", "error")
    expect(status).to_have_text("Server unreachable")


def test_a_proxys_bad_gateway_reads_as_the_server_unreachable(
    open_page: OpenPage, live_server: LiveServer, testdata: Path
) -> None:
    page = load(open_page, live_server).page
    page.route("**/v1/analyze", lambda route: route.fulfill(status=502, body=PROXY_502))
    pick(page, testdata / "obama_small.jpg")
    alert = page.locator("#photo-notice [role=alert]")
    expect(alert).to_contain_text("Connection problem")
    expect(alert.get_by_role("button", name="Retry")).to_be_visible()


@pytest.mark.parametrize(
    ("answer", "english", "chinese", "retry"),
    [
        (proxy_page(401), ("Sign-in needed", "not faceflow's API key"), "需要登录", False),
        (proxy_page(403), ("Access refused", "before faceflow saw it"), "访问被拒绝", False),
        (proxy_page(408), ("The upload took too long", "too slow to send"), "上传超时", False),
        (
            proxy_page(413),
            ("File too large", "faceflow itself takes photos up to 10 MB"),
            "它前面设置的上限更低",
            False,
        ),
        (proxy_page(429), ("Too many requests", "request limit"), "请求太频繁", True),
        # Retry-After far off: the countdown is read long before it could run out.
        (proxy_page(429, 60), ("Too many requests", "Trying again on its own"), "自动重试", True),
        (proxy_page(503), ("The server is busy", "not taking requests"), "暂时不接受请求", True),
        (proxy_page(503, 60), ("The server is busy", "Retry after"), "服务器繁忙", True),
    ],
    ids=["401", "403", "408", "413", "429", "429-retry-after", "503", "503-retry-after"],
)
def test_a_proxys_own_page_is_said_for_what_its_status_means(
    open_page: OpenPage,
    live_server: LiveServer,
    testdata: Path,
    answer: Callable[[Route], None],
    english: tuple[str, str],
    chinese: str,
    retry: bool,
) -> None:
    """A proxy in front of faceflow answers some requests by itself, with an HTML page: its body
    limit (413), rate limit (429, or 503 as nginx's limit_req answers), sign-in or access rule
    (401, 403), its own upload timeout (408). Each is said for what happened, in both languages;
    the ones that pass offer Retry (and a Retry-After, when the proxy sent one, is counted down
    or waited out as faceflow's own), and a sign-in is no API key to ask for. Until 2026-12-07
    every 4xx read "could not read the request this page sent" and a 503 "Something went
    wrong", neither with Retry."""
    page = load(open_page, live_server).page
    page.route("**/v1/analyze", answer)
    pick(page, testdata / "obama_small.jpg")
    alert = page.locator("#photo-notice [role=alert]")
    for part in english:
        expect(alert).to_contain_text(part)
    expect(alert.get_by_role("button", name="Retry")).to_have_count(1 if retry else 0)
    expect(page.locator("#key-dialog")).to_be_hidden()
    page.click("#lang-switch")
    expect(alert).to_contain_text(chinese)


# Interactive elements a finger must be able to hit (WCAG 2.5.5's 44 CSS px).
TOUCH_TARGET_PX = 44
TARGETS = "button:visible, select:visible, a.button:visible, label.swatch:visible, .thumb:visible"


@pytest.mark.parametrize(
    ("viewport", "locale", "scheme"),
    [(DESKTOP, "en-US", "light"), (PHONE, "zh-CN", "light"), (DESKTOP, "en-US", "dark")],
    ids=["desktop-en", "phone-zh", "desktop-en-dark"],
)
def test_axe_finds_nothing_serious_and_targets_are_big_enough(
    open_page: OpenPage,
    live_server: LiveServer,
    testdata: Path,
    viewport: Any,
    locale: str,
    scheme: Literal["light", "dark"],
) -> None:
    """axe-core (from the axe-playwright-python package, injected locally) on the page with an
    analysed photo and its ID photo and report open, in the light theme and the dark one (a
    system asking for dark): no serious or critical violation, colour contrast included."""
    page = load(open_page, live_server, viewport, locale).page
    page.emulate_media(color_scheme=scheme)
    background = page.evaluate("getComputedStyle(document.documentElement).backgroundColor")
    assert (background == "rgb(14, 17, 22)") == (scheme == "dark"), background
    pick(page, testdata / "two_people.jpg", testdata / "portrait_1.jpg")
    expect(page.locator(".thumb")).to_have_count(2)
    page.locator(".thumb").nth(1).click()
    wait_for_id_photo(page)
    page.locator("#all-checks-summary").click()
    violations = Axe().run(page).response["violations"]
    serious = [
        f"{v['id']} ({v['impact']}): {[node['target'] for node in v['nodes']][:5]}"
        for v in violations
        if v["impact"] in ("serious", "critical")
    ]
    assert serious == []

    small = []
    for target in page.locator(TARGETS).all():
        box = target.bounding_box()
        if box and min(box["width"], box["height"]) < TOUCH_TARGET_PX - 0.5:
            small.append((target.evaluate("e => e.id || e.className || e.tagName"), box))
    assert small == [], small
    row = page.locator("#face-rows tr").first
    row.focus()
    expect(row).to_be_focused()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_an_out_of_date_id_photo_keeps_its_report_readable(
    open_page: OpenPage,
    live_server: LiveServer,
    testdata: Path,
    scheme: Literal["light", "dark"],
) -> None:
    """The photo a failed render left on show, marked out of date, keeps its report and verdict
    legible (axe-core's contrast, in either theme) for as long as the server stays away: they
    lose their colour, not their contrast, as the photo is dimmed."""
    page = load(open_page, live_server).page
    page.emulate_media(color_scheme=scheme)
    pick(page, testdata / "portrait_1.jpg")
    wait_for_id_photo(page)
    page.route("**/v1/id-photo?*", lambda route: route.abort("connectionrefused"))
    page.locator("label.swatch", has_text="Blue").click()
    expect(page.locator("#idphoto-stale")).to_have_text("Out of date — the update failed")
    expect(page.locator("#report-status")).to_have_class(re.compile(r"badge--stale"))
    violations = Axe().run(page, context="#idphoto").response["violations"]
    serious = [
        f"{v['id']} ({v['impact']}): {[node['target'] for node in v['nodes']][:5]}"
        for v in violations
        if v["impact"] in ("serious", "critical")
    ]
    assert serious == []


def axe_violations(page: Page) -> list[str]:
    """Every violation axe-core finds on the page as shown, of any impact, one line each."""
    violations = Axe().run(page).response["violations"]
    return [
        f"{v['id']} ({v['impact']}): {[node['target'] for node in v['nodes']][:5]}"
        for v in violations
    ]


def show_state(page: Page, state: str, testdata: Path, tmp_path: Path) -> None:
    """Bring the page to ``state``: "empty" (just loaded), "faces" (a group photo analysed, its
    details open), "id-photo" (an ID photo with its whole report and the framing tools open) or
    "error" (a file the server refuses, its alert shown)."""
    if state == "faces":
        pick(page, testdata / "two_people.jpg")
        expect(page.locator("#face-rows tr")).to_have_count(2)
        expect(page.locator("#labels .face-label")).to_have_count(2)
        page.locator("#analysis-details-summary").click()
    elif state == "id-photo":
        pick(page, testdata / "portrait_1.jpg")
        wait_for_id_photo(page)
        page.locator("#all-checks-summary").click()
        page.locator("#nudges-summary").click()
    elif state == "error":
        notes = tmp_path / "notes.txt"
        notes.write_text("not a photo\n")
        pick(page, notes)
        expect(page.locator("#photo-notice [role=alert]")).to_be_visible()


@pytest.mark.parametrize("locale", ["en-US", "zh-CN"], ids=["en", "zh"])
@pytest.mark.parametrize("state", ["empty", "faces", "id-photo", "error"])
def test_axe_finds_nothing_in_each_state_of_the_page(
    open_page: OpenPage,
    live_server: LiveServer,
    testdata: Path,
    tmp_path: Path,
    state: str,
    locale: str,
) -> None:
    """axe-core, every rule it runs by default (WCAG A and AA, and its best practices), on each
    state a person meets: nothing at all, of any impact, in English or Chinese, and
    ``<html lang>`` says the language the page is in. Until 2026-12-07 a group photo's second
    label (white on pink, 4.3:1) was a serious contrast violation, and on the Chinese page the
    two cards titled 照片 were landmarks of the same name."""
    page = load(open_page, live_server, locale=locale).page
    show_state(page, state, testdata, tmp_path)
    html_lang = {"en-US": "en", "zh-CN": "zh-CN"}[locale]
    expect(page.locator("html")).to_have_attribute("lang", html_lang)
    assert axe_violations(page) == []


def test_a_server_reached_late_is_connected_once(
    open_page: OpenPage, live_server: LiveServer
) -> None:
    """The page opened while the server could not be reached connects when it answers again,
    and stays one page: one language switch per click, one readiness poll at a time."""
    probe = open_page(DESKTOP, "en-US", fresh=True)  # the clock is the context's
    page = probe.page
    page.clock.install()  # each readiness poll comes when the test moves the clock on
    page.route("**/v1/info", lambda route: route.abort("connectionrefused"))
    page.goto(live_server.url + "/")
    status = page.locator("#server-status")
    expect(status).to_have_attribute("data-state", "error")
    # A readiness poll answers while the page still has no server info (the case that once
    # re-ran the page's start-up on every poll), then the server comes back.
    # Its handler asks for /v1/info again, still refused: the server comes back only after that.
    with (
        page.expect_event("requestfailed", lambda request: "/v1/info" in request.url),
        page.expect_response("**/readyz"),
    ):
        run_clock(page, STATUS_POLL_MS)
    page.unroute("**/v1/info")
    run_clock(page, STATUS_POLL_MS)
    expect(status).to_have_attribute("data-state", "ok")

    polls: list[str] = []
    page.on(
        "request", lambda request: polls.append(request.url) if "readyz" in request.url else None
    )
    page.click("#lang-switch")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    # Over 12 s of the page's time a single poller asks at most three times (5 s apart; one
    # late for its step only asks later, so fewer is fine); a second poller would double that.
    run_clock(page, 12_000)
    assert len(polls) <= 3, polls


def test_a_server_out_of_reach_is_asked_at_one_pace(
    open_page: OpenPage, live_server: LiveServer
) -> None:
    """While the server cannot be reached the page asks /v1/info again every 2 s, one question
    at a time: the readiness poll does not start a second round of retries (each poll once did,
    and a page left open for a minute asked 54 times in its last 10 s), and once the server
    answers the page stops asking."""
    probe = open_page(DESKTOP, "en-US", fresh=True)  # the clock is the context's
    page = probe.page
    page.clock.install()
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/v1/info" in r.url else None)
    page.route("**/v1/info", lambda route: route.abort("connectionrefused"))
    page.goto(live_server.url + "/")
    status = page.locator("#server-status")
    expect(status).to_have_attribute("data-state", "error")
    run_clock(page, 30_000)  # six readiness polls
    # The first question and one every 2 s after it (a late step only asks later: fewer is fine).
    assert len(asked) <= 1 + 30_000 // 2_000, len(asked)
    page.unroute("**/v1/info")
    run_clock(page, 2_000)
    expect(status).to_have_attribute("data-state", "ok")
    connected = len(asked)
    run_clock(page, 12_000)
    assert len(asked) == connected, asked[connected:]


@pytest.mark.parametrize(
    ("answer", "badge"),
    [
        (refusing(429, "rate_limited"), "Too many requests · trying again"),
        (refusing(503, "overloaded"), "Server busy · trying again"),
        (refusing(503, "not_ready"), "Server starting · trying again"),
        (proxy_page(429, RETRY_AFTER_S), "Too many requests · trying again"),
        (proxy_page(503, RETRY_AFTER_S), "Server busy · trying again"),
    ],
    ids=["rate-limited", "busy", "starting", "proxy-rate-limited", "proxy-busy"],
)
def test_a_server_busy_at_the_start_is_said_so_and_asked_again(
    open_page: OpenPage, live_server: LiveServer, answer: Callable[[Route], None], badge: str
) -> None:
    """A page opened while the server refuses /v1/info for its rate limit, for being busy or
    for starting (or a proxy in front refuses it so with a page of its own) says that (amber,
    not red "Something went wrong" titled "does not answer") and is connected once the
    Retry-After is over. A server starting read "Server busy" until 2026-12-07."""
    probe = open_page(DESKTOP, "en-US", fresh=True)  # the clock is the context's
    page = probe.page
    page.clock.install()
    page.route("**/v1/info", answer)
    page.goto(live_server.url + "/")
    server = page.locator("#server-status")
    expect(server).to_have_text(badge)
    expect(server).to_have_attribute("data-state", "warn")
    expect(server).not_to_have_attribute("title", re.compile("."))
    page.click("#lang-switch")
    expect(server).to_have_text(re.compile("稍后自动重试"))
    page.unroute("**/v1/info")
    run_clock(page, RETRY_AFTER_S * 1000)
    expect(server).to_have_attribute("data-state", "ok")

"""Colour order conversion at the OpenCV boundary, and a photo's colour profile applied."""

from __future__ import annotations

import io
import logging
import struct

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image, ImageCms

from faceflow.config import LimitSettings
from faceflow.imaging.colour import bgr_to_rgb, in_srgb, rgb_into_bgr_planes, rgb_to_bgr
from faceflow.imaging.ingest import decode_image
from tests.fixtures.images import ADOBE_RGB_COLORANTS, ADOBE_RGB_GAMMA, matrix_icc_profile


def _sample() -> NDArray[np.uint8]:
    rgb = np.zeros((2, 3, 3), dtype=np.uint8)
    rgb[..., 0] = 200  # red
    rgb[..., 1] = 100  # green
    rgb[..., 2] = 10  # blue
    return rgb


def test_rgb_to_bgr_reverses_channels() -> None:
    bgr = rgb_to_bgr(_sample())
    assert bgr[0, 0].tolist() == [10, 100, 200]
    assert bgr.flags.c_contiguous
    assert bgr.dtype == np.uint8


def test_round_trip_is_identity_and_never_aliases_the_input() -> None:
    rgb = _sample()
    bgr = rgb_to_bgr(rgb)
    back = bgr_to_rgb(bgr)
    np.testing.assert_array_equal(back, rgb)
    bgr[...] = 0
    back[...] = 0
    assert rgb[0, 0].tolist() == [200, 100, 10]


def test_works_for_other_dtypes() -> None:
    rgb = _sample().astype(np.float32) / 255
    assert rgb_to_bgr(rgb).dtype == np.float32
    np.testing.assert_array_equal(rgb_to_bgr(rgb)[..., 0], rgb[..., 2])


@pytest.mark.parametrize("shape", [(4, 4), (4, 4, 4), (4, 4, 1), (3,)])
def test_only_three_channel_images_are_accepted(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="H, W, 3"):
        rgb_to_bgr(np.zeros(shape, dtype=np.uint8))


def test_bgr_planes_are_written_from_rgb_in_float_leaving_the_rest_untouched() -> None:
    planes = np.full((3, 4, 5), -1.0, dtype=np.float32)

    rgb_into_bgr_planes(_sample(), planes)

    assert planes[:, 0, 0].tolist() == [10.0, 100.0, 200.0]
    np.testing.assert_array_equal(planes[:, :2, :3], rgb_to_bgr(_sample()).transpose(2, 0, 1))
    assert (planes[:, 2:, :] == -1).all()
    assert (planes[:, :, 3:] == -1).all()


def test_bgr_planes_read_a_turned_view_as_the_turned_copy() -> None:
    rgb = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    turned = np.rot90(rgb)
    planes = np.zeros((3, 6, 4), dtype=np.float32)

    rgb_into_bgr_planes(turned, planes)

    expected = rgb_to_bgr(np.ascontiguousarray(turned)).transpose(2, 0, 1)
    np.testing.assert_array_equal(planes, expected)


@pytest.mark.parametrize(
    ("image", "planes", "message"),
    [((4, 4), (3, 4, 4), "H, W, 3"), ((5, 4, 3), (3, 4, 4), "does not fit")],
)
def test_bgr_planes_refuse_what_does_not_fit(
    image: tuple[int, ...], planes: tuple[int, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        rgb_into_bgr_planes(np.zeros(image, np.uint8), np.zeros(planes, np.float32))


ADOBE_RGB = matrix_icc_profile("Adobe RGB (1998) compatible")
# Display P3's primaries adapted to D50, as Apple's profile gives them; its curve near gamma 2.2.
DISPLAY_P3 = matrix_icc_profile(
    "Display P3 compatible",
    ((0.51512, 0.24120, -0.00105), (0.29198, 0.69225, 0.04189), (0.15710, 0.06657, 0.78407)),
    2.2,
)
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _encoded_in(profile: bytes, srgb: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """``srgb``'s colours as the numbers a photo in ``profile`` holds for them."""
    transform = ImageCms.buildTransform(
        SRGB, ImageCms.ImageCmsProfile(io.BytesIO(profile)), "RGB", "RGB"
    )
    encoded = ImageCms.applyTransform(Image.fromarray(srgb, "RGB"), transform)
    assert encoded is not None
    return np.asarray(encoded, dtype=np.uint8)


def _skin_and_more() -> NDArray[np.uint8]:
    # Skin tones, greys and moderate colours: inside Adobe RGB and sRGB alike.
    rng = np.random.default_rng(3)
    return rng.integers(40, 216, (32, 48, 3), dtype=np.uint8)


@pytest.mark.parametrize("profile", [ADOBE_RGB, DISPLAY_P3], ids=["adobe_rgb", "display_p3"])
def test_a_wide_gamut_photo_s_numbers_become_its_colours_in_srgb(profile: bytes) -> None:
    srgb = _skin_and_more()
    wide = _encoded_in(profile, srgb)
    assert np.abs(wide.astype(int) - srgb).mean() > 2  # read as sRGB, a visibly other photo

    converted = in_srgb(wide, profile)

    difference = np.abs(converted.astype(int) - srgb)
    assert difference.mean() < 1.0
    assert difference.max() <= 3  # 8-bit rounding, twice
    assert converted.shape == srgb.shape
    assert converted.dtype == np.uint8


@pytest.mark.parametrize(
    "profile",
    [
        None,
        b"",
        SRGB.tobytes(),  # a profile that says it is sRGB: nothing to do
        ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes(),  # not an RGB space
        b"not a colour profile" * 50,  # unreadable: the photo is still taken, as sRGB
        ADOBE_RGB[:200],  # cut short
    ],
    ids=["none", "empty", "srgb", "lab", "garbage", "truncated"],
)
def test_pixels_with_nothing_to_convert_come_back_as_they_are(profile: bytes | None) -> None:
    rgb = _skin_and_more()
    assert in_srgb(rgb, profile) is rgb


# Profiles that are not handed to LittleCMS: what a crafted file can make cost seconds.


def _with_tag(profile: bytes, signature: bytes, payload: bytes) -> bytes:
    """``profile`` with one more tag, its data appended at the end."""
    (count,) = struct.unpack_from(">I", profile, 128)
    table = [struct.unpack_from(">4sII", profile, 132 + 12 * i) for i in range(count)]
    body = profile[132 + 12 * count :] + bytes(-len(profile) % 4)
    start = 132 + 12 * (count + 1)
    entries = [struct.pack(">4sII", sig, offset + 12, size) for sig, offset, size in table]
    entries.append(struct.pack(">4sII", signature, start + len(body), len(payload)))
    out = profile[:128] + struct.pack(">I", count + 1) + b"".join(entries) + body + payload
    return struct.pack(">I", len(out)) + out[4:]


def _element_chain(elements: int) -> bytes:
    """An ICC v4.3 multi-process element (mpet) tag: ``elements`` 3×3 matrices one after another,
    each a step LittleCMS evaluates at every point it samples a transform on."""
    matrix = (
        b"matf"
        + bytes(4)
        + struct.pack(">HH12f", 3, 3, *(0.99, 0, 0, 0, 0.99, 0, 0, 0, 0.99), 0.001, 0.001, 0.001)
    )
    head = 16 + 8 * elements
    positions = b"".join(
        struct.pack(">II", head + i * len(matrix), len(matrix)) for i in range(elements)
    )
    return b"mpet" + bytes(4) + struct.pack(">HHI", 3, 3, elements) + positions + matrix * elements


def _as_v4_3(profile: bytes) -> bytes:
    return profile[:8] + struct.pack(">I", 0x04300000) + profile[12:]


CHAIN = _element_chain(40)
OVER_CAP = _with_tag(ADOBE_RGB, b"zzzz", bytes(64 * 1024 - len(ADOBE_RGB) - 12 + 1))
AT_CAP = _with_tag(ADOBE_RGB, b"zzzz", bytes(64 * 1024 - len(ADOBE_RGB) - 12))
REFUSED = {
    "d2b0_chain": _as_v4_3(_with_tag(ADOBE_RGB, b"D2B0", CHAIN)),
    "d2b1_chain": _as_v4_3(_with_tag(ADOBE_RGB, b"D2B1", CHAIN)),
    "b2d0_chain": _as_v4_3(_with_tag(ADOBE_RGB, b"B2D0", CHAIN)),
    "chain_in_a_private_tag": _with_tag(ADOBE_RGB, b"zzzz", CHAIN),
    "over_64_kib": OVER_CAP,
}


def test_the_hostile_profiles_are_ones_littlecms_would_apply() -> None:
    # Otherwise the tests below would pass without the check they are about.
    srgb = _skin_and_more()
    d2b0 = ImageCms.ImageCmsProfile(io.BytesIO(REFUSED["d2b0_chain"]))
    transform = ImageCms.buildTransform(d2b0, SRGB, "RGB", "RGB")
    chained = ImageCms.applyTransform(Image.fromarray(srgb, "RGB"), transform)
    assert chained is not None
    matrix_only = ImageCms.applyTransform(
        Image.fromarray(srgb, "RGB"),
        ImageCms.buildTransform(
            ImageCms.ImageCmsProfile(io.BytesIO(ADOBE_RGB)), SRGB, "RGB", "RGB"
        ),
    )
    assert matrix_only is not None
    assert np.abs(np.asarray(chained, np.int16) - np.asarray(matrix_only, np.int16)).max() > 8
    assert len(OVER_CAP) == 64 * 1024 + 1


@pytest.mark.parametrize("name", list(REFUSED))
def test_a_profile_unlike_a_photo_s_is_not_applied(name: str) -> None:
    rgb = _encoded_in(ADOBE_RGB, _skin_and_more())
    assert in_srgb(rgb, REFUSED[name]) is rgb


def test_a_profile_at_the_size_cap_is_applied() -> None:
    srgb = _skin_and_more()
    converted = in_srgb(_encoded_in(ADOBE_RGB, srgb), AT_CAP)
    assert np.abs(converted.astype(int) - srgb).max() <= 3


def test_a_refused_profile_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    rgb = _skin_and_more()
    with caplog.at_level(logging.DEBUG, logger="faceflow.imaging.colour"):
        in_srgb(rgb, REFUSED["d2b0_chain"])
    assert [(r.levelno, "D2B0" in r.getMessage()) for r in caplog.records] == [(logging.INFO, True)]


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_a_photo_with_a_chained_profile_is_kept_and_taken_as_srgb(fmt: str) -> None:
    pixels = _skin_and_more()
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, fmt, icc_profile=REFUSED["d2b0_chain"], quality=100)
    decoded = decode_image(out.getvalue(), LimitSettings())
    assert decoded.icc_profile == REFUSED["d2b0_chain"]
    assert in_srgb(decoded.rgb, decoded.icc_profile) is decoded.rgb


def _lut16_profile(grid: int) -> bytes:
    """Adobe RGB as an ICC v2 lookup-table profile (an A2B0 lut16 of ``grid``³ points to XYZ), as
    scanners and some editors write them, instead of primaries and a curve."""
    levels = np.linspace(0.0, 1.0, grid)
    rgb = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1)
    xyz = (rgb**ADOBE_RGB_GAMMA) @ np.array(ADOBE_RGB_COLORANTS)
    table = np.clip(np.round(xyz * 32768), 0, 65535).astype(">u2").tobytes()
    ramp = np.array([0, 65535], ">u2").tobytes()  # identity curves in and out
    identity = struct.pack(">9i", *(65536 if i % 4 == 0 else 0 for i in range(9)))
    lut = b"mft2" + bytes(4) + bytes([3, 3, grid, 0]) + identity + struct.pack(">HH", 2, 2)
    lut += ramp * 3 + table + ramp * 3
    return _with_tag(matrix_icc_profile("Adobe RGB (1998) as a table"), b"A2B0", lut)


def test_a_lookup_table_profile_under_the_cap_is_applied() -> None:
    # Its cost grows with its size alone (a fixed number of stages): the cap bounds it.
    profile = _lut16_profile(17)
    assert 20_000 < len(profile) < 64 * 1024
    srgb = _skin_and_more()
    converted = in_srgb(_encoded_in(ADOBE_RGB, srgb), profile)
    assert np.abs(converted.astype(int) - srgb).mean() < 1.5  # 7.7 unconverted

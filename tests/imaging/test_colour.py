"""Colour order conversion at the OpenCV boundary, and a photo's colour profile applied."""

from __future__ import annotations

import io

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image, ImageCms

from faceflow.imaging.colour import bgr_to_rgb, in_srgb, rgb_into_bgr_planes, rgb_to_bgr
from tests.fixtures.images import matrix_icc_profile


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


def test_a_wide_gamut_photo_s_numbers_become_its_colours_in_srgb() -> None:
    srgb = _skin_and_more()
    adobe = _encoded_in(ADOBE_RGB, srgb)
    assert np.abs(adobe.astype(int) - srgb).mean() > 4  # read as sRGB, a visibly other photo

    converted = in_srgb(adobe, ADOBE_RGB)

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

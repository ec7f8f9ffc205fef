"""Colour order conversion at the OpenCV boundary."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from faceflow.imaging.colour import bgr_to_rgb, rgb_into_bgr_planes, rgb_to_bgr


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

"""Background presets, gradients and linear-light compositing."""

from __future__ import annotations

import numpy as np
import pytest

from faceflow.errors import InvalidParameter
from faceflow.pipeline.idphoto.background import (
    background_pixels,
    composite,
    linear_to_srgb,
    srgb_to_linear,
)
from faceflow.pipeline.idphoto.palette import (
    Background,
    BackgroundStyle,
    matches_any,
    parse_background,
)


@pytest.mark.parametrize(
    ("text", "rgb", "name"),
    [
        ("white", (255, 255, 255), "white"),
        ("blue", (0x43, 0x8E, 0xDB), "blue"),
        ("RED", (0xD9, 0x00, 0x1B), "red"),
        ("grey", (0xF0, 0xF0, 0xF0), "grey"),
        ("light-gray", (0xF0, 0xF0, 0xF0), "grey"),
        ("#12aBef", (0x12, 0xAB, 0xEF), None),
        ("00ff00", (0, 255, 0), None),
    ],
)
def test_parse_background(text: str, rgb: tuple[int, int, int], name: str | None) -> None:
    background = parse_background(text)

    assert background.colour == rgb
    assert background.name == name
    assert background.style is BackgroundStyle.SOLID


@pytest.mark.parametrize(
    ("colour", "style"),
    [("purple", "solid"), ("#12345", "solid"), ("#gg0000", "solid"), ("white", "diagonal")],
)
def test_bad_backgrounds_are_refused(colour: str, style: str) -> None:
    with pytest.raises(InvalidParameter):
        parse_background(colour, style)


def test_solid_background_is_exact() -> None:
    pixels = background_pixels(parse_background("#438edb"), 30, 20)

    assert pixels.shape == (20, 30, 3)
    assert (pixels == np.array([0x43, 0x8E, 0xDB], dtype=np.uint8)).all()


def test_vertical_gradient_runs_from_the_colour_to_white() -> None:
    pixels = background_pixels(parse_background("blue", "vertical"), 40, 100).astype(int)

    assert pixels[0, 20].tolist() == [0x43, 0x8E, 0xDB]
    assert pixels[-1, 20].tolist() == [255, 255, 255]
    assert (np.diff(pixels[:, 20, 0]) >= 0).all()  # monotone
    assert (pixels[50] == pixels[50, 0]).all()  # rows are uniform


def test_radial_gradient_is_white_behind_the_head_and_coloured_at_the_corners() -> None:
    pixels = background_pixels(parse_background("red", "radial"), 90, 120).astype(int)

    behind_head = pixels[40, 45]
    corner = pixels[-1, 0]
    assert behind_head.min() >= 250
    assert corner[0] > corner[1] + 100  # red dominates at the corner
    assert abs(int(pixels[60, 10, 1]) - int(pixels[60, 79, 1])) <= 3  # left-right symmetric


def test_srgb_round_trip_is_exact() -> None:
    values = np.arange(256, dtype=np.uint8)

    assert np.array_equal(linear_to_srgb(srgb_to_linear(values)), values)


def test_composite_keeps_background_and_foreground_exactly_and_blends_in_linear_light() -> None:
    fg = np.zeros((1, 3, 3), dtype=np.uint8)  # black hair
    bg = np.full((1, 3, 3), 255, dtype=np.uint8)  # white background
    alpha = np.array([[0.0, 0.5, 1.0]], dtype=np.float32)

    out = composite(fg, alpha, bg)

    assert out[0, 0].tolist() == [255, 255, 255]
    assert out[0, 2].tolist() == [0, 0, 0]
    # Half-covered in linear light is 50 % of the light: sRGB 188, not the naive 128.
    assert out[0, 1].tolist() == [188, 188, 188]


def test_composite_is_the_blend_of_every_pixel_though_it_blends_only_the_edge() -> None:
    # The blend over the whole frame, as composite did it before it skipped the pixels whose
    # alpha is 0 or 1; alpha here has plenty of each, and values just inside them.
    rng = np.random.default_rng(7)
    foreground = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    backdrop = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    alpha = rng.choice(
        np.array([0.0, 1.0, 1e-7, 1 - 1e-7, -0.2, 1.3, 0.5], np.float32), (64, 96)
    ) * (rng.random((64, 96)) < 0.5) + rng.random((64, 96)).astype(np.float32) * (
        rng.random((64, 96)) < 0.3
    )
    alpha = alpha.astype(np.float32)
    a = np.clip(alpha, 0.0, 1.0)[..., None]
    whole = linear_to_srgb(
        np.asarray(
            srgb_to_linear(foreground) * a + srgb_to_linear(backdrop) * (1.0 - a), np.float32
        )
    )
    np.testing.assert_array_equal(composite(foreground, alpha, backdrop), whole)


@pytest.mark.parametrize(
    ("background", "allowed", "ok"),
    [
        (parse_background("white"), ("white",), True),
        (parse_background("#fefefe"), ("white",), True),
        (parse_background("blue"), ("white", "grey"), False),
        (parse_background("white", "vertical"), ("white",), False),
        (Background((0xF0, 0xF0, 0xF0)), ("grey",), True),
    ],
)
def test_matches_any(background: Background, allowed: tuple[str, ...], ok: bool) -> None:
    assert matches_any(background, allowed) is ok


def test_to_dict() -> None:
    assert parse_background("blue", "radial").to_dict() == {
        "colour": "#438edb",
        "style": "radial",
        "name": "blue",
    }

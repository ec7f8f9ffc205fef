"""A photo saved on its side, turned upright with its faces before the cut-out
(pipeline/idphoto/upright.py); the service's matte task on such files is compared with the upright
file's in tests/runtime/test_idphoto_tasks.py."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from faceflow.domain import Box, Face, Landmarks, Point
from faceflow.pipeline.detect import roll_degrees
from faceflow.pipeline.idphoto.upright import quarter_turns, upright
from faceflow.runtime.warmup import face_at


def turned_face(face: Face, turns: int, width: int, height: int) -> Face:
    """``face`` as the detector reports it in ``np.rot90(image, -turns)`` (the upright image
    turned clockwise ``turns`` times), ``image`` being ``width`` × ``height``."""
    box = face.box
    corners = []
    points = [(p.x, p.y) for p in face.landmarks.points()]
    for x, y in [(box.x1, box.y1), (box.x2, box.y2), *points]:
        w, h = width, height
        for _ in range(turns):  # one clockwise quarter turn: (x, y) -> (h - y, x)
            x, y, w, h = h - y, x, h, w
        corners.append((x, y))
    (ax, ay), (bx, by), *marks = corners
    landmarks = Landmarks(*(Point(x, y) for x, y in marks))
    return dataclasses.replace(
        face,
        box=Box(min(ax, bx), min(ay, by), max(ax, bx), max(ay, by)),
        landmarks=landmarks,
        roll=roll_degrees(landmarks),
    )


@pytest.mark.parametrize(
    ("roll", "turns"),
    [(0.0, 0), (44.0, 0), (-44.0, 0), (46.0, 1), (91.0, 1), (180.0, 2), (-179.0, 2), (-88.0, 3)],
)
def test_a_face_over_45_degrees_off_is_turned_the_nearest_way(roll: float, turns: int) -> None:
    assert quarter_turns(roll) == turns


@pytest.mark.parametrize("turns", [1, 2, 3])
def test_the_image_and_its_faces_turn_back_to_the_upright_ones(turns: int) -> None:
    rng = np.random.default_rng(turns)
    image = rng.integers(0, 255, (300, 200, 3), dtype=np.uint8)
    face, other = face_at(90.0, 120.0, 60.0), face_at(150.0, 220.0, 30.0)
    sideways = np.rot90(image, -turns)

    back = upright(
        sideways,
        turned_face(face, turns, 200, 300),
        [turned_face(other, turns, 200, 300)],
    )

    assert back.turns == turns
    assert np.array_equal(back.rgb, image)
    for found, expected in [(back.face, face), *zip(back.others, [other], strict=True)]:
        assert abs(found.roll) < 1e-6
        got = [(p.x, p.y) for p in (*found.landmarks.points(),)]
        want = [(p.x, p.y) for p in (*expected.landmarks.points(),)]
        assert np.allclose(got, want)
        assert np.allclose(
            [found.box.x1, found.box.y1, found.box.x2, found.box.y2],
            [expected.box.x1, expected.box.y1, expected.box.x2, expected.box.y2],
        )


def test_an_upright_face_leaves_the_image_as_it_is() -> None:
    image = np.zeros((30, 20, 3), dtype=np.uint8)

    kept = upright(image, face_at(10.0, 15.0, 8.0), ())

    assert kept.turns == 0
    assert kept.rgb is image


def test_the_face_found_again_is_the_one_over_the_turned_face() -> None:
    image = np.zeros((300, 200, 3), dtype=np.uint8)
    face = face_at(90.0, 120.0, 60.0)
    turned = upright(np.rot90(image, -1), turned_face(face, 1, 200, 300), ())
    again = dataclasses.replace(face, score=0.99)
    elsewhere = face_at(150.0, 240.0, 30.0)

    chosen = turned.redetected([elsewhere, again])

    assert chosen.face is again
    assert chosen.others == (elsewhere,)
    assert turned.redetected([elsewhere]).face is turned.face

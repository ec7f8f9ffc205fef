"""Query strings as clients send them, for the tests that check every entry parses an operation's
options alike: mostly valid values per option, some out of range or malformed, an option the
operation does not have, a repeated one."""

from __future__ import annotations

from urllib.parse import urlencode

from hypothesis import strategies as st

from faceflow.operations.faces import FaceOptions

_INTS = st.integers(-5, 12_000).map(str)
_JUNK = st.sampled_from(["", "abc", "1e-1", " 0.5", "true", "none", "nope", "#12"]) | st.text(
    max_size=6
)
# Values a client would send for each option (most valid, some out of range or malformed).
FACE_VALUES = {
    "threshold": st.floats(-0.1, 1.1, allow_nan=False).map(repr),
    "max_faces": _INTS,
    "min_face_px": _INTS,
    "attributes": st.sampled_from(["age", "gender,age", "none", "", " AGE ,", "age,mood"]),
    "format": st.sampled_from(["jpeg", "png", "gif"]),
}
_COLOURS = st.sampled_from(["white", "blue", "grey", "#112233", "%23ff0000", "#12"])
_GRADIENTS = st.sampled_from(["none", "vertical", "radial", "diagonal"])
PHOTO_VALUES = {
    "spec": st.sampled_from(["cn-1inch", "cn-2inch", "us-passport", "icao", "nope"]),
    "width": st.floats(0, 120, allow_nan=False).map(repr),
    "height": st.floats(0, 120, allow_nan=False).map(repr),
    "unit": st.sampled_from(["mm", "px", "in"]),
    "dpi": st.integers(50, 1300).map(str),
    "background": _COLOURS,
    "gradient": _GRADIENTS,
    "format": st.sampled_from(["jpeg", "png"]),
    "max_kb": _INTS,
    "transparent": st.sampled_from(["true", "false", "1", "0", "maybe"]),
    "quality": st.integers(0, 101).map(str),
    "response": st.sampled_from(["image", "json", "xml"]),
    "face": st.integers(-1, 4).map(str),
    # Nudges: cn-1inch's head 21–23.8 mm, eye line 18.2–22.4 mm, shift ±2.5 mm; roll ±5°.
    "head_mm": st.floats(-1, 40, allow_nan=False).map(repr),
    "eye_line_mm": st.floats(-1, 40, allow_nan=False).map(repr),
    "shift_mm": st.floats(-4, 4).map(repr) | st.just("nan"),
    "roll_deg": st.floats(-8, 8).map(repr) | st.just("inf"),
}
SHEET_VALUES = {
    "spec": PHOTO_VALUES["spec"],
    "sheet": st.sampled_from(["6inch", "5inch", "a4", "a3"]),
    "layout": st.sampled_from(["cn-1inch:2,cn-2inch:1", "us-passport:1", "cn-1inch", "x:1"]),
    "background": _COLOURS,
    "gradient": _GRADIENTS,
    "face": PHOTO_VALUES["face"],
}


def queries(values: dict[str, st.SearchStrategy[str]]) -> st.SearchStrategy[str]:
    """Query strings of a few options, now and then one the operation does not have or a
    malformed value, sometimes repeated."""
    known = st.sampled_from(sorted(values)).flatmap(lambda n: st.tuples(st.just(n), values[n]))
    odd = st.tuples(st.sampled_from([*values, "unknown"]), _JUNK)
    return st.lists(st.one_of(known, known, known, odd), max_size=4).map(urlencode)


def face_values(*names: str) -> dict[str, st.SearchStrategy[str]]:
    return {name: FACE_VALUES[name] for name in names}


# Every option of /v1/detect (the others add to these), so a new one is generated at once.
DETECT_OPTIONS = tuple(FaceOptions.model_fields)

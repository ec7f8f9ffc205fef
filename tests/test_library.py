"""The public library API in ``faceflow/__init__.py``: what it exports, that importing it stays
light, and that its calls run the real models."""

from __future__ import annotations

import dataclasses
import inspect
import io
import subprocess
import sys
from collections.abc import Callable

import pytest
from PIL import Image

import faceflow
from faceflow.config import ModelSettings, Settings
from faceflow.domain import Gender
from faceflow.errors import InvalidParameter


def test_the_public_names_are_exactly_these() -> None:
    assert sorted(faceflow.__all__) == [
        "FaceFlow",
        "FaceReport",
        "FaceflowError",
        "IdPhotoResult",
        "__version__",
    ]
    for name in faceflow.__all__:
        assert getattr(faceflow, name) is not None


def test_dir_offers_the_public_names() -> None:
    assert sorted(dir(faceflow)) == sorted(faceflow.__all__)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'analyse'"):
        _ = faceflow.analyse


def test_importing_faceflow_does_not_load_the_inference_stack() -> None:
    probe = (
        "import sys, faceflow; print(sorted({'numpy', 'cv2', 'onnxruntime'} & set(sys.modules)))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "[]"


@pytest.fixture(scope="module")
def flow(pulled_model_settings: ModelSettings) -> faceflow.FaceFlow:
    return faceflow.FaceFlow(Settings(models=pulled_model_settings))


def test_analyze_finds_both_people_with_their_genders(
    flow: faceflow.FaceFlow, photo_bytes: Callable[[str], bytes]
) -> None:
    report = flow.analyze(photo_bytes("two_people.jpg"))
    assert len(report.faces) == 2
    assert {face.gender.label for face in report.faces if face.gender} == {Gender.MALE}


def test_detect_gives_boxes_and_landmarks_without_attributes(
    flow: faceflow.FaceFlow, photo_bytes: Callable[[str], bytes]
) -> None:
    (face,) = flow.detect(photo_bytes("obama.jpg")).faces
    assert face.age is None
    assert face.gender is None
    assert len(face.landmarks.to_dict()) == 5


def test_id_photo_is_the_preset_size_with_a_report(
    flow: faceflow.FaceFlow, photo_bytes: Callable[[str], bytes]
) -> None:
    photo = flow.id_photo(photo_bytes("obama.jpg"), spec="cn-2inch", background="blue")
    with Image.open(io.BytesIO(photo.data)) as image:
        assert image.format == "JPEG"
        assert (
            image.size == (photo.width_px, photo.height_px) == (413, 579)
        )  # 35 × 49 mm at 300 dpi
    assert photo.report.to_dict()["status"] in {"pass", "warn", "fail"}


def test_a_bad_option_raises_the_typed_error(
    flow: faceflow.FaceFlow, photo_bytes: Callable[[str], bytes]
) -> None:
    with pytest.raises(InvalidParameter):
        flow.id_photo(photo_bytes("obama.jpg"), spec="no-such-size")


def test_an_endpoints_option_reaches_the_library(
    flow: faceflow.FaceFlow, photo_bytes: Callable[[str], bytes]
) -> None:
    two = photo_bytes("two_people.jpg")
    assert len(flow.detect(two, options={"max_faces": 1}).faces) == 1
    (face,) = flow.analyze(two, options={"max_faces": 1, "attributes": "age"}).faces
    assert face.age is not None
    assert face.gender is None
    # The face a multiple_faces error tells the caller to choose.
    photo = flow.id_photo(two, options={"face": 2})
    assert photo.report.to_dict()["status"] in {"pass", "warn", "fail"}


def test_a_custom_size_in_options_needs_no_spec(
    flow: faceflow.FaceFlow, photo_bytes: Callable[[str], bytes]
) -> None:
    # A spec always sent (its default too) made the model refuse width and height beside it.
    photo = flow.id_photo(photo_bytes("obama.jpg"), options={"width": 35, "height": 45, "dpi": 200})
    assert (photo.width_px, photo.height_px) == (276, 354)  # 35 × 45 mm at 200 dpi


@pytest.mark.parametrize(
    ("options", "named"),
    [({"max_faces": 0}, "max_faces"), ({"nope": 1}, "nope"), ({"format": "png"}, "output_format")],
)
def test_a_bad_or_doubled_option_is_refused_by_name(
    flow: faceflow.FaceFlow,
    photo_bytes: Callable[[str], bytes],
    options: dict[str, object],
    named: str,
) -> None:
    call = flow.id_photo if named == "output_format" else flow.detect
    with pytest.raises(InvalidParameter, match=named):
        call(photo_bytes("obama.jpg"), options=options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("method", "options", "named"),
    [
        ("detect", {"max_faces": True}, "max_faces"),  # was one face
        ("analyze", {"threshold": True}, "threshold"),  # was a score of 1.0
        ("id_photo", {"face": True}, "face"),  # was the first face
        ("id_photo", {"dpi": True, "width": 35, "height": 45}, "dpi"),
        ("id_photo", {"quality": False}, "quality"),
    ],
)
def test_a_bool_is_not_taken_as_a_number(
    flow: faceflow.FaceFlow,
    photo_bytes: Callable[[str], bytes],
    method: str,
    options: dict[str, object],
    named: str,
) -> None:
    with pytest.raises(InvalidParameter, match=f"{named}: a number is wanted, not ") as refused:
        getattr(flow, method)(photo_bytes("two_people.jpg"), options=options)

    assert refused.value.details == {"parameter": named}


def test_a_bool_argument_for_a_number_is_named_as_the_argument(
    flow: faceflow.FaceFlow, photo_bytes: Callable[[str], bytes]
) -> None:
    with pytest.raises(InvalidParameter, match="max_kb: a number is wanted, not False"):
        flow.id_photo(photo_bytes("obama.jpg"), max_kb=False)


def test_a_true_boolean_option_still_takes_a_bool(
    flow: faceflow.FaceFlow, photo_bytes: Callable[[str], bytes]
) -> None:
    photo = flow.id_photo(
        photo_bytes("obama.jpg"), output_format="png", options={"transparent": True}
    )
    assert photo.data[:8] == b"\x89PNG\r\n\x1a\n"
    assert photo.data[25] == 6  # the IHDR's colour type: RGBA, the background left transparent


def test_a_bad_output_format_is_named_as_the_argument_given(
    flow: faceflow.FaceFlow, photo_bytes: Callable[[str], bytes]
) -> None:
    with pytest.raises(InvalidParameter, match=r"options: output_format: ") as raised:
        flow.id_photo(photo_bytes("obama.jpg"), output_format="gif")
    assert raised.value.details["parameter"] == "output_format"


def test_an_option_that_means_nothing_to_the_library_is_refused_by_name(
    flow: faceflow.FaceFlow, photo_bytes: Callable[[str], bytes]
) -> None:
    # /v1/id-photo's response=json adds the report to its answer; the library always has it.
    with pytest.raises(InvalidParameter, match="'response' means nothing") as raised:
        flow.id_photo(photo_bytes("obama.jpg"), options={"response": "json"})
    assert raised.value.details["parameter"] == "response"


@pytest.mark.parametrize("method", ["detect", "analyze", "id_photo"])
def test_options_are_typed_with_public_types_only(method: str) -> None:
    """What help() and an editor show: builtins and a Mapping, no name internal to faceflow."""
    signature = inspect.signature(getattr(faceflow.FaceFlow, method))
    annotation = signature.parameters["options"].annotation
    assert annotation == "Mapping[str, str | int | float | bool | None] | None"


@pytest.mark.parametrize("result", ["FaceReport", "IdPhotoResult"])
def test_every_field_of_a_result_is_documented(result: str) -> None:
    """help() on what the library returns names every field (FaceReport's said nothing)."""
    cls = getattr(faceflow, result)
    doc = cls.__doc__ or ""
    for field in dataclasses.fields(cls):
        assert f"``{field.name}``" in doc, field.name


def test_a_path_instead_of_bytes_is_a_clear_type_error(flow: faceflow.FaceFlow) -> None:
    with pytest.raises(TypeError, match=r"bytes .*not str"):
        flow.analyze("obama.jpg")  # type: ignore[arg-type]


@pytest.mark.parametrize("settings", [{"models": {}}, "faceflow.yaml"])
def test_settings_that_are_not_settings_are_a_clear_type_error(settings: object) -> None:
    # Before: an AttributeError about model_dump_json from deep in the loader.
    with pytest.raises(
        TypeError, match=rf"settings must be a faceflow Settings.*not {type(settings).__name__}"
    ):
        faceflow.FaceFlow(settings)  # type: ignore[arg-type]


@pytest.mark.parametrize("options", ["max_faces=3", [("max_faces", 3)]])
def test_options_that_are_not_a_mapping_are_a_clear_type_error(
    flow: faceflow.FaceFlow, options: object
) -> None:
    # Before: a string was a ValueError from dict(), a list of pairs was taken.
    with pytest.raises(TypeError, match=r"options must be a mapping"):
        flow.detect(b"\xff\xd8", options=options)  # type: ignore[arg-type]

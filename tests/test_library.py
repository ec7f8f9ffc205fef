"""The public library API in ``faceflow/__init__.py``: what it exports, that importing it stays
light, and that its calls run the real models."""

from __future__ import annotations

import dataclasses
import inspect
import io
import multiprocessing
import multiprocessing.queues
import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import faceflow
import faceflow.library
from faceflow.config import ModelSettings, Settings
from faceflow.domain import Gender
from faceflow.errors import InvalidParameter, TooLarge


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


@pytest.mark.parametrize(
    "given",
    [
        lambda path: str(path),
        lambda path: path,
        lambda path: bytearray(path.read_bytes()),
        lambda path: memoryview(path.read_bytes()),
        lambda path: io.BytesIO(path.read_bytes()),
        lambda path: path.open("rb"),
    ],
    ids=["str", "Path", "bytearray", "memoryview", "BytesIO", "open-rb"],
)
def test_a_path_or_a_file_is_read_as_its_bytes_are(
    flow: faceflow.FaceFlow, testdata: Path, given: Callable[[Path], faceflow.library.ImageFile]
) -> None:
    # Before: a TypeError for every one of them ("image must be the image file's bytes").
    path = testdata / "obama.jpg"
    image = given(path)
    try:
        report = flow.analyze(image)
    finally:
        if isinstance(image, io.IOBase):
            image.close()
    assert report == flow.analyze(path.read_bytes())


def test_a_missing_path_is_the_systems_error(flow: faceflow.FaceFlow, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.jpg"):
        flow.analyze(str(tmp_path / "nope.jpg"))


def test_a_file_over_the_upload_limit_is_refused_unread(
    pulled_model_settings: ModelSettings, tmp_path: Path
) -> None:
    limited = faceflow.FaceFlow(
        Settings(models=pulled_model_settings, limits={"max_upload_bytes": 2000})
    )
    big = tmp_path / "big.jpg"
    big.write_bytes(b"\xff\xd8" + bytes(5000))
    with pytest.raises(TooLarge, match="over the limit of 2000 bytes") as refused:
        limited.detect(big)
    assert refused.value.code == "too_large"
    with big.open("rb") as file:
        with pytest.raises(TooLarge):
            limited.detect(file)
        assert file.tell() == 2001  # one byte past the limit read, not the whole file


def test_an_unbuffered_pipe_is_read_to_its_end(flow: faceflow.FaceFlow, testdata: Path) -> None:
    # A raw file's read(n) gives what one read(2) does: 64 KiB of a pipe. Only that much was
    # taken, and the photo (273 KiB) was refused as truncated.
    data = (testdata / "obama.jpg").read_bytes()
    read_fd, write_fd = os.pipe()
    writer = threading.Thread(target=_write_all, args=(write_fd, data))
    writer.start()
    try:
        with open(read_fd, "rb", buffering=0) as pipe:
            report = flow.analyze(pipe)
    finally:
        writer.join()
    assert report == flow.analyze(data)


def _write_all(fd: int, data: bytes) -> None:
    with open(fd, "wb") as pipe:
        pipe.write(data)


def test_a_text_file_is_refused_saying_rb(flow: faceflow.FaceFlow, testdata: Path) -> None:
    # Before: a UnicodeDecodeError from its read() at the JPEG's first byte.
    with (testdata / "obama.jpg").open() as file, pytest.raises(TypeError, match="'rb'"):
        flow.analyze(file)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("given", "said"),
    [
        (lambda image: np.asarray(image), "RGB .*or BGR"),
        (lambda image: np.asarray(image)[:, :, ::-1], "RGB .*or BGR"),
        (lambda image: image, "a PIL image is not taken"),
        (lambda image: image.convert("RGBA"), "a PIL image is not taken"),
        (lambda image: 3, "not int"),
    ],
    ids=["rgb-array", "bgr-view", "pil", "pil-rgba", "int"],
)
def test_decoded_pixels_are_refused_with_a_code_and_as_a_type_error(
    flow: faceflow.FaceFlow,
    testdata: Path,
    given: Callable[[Image.Image], object],
    said: str,
) -> None:
    """An array's channel order cannot be told from it: refused, never guessed."""
    with Image.open(testdata / "obama.jpg") as opened:
        image = given(opened)
        with pytest.raises(faceflow.FaceflowError, match=said) as refused:
            flow.analyze(image)  # type: ignore[arg-type]
    assert refused.value.code == "invalid_parameter"
    assert refused.value.details == {"parameter": "image"}
    assert isinstance(refused.value, TypeError)


def test_a_flow_is_a_context_manager_and_refuses_calls_once_closed(
    pulled_model_settings: ModelSettings, photo_bytes: Callable[[str], bytes]
) -> None:
    # Before: no __enter__ (a TypeError at the with), no close().
    with faceflow.FaceFlow(Settings(models=pulled_model_settings)) as flow:
        assert len(flow.detect(photo_bytes("obama.jpg")).faces) == 1
        assert repr(flow) == f"<FaceFlow models in {pulled_model_settings.dir}>"
    flow.close()  # a second close does nothing
    assert repr(flow) == "<FaceFlow closed>"
    assert flow.settings.models == pulled_model_settings
    for call in (flow.detect, flow.analyze, flow.id_photo):
        with pytest.raises(faceflow.FaceflowError, match="closed") as refused:
            call(photo_bytes("obama.jpg"))
        assert refused.value.code == "closed"


def test_an_id_photos_repr_is_short(
    flow: faceflow.FaceFlow, photo_bytes: Callable[[str], bytes]
) -> None:
    # Before: 139 KB, the file's every byte escaped and every field of the report.
    photo = flow.id_photo(photo_bytes("obama.jpg"), spec="cn-2inch")
    shown = repr(photo)
    assert shown.startswith(f"IdPhotoResult(data=<{len(photo.data):,} bytes>, ")
    assert f"report=<{photo.report.status.value}: {len(photo.report.checks)} checks>)" in shown
    assert len(shown) < 300


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


def _analyze_in_child(
    flow: faceflow.FaceFlow,
    data: bytes,
    answers: multiprocessing.queues.Queue[tuple[int, dict[str, object]]],
) -> None:
    answers.put((id(flow._context), flow.analyze(data).to_dict()))


def test_a_forked_child_loads_its_own_models(
    flow: faceflow.FaceFlow, photo_bytes: Callable[[str], bytes]
) -> None:
    """DESIGN §5: sessions run in the process that made them. A child used its parent's, and
    with two intra-op threads a session's run hung in 1 of 15 forks (its pool's threads are
    the parent's)."""
    data = photo_bytes("obama.jpg")
    context = multiprocessing.get_context("fork")
    answers: multiprocessing.queues.Queue[tuple[int, dict[str, object]]] = context.Queue()
    child = context.Process(target=_analyze_in_child, args=(flow, data, answers))
    child.start()
    try:
        loaded_in_child, report = answers.get(timeout=120)
    finally:
        child.join(60)
        child.kill()
    assert child.exitcode == 0
    assert loaded_in_child != id(flow._context)
    assert report == flow.analyze(data).to_dict()


def test_a_flow_sent_to_another_process_says_what_to_do(flow: faceflow.FaceFlow) -> None:
    # Before: "cannot pickle 'onnxruntime...InferenceSession' object" from pool.map(flow.detect…).
    with pytest.raises(TypeError, match="make one there"):
        pickle.dumps(flow.detect)

"""ID-photo tasks on a real context (runtime/idphoto_tasks.py): the matte survives its bytes, and
a photo or sheet rendered from those bytes is exactly the CLI's, which mattes in one go."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, cast

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image, ImageCms

from faceflow.config import ModelSettings
from faceflow.domain import Point
from faceflow.errors import MultipleFaces, NoFace, OutOfRange
from faceflow.imaging.formats import OutputFormat
from faceflow.models.segmenter import U2NetpSegmenter
from faceflow.models.session import create_session
from faceflow.models.store import ModelStore
from faceflow.pipeline.idphoto.matte import matte_from_bytes, matte_to_bytes
from faceflow.pipeline.idphoto.options import IdPhotoOptions
from faceflow.pipeline.idphoto.palette import parse_background
from faceflow.pipeline.idphoto.render import render_pixels
from faceflow.pipeline.idphoto.sheet_plan import get_paper, plan_sheet
from faceflow.pipeline.idphoto.specs import get_spec
from faceflow.runtime.context import WorkerContext
from faceflow.runtime.idphoto_tasks import (
    MATTE_MEDIA_TYPE,
    IdPhotoFileRequest,
    MatteRequest,
    RenderRequest,
    ResponseKind,
    SheetRequest,
    id_photo_file,
    matte_task,
    render_task,
    sheet_task,
)
from faceflow.runtime.tasks import JSON_MEDIA_TYPE, TaskOutput
from tests.fixtures.environment import require
from tests.fixtures.idphoto import RememberingSession, opened
from tests.fixtures.images import matrix_icc_profile

if TYPE_CHECKING:
    import onnxruntime as ort

PORTRAIT = "portrait_2.jpg"


@pytest.fixture(scope="module")
def worker_context(
    worker_context: WorkerContext, pulled_model_settings: ModelSettings
) -> WorkerContext:
    """The session's context with a u2netp that answers each network input once
    (:class:`RememberingSession`): the tests below compare a photo rendered from the matte's
    bytes with the one :func:`id_photo_file` makes in one go, which mattes the same portrait
    again for each of them (six u2netp runs of one crop, ~0.5 s of a core each). Every task's
    own code still runs; only onnxruntime's answer to an input it has seen is kept."""
    spec = U2NetpSegmenter.spec
    model = ModelStore(pulled_model_settings).read_verified(spec)
    settings = pulled_model_settings
    session = create_session(spec.name, model, settings, arena=settings.segmenter_arena)
    segmenter = U2NetpSegmenter(cast("ort.InferenceSession", RememberingSession(session)))
    models = dataclasses.replace(worker_context.models, portrait_segmenter=segmenter)
    return dataclasses.replace(worker_context, models=models)


@pytest.fixture(scope="module")
def upload(testdata: Path) -> bytes:
    return (testdata / PORTRAIT).read_bytes()


@pytest.fixture(scope="module")
def matte_output(worker_context: WorkerContext, upload: bytes) -> TaskOutput:
    return matte_task(worker_context, MatteRequest(upload))


def test_matte_bytes_round_trip(matte_output: TaskOutput) -> None:
    assert matte_output.media_type == MATTE_MEDIA_TYPE
    assert matte_output.meta["face_count"] == 1
    assert {"ms_decode", "ms_detect", "ms_matte"} <= set(matte_output.meta)

    matte = matte_from_bytes(matte_output.body)

    assert matte_to_bytes(matte) == matte_output.body
    assert matte.source_size_px == (512, 715)
    assert matte.alpha.shape == matte.foreground.shape[:2]
    assert 0.0 <= float(matte.alpha.min()) < 0.5 < float(matte.alpha.max()) <= 1.0
    # The face lies inside the cut-out.
    face, crop = matte.face.box, matte.crop_box
    assert crop.x1 <= face.x1 < face.x2 <= crop.x2
    assert crop.y1 <= face.y1 < face.y2 <= crop.y2


OPTIONS = [
    IdPhotoOptions(get_spec("cn-1inch")),
    IdPhotoOptions(get_spec("icao"), parse_background("blue", "vertical"), OutputFormat.PNG),
    IdPhotoOptions(get_spec("us-passport"), output_format=OutputFormat.PNG, transparent=True),
    IdPhotoOptions(get_spec("cn-id-card"), parse_background("#336699"), max_kb=12),
]


@pytest.mark.parametrize("options", OPTIONS, ids=["jpeg", "gradient-png", "transparent", "max-kb"])
def test_render_from_the_matte_bytes_is_the_clis_photo(
    worker_context: WorkerContext, upload: bytes, matte_output: TaskOutput, options: IdPhotoOptions
) -> None:
    rendered = render_task(worker_context, RenderRequest(matte_output.body, options))
    direct = id_photo_file(worker_context, IdPhotoFileRequest(upload, options)).photo

    assert rendered.body == direct.data
    assert rendered.media_type == direct.media_type == options.output_format.mime_type
    spec = options.spec
    assert opened(rendered.body).size == (spec.width_px, spec.height_px)
    assert rendered.meta["width"] == spec.width_px
    assert rendered.meta["height"] == spec.height_px
    assert rendered.meta["dpi"] == spec.dpi
    assert rendered.meta["compliance"] == direct.report.status.value
    assert rendered.meta["quality"] == direct.quality


def test_json_render_carries_the_same_image_and_the_report(
    worker_context: WorkerContext, matte_output: TaskOutput
) -> None:
    options = IdPhotoOptions(get_spec("icao"))
    image = render_task(worker_context, RenderRequest(matte_output.body, options))

    answer = render_task(
        worker_context, RenderRequest(matte_output.body, options, ResponseKind.JSON)
    )

    assert answer.media_type == JSON_MEDIA_TYPE
    body = json.loads(answer.body)
    assert base64.b64decode(body["image_base64"]) == image.body
    assert body["report"]["status"] == image.meta["compliance"] == answer.meta["compliance"]
    assert (body["width"], body["height"], body["dpi"]) == (413, 531, 300)


def test_sheet_from_the_matte_bytes_is_the_clis_sheet(
    worker_context: WorkerContext, upload: bytes, matte_output: TaskOutput
) -> None:
    options = IdPhotoOptions(get_spec("cn-1inch"), parse_background("red"))

    sheet = sheet_task(worker_context, SheetRequest(matte_output.body, ((options, None),), "6inch"))
    direct = id_photo_file(worker_context, IdPhotoFileRequest(upload, options, "6inch")).sheet

    assert sheet.body == direct
    assert sheet.media_type == "image/jpeg"
    assert sheet.meta["copies"] == 12
    assert (sheet.meta["width"], sheet.meta["height"], sheet.meta["dpi"]) == (1200, 1800, 300)
    image = opened(sheet.body)
    assert image.size == (1200, 1800)
    # Red photos on white paper: white in the margin, red somewhere.
    pixels = np.asarray(image).astype(int)
    assert np.abs(pixels[0, 0] - 255).max() <= 3
    assert (np.abs(pixels - [0xD9, 0x00, 0x1B]).max(axis=2) <= 3).any()


def test_mixed_sheet_counts_every_copy(
    worker_context: WorkerContext, matte_output: TaskOutput
) -> None:
    items = (
        (IdPhotoOptions(get_spec("cn-1inch")), 4),
        (IdPhotoOptions(get_spec("cn-2inch")), 2),
    )

    sheet = sheet_task(
        worker_context, SheetRequest(matte_output.body, items, "6inch", OutputFormat.PNG)
    )

    assert sheet.meta["copies"] == 6
    assert sheet.media_type == "image/png"
    assert sorted(opened(sheet.body).size) == [1200, 1800]


def test_a_sheets_compliance_is_the_worst_of_its_photos_reports(
    worker_context: WorkerContext, matte_output: TaskOutput
) -> None:
    # portrait_2 passes as a 1-inch photo on white; on magenta, a colour the size does not
    # list and far from all it does, it fails: a sheet holding both is only as good as its
    # worst copy.
    good = IdPhotoOptions(get_spec("cn-1inch"))
    magenta = IdPhotoOptions(get_spec("cn-1inch"), parse_background("#ff00ff"))
    verdicts = [
        render_task(worker_context, RenderRequest(matte_output.body, options)).meta["compliance"]
        for options in (good, magenta)
    ]

    plain = sheet_task(worker_context, SheetRequest(matte_output.body, ((good, 2),), "6inch"))
    mixed = sheet_task(
        worker_context, SheetRequest(matte_output.body, ((good, 2), (magenta, 2)), "6inch")
    )

    assert verdicts == ["pass", "fail"]
    assert (plain.meta["compliance"], mixed.meta["compliance"]) == ("pass", "fail")


def test_two_faces_are_refused_with_the_count(
    worker_context: WorkerContext, testdata: Path
) -> None:
    with pytest.raises(MultipleFaces) as caught:
        matte_task(worker_context, MatteRequest((testdata / "two_people.jpg").read_bytes()))

    assert caught.value.details == {"face_count": 2}


def test_a_face_past_the_kept_ones_is_not_said_to_be_past_the_photos_last(
    worker_context: WorkerContext, testdata: Path
) -> None:
    # Detection keeps the detection.max_faces largest faces: a group photo of 400 was answered
    # "face must be from 1 to 100: the photo has 100".
    settings = worker_context.settings.model_copy(
        update={"detection": worker_context.settings.detection.model_copy(update={"max_faces": 1})}
    )
    capped = dataclasses.replace(worker_context, settings=settings)
    data = (testdata / "two_people.jpg").read_bytes()
    with pytest.raises(OutOfRange) as caught:
        matte_task(capped, MatteRequest(data, face=2))

    assert "the photo has 1" not in caught.value.message
    assert "only the 1 largest faces of the photo are numbered" in caught.value.message
    assert caught.value.details == {"parameter": "face", "min": 1, "max": 1, "face_count": 1}
    with pytest.raises(OutOfRange, match=r"the photo has 2$"):  # all its faces kept
        matte_task(worker_context, MatteRequest(data, face=3))


def test_no_face_is_refused(worker_context: WorkerContext, testdata: Path) -> None:
    with pytest.raises(NoFace):
        matte_task(worker_context, MatteRequest((testdata / "coffee.jpg").read_bytes()))


def _face_lab(output: TaskOutput) -> NDArray[np.float32]:
    """The median Lab colour of the face box in a matte's cut-out."""
    matte = matte_from_bytes(output.body)
    box = matte.face.box
    top_left = matte.to_matte_px(Point(box.x1, box.y1))
    bottom_right = matte.to_matte_px(Point(box.x2, box.y2))
    rgb = matte.foreground[
        round(top_left.y) : round(bottom_right.y), round(top_left.x) : round(bottom_right.x)
    ].reshape(-1, 1, 3)
    lab = cv2.cvtColor(rgb.astype(np.float32) / 255, cv2.COLOR_RGB2Lab).reshape(-1, 3)
    median: NDArray[np.float32] = np.asarray(np.median(lab, axis=0), dtype=np.float32)
    return median


def test_a_portrait_in_another_colour_profile_keeps_its_colours(
    worker_context: WorkerContext, upload: bytes, matte_output: TaskOutput
) -> None:
    # The same portrait as a studio would send it in Adobe RGB: other numbers, the same colours.
    # Read as sRGB its face was paler (ΔE 3.5); with its profile applied the cut-out's face is the
    # sRGB original's, to the re-encoding's error (ΔE 0.3).
    profile = matrix_icc_profile("Adobe RGB (1998) compatible")
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    adobe = ImageCms.ImageCmsProfile(io.BytesIO(profile))
    original = Image.open(io.BytesIO(upload)).convert("RGB")
    encoded = ImageCms.applyTransform(original, ImageCms.buildTransform(srgb, adobe, "RGB", "RGB"))
    assert encoded is not None
    tagged, untagged = io.BytesIO(), io.BytesIO()
    encoded.save(tagged, "JPEG", quality=95, icc_profile=profile)
    encoded.save(untagged, "JPEG", quality=95)

    expected = _face_lab(matte_output)
    managed = _face_lab(matte_task(worker_context, MatteRequest(tagged.getvalue())))
    ignored = _face_lab(matte_task(worker_context, MatteRequest(untagged.getvalue())))

    assert np.linalg.norm(ignored - expected) > 2.0  # the profile matters on this portrait
    assert np.linalg.norm(managed - expected) < 1.0


def test_the_cut_out_levels_a_face_by_its_eye_corners(
    worker_context: WorkerContext, testdata: Path
) -> None:
    # biden.jpg: YuNet's eye points on his lids read his 12.5° tilt as 1.9°, and the finished
    # photo kept 10.7° (tests/pipeline/idphoto/test_level.py).
    output = matte_task(worker_context, MatteRequest((testdata / "biden.jpg").read_bytes()))

    level_roll = matte_from_bytes(output.body).face.level_roll
    assert level_roll is not None
    assert level_roll > 10


@pytest.mark.parametrize(("face", "count"), [(3, 1), (4, 2)])
def test_a_neighbour_the_cut_out_kept_is_counted(
    worker_context: WorkerContext, testdata: Path, face: int, count: int
) -> None:
    # A selfie of six: the bearded man (3) comes out alone; beside him (4), half his face is
    # cut out with his neighbour and shows at the photo's edge.
    path = testdata.parent / "devset" / "df_selfie-many-people.jpg"
    require(path.is_file(), "devset photo not found")
    matte = matte_task(worker_context, MatteRequest(path.read_bytes(), face=face))

    output = render_task(
        worker_context,
        RenderRequest(matte.body, IdPhotoOptions(get_spec("icao")), ResponseKind.JSON),
    )

    report = json.loads(output.body)["report"]
    (check,) = [check for check in report["checks"] if check["name"] == "face_count"]
    assert (check["value"], check["status"]) == (count, "pass" if count == 1 else "fail")


@pytest.mark.parametrize("turns", [1, 2, 3])
def test_a_photo_saved_on_its_side_makes_the_upright_files_photo(
    worker_context: WorkerContext, testdata: Path, turns: int
) -> None:
    # A phone photo whose orientation tag was stripped: the detector finds the face lying on its
    # side, and the photo is turned upright before the cut-out (u2netp cut a sideways person out
    # poorly, and the report failed `roll` at 87° and the checks placed for an upright head).
    rgb = np.asarray(Image.open(testdata / PORTRAIT).convert("RGB"))
    uploads = [
        cv2.imencode(".png", cv2.cvtColor(np.rot90(rgb, k), cv2.COLOR_RGB2BGR))[1].tobytes()
        for k in (0, turns)
    ]
    options = IdPhotoOptions(get_spec("icao"), output_format=OutputFormat.PNG)

    upright, turned = (
        render_task(
            worker_context,
            RenderRequest(matte_task(worker_context, MatteRequest(upload)).body, options),
        )
        for upload in uploads
    )

    assert turned.meta["compliance"] == upright.meta["compliance"]
    # The faces are found again on the upright pixels, so the photo is the upright file's.
    assert turned.body == upright.body


def test_a_sheet_renders_a_photo_of_another_dpi_at_its_own_not_resized(
    worker_context: WorkerContext, upload: bytes, matte_output: TaskOutput
) -> None:
    # China's ID card is 26×32 mm at 350 dpi. Rendered at 350 dpi and then resized to the
    # 300 dpi sheet, its photo was resampled twice and lost two thirds of its fine detail
    # (Laplacian variance 235 against 673 on portrait_1): the sheet's copy must be the photo
    # rendered at 300 dpi from the cut-out, pixel for pixel (a PNG sheet, so nothing is lost).
    options = IdPhotoOptions(get_spec("cn-id-card"))
    at_300 = IdPhotoOptions(dataclasses.replace(options.spec, dpi=300))
    matte = matte_from_bytes(matte_output.body)
    expected = render_pixels(matte, matte.face, at_300).pixels

    sheet = sheet_task(
        worker_context,
        SheetRequest(matte_output.body, ((options, None),), "6inch", OutputFormat.PNG),
    )

    pixels = np.asarray(opened(sheet.body).convert("RGB"))
    placements = plan_sheet([(26.0, 32.0)], [None], get_paper("6inch")).placements
    assert sheet.meta["copies"] == len(placements) == 12
    assert expected.shape == (378, 307, 3)
    for p in placements:
        copy = pixels[p.y_px : p.y_px + p.height_px, p.x_px : p.x_px + p.width_px]
        assert np.array_equal(copy, expected)
    # The CLI's sheet is made the same way.
    jpeg = sheet_task(worker_context, SheetRequest(matte_output.body, ((options, None),), "6inch"))
    direct = id_photo_file(worker_context, IdPhotoFileRequest(upload, options, "6inch")).sheet
    assert jpeg.body == direct

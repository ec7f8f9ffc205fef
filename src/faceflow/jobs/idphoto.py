"""ID photos and print sheets as jobs: the same output, and the same cache key, as
``/v1/id-photo`` and ``/v1/id-photo/sheet``.

The sync endpoints render from a matte they cache per upload; a job runs both stages in one task
in its worker (:func:`id_photo_task`, :func:`sheet_job_task`) and stores the final image under
the sync endpoint's key, so a sync request after the job is a cache hit and vice versa.

A job stores the client's validated options (not the canonical parameters, which cannot be turned
back into a size preset), and the worker parses them again; parsing uses no setting, so API and
worker build the same request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from faceflow.config import Settings
from faceflow.errors import InvalidParameter, JsonScalar
from faceflow.imaging.encode import OutputFormat
from faceflow.pipeline.idphoto.render import IdPhotoOptions
from faceflow.runtime.context import WorkerContext
from faceflow.runtime.idphoto_tasks import (
    MatteRequest,
    PhotoParams,
    RenderRequest,
    ResponseKind,
    SheetParams,
    SheetRequest,
    matte_task,
    photo_cache_params,
    render_task,
    sheet_cache_params,
    sheet_task,
)
from faceflow.runtime.tasks import TaskOutput


class IdPhotoJobOptions(BaseModel):
    """The query options of ``/v1/id-photo`` (without ``sheet``), with the same defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spec: str = "cn-1inch"
    width: float | None = Field(None, gt=0)
    height: float | None = Field(None, gt=0)
    unit: Literal["mm", "px"] = "mm"
    dpi: int | None = Field(None, ge=72, le=1200)
    background: str = "white"
    gradient: Literal["none", "vertical", "radial"] = "none"
    format: OutputFormat = OutputFormat.JPEG
    max_kb: int | None = Field(None, ge=1, le=10_000)
    transparent: bool = False
    quality: int = Field(95, ge=1, le=100)
    response: ResponseKind = ResponseKind.IMAGE


@dataclass(frozen=True, slots=True)
class IdPhotoJobRequest:
    data: bytes = field(repr=False)
    options: IdPhotoOptions
    response: ResponseKind
    raw: IdPhotoJobOptions


def _after_matte(
    context: WorkerContext, data: bytes, finish: Callable[[bytes], TaskOutput]
) -> TaskOutput:
    """The upload's matte, then ``finish(matte)``: a sync endpoint's two stages in one task, with
    the matte stage's timings kept in the output."""
    matte = matte_task(context, MatteRequest(data))
    output = finish(matte.body)
    timings = {k: v for k, v in matte.meta.items() if k.startswith("ms_")}
    return TaskOutput(output.media_type, output.body, {**timings, **output.meta})


def id_photo_task(context: WorkerContext, request: IdPhotoJobRequest) -> TaskOutput:
    """Matte, then render."""
    return _after_matte(
        context,
        request.data,
        lambda matte: render_task(context, RenderRequest(matte, request.options, request.response)),
    )


def photo_params(raw: IdPhotoJobOptions) -> PhotoParams:
    """The sync route's unvalidated options for these job options (``format`` → output_format)."""
    fields = raw.model_dump(exclude={"response", "format"})
    return PhotoParams(**fields, output_format=raw.format)


def photo_options(raw: IdPhotoJobOptions) -> IdPhotoOptions:
    """Validated photo options; InvalidParameter for a bad combination (as the sync route)."""
    return photo_params(raw).to_options()


def _build(data: bytes, raw: IdPhotoJobOptions) -> IdPhotoJobRequest:
    return IdPhotoJobRequest(data, photo_options(raw), raw.response, raw)


Options = TypeVar("Options")


def _client_options(model: type[Options], options: Mapping[str, str], what: str) -> Options:
    """``options`` validated into ``model`` (a pydantic model or a dataclass that forbids extra
    fields); InvalidParameter naming every problem."""
    try:
        return TypeAdapter(model).validate_python(dict(options))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidParameter(f"invalid {what} options: {problems}") from None


def _stored_options(model: type[Options], stored: Mapping[str, JsonScalar], what: str) -> Options:
    try:
        return TypeAdapter(model).validate_python(dict(stored))
    except ValidationError:
        raise InvalidParameter(f"stored {what} options are invalid") from None


def from_options(data: bytes, options: Mapping[str, str], settings: Settings) -> IdPhotoJobRequest:
    return _build(data, _client_options(IdPhotoJobOptions, options, "id-photo"))


def params(request: IdPhotoJobRequest) -> dict[str, JsonScalar]:
    """The sync endpoint's cache parameters for this photo."""
    return {**photo_cache_params(request.options), "response": request.response.value}


def payload(request: IdPhotoJobRequest) -> dict[str, JsonScalar]:
    """The validated client options, everything explicit."""
    return dict(request.raw.model_dump(mode="json"))


def from_params(data: bytes, stored: Mapping[str, JsonScalar]) -> IdPhotoJobRequest:
    return _build(data, _stored_options(IdPhotoJobOptions, stored, "id-photo"))


@dataclass(frozen=True, slots=True)
class SheetJobRequest:
    data: bytes = field(repr=False)
    sheet: SheetRequest
    """Validated, without its matte (the task computes it)."""
    raw: SheetParams


def sheet_job_task(context: WorkerContext, request: SheetJobRequest) -> TaskOutput:
    """Matte, then the sheet."""
    return _after_matte(
        context,
        request.data,
        lambda matte: sheet_task(context, replace(request.sheet, matte=matte)),
    )


def _build_sheet(data: bytes, raw: SheetParams) -> SheetJobRequest:
    return SheetJobRequest(data, raw.to_request(), raw)


def sheet_from_options(
    data: bytes, options: Mapping[str, str], settings: Settings
) -> SheetJobRequest:
    return _build_sheet(data, _client_options(SheetParams, options, "print-sheet"))


def sheet_params(request: SheetJobRequest) -> dict[str, JsonScalar]:
    """The sync endpoint's cache parameters for this sheet."""
    return sheet_cache_params(request.sheet)


def sheet_payload(request: SheetJobRequest) -> dict[str, JsonScalar]:
    return dict(asdict(request.raw))


def sheet_from_params(data: bytes, stored: Mapping[str, JsonScalar]) -> SheetJobRequest:
    return _build_sheet(data, _stored_options(SheetParams, stored, "print-sheet"))

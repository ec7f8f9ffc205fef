"""Response shapes for the OpenAPI document. Handlers return finished bodies built in the
inference processes; these models describe them and are not used to re-validate every response."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ErrorDetail(BaseModel):
    """An error. Some codes carry more fields, named in the README's error table: ``min`` and
    ``max`` (out_of_range), ``limit_bytes`` (too_large), ``face_count`` (multiple_faces), ``fits``
    and ``requested`` (a print sheet's copies), ``failure`` (job_failed)."""

    model_config = ConfigDict(extra="allow")

    code: str = Field(description="stable machine-readable code, e.g. unsupported_format")
    message: str = Field(description="human-readable explanation")
    parameter: str | None = Field(
        None,
        description="the option or form field at fault, when one is (invalid_parameter,"
        " out_of_range, missing_field)",
    )


class ErrorBody(BaseModel):
    error: ErrorDetail


class LandmarksOut(BaseModel):
    right_eye: list[float] = Field(description="[x, y]; the subject's right eye")
    left_eye: list[float]
    nose: list[float]
    mouth_right: list[float]
    mouth_left: list[float]


class AgeOut(BaseModel):
    years: float = Field(description="expected age over the model's distribution")
    low: float = Field(description="low end of the range calibrated to hold the true age")
    high: float = Field(description="high end of the calibrated range")
    reliable: bool = Field(
        description="false when the face is too poor (blur, exposure, size, yaw) to trust the "
        "number; the range is then widened"
    )


class GenderOut(BaseModel):
    label: str = Field(description="female or male")
    probability: float
    reliable: bool = Field(description="false on a poor face; the probability is then tempered")


class QualityOut(BaseModel):
    score: float = Field(description="0-1: the weakest of sharpness, exposure, size and yaw")
    sharpness: float = Field(description="0 blurred ... 1 sharp")
    exposure: float = Field(description="0 black or blown out ... 1 well exposed")
    size_px: float = Field(description="side of the face in source pixels")
    yaw_deg: float = Field(description="estimated left-right turn; 0 frontal")


class FaceOut(BaseModel):
    box: list[float] = Field(description="[x1, y1, x2, y2] in source pixels")
    score: float
    landmarks: LandmarksOut
    roll: float = Field(
        description="eye line's angle in degrees, clockwise: 0 upright, ±90 on its side, 180 "
        "upside down (found in any orientation)"
    )
    quality: QualityOut | None = Field(None, description="analyze only")
    age: AgeOut | None = None
    gender: GenderOut | None = None


class FaceReportOut(BaseModel):
    width: int
    height: int
    face_count: int
    faces: list[FaceOut]


class BatchItemOut(BaseModel):
    index: int
    filename: str | None = None
    status: int = Field(description="the HTTP status this item would have had on its own")
    cache: str | None = Field(None, description="hit or miss")
    result: FaceReportOut | None = None
    image_base64: str | None = Field(None, description="annotate: the image, base64")
    media_type: str | None = None
    error: ErrorDetail | None = None


class BatchOut(BaseModel):
    operation: str
    items: list[BatchItemOut]


class ReadyOut(BaseModel):
    ready: bool
    workers_ready: int
    workers: int


class InfoOut(BaseModel):
    version: str
    models: list[dict[str, Any]]
    limits: dict[str, Any]
    detection: dict[str, Any]
    cache: dict[str, Any]
    pool: dict[str, Any]
    operations: list[str] = Field(
        description="what this server offers (runtime.operations); anything else answers 404 "
        "operation_disabled"
    )
    jobs: dict[str, Any]
    auth_required: bool
    rate_limit: str | None


class IdPhotoSpecsOut(BaseModel):
    specs: list[dict[str, Any]] = Field(
        description="every size preset: mm, DPI, pixels, head and eye-line rules, and `nudges`:"
        " the [min, max] of each nudge option for that size"
    )
    sheets: list[dict[str, Any]] = Field(description="the print sheets' papers")
    backgrounds: list[str] = Field(description="the background colours known by name")
    bounds: dict[str, list[int | float]] = Field(
        description="[min, max] (inclusive) of each /v1/id-photo option with fixed bounds (dpi,"
        " max_kb, quality, face), as its options model checks them: a client checking a value"
        " before sending it uses these"
    )


_ERROR_STATUSES = {
    400: "bad request: empty body, missing field or invalid parameter",
    401: "an API key is required",
    403: "the API key is not valid",
    413: "upload too large",
    415: "not a JPEG, PNG, WebP or GIF (or a form's fields: send multipart/form-data)",
    422: "image undecodable, too many pixels or bad dimensions",
    429: "rate limit exceeded (see Retry-After)",
    503: "overloaded, deadline exceeded or not ready (see Retry-After)",
}


OPERATION_DISABLED = (
    "operation_disabled: this server does not offer the operation (not in runtime.operations)"
)


def operation_disabled_response(also: str = "") -> dict[int | str, dict[str, Any]]:
    """The 404 a route answers for an operation this server does not offer (``also``: the
    route's other 404, if any), declared so that the document lists every status it answers."""
    description = f"{also}; {OPERATION_DISABLED}" if also else OPERATION_DISABLED
    return {404: {"model": ErrorBody, "description": description}}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the given error statuses (all, if none given)."""
    chosen = statuses or tuple(_ERROR_STATUSES)
    return {
        status: {"model": ErrorBody, "description": _ERROR_STATUSES[status]} for status in chosen
    }


IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif")


def image_request_body(field: str = "image", many: bool = False) -> dict[str, Any]:
    """``openapi_extra`` declaring an image upload as multipart field or raw body."""
    binary = {"type": "string", "format": "binary"}
    field_schema = {"type": "array", "items": binary} if many else binary
    content: dict[str, Any] = {
        "multipart/form-data": {
            "schema": {"type": "object", "properties": {field: field_schema}, "required": [field]}
        }
    }
    if not many:
        content.update({media: {"schema": binary} for media in IMAGE_MEDIA_TYPES})
    return {"requestBody": {"required": True, "content": content}}


def image_response(description: str) -> dict[int | str, dict[str, Any]]:
    return {
        200: {
            "description": description,
            "content": {
                "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                "image/png": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    }

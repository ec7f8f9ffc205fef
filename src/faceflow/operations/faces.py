"""detect, analyze and annotate: their options, their cache parameters and their request.

One model per operation, each adding to the one before: :class:`FaceOptions` (detect),
:class:`AnalyzeOptions` (+ attributes), :class:`AnnotateOptions` (+ format). An unset detection
option takes its default from the ``detection`` settings, with the same bounds (``config``).
A parsed model resolves into a :class:`FaceWork` — everything the answer depends on but the image.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Literal

from pydantic import BaseModel, Field

from faceflow.config import DetectionSettings, FaceCount, FaceScore, FaceWidthPx
from faceflow.domain import Attribute, Operation, parse_attributes
from faceflow.errors import InvalidParameter, JsonScalar
from faceflow.imaging.formats import OutputFormat
from faceflow.operations.parse import OPTIONS_CONFIG
from faceflow.pipeline.detect_options import DetectOptions
from faceflow.runtime.tasks import FaceRequest

# The detection options a face answer depends on: its cache parameters, in this order.
_DETECT_PARAMS = ("score_threshold", "nms_threshold", "min_face_px", "max_faces")


@dataclass(frozen=True, slots=True)
class FaceWork:
    """A face operation's options resolved against the settings: all of the request but the
    image, so it is built (and its cache-key prefix derived) once per query string."""

    operation: Operation
    options: DetectOptions
    attributes: tuple[Attribute, ...] = ()
    image_format: OutputFormat = OutputFormat.JPEG

    def cache_params(self) -> dict[str, JsonScalar]:
        """Every parameter that changes the answer, canonically: the cache key's, and what a job
        stores for its worker (nothing is left to a worker's own settings)."""
        params: dict[str, JsonScalar] = {
            name: getattr(self.options, name) for name in _DETECT_PARAMS
        }
        if self.operation is not Operation.DETECT:
            params["attributes"] = ",".join(sorted(a.value for a in self.attributes))
        if self.operation is Operation.ANNOTATE:
            params["format"] = self.image_format.value
        return params

    def request(self, data: bytes) -> FaceRequest:
        """The inference task's request for the image ``data``."""
        return FaceRequest(data, self.operation, self.options, self.attributes, self.image_format)

    @classmethod
    def of(cls, request: FaceRequest) -> FaceWork:
        return cls(request.operation, request.options, request.attributes, request.image_format)

    @classmethod
    def from_params(cls, operation: Operation, params: Mapping[str, JsonScalar]) -> FaceWork:
        """The work :meth:`cache_params` describes (a worker rebuilding a stored job)."""

        base = DetectOptions()

        def stored(name: str) -> Any:  # the field's own type, which differs per name
            """The parameter ``name`` as its field's type (JSON may have turned 40 into 40.0)."""
            value, default = params.get(name), getattr(base, name)
            is_number = isinstance(value, int | float) and not isinstance(value, bool)
            try:
                if is_number != isinstance(default, int | float):
                    raise ValueError(name)
                return type(default)(value)
            except ValueError:
                raise InvalidParameter(f"job parameter {name!r} is missing or invalid") from None

        # Every detection parameter back into its field: an option added to _DETECT_PARAMS
        # reaches the job worker with nothing more.
        detect = replace(base, **{name: stored(name) for name in _DETECT_PARAMS})
        attributes = params.get("attributes", "")
        fmt = params.get("format", OutputFormat.JPEG.value)
        try:
            image_format = OutputFormat(str(fmt))
        except ValueError:
            raise InvalidParameter(f"job parameter format {fmt!r} is unknown") from None
        chosen = parse_attributes(attributes if isinstance(attributes, str) else "")
        return cls(operation, detect, chosen, image_format)


class FaceOptions(BaseModel):
    """The options of ``/v1/detect``; unset ones take the ``detection`` settings' defaults."""

    model_config = OPTIONS_CONFIG

    threshold: FaceScore | None = Field(
        None, description="minimum face score (default from settings)"
    )
    max_faces: FaceCount | None = Field(None, description="keep the N largest faces")
    min_face_px: FaceWidthPx | None = Field(
        None, description="drop faces narrower than this (source px)"
    )

    def work(self, operation: Operation, defaults: DetectionSettings) -> FaceWork:
        """These options for ``operation``, unset ones from ``defaults``; InvalidParameter for
        a value the model cannot check alone (an unknown attribute)."""
        base = DetectOptions.from_settings(defaults)
        detect = replace(
            base,
            score_threshold=base.score_threshold if self.threshold is None else self.threshold,
            min_face_px=base.min_face_px if self.min_face_px is None else self.min_face_px,
            max_faces=base.max_faces if self.max_faces is None else self.max_faces,
        )
        return FaceWork(operation, detect)


class AnalyzeOptions(FaceOptions):
    """The options of ``/v1/analyze``."""

    attributes: str = Field(
        "age,gender",
        description="comma-separated attributes: age,gender; 'none' for detection only",
    )

    def work(self, operation: Operation, defaults: DetectionSettings) -> FaceWork:
        work = super().work(operation, defaults)
        if operation is Operation.DETECT:  # a batch's detect: attributes unused, so unchecked
            return work
        return replace(work, attributes=parse_attributes(self.attributes))


class AnnotateOptions(AnalyzeOptions):
    """The options of ``/v1/annotate``."""

    format: OutputFormat = Field(OutputFormat.JPEG, description="annotated image format")

    def work(self, operation: Operation, defaults: DetectionSettings) -> FaceWork:
        return replace(super().work(operation, defaults), image_format=self.format)


# Each face operation's options model: its route's query, its job's options.
FACE_OPTIONS: Mapping[Operation, type[FaceOptions]] = MappingProxyType(
    {
        Operation.DETECT: FaceOptions,
        Operation.ANALYZE: AnalyzeOptions,
        Operation.ANNOTATE: AnnotateOptions,
    }
)

# By value, not as Operation members: pydantic names a Literal's members by repr in its error
# ("Input should be <Operation.DETECT: 'detect'>, …"), a client should read 'detect'.
FaceOperation = Literal["detect", "analyze", "annotate"]


class BatchOptions(AnnotateOptions):
    """The options of ``/v1/batch``: a face operation and its options, for every image."""

    operation: FaceOperation = Field("analyze", description="what to do with every image")

    def batch_work(self, defaults: DetectionSettings) -> FaceWork:
        return self.work(Operation(self.operation), defaults)

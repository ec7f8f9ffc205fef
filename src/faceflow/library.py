"""faceflow as a library: analyze images and make ID photos in this process, no server.

The models are loaded once, when a :class:`FaceFlow` is made, from the pinned files that
``faceflow models pull`` fetched; every call then runs in the calling thread. This is the same code
the service's inference processes run, so answers match the HTTP API's.
"""

from __future__ import annotations

from collections.abc import Mapping

from faceflow.config import Settings, load_settings
from faceflow.domain import FaceReport, Operation
from faceflow.errors import InvalidParameter, JsonScalar
from faceflow.operations.faces import FACE_OPTIONS
from faceflow.operations.idphoto import PhotoOptions
from faceflow.operations.parse import parse_options
from faceflow.pipeline.idphoto.render import IdPhotoResult
from faceflow.runtime.context import WorkerContext, load_context
from faceflow.runtime.idphoto_tasks import IdPhotoFileRequest, id_photo_file
from faceflow.runtime.tasks import analyze_file

__all__ = ["FaceFlow", "FaceReport", "IdPhotoResult"]

# The model's options a method takes as an argument of its own, by the argument's name.
_ARGUMENT_OF = {"format": "output_format"}

# Options of /v1/id-photo that choose the shape of the HTTP answer, not the photo: the library
# has no such choice (it always returns an IdPhotoResult), so it refuses them rather than
# ignore them, by what they would have done.
_ID_PHOTO_ANSWER_OPTIONS = {
    "response": "the library always returns the photo with its report (IdPhotoResult)",
}


class FaceFlow:
    """Loaded models and the settings they run under (limits, detection defaults).

    >>> flow = FaceFlow()
    >>> report = flow.analyze(open("group.jpg", "rb").read())
    >>> photo = flow.id_photo(open("me.jpg", "rb").read(), spec="us-passport")

    ID photos run u2netp in this process, under this process's memory settings, which are left
    as they are. By default its ≈ 250 MB of intermediates are mapped afresh by every cut-out
    (the service's choice: its processes wait between requests holding nothing), and in a
    process started without the service's ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` the kernel
    zeroes them 4 KB at a time: ≈ 100 ms of system time a photo on our VMs. A program that
    makes many ID photos can keep onnxruntime's arena instead, as ``faceflow id-photo`` does
    (``FaceFlow(load_settings(models={"segmenter_arena": True}))``: those 250 MB stay held
    between photos), or be started with that ``GLIBC_TUNABLES`` (huge pages for every large
    block; glibc reads it only at a process's start).
    """

    def __init__(self, settings: Settings | None = None) -> None:
        if settings is not None and not isinstance(settings, Settings):
            # A dict or a config file's name failed deep in the loader, as an AttributeError
            # about ``model_dump_json``.
            raise TypeError(
                f"settings must be a faceflow Settings, e.g. "
                f"faceflow.config.load_settings(Path('faceflow.yaml')) or "
                f"load_settings(models={{...}}), not {type(settings).__name__}"
            )
        chosen = settings if settings is not None else load_settings()
        self._context: WorkerContext = load_context(chosen.model_dump_json())

    @property
    def settings(self) -> Settings:
        """The settings the models were loaded under (limits, detection defaults)."""
        return self._context.settings

    def detect(
        self,
        image: bytes,
        *,
        options: Mapping[str, str | int | float | bool | None] | None = None,
    ) -> FaceReport:
        """Every face with its box, score and five landmarks. ``options``: any option of
        ``/v1/detect`` (``threshold``, ``max_faces``, ``min_face_px``), as the API takes it."""
        return self._faces(image, Operation.DETECT, options)

    def analyze(
        self,
        image: bytes,
        *,
        options: Mapping[str, str | int | float | bool | None] | None = None,
    ) -> FaceReport:
        """Every face, with age and gender. ``options``: any option of ``/v1/analyze`` (those of
        :meth:`detect`, and ``attributes``)."""
        return self._faces(image, Operation.ANALYZE, options)

    def id_photo(
        self,
        image: bytes,
        *,
        spec: str | None = None,
        background: str = "white",
        output_format: str = "jpeg",
        max_kb: int | None = None,
        options: Mapping[str, str | int | float | bool | None] | None = None,
    ) -> IdPhotoResult:
        """An ID photo of the photo's one face, with its compliance report (``result.report``);
        :class:`~faceflow.FaceflowError` with ``code`` ``multiple_faces`` for several, unless
        ``options={"face": N}`` picks one (counted from 1, left to right).

        ``spec`` is a preset name (``faceflow id-photo-specs`` lists them; default ``cn-1inch``,
        or the custom size ``options`` give with ``width`` and ``height``); ``background`` a colour
        name or ``#rrggbb``; ``max_kb`` a file-size cap in 1,000-byte kilobytes; ``options`` any
        other option of ``/v1/id-photo`` (``face``, ``dpi``, ``gradient``, ``head_mm``, …) but
        ``response``, which shapes the HTTP answer only. Bad values, and options with no meaning
        here, raise :class:`~faceflow.FaceflowError` with ``code`` ``invalid_parameter``, naming
        them. Catch :class:`~faceflow.FaceflowError` and read ``.code``: the subclasses are
        internal.
        """
        _check_image(image)
        named: dict[str, JsonScalar] = {
            "spec": spec,
            "background": background,
            "format": output_format,
            "max_kb": max_kb,
        }
        given = _other_options(options, named, _ID_PHOTO_ANSWER_OPTIONS)
        if spec is None:
            # Given at all, a preset is refused beside a custom size (width and height).
            del named["spec"]
        chosen = parse_options(PhotoOptions, {**named, **given}, "id-photo", _ARGUMENT_OF)
        request = IdPhotoFileRequest(image, chosen.photo(), face=chosen.face)
        return id_photo_file(self._context, request).photo

    def _faces(
        self, image: bytes, operation: Operation, options: Mapping[str, JsonScalar] | None
    ) -> FaceReport:
        _check_image(image)
        # The HTTP API's model and defaults: the settings' detection options, age and gender.
        model = FACE_OPTIONS[operation]
        chosen = parse_options(model, _other_options(options, {}, {}), operation.value)
        work = chosen.work(operation, self._context.settings.detection)
        return analyze_file(self._context, work.request(image)).report


def _check_image(image: object) -> None:
    """TypeError for anything but an image file's bytes (a path is the likely mistake: it
    failed deep in the decoder with a message about ``startswith``)."""
    if not isinstance(image, bytes):
        raise TypeError(
            f"image must be the image file's bytes (e.g. Path(name).read_bytes()), "
            f"not {type(image).__name__}"
        )


def _other_options(
    options: Mapping[str, JsonScalar] | None,
    named: Mapping[str, JsonScalar],
    meaningless: Mapping[str, str],
) -> dict[str, JsonScalar]:
    """``options`` as given; InvalidParameter for one the method takes as its own argument
    (``format`` is ``output_format``: which of the two was meant?), or one in ``meaningless``
    (an option of the endpoint with no meaning in the library: by name, with why)."""
    if options is not None and not isinstance(options, Mapping):
        # A string failed in dict() with "dictionary update sequence element #0 has length 1".
        raise TypeError(
            f"options must be a mapping of option names to values (options={{'max_faces': 3}}), "
            f"not {type(options).__name__}"
        )
    given = dict(options or {})
    clash = sorted(given.keys() & named.keys())
    if clash:
        name = clash[0]
        argument = _ARGUMENT_OF.get(name, name)
        raise InvalidParameter(
            f"give {name!r} as the argument {argument}=, not in options", {"parameter": name}
        )
    unused = sorted(given.keys() & meaningless.keys())
    if unused:
        name = unused[0]
        raise InvalidParameter(
            f"option {name!r} means nothing to the library: {meaningless[name]}",
            {"parameter": name},
        )
    return given

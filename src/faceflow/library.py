"""faceflow as a library: analyze images and make ID photos in this process, no server.

The models are loaded once, when a :class:`FaceFlow` is made, from the pinned files that
``faceflow models pull`` fetched; every call then runs in the calling thread. This is the same code
the service's inference processes run, so answers match the HTTP API's.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, ClassVar, NoReturn

from faceflow.config import Settings, load_settings
from faceflow.domain import FaceReport, Operation
from faceflow.errors import FaceflowError, InvalidParameter, JsonScalar, TooLarge
from faceflow.operations.faces import FACE_OPTIONS
from faceflow.operations.idphoto import PhotoOptions
from faceflow.operations.parse import parse_options
from faceflow.pipeline.idphoto.render import IdPhotoResult
from faceflow.runtime.context import WorkerContext, load_context
from faceflow.runtime.idphoto_tasks import IdPhotoFileRequest, id_photo_file
from faceflow.runtime.tasks import analyze_file

__all__ = ["FaceFlow", "FaceReport", "IdPhotoResult"]

ImageFile = bytes | bytearray | memoryview | str | os.PathLike[str] | BinaryIO
"""What the methods take as the image: the file's bytes, its path, or a file opened with
``"rb"``. Always a file (JPEG, PNG, WebP, GIF), never decoded pixels: the file is what the
decoder's limits, its EXIF orientation and the service's answers are defined on."""

# The model's options a method takes as an argument of its own, by the argument's name.
_ARGUMENT_OF = {"format": "output_format"}

# Options of /v1/id-photo that choose the shape of the HTTP answer, not the photo: the library
# has no such choice (it always returns an IdPhotoResult), so it refuses them rather than
# ignore them, by what they would have done.
_ID_PHOTO_ANSWER_OPTIONS = {
    "response": "the library always returns the photo with its report (IdPhotoResult)",
}


# Models are loaded again in a child forked from a process that loaded them (DESIGN §5: sessions
# run in the process that made them). onnxruntime sessions with more than one intra-op thread
# (models.intra_op_threads 2) hung a forked child's first run in 1 of 15 forks, waiting on pool
# threads only the parent has. One reload at a time; a fork waits for one under way, so that
# no child inherits this lock held.
_RELOADING = threading.Lock()
os.register_at_fork(
    before=_RELOADING.acquire,
    after_in_parent=_RELOADING.release,
    after_in_child=_RELOADING.release,
)


class FlowClosed(FaceflowError):
    """A call on a :class:`FaceFlow` after its :meth:`~FaceFlow.close` (code ``closed``)."""

    code: ClassVar[str] = "closed"


class NotAnImageFile(InvalidParameter, TypeError):
    """Decoded pixels (a numpy array, a PIL image) or another object where an image file is
    wanted: ``invalid_parameter`` with ``parameter`` ``image`` to a caller catching
    :class:`~faceflow.FaceflowError`, and a ``TypeError``, as it always was, to one catching
    that."""


class FaceFlow:
    """Loaded models and the settings they run under (limits, detection defaults).

    >>> flow = FaceFlow()
    >>> report = flow.analyze("group.jpg")
    >>> photo = flow.id_photo(Path("me.jpg"), spec="us-passport")

    The image is the file's bytes, its path (``str`` or :class:`os.PathLike`) or a file opened
    with ``"rb"``, read up to ``limits.max_upload_bytes``. Decoded pixels are refused
    (:class:`NotAnImageFile`): an array does not say whether it is RGB (PIL, imageio) or BGR
    (OpenCV), and a wrong guess swaps the colours of an ID photo and moves the ages.

    One object may be used by several threads at once. ``close()`` (or a ``with`` block) lets
    the models go at once rather than when the object is collected; a call after it raises
    :class:`~faceflow.FaceflowError` with ``code`` ``closed``. In a child forked after it was
    made (a ``multiprocessing`` pool on Linux, ``os.fork``) its first call loads the models
    again, in the child (≈ 1 s): sessions run in the process that made them.

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
        self._settings = chosen
        # The process the models were loaded in, with them: one attribute, so that a thread
        # never reads one process's models with another's pid.
        self._loaded: tuple[int, WorkerContext] | None = (os.getpid(), self._load())

    @property
    def settings(self) -> Settings:
        """The settings the models were loaded under (limits, detection defaults)."""
        return self._settings

    def close(self) -> None:
        """Let the models go (≈ 300 MB with u2netp) now rather than when the object is
        collected; closing again does nothing."""
        self._loaded = None

    def __enter__(self) -> FaceFlow:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def __reduce__(self) -> NoReturn:
        # Was "cannot pickle 'onnxruntime...InferenceSession' object", from pool.map(flow.analyze,
        # paths). Not made picklable by loading the models again: each chunk of a map would
        # load them (≈ 1 s) for a few photos.
        raise TypeError(
            "a FaceFlow cannot be sent to another process (its models are loaded in this one): "
            "make one there, e.g. in a multiprocessing pool's initializer, and call it from a "
            "function of your own"
        )

    def __repr__(self) -> str:
        state = "closed" if self._loaded is None else f"models in {self._settings.models.dir}"
        return f"<FaceFlow {state}>"

    @property
    def _context(self) -> WorkerContext:
        loaded = self._loaded
        if loaded is None:
            raise FlowClosed("this FaceFlow is closed: make a new one")
        pid, context = loaded
        return context if pid == os.getpid() else self._reloaded()

    def _load(self) -> WorkerContext:
        return load_context(self._settings.model_dump_json())

    def _reloaded(self) -> WorkerContext:
        """The models loaded in this process, a child forked after they were loaded in its
        parent (once, whichever of its threads calls first)."""
        with _RELOADING:
            loaded = self._loaded
            if loaded is None:
                raise FlowClosed("this FaceFlow is closed: make a new one")
            if loaded[0] != os.getpid():
                loaded = (os.getpid(), self._load())
                self._loaded = loaded
            return loaded[1]

    def detect(
        self,
        image: ImageFile,
        *,
        options: Mapping[str, str | int | float | bool | None] | None = None,
    ) -> FaceReport:
        """Every face with its box, score and five landmarks. ``options``: any option of
        ``/v1/detect`` (``threshold``, ``max_faces``, ``min_face_px``), as the API takes it."""
        return self._faces(image, Operation.DETECT, options)

    def analyze(
        self,
        image: ImageFile,
        *,
        options: Mapping[str, str | int | float | bool | None] | None = None,
    ) -> FaceReport:
        """Every face, with age and gender. ``options``: any option of ``/v1/analyze`` (those of
        :meth:`detect`, and ``attributes``)."""
        return self._faces(image, Operation.ANALYZE, options)

    def id_photo(
        self,
        image: ImageFile,
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
        context = self._context
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
        data = _image_bytes(image, context.settings.limits.max_upload_bytes)
        request = IdPhotoFileRequest(data, chosen.photo(), face=chosen.face)
        return id_photo_file(context, request).photo

    def _faces(
        self, image: ImageFile, operation: Operation, options: Mapping[str, JsonScalar] | None
    ) -> FaceReport:
        context = self._context
        # The HTTP API's model and defaults: the settings' detection options, age and gender.
        model = FACE_OPTIONS[operation]
        chosen = parse_options(model, _other_options(options, {}, {}), operation.value)
        work = chosen.work(operation, context.settings.detection)
        data = _image_bytes(image, context.settings.limits.max_upload_bytes)
        return analyze_file(context, work.request(data)).report


_TEXT_FILE = "image: the file was opened as text; open it with 'rb'"


def _image_bytes(image: object, max_bytes: int) -> bytes:
    """The image file's bytes, read from a path or an open file up to ``max_bytes`` (then
    TooLarge without reading on); NotAnImageFile for decoded pixels or anything else."""
    if isinstance(image, bytes):
        return image
    if isinstance(image, bytearray | memoryview):
        return bytes(image)
    if isinstance(image, str | os.PathLike):
        with Path(image).open("rb") as file:
            return _read_capped(file.read, max_bytes)
    if isinstance(image, io.TextIOBase):
        # Its read() decoded the JPEG as UTF-8: a UnicodeDecodeError at the first byte.
        raise NotAnImageFile(_TEXT_FILE, {"parameter": "image"})
    read = getattr(image, "read", None)
    if callable(read):
        return _read_capped(read, max_bytes)
    raise NotAnImageFile(_why_not_an_image(image), {"parameter": "image"})


def _read_capped(read: Callable[[int], object], max_bytes: int) -> bytes:
    """Up to ``max_bytes`` of an open file (its ``read``): a file of more is refused as an
    upload of more is, having read one byte past the limit, not the whole of it.

    Read until it gives nothing: a raw file's ``read(n)`` (``open(..., buffering=0)``, a pipe,
    a socket) may give fewer than ``n`` bytes before its end, and the photo was taken cut at
    the first (64 KiB of a pipe), refused as truncated."""
    parts: list[bytes | bytearray] = []
    size = 0
    while size <= max_bytes:
        part = read(max_bytes + 1 - size)
        if isinstance(part, str):
            raise NotAnImageFile(_TEXT_FILE, {"parameter": "image"})
        if not isinstance(part, bytes | bytearray):
            raise NotAnImageFile(
                f"image: its read() gave {type(part).__name__}, not bytes", {"parameter": "image"}
            )
        if not part:
            break
        parts.append(part)
        size += len(part)
    data = parts[0] if len(parts) == 1 else b"".join(parts)
    if len(data) > max_bytes:
        raise TooLarge(
            f"the image file is over the limit of {max_bytes} bytes (limits.max_upload_bytes)",
            {"max_bytes": max_bytes},
        )
    return bytes(data)


def _why_not_an_image(image: object) -> str:
    """What to give instead of ``image``, by what it is."""
    kind = type(image)
    if kind.__module__.startswith("PIL."):
        return (
            "image: a PIL image is not taken, its file is (the decoder's limits and EXIF "
            "orientation apply to the file): give its path, or its bytes: "
            "buffer = io.BytesIO(); picture.save(buffer, 'PNG'); buffer.getvalue()"
        )
    if hasattr(image, "__array_interface__") or hasattr(image, "__array__"):
        return (
            f"image: decoded pixels ({kind.__name__}) are not taken: an array does not say "
            "whether it is RGB (PIL, imageio) or BGR (OpenCV), and a wrong guess swaps an ID "
            "photo's colours and moves the ages. Give the file's path or bytes, or encode the "
            "array: cv2.imencode('.png', bgr)[1].tobytes() for OpenCV's BGR; "
            "PIL.Image.fromarray(rgb) saved to io.BytesIO as PNG for RGB"
        )
    return (
        f"image must be an image file's bytes, its path or a file opened with 'rb', "
        f"not {kind.__name__}"
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

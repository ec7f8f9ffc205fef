"""The one exception tree of faceflow.

Every error a caller can see is a :class:`FaceflowError`. Each subclass carries a stable,
machine-readable ``code`` (never renamed once released) and the HTTP ``status`` it maps to; the
service turns any of them into ``{"error": {"code": ..., "message": ..., ...details}}`` in exactly
one handler. ``details`` holds extra JSON-safe facts for the client, such as a face count.

Tree (``*``: :attr:`~FaceflowError.deterministic`, cached as its success would be)::

    FaceflowError (500 internal)
    ├── InputError (400 bad_request)
    │   ├── EmptyInput (400 empty)
    │   ├── MissingField (400 missing_field)
    │   ├── InvalidParameter (400 invalid_parameter) *
    │   │   └── OutOfRange (400 out_of_range) *
    │   ├── TooLarge (413 too_large)
    │   ├── HeadersTooLarge (431 headers_too_large)
    │   ├── UnsupportedFormat (415 unsupported_format)
    │   ├── TooManyPixels (422 too_many_pixels)
    │   ├── BadDimensions (422 bad_dimensions)
    │   ├── TooManyScans (422 too_many_scans)
    │   ├── Undecodable (422 undecodable) *
    │   ├── NoFace (422 no_face) *
    │   ├── MultipleFaces (422 multiple_faces) *
    │   └── NoSubject (422 no_subject) *
    ├── AuthError (401 unauthorized)
    │   └── Forbidden (403 forbidden)
    ├── NotFound (404 not_found)
    │   ├── OperationDisabled (404 operation_disabled)
    │   ├── Expired (410 expired)
    │   └── SourceExpired (404 source_expired)
    ├── Conflict (409 conflict)
    │   └── JobFailed (409 job_failed)
    ├── RequestTimeout (408 request_timeout)
    ├── RateLimited (429 rate_limited)
    ├── Unavailable (503 unavailable)
    │   ├── Overloaded (503 overloaded)
    │   ├── DeadlineExceeded (503 deadline_exceeded)
    │   ├── WorkerCrashed (503 worker_crashed)
    │   ├── QueueFull (503 queue_full)
    │   └── NotReady (503 not_ready)
    └── ModelError (500 model_error)
        ├── UnknownModel (500 unknown_model)
        ├── ModelMissing (500 model_missing)
        ├── ModelChecksumMismatch (500 model_checksum_mismatch)
        └── ModelFetchError (500 model_fetch_failed)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import ClassVar

JsonScalar = str | int | float | bool | None


class FaceflowError(Exception):
    """Base of every error faceflow raises on purpose."""

    code: ClassVar[str] = "internal"
    status: ClassVar[int] = 500
    deterministic: ClassVar[bool] = False
    """Whether the error, raised while computing a result, depends only on what the result's
    cache key covers (the upload's bytes, the options, the models): then it is cached under
    that key as the result would have been, and a repeat is answered from the cache (an
    impossible ``max_kb`` on a 4000 × 4000 photo cost 1.1 s of CPU at every repeat). Never an
    error that depends on the moment (load, a deadline, a crashed worker: 503s) or on this
    server's settings (the decode limits: ``too_many_pixels``, ``bad_dimensions``,
    ``too_many_scans``, ``too_large``), which another node or a restart may judge otherwise."""

    def __init__(self, message: str, details: Mapping[str, JsonScalar] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, JsonScalar] = dict(details or {})
        self.cache_status: str | None = None
        """How the result cache gave this error (its ``X-Cache-Detail``: ``hit_memory``,
        ``miss``…) when it is a :attr:`deterministic` one answered through it; else None."""

    def to_dict(self) -> dict[str, JsonScalar]:
        """The JSON error body's ``error`` object."""
        return {"code": self.code, "message": self.message, **self.details}


class InputError(FaceflowError):
    """The request or image is wrong; retrying the same input will fail the same way."""

    code = "bad_request"
    status = 400


class EmptyInput(InputError):
    code = "empty"
    status = 400


class MissingField(InputError):
    code = "missing_field"
    status = 400


class InvalidParameter(InputError):
    """An option the work cannot be done with, found by the route or by the work itself (a
    ``max_kb`` no quality fits, a sheet the photo does not fit on); one raised while computing
    depends on the options and the image alone."""

    code = "invalid_parameter"
    status = 400
    deterministic = True


class OutOfRange(InvalidParameter):
    """A number outside what its context allows (a nudge outside the preset's range, a face
    index past the last face); ``details`` name the parameter and its ``min`` and ``max``."""

    code = "out_of_range"


class TooLarge(InputError):
    code = "too_large"
    status = 413


class HeadersTooLarge(InputError):
    """A request line and headers over ``server.max_header_bytes``; the connection is closed
    after the answer."""

    code = "headers_too_large"
    status = 431


class UnsupportedFormat(InputError):
    code = "unsupported_format"
    status = 415


class TooManyPixels(InputError):
    code = "too_many_pixels"
    status = 422


class BadDimensions(InputError):
    code = "bad_dimensions"
    status = 422


class TooManyScans(InputError):
    """A JPEG of more progressive scans than ``limits.max_jpeg_scans`` (or more marker segments
    than a camera writes): every scan is a pass of the decoder over the whole image. Also a PNG
    or GIF in more chunks or blocks than real files hold (with ``format``), each read in turn."""

    code = "too_many_scans"
    status = 422


class Undecodable(InputError):
    code = "undecodable"
    status = 422
    deterministic = True  # the bytes are corrupt (MemoryError is not this: it is a 500)


class NoFace(InputError):
    code = "no_face"
    status = 422
    deterministic = True


class MultipleFaces(InputError):
    code = "multiple_faces"
    status = 422
    deterministic = True


class NoSubject(InputError):
    """The portrait cut-out left the chosen face out: the photo would be background only."""

    code = "no_subject"
    status = 422
    deterministic = True


class AuthError(FaceflowError):
    """No usable credentials were presented."""

    code = "unauthorized"
    status = 401


class Forbidden(AuthError):
    """Credentials were presented but are not valid for this resource."""

    code = "forbidden"
    status = 403


class NotFound(FaceflowError):
    code = "not_found"
    status = 404


class OperationDisabled(NotFound):
    """The operation is not among ``runtime.operations`` on this server (its models are not
    loaded)."""

    code = "operation_disabled"


class Expired(NotFound):
    """The thing existed but its retention ran out, e.g. a job's stored image."""

    code = "expired"
    status = 410


class SourceExpired(NotFound):
    """A render asked for an earlier upload by its content key (``source=``) and the server no
    longer holds that photo's cut-out: upload the photo again."""

    code = "source_expired"


class Conflict(FaceflowError):
    """The resource is in a state that does not allow this, e.g. cancelling a job that started."""

    code = "conflict"
    status = 409


class JobFailed(Conflict):
    """A job that failed for good on something other than its input (its worker died on every
    attempt, it ran out of time, an internal error): its result is this error, with the failure's
    own code in ``failure``. Not retryable as it is, so no ``Retry-After``."""

    code = "job_failed"


class RequestTimeout(FaceflowError):
    """The client did not send its request headers or body in time (``server.header_timeout_s``,
    ``server.body_timeout_s``); the connection is closed after the answer."""

    code = "request_timeout"
    status = 408


class RetryableError(FaceflowError):
    """An error the client should retry after ``retry_after_s`` seconds."""

    def __init__(
        self,
        message: str,
        retry_after_s: int = 1,
        details: Mapping[str, JsonScalar] | None = None,
    ) -> None:
        super().__init__(message, details)
        self.retry_after_s = max(1, int(retry_after_s))


class RateLimited(RetryableError):
    code = "rate_limited"
    status = 429


class Unavailable(RetryableError):
    code = "unavailable"
    status = 503


class Overloaded(Unavailable):
    code = "overloaded"


class DeadlineExceeded(Unavailable):
    code = "deadline_exceeded"


class WorkerCrashed(Unavailable):
    code = "worker_crashed"


class QueueFull(Unavailable):
    code = "queue_full"


class NotReady(Unavailable):
    code = "not_ready"


class ModelError(FaceflowError):
    """A model artifact is missing, unknown, corrupt or cannot be fetched."""

    code = "model_error"
    status = 500


class UnknownModel(ModelError):
    code = "unknown_model"


class ModelMissing(ModelError):
    code = "model_missing"


class ModelChecksumMismatch(ModelError):
    code = "model_checksum_mismatch"


class ModelFetchError(ModelError):
    code = "model_fetch_failed"


def error_from_code(
    code: str, message: str, details: Mapping[str, JsonScalar] | None = None
) -> FaceflowError:
    """Rebuild an error from its stable code, e.g. after it crossed a process or Redis boundary."""
    for cls in _all_subclasses(FaceflowError):
        if cls.code == code:
            if issubclass(cls, RetryableError):
                retry = details.get("retry_after_s", 1) if details else 1
                return cls(message, int(retry) if isinstance(retry, int | float) else 1, details)
            return cls(message, details)
    return FaceflowError(message, details)


def _all_subclasses(cls: type[FaceflowError]) -> list[type[FaceflowError]]:
    found: list[type[FaceflowError]] = [cls]
    for sub in cls.__subclasses__():
        found.extend(_all_subclasses(sub))
    return found


QUOTED_CHARS = 64
"""Characters of what a client sent that an error message repeats (:func:`quoted`)."""


def quoted(text: str) -> str:
    """``text``, something a client sent, as an error message names it: its ``repr``, cut after
    :data:`QUOTED_CHARS` characters. A query value or option name may be as long as the headers
    (64 KiB), and answers repeating it grew with it (an unknown option of 60 KB: 120 KB)."""
    if len(text) <= QUOTED_CHARS:
        return repr(text)
    return f"{text[:QUOTED_CHARS]!r}… ({len(text):,} characters)"


_CLOSE_LENGTH = 7 / 3
"""difflib's ``get_close_matches`` keeps a name whose ratio to the word is at least 0.6, and the
ratio is at most 2 × the shorter length over both lengths: a word over 7/3 times as long as a
name is never close to it."""


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` naming the known name ``name`` is likely a typo of, or ``""``:
    for the message of an error about an unknown option, setting, size or model."""
    import difflib  # only on the way to an error: not in every process's start-up

    # Case aside: 'THRESHOLD' is as likely a slip for 'threshold' as 'threshhold' is.
    by_lower = {k.lower(): k for k in known}
    word = name.lower()
    if len(word) > _CLOSE_LENGTH * max(map(len, by_lower), default=0):
        # Too long to be close to any (the answer difflib would give), and difflib indexes the
        # whole word before it compares lengths: a 60 KB attribute or size name cost 22 ms of
        # the event loop per look, three looks a request on the face routes.
        return ""
    close = difflib.get_close_matches(word, list(by_lower), n=1)
    return f" (did you mean {by_lower[close[0]]!r}?)" if close else ""

"""detect / analyze / annotate / batch."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from faceflow.cache.compute import cached_failure
from faceflow.cache.entry import CacheEntry
from faceflow.cache.keys import key_for_digest, key_prefix
from faceflow.cache.tiered import CacheStatus
from faceflow.domain import Operation
from faceflow.errors import DeadlineExceeded, FaceflowError, Overloaded, RetryableError, TooLarge
from faceflow.imaging.formats import sniff_format
from faceflow.operations.faces import (
    AnalyzeOptions,
    AnnotateOptions,
    BatchOptions,
    FaceOptions,
    FaceWork,
)
from faceflow.operations.registry import check_enabled
from faceflow.runtime.lanes import take_in_turn
from faceflow.runtime.pool import Admission
from faceflow.runtime.tasks import TaskOutput, run_face_request
from faceflow.service.answers import Answer, check_room
from faceflow.service.guard import charge, guard
from faceflow.service.lanes import Gone, in_a_lane
from faceflow.service.schemas import (
    BatchOut,
    FaceReportOut,
    error_responses,
    image_request_body,
    image_response,
    operation_disabled_response,
)
from faceflow.service.state import Services, services_of
from faceflow.service.upload import (
    SPLIT_ON_THE_LOOP_BYTES,
    Upload,
    check_image,
    read_image,
    read_images,
)

router = APIRouter(prefix="/v1", tags=["faces"], dependencies=[Depends(guard)])


def cache_headers(entry_meta: dict[str, object], status: CacheStatus) -> dict[str, str]:
    """``X-Cache`` (:attr:`CacheStatus.label`), ``X-Cache-Detail`` (which hit), and the
    timings and face count ``entry_meta`` holds."""
    headers = {"X-Cache": status.label, "X-Cache-Detail": status.value}
    timings = [
        f"{name[3:]};dur={value}"
        for name, value in entry_meta.items()
        if name.startswith("ms_") and isinstance(value, int | float)
    ]
    if timings:
        headers["Server-Timing"] = ", ".join(timings)
    count = entry_meta.get("face_count")
    if isinstance(count, int):
        headers["X-Face-Count"] = str(count)
    return headers


MANY_FACES = 100
"""Attributes (age, gender) asked for more faces than this (``max_faces``; 100 is its default)
take a lane of queued-up work, as large renders do, so single requests keep a process: a 14 KB
lossless WebP of 1,000 small faces costs 2.2 s of attributes (0.26 s with 100 faces), and three
connections asking for it with fresh thresholds (each a new cache key) held both processes of a
2-process node: another client's detects 150 answered in 30 s at p99 4.6 s (794 at p99 63 ms
with the lane)."""


def _many_faces(work: FaceWork) -> bool:
    return bool(work.attributes) and work.options.max_faces > MANY_FACES


async def answer(
    services: Services,
    key: str,
    work: FaceWork,
    data: bytes,
    *,
    gone: Gone,
    missed: bool = False,
    admission: Admission | None = None,
) -> Response:
    """The answer for the image ``data`` under its cache ``key``: cached, or computed once for
    concurrent identical requests. Where a request's work ends, whether the route or the hot path
    parsed and read it; the hot path holds the key already and passes ``missed=True``: it looked
    the key up and missed, so the cache does not look it up again. With an ``admission`` (a
    batch's, which holds a lane already), the pool never refuses the computation for load;
    without, attributes for more than :data:`MANY_FACES` faces take a lane (:func:`in_a_lane`,
    ``gone``: whether the request's client has gone)."""
    check_enabled(work.operation, services.settings.runtime)
    # Bytes no decoder takes go no further (the inference process sniffs the same): their 415 is
    # never cached, so a lookup could not find it, and each repeat took a cache round trip, a
    # place in the pool and a round trip to it.
    sniff_format(data)

    async def produce() -> TaskOutput:
        if admission is None and work.operation is Operation.ANNOTATE:
            check_room(services.answer_budget)  # an image: it would be refused when made
        request = work.request(data)
        if admission is None and _many_faces(work):
            async with in_a_lane(services, key, gone, f"attributes of over {MANY_FACES} faces"):
                return await services.pool.run(run_face_request, request)
        return await services.pool.run(run_face_request, request, admission=admission)

    entry, status = await services.cached_output(key, produce, missed=missed)
    return _entry_response(entry, status, services)


def _entry_response(entry: CacheEntry, status: CacheStatus, services: Services) -> Response:
    return Answer(
        entry.body,
        budget=services.answer_budget,
        media_type=entry.media_type,
        headers=cache_headers(dict(entry.meta), status),
    )


async def run_one(http: Request, services: Services, upload: Upload, work: FaceWork) -> Response:
    # The key as the hot path makes it (its prefix, then the upload's hash, taken once), and
    # the bytes taken out of a form's body once: ``upload.data`` copies them at every call.
    key = key_for_digest(
        key_prefix(work.operation.value, work.cache_params()), upload.content_hash()
    )
    return await answer(services, key, work, upload.data, gone=http.is_disconnected)


async def _single(http: Request, work: FaceWork) -> Response:
    services = services_of(http)
    upload = await read_image(http, services.settings.limits.max_upload_bytes)
    return await run_one(http, services, upload, work)


@router.post(
    "/detect",
    summary="Find every face: box, score, five landmarks",
    response_model=FaceReportOut,
    responses=error_responses(),
    openapi_extra=image_request_body(),
)
async def detect(request: Request, options: Annotated[FaceOptions, Query()]) -> Response:
    work = options.work(Operation.DETECT, services_of(request).settings.detection)
    return await _single(request, work)


@router.post(
    "/analyze",
    summary="Detect, plus age and gender per face",
    response_model=FaceReportOut,
    responses={**error_responses(), **operation_disabled_response()},
    openapi_extra=image_request_body(),
)
async def analyze(request: Request, options: Annotated[AnalyzeOptions, Query()]) -> Response:
    work = options.work(Operation.ANALYZE, services_of(request).settings.detection)
    return await _single(request, work)


@router.post(
    "/annotate",
    summary="The image with boxes, landmarks and 'F 33' labels drawn",
    response_class=Response,
    responses={
        **image_response("the annotated image"),
        **error_responses(),
        **operation_disabled_response(),
    },
    openapi_extra=image_request_body(),
)
async def annotate(request: Request, options: Annotated[AnnotateOptions, Query()]) -> Response:
    work = options.work(Operation.ANNOTATE, services_of(request).settings.detection)
    return await _single(request, work)


# Base64 in slices this long (a multiple of 3, so the slices join into one encoding): each call
# holds the GIL for about a millisecond, not for a whole image's encoding.
_B64_SLICE = 3 * 256 * 1024


def _base64(data: bytes | memoryview) -> bytes:
    view = memoryview(data)
    return b"".join(
        base64.b64encode(view[start : start + _B64_SLICE])
        for start in range(0, len(view), _B64_SLICE)
    )


def _batch_item(index: int, upload: Upload, outcome: Response | FaceflowError) -> bytes:
    """One item of the batch body as JSON bytes; a JSON result is spliced in without re-parsing."""
    head: dict[str, object] = {"index": index, "filename": upload.filename}
    if isinstance(outcome, FaceflowError):
        error = outcome.to_dict()
        if isinstance(outcome, RetryableError):
            error["retry_after_s"] = outcome.retry_after_s
        head.update(status=outcome.status, error=error)
        return json.dumps(head).encode()
    head.update(status=200, cache=outcome.headers.get("X-Cache"))
    media_type = outcome.media_type or ""
    if media_type == "application/json":
        return json.dumps(head).encode()[:-1] + b',"result":' + bytes(outcome.body) + b"}"
    head.update(media_type=media_type)
    return json.dumps(head).encode()[:-1] + b',"image_base64":"' + _base64(outcome.body) + b'"}'


def _outcome(error: FaceflowError) -> FaceflowError:
    """``error`` kept as a batch item's outcome, without its traceback: the traceback's frames
    (the batch's own among them, whose ``outcomes`` then held the error) made a cycle that kept
    every image of the batch until the next full collection — 160 MB a batch at the limits, and
    the API process grew past a gigabyte after a few batches of undecodable images."""
    return error.with_traceback(None)


def _batch_body(
    operation: Operation, uploads: list[Upload], outcomes: list[Response | FaceflowError]
) -> bytes:
    items = b",".join(
        _batch_item(index, upload, outcome)
        for index, (upload, outcome) in enumerate(zip(uploads, outcomes, strict=True))
    )
    return b'{"operation":"' + operation.value.encode() + b'","items":[' + items + b"]}"


async def _cache_keys(uploads: dict[int, Upload], work: FaceWork) -> dict[int, str]:
    """The cache keys of a batch's ``uploads``, by index; hashed beside the event loop past
    :data:`SPLIT_ON_THE_LOOP_BYTES` in all (BLAKE3 lets go of the GIL): sixteen images of 10 MiB
    held the loop 46-56 ms of CPU (85-94 ms on a busy machine) in one turn."""

    def keys() -> dict[int, str]:
        prefix = key_prefix(work.operation.value, work.cache_params())
        return {
            index: key_for_digest(prefix, upload.content_hash())
            for index, upload in uploads.items()
        }

    if sum(upload.size for upload in uploads.values()) <= SPLIT_ON_THE_LOOP_BYTES:
        return keys()
    return await asyncio.to_thread(keys)


async def _answered_without_the_pool(
    services: Services, uploads: list[Upload], work: FaceWork
) -> tuple[dict[int, Response | FaceflowError], dict[int, str]]:
    """The batch's images answered before it asks the pool for room, by index: those refused
    on their own (empty, too large) and those in the cache; and the cache keys of the others,
    in order. A batch of cached images is answered under any load (it was refused whole with
    the singles' hits still served), and one that needs the pool asks for no more lanes than
    it has images to compute."""
    answered: dict[int, Response | FaceflowError] = {}
    keys: dict[int, str] = {}
    checked: dict[int, Upload] = {}
    for index, upload in enumerate(uploads):
        try:
            check_image(upload, services.settings.limits.max_upload_bytes)
            sniff_format(upload.data)  # not an image: no lane for it (see answer)
        except FaceflowError as exc:
            answered[index] = _outcome(exc)
            continue
        checked[index] = upload
    for index, key in (await _cache_keys(checked, work)).items():
        entry, level = await services.cache.lookup(key)
        if entry is None:
            keys[index] = key
            continue
        services.metrics.hit(level)
        status = CacheStatus.hit_at(level)
        failure = cached_failure(entry, status)
        answered[index] = _entry_response(entry, status, services) if failure is None else failure
    return answered, keys


async def _admit_lanes(services: Services, wanted: int) -> list[Admission]:
    """Up to ``wanted`` admissions to the pool, as many as it has room for and there are lanes
    for queued-up work free (:mod:`faceflow.runtime.lanes`, shared with the embedded jobs; with
    none free, one in turn with the jobs waiting, for a few seconds); Overloaded (503 +
    Retry-After, the whole batch) when that is none. The caller gives them back with
    :func:`_release_lanes`."""
    lanes = await take_in_turn(services.lanes, wanted)
    if not lanes:
        raise Overloaded(
            "the inference processes batches and jobs may use are busy with other batches or jobs",
            retry_after_s=services.pool.retry_after_s(),
        )
    admissions: list[Admission] = []
    try:
        while len(admissions) < lanes:
            admissions.append(services.pool.admit())
    except Overloaded:
        if not admissions:
            raise
    finally:
        for _ in range(lanes - len(admissions)):  # those the pool had no room for
            services.lanes.release()
    return admissions


def _release_lanes(services: Services, admissions: list[Admission]) -> None:
    for admission in admissions:
        admission.close()
        services.lanes.release()


@dataclass
class _AnswerBound:
    """How much of ``limits.batch_max_answer_bytes`` a batch's answers have taken, counted in
    the order :meth:`fitted` sees them (the cached answers first, then the computed ones)."""

    max_bytes: int
    answered: int = 0
    full: bool = False
    """An answer did not fit beside those before it: the images left are not computed."""

    def too_large(self, size: int | None) -> TooLarge:
        measured = "" if size is None else f" ({size} bytes)"
        return TooLarge(
            f"this image's answer{measured} would take the batch's answers past "
            f"{self.max_bytes} bytes (limits.batch_max_answer_bytes): send it alone",
            {"max_bytes": self.max_bytes},
        )

    def fitted(self, outcome: Response | FaceflowError) -> Response | FaceflowError:
        """``outcome``, or too_large when its answer does not fit beside those before it."""
        if isinstance(outcome, FaceflowError):
            return outcome
        size = len(outcome.body)
        if self.answered + size > self.max_bytes:
            # Past the bound with the answers before it: the rest would be too (one over it
            # alone is refused alone: a 19 MB PNG marked three small images after it).
            self.full = self.full or self.answered > 0
            return self.too_large(size)
        self.answered += size
        return outcome


@dataclass(frozen=True)
class _Batch:
    """One batch's images and what is known of them so far: ``outcomes`` by index (those
    answered without the pool, then the computed ones), ``keys`` the cache keys of those left to
    compute, in order, and the ``bound`` all their answers share."""

    request: Request
    services: Services
    work: FaceWork
    uploads: list[Upload]
    outcomes: dict[int, Response | FaceflowError]
    keys: dict[int, str]
    bound: _AnswerBound

    def fit_answered(self) -> None:
        for index in sorted(self.outcomes):  # the cached answers count against the bound first
            self.outcomes[index] = self.bound.fitted(self.outcomes[index])

    async def compute(self) -> None:
        """The images left, computed in as many lanes as the pool admits (none when the answers
        before them filled the bound), each lane taking the next image when it is free."""
        keys, full = self.keys, self.bound.full
        if keys and not full and self.work.operation is Operation.ANNOTATE:
            check_room(self.services.answer_budget)  # images: the answer would be refused when made
        admissions = await _admit_lanes(self.services, len(keys)) if keys and not full else []
        deadline = asyncio.get_running_loop().time() + self.services.settings.runtime.deadline_s
        queue = iter(keys)
        lanes = (self._lane(admission, queue, deadline) for admission in admissions)
        try:
            await asyncio.gather(*lanes)
        finally:
            _release_lanes(self.services, admissions)

    async def _lane(self, admission: Admission, queue: Iterator[int], deadline: float) -> None:
        for index in queue:  # shared: each lane takes the next image when it is free
            if await self.request.is_disconnected():
                return  # nobody to answer: leave the pool to others
            outcome = await self._computed(index, admission, deadline)
            self.outcomes[index] = self.bound.fitted(outcome)

    async def _computed(
        self, index: int, admission: Admission, deadline: float
    ) -> Response | FaceflowError:
        if self.bound.full:
            return self.bound.too_large(None)
        if asyncio.get_running_loop().time() >= deadline:
            deadline_s = self.services.settings.runtime.deadline_s
            return DeadlineExceeded(
                f"the batch ran out of time (runtime.deadline_s, {deadline_s:g} s) "
                "before this image: send it again",
                retry_after_s=self.services.pool.retry_after_s(),
            )
        try:
            key = self.keys[index]
            data = self.uploads[index].data
            return await answer(
                self.services,
                key,
                self.work,
                data,
                gone=self.request.is_disconnected,
                missed=True,
                admission=admission,
            )
        except FaceflowError as exc:
            return _outcome(exc)

    async def response(self) -> Response:
        """The batch's answer, once every image has an outcome; 499 when its client went away."""
        if self.bound.full:  # the cached answers alone filled the bound: nothing was admitted
            self.outcomes.update(
                (index, self.bound.too_large(None))
                for index in self.keys
                if index not in self.outcomes
            )
        if len(self.outcomes) < len(self.uploads):
            # The client went away: nothing to send (its computed items are cached).
            return Response(status_code=499)
        ordered = [self.outcomes[index] for index in range(len(self.uploads))]
        # Base64 and joining run beside the event loop (tens of MB at the limit).
        body = await asyncio.to_thread(_batch_body, self.work.operation, self.uploads, ordered)
        # Written in slices against the answer budget (service/answers.py): written whole, the
        # server's socket buffer held a second copy of it for as long as the client took to read
        # (a client reading 26 KB/s kept 108 MB of this process's memory for an hour).
        return Answer(body, budget=self.services.answer_budget, media_type="application/json")


async def _read_batch(request: Request, services: Services) -> list[Upload]:
    """The batch's uploads, each checked later on its own; the rate limit charged for them."""
    limits = services.settings.limits
    uploads = await read_images(
        request,
        limits.max_upload_bytes,
        field_names=("images", "image"),
        max_items=limits.batch_max_items,
        check_each=False,
    )
    if services.rate_limit is not None and len(uploads) > 1:
        # The guard counted one request; the batch is its images.
        await charge(services, request, len(uploads) - 1)
    return uploads


@router.post(
    "/batch",
    summary="Several images, one operation; each item succeeds or fails on its own",
    response_model=BatchOut,
    responses={
        **error_responses(400, 401, 403, 413, 429, 503),
        **operation_disabled_response(),
    },
    openapi_extra=image_request_body("images", many=True),
)
async def batch(request: Request, options: Annotated[BatchOptions, Query()]) -> Response:
    """A batch's cached images (and those refused on their own) are answered first, under any
    load. For the others it is admitted to the inference pool once, before any of them runs, in
    as many lanes as the pool has room for, all batches and embedded jobs of the process
    together on at most one fewer than its processes (:mod:`faceflow.runtime.lanes`), waiting
    its turn for one for a few seconds when none is free: with no room at all it is refused
    whole (503 + Retry-After; its cached images with it), and once admitted no item is shed for
    others' load (items were shed one by one, each answered 503 inside a 200 with no hint to
    retry). It stops taking items when its client has gone or ``runtime.deadline_s`` has passed
    (the items left answer 503 with ``retry_after_s``; what was computed is cached for the
    retry), and once an answer would take them past ``limits.batch_max_answer_bytes`` (that item
    and those after it answer 413 ``too_large``, the later ones without being computed: sixteen
    images whose annotated PNGs were 19 MB each cost 29 s of both processes for 13 answers
    thrown away). The rate limit counts it as its images, up to each rule's whole allowance (a
    rule smaller than the batch still lets a batch through when idle)."""
    services = services_of(request)
    uploads = await _read_batch(request, services)
    work = options.batch_work(services.settings.detection)
    check_enabled(work.operation, services.settings.runtime)
    bound = _AnswerBound(services.settings.limits.batch_max_answer_bytes)
    outcomes, keys = await _answered_without_the_pool(services, uploads, work)
    state = _Batch(request, services, work, uploads, outcomes, keys, bound)
    state.fit_answered()
    await state.compute()
    return await state.response()

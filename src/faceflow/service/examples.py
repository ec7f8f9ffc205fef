"""The example photos the web page offers: read and verified once at start-up, served from memory.

They come from ``faceflow models pull`` (see :data:`faceflow.models.catalog.EXAMPLES`); the ones
that were not pulled, or no longer match their pinned sha256, are left out with a log line, so
the page simply offers fewer (or none) and the service starts either way.

Their sizes come from the file headers (pure Python); their thumbnails are made by the inference
pool (:class:`ExampleThumbnails`): the API process decodes no image, so it never imports Pillow
or numpy.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from faceflow.cache.compute import TaskPool
from faceflow.config import ModelSettings
from faceflow.errors import FaceflowError, ModelError, NotFound
from faceflow.imaging.dimensions import read_dimensions
from faceflow.imaging.formats import sniff_format
from faceflow.models.catalog import EXAMPLES, ExampleSpec
from faceflow.models.store import ModelStore
from faceflow.runtime.tasks import ThumbnailRequest, thumbnail_task
from faceflow.service.etags import Tagged, tagged

log = logging.getLogger(__name__)

THUMBNAIL_PX = 160
"""Long side of a thumbnail: sharp at 80 CSS px on a 2× screen, a few KB each."""


@dataclass(frozen=True, slots=True)
class ExamplePhoto:
    spec: ExampleSpec
    data: bytes = field(repr=False)
    width_px: int
    height_px: int


def load_examples(settings: ModelSettings) -> tuple[ExamplePhoto, ...]:
    """Every pulled example photo whose bytes match their pin, with its size.

    Blocking (file reads, hashing): run it off the event loop.
    """
    store = ModelStore(settings)
    found: list[ExamplePhoto] = []
    for spec in EXAMPLES:
        if not store.path_for(spec).is_file():
            log.info("example photo %s not pulled; the page will not offer it", spec.name)
            continue
        try:
            data = store.read_verified(spec)
        except ModelError as exc:
            log.warning("example photo %s left out: %s", spec.name, exc.message)
            continue
        try:
            size = read_dimensions(data, sniff_format(data))
        except FaceflowError:
            size = None
        if size is None:
            log.warning("example photo %s left out: its header gives no size", spec.name)
            continue
        found.append(ExamplePhoto(spec, data, *size))
    return tuple(found)


class ExampleThumbnails:
    """The example photos' JPEG thumbnails, made by the inference pool once it is ready and kept
    for the life of the process (a few KB each).

    Made one at a time before ``/readyz`` says ready (:attr:`settled`), not when first asked
    for: the web page asks for every thumbnail as it opens, beside the visitor's first photo, and
    a thumbnail task queued per request could take that photo's place in a small pool's queue
    (a 503). Made before ready, they take no place a client's request could want, and the
    inference counters a client reads once ready already include them.
    """

    def __init__(self, photos: tuple[ExamplePhoto, ...]) -> None:
        self._photos = photos
        self._jpeg: dict[str, Tagged] = {}
        self._settled = asyncio.Event()

    async def make(self, pool: TaskPool) -> None:
        """Make every thumbnail in ``pool``; one that fails is left out, with a log line."""
        try:
            for photo in self._photos:
                request = ThumbnailRequest(photo.data, THUMBNAIL_PX)
                try:
                    output = await pool.run(thumbnail_task, request)
                except FaceflowError as exc:
                    log.warning("example thumbnail %s not made: %s", photo.spec.name, exc.message)
                else:
                    self._jpeg[photo.spec.name] = tagged(output.body)
        finally:
            self._settled.set()

    @property
    def settled(self) -> bool:
        """Every thumbnail made, or given up on."""
        return self._settled.is_set()

    async def wait(self) -> None:
        await self._settled.wait()

    def give_up(self) -> None:
        """No thumbnails: the pool could not start."""
        self._settled.set()

    async def of(self, photo: ExamplePhoto) -> Tagged:
        """``photo``'s thumbnail with its entity-tag, once they are made; NotFound if it could
        not be."""
        await self._settled.wait()
        jpeg = self._jpeg.get(photo.spec.name)
        if jpeg is None:
            raise NotFound(f"example photo {photo.spec.name!r} has no thumbnail on this server")
        return jpeg

"""The example photos the web page offers: read and verified once at start-up, served from memory.

They come from ``faceflow models pull`` (see :data:`faceflow.models.catalog.EXAMPLES`); the ones
that were not pulled, or no longer match their pinned sha256, are left out with a log line, so
the page simply offers fewer (or none) and the service starts either way.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field

from PIL import Image

from faceflow.config import ModelSettings
from faceflow.errors import ModelError
from faceflow.models.catalog import EXAMPLES, ExampleSpec
from faceflow.models.store import ModelStore

log = logging.getLogger(__name__)

THUMBNAIL_PX = 160
"""Long side of a thumbnail: sharp at 80 CSS px on a 2× screen, a few KB each."""


@dataclass(frozen=True, slots=True)
class ExamplePhoto:
    spec: ExampleSpec
    data: bytes = field(repr=False)
    width_px: int
    height_px: int
    thumbnail_jpeg: bytes = field(repr=False)


def load_examples(settings: ModelSettings) -> tuple[ExamplePhoto, ...]:
    """Every pulled example photo whose bytes match their pin, with a JPEG thumbnail.

    Blocking (file reads, hashing, one small decode and encode each): run it off the event loop.
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
        found.append(_with_thumbnail(spec, data))
    return tuple(found)


def _with_thumbnail(spec: ExampleSpec, data: bytes) -> ExamplePhoto:
    # Pinned bytes we pulled ourselves, not an upload: no ingest limits needed.
    with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
        small = image.convert("RGB")
        small.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        small.save(out, "JPEG", quality=82, optimize=True)
    return ExamplePhoto(spec, data, width, height, out.getvalue())

"""Settings: the only place faceflow reads environment variables or config files.

Values come, strongest first, from keyword arguments, ``FACEFLOW_*`` environment variables (nested
groups use ``__``: ``FACEFLOW_CACHE__REDIS_URL``), a YAML or TOML file named by ``--config`` or
``FACEFLOW_CONFIG``, and the defaults below. Build them with :func:`load_settings` and pass the
object down; nothing creates settings at import time. :class:`Settings` itself takes only what
it is given (an inference process validates the JSON its parent sends); the environment is read
by :func:`load_settings`, through pydantic-settings (:mod:`faceflow.settings_env`), which is
imported only when a variable names a setting: it cost every process that imported this module
≈ 0.05–0.1 s of CPU, inference processes included, which never read the environment.
"""

from __future__ import annotations

import base64
import functools
import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from faceflow.domain import Operation
from faceflow.errors import InvalidParameter, did_you_mean


def default_model_dir() -> Path:
    """Where pulled models live unless ``models.dir`` says otherwise (XDG cache dir)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "faceflow" / "models"


class _Group(BaseModel):
    """A settings group. Unknown keys are refused, as at the top level: a misspelt key such as
    ``api_key_hash`` must fail loudly, not silently leave authentication off."""

    # A float setting is a finite number: YAML's .inf and the environment's "inf" passed every
    # bound with only a floor (cache.breaker_reset_s: a breaker open for good, Redis never tried
    # again), and "nan" every bound at all where pydantic compares it.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_a_number(cls, value: object, info: ValidationInfo) -> object:
        """Refuse ``true`` or ``false`` for a number (or a list of numbers). pydantic's lax mode
        takes a bool as 1 or 0, and YAML reads ``yes``, ``on`` and ``true`` as one:
        ``detection.max_faces: true`` kept one face, ``limits.max_side_px: yes`` was refused as
        "greater than or equal to 16". The environment's strings never arrive as a bool."""
        if info.field_name is None or not _wants_a_number(cls, info.field_name):
            return value
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, bool):
                word = str(item).lower()
                raise ValueError(f"a number is wanted, not {word} (YAML's yes/no, on/off too)")
        return value


def takes_a_number(annotation: object) -> bool:
    """Whether a field of type ``annotation`` is a number (``X | None`` and a list of numbers
    included) that takes no bool: where pydantic's lax mode would read ``True`` as 1. Settings
    and operation options both refuse a bool there."""

    def kinds(annotation: object) -> set[object]:
        inner = get_args(annotation)
        return set().union(*map(kinds, inner)) if inner else {annotation}

    found = kinds(annotation)
    return bool(found & {int, float}) and bool not in found


@functools.cache
def _wants_a_number(group: type[BaseModel], name: str) -> bool:
    """Whether setting ``name`` of ``group`` is a number (:func:`takes_a_number`)."""
    field = group.model_fields.get(name)
    return field is not None and takes_a_number(field.annotation)


MAX_TTL_S = 100 * 365 * 24 * 3600
"""The longest a cached result or a job's record may be kept: a hundred years, for "for good".
Redis refuses an expiry past 2^63 ms from now, so ``cache.ttl_s: 100000000000000000`` made every
store of a result there fail, counted but silent (each node then computed what another had), and
a larger one overflowed a float where the expiry is computed."""

DEFAULT_PUBLIC_PATHS = (
    "/healthz",
    "/readyz",
    "/",
    "/index.html",
    "/favicon.svg",
    "/css/*",
    "/js/*",
)
"""Open without an API key by default: probes, and the web page (which asks for the key itself)."""


def _redis_url(value: str) -> str:
    """A URL redis-py takes, checked when the settings are read: a wrong one failed only once a
    server or worker first connected, with a traceback."""
    parts = urlsplit(value)
    # redis-py's own rule (redis:// alone is localhost:6379); a socket needs its path.
    if parts.scheme not in ("redis", "rediss", "unix") or (
        parts.scheme == "unix" and not parts.path
    ):
        # Not the value itself: it may hold a password.
        raise ValueError(
            "not a Redis URL: redis://host:port/db, rediss://… (TLS) or unix:///path/to/socket"
        )
    # redis-py reads the rest only as it connects: a port past 65535 or a bad option crashed
    # `faceflow worker` there with a traceback (and it did not exit), and a database that is no
    # number (redis://host/cache) was quietly database 0, shared with whatever else uses it.
    if parts.scheme != "unix" and not _REDIS_DB.fullmatch(parts.path):
        raise ValueError("the database after the host must be a number: redis://host:port/2")
    from redis.connection import parse_url  # only with a Redis configured, which needs it

    try:
        parse_url(value)  # type: ignore[no-untyped-call]
    except ValueError as exc:
        # redis-py's reason names the part (port, option), never the password.
        raise ValueError(f"not a Redis URL redis-py can read: {exc}") from None
    return value


_REDIS_DB = re.compile(r"/?[0-9]*")


RedisUrl = Annotated[str, AfterValidator(_redis_url)]


_ROOT_PATH = re.compile(r"(/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)*")
"""A URL path of non-empty segments of RFC 3986 path characters: uvicorn writes the root path in
front of every request's path as ASCII, so a space, a control character or a non-ASCII letter
would break every request, not the start-up."""

ROOT_PATH_MAX_LENGTH = 256

_FRAME_ANCESTOR = re.compile(r"https?://(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*(:[0-9]{1,5})?")


_ORIGIN = re.compile(
    r"[a-z][a-z0-9+.-]*://(\[[0-9a-f:.]+\]|[a-z0-9-]+(\.[a-z0-9-]+)*)(:[0-9]{1,5})?"
)
"""An origin as a browser writes it in ``Origin``: a scheme, a host and maybe a port, in lower
case, nothing after (``chrome-extension://…`` and ``capacitor://localhost`` are origins too)."""

DEFAULT_KEY_FAILURE_LIMIT = "20/minute"


class ServerSettings(_Group):
    host: str = Field("127.0.0.1", description="address to bind; 0.0.0.0 for every interface")
    port: int = Field(8000, ge=1, le=65535, description="TCP port")
    http_workers: int = Field(
        1,
        ge=1,
        le=64,
        description="uvicorn worker processes; each has its own cache and pool (share via Redis)",
    )
    worker_healthcheck_timeout_s: int = Field(
        30,
        ge=1,
        le=600,
        description="with http_workers > 1: how long uvicorn waits for a worker process to answer "
        "its health check (starting, or busy) before it kills and replaces it",
    )
    drain_s: int = Field(
        25,
        ge=1,
        le=3600,
        description="on SIGTERM, SIGINT or SIGHUP: how long requests under way may take to be "
        "answered before those still running are answered 503 unavailable and the server stops; "
        "keep it a few seconds under the stop timeout of what stops the server (Kubernetes' "
        "terminationGracePeriodSeconds, 30 s by default; systemd's TimeoutStopSec)",
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="origins whose pages may call the API (every header faceflow sets, "
        "X-Compliance and X-Source among them, readable there), each as a browser sends it "
        "(https://app.example: no path, lower case), or *; empty: CORS off",
    )
    log_json: bool = Field(False, description="one JSON object per log line")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="debug, info, warning or error (in any case: INFO is info)"
    )
    api_key_hashes: list[str] = Field(
        default_factory=list,
        description="sha256 hex digests of accepted API keys; empty: auth off",
    )
    rate_limit: str | None = Field(
        None, description="per-client limit in `limits` notation, e.g. '10/second;20/2second'"
    )
    key_failure_limit: str | None = Field(
        DEFAULT_KEY_FAILURE_LIMIT,
        description="with API keys on: requests with a missing or wrong key a client address may "
        "make (`limits` notation, kept in rate_limit_storage); past it the address is locked out "
        "(429 + Retry-After, a right key too) until its window has room, so keys cannot be "
        "guessed faster; null: no limit",
    )
    rate_limit_storage: str = Field(
        "memory://",
        description="memory://, or a Redis: redis://host:port/db, rediss://, redis+unix://",
    )
    web_page: bool = Field(True, description="serve the web page at /")
    web_page_frame_ancestors: list[str] = Field(
        default_factory=list,
        description="origins whose pages may show the web page in a frame (an intranet portal: "
        "https://portal.example.com, https://*.example.com); empty: none may",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="addresses or CIDR networks of reverse proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto are believed (client address for rate limits and logs); empty: "
        "headers ignored, the TCP peer is the client",
    )
    public_url: str | None = Field(
        None,
        description="external base URL, e.g. https://faces.example.com (behind a proxy's prefix: "
        "https://example.com/faces, the prefix in it); job Location, status_url and result_url "
        "are absolute on it, else paths from the host's root, under root_path (never built "
        "from the Host header)",
    )
    root_path: str = Field(
        "",
        description="the path prefix a reverse proxy serves faceflow under, e.g. /faces, with "
        "the proxy stripping it (nginx: location /faces/ { proxy_pass http://faceflow/; }): "
        "/openapi.json names it in servers, /docs and /redoc load under it, job URLs start "
        "with it unless public_url is set (which then includes it); empty: served at /",
    )
    public_paths: list[str] = Field(
        default_factory=lambda: list(DEFAULT_PUBLIC_PATHS),
        description="paths outside /v1/ open without an API key when keys are on; 'PREFIX/*' "
        "covers everything below PREFIX",
    )
    header_timeout_s: float = Field(
        10.0,
        gt=0,
        le=600,
        description="a connection must send a request's headers within this: 408 and closed",
    )
    max_header_bytes: int = Field(
        64 * 1024,
        ge=8 * 1024,
        le=16 * 1024 * 1024,
        description="a request line and headers larger than this: 431 headers_too_large, closed "
        "(held in memory until complete); also a chunked body's framing and trailer",
    )
    max_header_fields: int = Field(
        100,
        ge=10,
        le=10_000,
        description="header fields in one request (Apache's LimitRequestFields); more: 431 "
        "headers_too_large, closed",
    )
    body_timeout_s: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="a request body must arrive whole within this from its first read: 408",
    )
    send_timeout_s: float = Field(
        30.0,
        ge=1,
        le=3600,
        description="a client that takes none of its answer for this long (it stopped reading, "
        "or its network is gone) is disconnected and the answer's buffers freed",
    )
    max_connections: int = Field(
        1000,
        ge=1,
        description="open connections per HTTP worker; one more takes the place of the "
        "connection that moved longest ago without a request under way (idle, never used, "
        "headers incomplete, body stalled 1 s: closed, 408 to a request begun); with none, a "
        "request on it: 503 overloaded, closed. It must fit under the process's open-file "
        "limit with 128 to spare: the soft limit is raised for it up to the hard one, past "
        "which the cap is lowered to fit (a warning at start)",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_in_any_case(cls, value: object) -> object:
        # Python's logging, uvicorn's --log-level and most services spell levels in capitals:
        # FACEFLOW_SERVER__LOG_LEVEL=INFO stopped the service at start.
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("api_key_hashes")
    @classmethod
    def _hashes_are_sha256(cls, value: list[str]) -> list[str]:
        for digest in value:
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest.lower()):
                raise ValueError("api_key_hashes must be sha256 hex digests, not plain keys")
        return [d.lower() for d in value]

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_addresses(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"trusted_proxies entry {entry!r} is not an IP address or CIDR network"
                ) from None
        return value

    @field_validator("cors_origins")
    @classmethod
    def _cors_origins_are_origins(cls, value: list[str]) -> list[str]:
        # Compared with the request's Origin as written: https://app.example/ (a path, as copied
        # from the address bar) or https://App.example never matched, and the page on it was
        # refused by its browser with nothing at start to say why.
        for origin in value:
            if origin in ("*", "null") or _ORIGIN.fullmatch(origin):
                continue
            parts = urlsplit(origin.strip())
            meant = f"{parts.scheme}://{parts.netloc}".lower() if parts.scheme else ""
            hint = f" (did you mean {meant!r}?)" if _ORIGIN.fullmatch(meant) else ""
            raise ValueError(
                f"cors_origins entry {origin!r} must be an origin as a browser sends it: scheme,"
                f" host and port only, in lower case, e.g. https://app.example.com{hint}"
            )
        return value

    @field_validator("web_page_frame_ancestors")
    @classmethod
    def _ancestors_are_origins(cls, value: list[str]) -> list[str]:
        # Each goes into the page's Content-Security-Policy as it is: an origin and nothing else
        # (a space or a ';' would add directives of the client's own).
        for origin in value:
            if not _FRAME_ANCESTOR.fullmatch(origin):
                raise ValueError(
                    f"web_page_frame_ancestors entry {origin!r} must be an origin, e.g. "
                    "https://portal.example.com or https://*.example.com"
                )
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url_is_a_base(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
            raise ValueError(
                f"public_url {value!r} must be an http(s) URL without a query, "
                "e.g. https://faces.example.com"
            )
        return value.rstrip("/")

    @field_validator("root_path")
    @classmethod
    def _root_path_is_a_prefix(cls, value: str) -> str:
        if len(value) > ROOT_PATH_MAX_LENGTH or not _ROOT_PATH.fullmatch(value):
            raise ValueError(
                f"root_path {value[:ROOT_PATH_MAX_LENGTH]!r} must be empty or a path such as "
                f"/faces: starting with / and not ending with one, ASCII URL path characters (no "
                f"spaces, ? or #), at most "
                f"{ROOT_PATH_MAX_LENGTH} characters"
            )
        return value

    @field_validator("public_paths")
    @classmethod
    def _paths_are_absolute(cls, value: list[str]) -> list[str]:
        for path in value:
            if not path.startswith("/") or ("*" in path and not path.endswith("/*")):
                raise ValueError(
                    f"public_paths entry {path!r} must start with / ('PREFIX/*' for a subtree)"
                )
        return value

    @field_validator("rate_limit", "key_failure_limit")
    @classmethod
    def _rate_limit_parses(cls, value: str | None, info: ValidationInfo) -> str | None:
        # The default is known to parse (tests/test_config.py): every process validates its
        # settings, most with the default, and importing `limits` to check it cost each one
        # ≈ 0.04 s of CPU (with asyncio, wrapt and its storage backends), an inference process
        # or a CLI run that never limits anything included.
        if value and value != DEFAULT_KEY_FAILURE_LIMIT:
            from limits import parse_many  # imported here: settings load on every CLI start

            try:
                parse_many(value)
            except ValueError as exc:
                raise ValueError(
                    f"{info.field_name} {value!r} is not in `limits` notation: {exc}"
                ) from None
        return value

    @field_validator("rate_limit_storage")
    @classmethod
    def _rate_limit_storage_is_one_we_run(cls, value: str) -> str:
        # The in-process one, or a Redis through redis-py (the only backend installed); any
        # other failed at start-up with the limits library's traceback.
        if urlsplit(value).scheme not in ("memory", "redis", "rediss", "redis+unix"):
            raise ValueError(
                "rate_limit_storage must be memory:// or a Redis URL (redis://host:port/db,"
                " rediss://… or redis+unix:///path/to/socket)"
            )
        return value


class ModelSettings(_Group):
    dir: Path = Field(
        default_factory=default_model_dir,
        description="model store ($XDG_CACHE_HOME/faceflow/models)",
    )
    paths: dict[str, Path] = Field(
        default_factory=dict, description="explicit file per model name, overrides the store"
    )
    providers: list[str] = Field(
        default_factory=lambda: ["CPUExecutionProvider"],
        description="onnxruntime execution providers, in order of preference",
    )
    intra_op_threads: int = Field(
        1, ge=0, le=64, description="threads per ONNX session; 0 lets onnxruntime decide"
    )
    segmenter_arena: bool = Field(
        False,
        description="keep onnxruntime's memory arena for u2netp: its run 6–21 % faster (no "
        "fresh pages to zero each run) for ≈ 270 MB more held in every inference process; "
        "`faceflow id-photo` keeps it for its batch unless this is set",
    )
    index_url: str | None = Field(None, description="package index for `models pull`")


RuntimeOperation = Literal[
    Operation.DETECT, Operation.ANALYZE, Operation.ANNOTATE, Operation.ID_PHOTO
]
"""The verbs a server can load models for: :class:`~faceflow.domain.Operation`'s own members (one
home for the verbs, below config), less ``id-photo-sheet``, which ``id-photo`` covers. Written as
their values in settings and the environment, as before (``["detect", "id-photo"]``)."""
ALL_OPERATIONS: tuple[RuntimeOperation, ...] = get_args(RuntimeOperation)


class RuntimeSettings(_Group):
    operations: list[RuntimeOperation] = Field(
        default_factory=lambda: list(ALL_OPERATIONS),
        min_length=1,
        description="operations the inference processes load models for (detect, analyze, "
        "annotate, id-photo, which covers sheets); the detector always loads. Without id-photo "
        "no process loads u2netp, without analyze and annotate none loads the age and gender "
        "models, with none of the three none loads dlib's aligner (an ID photo is levelled by "
        "its eye corners), and a request that needs them answers 404 operation_disabled",
    )
    processes: int = Field(
        default_factory=lambda: os.cpu_count() or 1, ge=1, le=256, description="inference processes"
    )
    max_waiting: int | None = Field(
        None,
        ge=0,
        description="requests allowed to wait for a worker; default half the processes (at "
        "least 1), so an admitted request waits at most about half a service time",
    )
    keep_last_place: bool = Field(
        True,
        description="while more than one client is about (asked within 10 s), the inference "
        "processes' last free place (an idle process or a waiting place) goes only to a client "
        "with no request of its own in them (a client is its API key, else its address, as "
        "rate limits count), so one client's concurrent requests cannot leave every other "
        "client 503s; likewise a client holding or awaiting a lane of queued-up work (batches, "
        "large renders) does not get in line for another, and such requests of a client that "
        "were in line before another client came step back behind that client's first; and a "
        "client holding answers still being taken gets another over 64 KiB only within half of "
        "limits.answer_budget_bytes; false: first come, first served",
    )
    deadline_s: float = Field(
        30.0, gt=0, le=600, description="a request still waiting or running after this: 503"
    )
    cancel_grace_s: float = Field(
        5.0,
        gt=0,
        le=600,
        description="a task whose caller gave up (deadline passed) stops at its next stage; an "
        "inference process still running it this much later is killed and replaced",
    )
    warmup: bool = Field(
        True,
        description="run the models once before reporting ready (u2netp only with "
        "models.segmenter_arena: without its arena a first run costs no more than the next)",
    )
    nice: int = Field(
        5,
        ge=0,
        le=19,
        description="CPU niceness added to inference processes, so the API process stays "
        "responsive (cache hits, 503s) while they are busy",
    )

    @property
    def waiting_limit(self) -> int:
        # DESIGN §4 suggested 2 × processes; measured under a 4× overload that lets an admitted
        # request wait two service times (accepted p99 ≈ 4× the unloaded p99), while half the
        # processes keeps it within ≈ 1.5–2× and sheds the rest at once.
        if self.max_waiting is not None:
            return self.max_waiting
        return max(1, self.processes // 2)


# The bounds of the face options, shared by their configured defaults below and by a request's
# options (faceflow.operations), so a default can never be a value a client may not send.
# Below 0.3 YuNet answers noise (a 2 KB noise JPEG: 11 "faces" at 0.1, 1,000 and 2.9 s of CPU at
# 0, against none at 0.3; a 2.6 MB noise WebP 21.6 s at 0); every labelled face of the test and
# dev-set photos scores over 0.7.
MIN_FACE_SCORE = 0.3
FaceScore = Annotated[float, Field(ge=MIN_FACE_SCORE, le=1.0)]
MAX_FACES = 1000
"""The most faces one detection keeps (``max_faces``): the highest face index an option names."""
FaceCount = Annotated[int, Field(ge=1, le=MAX_FACES)]
FaceWidthPx = Annotated[int, Field(ge=0, le=10_000)]


class DetectionSettings(_Group):
    score_threshold: FaceScore = Field(0.7, description="default minimum face score")
    nms_threshold: float = Field(0.3, ge=0.0, le=1.0, description="overlap (IoU) that merges boxes")
    min_face_px: FaceWidthPx = Field(
        20, description="default: drop faces narrower than this (source px)"
    )
    max_faces: FaceCount = Field(100, description="default: keep the N largest faces")


class CacheSettings(_Group):
    # The answers of the last minutes, for the same upload sent again; Redis is the tier sized
    # for volume. Its two rings (cut-outs' and the rest's, memory_cutout_share) are reserved
    # (made resident) as each HTTP worker starts, this size together, so it is in the RSS at
    # /readyz and filling it adds nothing (cache/memory.py).
    memory_bytes: int = Field(
        16 * 1024 * 1024,
        ge=0,
        description="in-process cache buffer per HTTP worker, resident from start-up (0: off)",
    )
    # A 15 MB annotated PNG took 92 % of the default buffer: two such answers, two requests,
    # evicted every other client's entries, the ones just read included. A cut-out's matte, the
    # largest answer re-used often (a source= render is answered from it alone), is 0.2-1.2 MB
    # for the test and dev-set photos, up to 2.0 MB for them enlarged 3x with grain added.
    memory_max_entry_bytes: int = Field(
        4 * 1024 * 1024,
        ge=0,
        description="answers larger than this are not kept in the in-process buffer (Redis may "
        "still keep them): one answer evicts at most this much of everyone else's",
    )
    # A cut-out is the one entry whose loss a user sees: a source= render of it answers 404
    # source_expired and the photo must be uploaded again (1 s of u2netp). Eight source= renders
    # of 3.8 MB PNGs by other clients evicted an idle user's cut-out from the shared 16 MB buffer,
    # so cut-outs have a part of their own that only other cut-outs take from.
    memory_cutout_share: float = Field(
        0.5,
        ge=0.1,
        le=0.9,
        description="share of memory_bytes kept for ID-photo cut-outs (what source= renders "
        "use), which only other cut-outs evict; the rest holds every other answer",
    )
    redis_url: RedisUrl | None = Field(
        None, description="shared cache Redis; unset: in-process only"
    )
    # Read back with the rest of a call's redis_timeout_ms (50 ms): on this 2-core VM a GET took
    # 12.5 ms for 4 MB, 28 for 8, 56 for 16 and 125 for a 27 MB annotated PNG, whose GETs timed
    # out (a recomputation each, 1.3-2.2 s of CPU) and counted toward the breaker.
    redis_max_entry_bytes: int = Field(
        4 * 1024 * 1024,
        ge=0,
        description="answers larger than this are not stored in the cache Redis (nor by "
        "workers): reading one back must fit in redis_timeout_ms, on the network between the "
        "nodes and that Redis (4 MiB: 34 ms at 1 Gbit/s); a timed-out read is a miss, computed "
        "again, and counts toward the breaker. Such an answer is marked there instead, so nodes "
        "asked for it at once compute it side by side, not one after another",
    )
    ttl_s: int = Field(
        24 * 3600, ge=1, le=MAX_TTL_S, description="how long results are kept (at most 100 years)"
    )
    ttl_jitter: float = Field(
        0.1, ge=0.0, le=1.0, description="TTL spread (±share) so entries do not expire together"
    )
    redis_timeout_ms: int = Field(
        50, ge=1, le=5000, description="the longest any request waits on the cache Redis per call"
    )
    breaker_failures: int = Field(3, ge=1, description="consecutive failures that open the breaker")
    breaker_reset_s: float = Field(2.0, gt=0, description="how long the breaker stays open")
    lock_ttl_ms: int = Field(
        30_000,
        ge=100,
        description="cross-node single-flight lock lifetime: the longest a node waits for "
        "another's result, never past the request's runtime.deadline_s (a request waited out "
        "by a live holder answers 503 deadline_exceeded rather than start the same work with "
        "less time left than it waited; what it computes after waiting gets what is left); the "
        "holder renews a 3 s lease on it while it computes, so the lock of a node that died "
        "mid-computation lapses within 3 s",
    )


class JobSettings(_Group):
    redis_url: RedisUrl | None = Field(
        None,
        description="queue Redis (RQ; AOF on, maxmemory-policy noeviction); unset: embedded runner",
    )
    queue_name: str = Field("faceflow", pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="RQ queue")
    max_queued: int = Field(1000, ge=1, description="jobs allowed to wait; beyond: 503 queue_full")
    # One API key submitting max_queued distinct jobs left every other client 503 queue_full
    # until its backlog drained, and held max_queued images in the queue Redis.
    max_queued_per_client: int | None = Field(
        None,
        ge=1,
        description="API keys on: new jobs one key may have queued or running; beyond: 429 "
        "rate_limited with Retry-After (joining identical queued work, or a result from the "
        "cache, is not counted), so one client cannot take all of max_queued; null: no limit. "
        "Stored results are not counted: bound those with max_result_bytes_per_client",
    )
    # One client's day of ID photos held a 40 MB queue Redis at 38.9 MB, and another client's
    # jobs then ran and ended failed queue_full, their compute wasted.
    max_result_bytes_per_client: int | None = Field(
        None,
        ge=1024,
        description="API keys on: bytes of results one key's jobs may keep (in the queue Redis, "
        "each with the records kept beside it there: 1,500 bytes, 10,200 for a computed job; "
        "or the embedded runner's memory) for result_ttl_s; at or over it, that key's new jobs "
        "(and results from the cache) get 429 rate_limited with Retry-After (when its soonest "
        "result expires), before any compute, while other keys' are taken. Jobs still queued "
        "add their results after: bound those with max_queued_per_client. null: no limit",
    )
    dedup_scope: Literal["global", "api_key"] = Field(
        "global",
        description="global: identical work (same image, operation, options) is queued once and "
        "a cached result finishes a job at once, whoever submitted it, which tells a client "
        "that the image was processed before; api_key: jobs share work and cached results only "
        "within one API key (the synchronous routes share one result cache whatever this says: "
        "a client sending the same image to them can still tell it was processed before)",
    )
    job_timeout_s: int = Field(60, ge=1, description="one attempt's limit; then it fails/retries")
    result_ttl_s: int = Field(
        24 * 3600,
        ge=1,
        le=MAX_TTL_S,
        description="how long a finished job's result stays (at most 100 years)",
    )
    failure_ttl_s: int = Field(
        7 * 24 * 3600,
        ge=1,
        le=MAX_TTL_S,
        description="how long a failed job stays in the failed registry (at most 100 years)",
    )
    max_retries: int = Field(
        3,
        ge=0,
        le=10,
        description="retries of an attempt that failed on a worker crash, a deadline or "
        "transient unavailability (any 503); bad input and internal errors fail the job at once, "
        "never retried",
    )
    retry_backoff_s: list[int] = Field(
        default_factory=lambda: [0, 5, 15],
        description="wait before retry 1, 2, 3…; the last value repeats. A retry without a wait "
        "goes to the front of the queue at once (a crashed job does not wait behind the "
        "backlog); one with a wait is enqueued by the scheduler when it is due",
    )
    other_version_wait_s: int = Field(
        600,
        ge=0,
        le=24 * 3600,
        description="how long a job a worker cannot run (a rolling deploy: it keys the job "
        "otherwise than the API node that took it, refuses its options or lacks its models) "
        "waits for a worker that can, looked at again every 5 s without spending an attempt; "
        "then its retries are spent as for any 503 and it fails unavailable. 0: at once",
    )
    redis_timeout_ms: int = Field(
        2000, ge=10, le=60_000, description="API → queue Redis socket timeout per call"
    )
    lease_s: int = Field(
        10,
        ge=2,
        le=600,
        description="a running job's heartbeat lease: a worker silent this long (killed, hung "
        "host) has its job re-queued by the next maintenance pass",
    )
    worker_ttl_s: int = Field(
        20,
        ge=16,
        le=3600,
        description="RQ worker TTL; an idle worker blocks on the queue for worker_ttl_s - 15 s",
    )
    maintenance_interval_s: int = Field(
        2, ge=1, le=3600, description="how often abandoned jobs are looked for and retries due"
    )
    worker_processes: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        le=256,
        description="`faceflow worker` processes, each loading the models once",
    )
    embedded_consumers: int | None = Field(
        None,
        ge=1,
        le=256,
        description="embedded runner: jobs run at once; default one fewer than "
        "runtime.processes (at least 1). Jobs and /v1/batch together never hold more processes "
        "than that, so single requests keep one",
    )
    embedded_max_bytes: int = Field(
        128 * 1024 * 1024,
        ge=1024 * 1024,
        description="embedded runner: image bytes of queued jobs; beyond: 503 queue_full. They "
        "count against limits.upload_budget_bytes too",
    )
    embedded_keep_finished: int = Field(
        10_000, ge=1, description="embedded runner: finished jobs kept in memory, oldest dropped"
    )
    embedded_results_max_bytes: int = Field(
        512 * 1024 * 1024,
        ge=1024 * 1024,
        description="embedded runner: bytes of the finished jobs' results kept in memory, oldest "
        "jobs dropped beyond (a job's result is then 404 before result_ttl_s)",
    )
    # The queue Redis's AOF kept every upload and result in clear on its disk. A path, not the
    # key: the worker supervisor hands its processes the settings as JSON, where a SecretStr
    # is written masked; each process reads the file itself, and the key is in no setting.
    payload_key_file: Path | None = Field(
        None,
        description="queue Redis: a file of AES-256 keys (base64 of 32 bytes, one a line; make "
        "one with `head -c32 /dev/urandom | base64`), the same on every API node and worker: job "
        "uploads and results are stored there encrypted (AES-256-GCM) with the first, and read "
        "with any (rotation: put the new key first, drop the old after result_ttl_s and "
        "failure_ttl_s); null: stored in clear",
    )

    @field_validator("payload_key_file")
    @classmethod
    def _keys_readable(cls, value: Path | None) -> Path | None:
        if value is not None:
            read_payload_keys(value)  # refused at start, not at the first job
        return value

    @property
    def payload_keys(self) -> tuple[bytes, ...]:
        """The keys in ``payload_key_file`` (the one to encrypt with first); none without it."""
        return () if self.payload_key_file is None else read_payload_keys(self.payload_key_file)


PAYLOAD_KEY_BYTES = 32


def read_payload_keys(path: Path) -> tuple[bytes, ...]:
    """The AES-256 keys in ``path``: base64 of 32 bytes a line, blank lines skipped; ValueError
    naming the line (never its text: it is a key) when one is not, or when there are none."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise ValueError(f"jobs.payload_key_file: cannot read {path}: {exc}") from None
    except UnicodeDecodeError:
        # Not quoted: its message names a byte of the file and where it is (a raw key's).
        raise ValueError(
            f"jobs.payload_key_file: {path} is not text: it holds base64 of "
            f"{PAYLOAD_KEY_BYTES} bytes a line (head -c32 /dev/urandom | base64)"
        ) from None
    keys = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            key = base64.b64decode(line.strip(), validate=True)
        except ValueError:
            key = b""
        if len(key) != PAYLOAD_KEY_BYTES:
            raise ValueError(
                f"jobs.payload_key_file: line {number} of {path} is not the base64 of "
                f"{PAYLOAD_KEY_BYTES} bytes"
            )
        keys.append(key)
    if not keys:
        raise ValueError(f"jobs.payload_key_file: {path} holds no key")
    return tuple(keys)


MULTIPART_OVERHEAD_BYTES = 64 * 1024
"""Room for multipart boundaries and part headers on top of a request's images."""


class LimitSettings(_Group):
    max_upload_bytes: int = Field(
        10 * 1024 * 1024, ge=1024, description="per image; larger uploads: 413"
    )
    max_pixels: int = Field(40_000_000, ge=256, description="JPEG pixels; more: 422")
    max_pixels_lossless: int = Field(
        25_000_000, ge=256, description="PNG, WebP, GIF pixels; more: 422"
    )
    max_jpeg_scans: int = Field(
        64,
        ge=1,
        description="scans in a progressive JPEG (an encoder writes about 10; each is a pass of "
        "the decoder over the whole image); more: 422",
    )
    min_side_px: int = Field(16, ge=1, description="shorter sides: 422")
    max_side_px: int = Field(12_000, ge=16, description="longer sides: 422")
    batch_max_items: int = Field(16, ge=1, le=256, description="images per /v1/batch request")
    batch_max_answer_bytes: int = Field(
        16 * 1024 * 1024,
        ge=1024 * 1024,
        description="results one /v1/batch answer holds in all (before base64); the items past "
        "it answer 413 too_large, to be asked for alone",
    )
    upload_budget_bytes: int = Field(
        256 * 1024 * 1024,
        ge=1024 * 1024,
        description="request bodies (and queued embedded-job images) one API process holds at "
        "once; a request that would exceed it: 503 overloaded before its body is read",
    )
    # A 5000 x 5000 noise JPEG annotated as PNG is a 17 MB answer, too large for the memory
    # cache and so made again for each request; connections reading it 16 KB every 5 s held one
    # copy each in this process until server.send_timeout_s dropped them (20: 87 -> 412 MB RSS).
    answer_budget_bytes: int = Field(
        128 * 1024 * 1024,
        ge=1024 * 1024,
        description="answer bodies over 64 KiB one API process holds while their clients take "
        "them (written in 64 KiB slices as they are taken; an answer is taken whole while the "
        "bytes held are under it, so they pass it by one answer at most); once reached: 503 "
        "overloaded for such answers, and before computing an image; while another client is "
        "about, a client holding some gets more only within half of it, and the answers of one "
        "over its half that its client has taken no slice of for over a second are cut to make "
        "room for another's (runtime.keep_last_place)",
    )

    @model_validator(mode="after")
    def _sides_ordered(self) -> LimitSettings:
        if self.min_side_px > self.max_side_px:
            raise ValueError("limits.min_side_px must not exceed limits.max_side_px")
        return self

    @property
    def largest_request_bytes(self) -> int:
        """The largest body any route accepts: a full batch with its multipart framing."""
        return self.max_upload_bytes * self.batch_max_items + MULTIPART_OVERHEAD_BYTES

    @model_validator(mode="after")
    def _budget_fits_a_request(self) -> LimitSettings:
        # Otherwise a full batch would be refused for good, with a 503 that says "retry".
        if self.upload_budget_bytes < self.largest_request_bytes:
            raise ValueError(
                "limits.upload_budget_bytes must hold the largest request: max_upload_bytes × "
                f"batch_max_items + {MULTIPART_OVERHEAD_BYTES} = {self.largest_request_bytes}"
            )
        return self


ENV_PREFIX = "FACEFLOW_"
ENV_NESTED_DELIMITER = "__"


class Settings(BaseModel):
    """Every faceflow setting, in groups: from what it is given alone (see the module doc)."""

    # validate_default as pydantic-settings' BaseSettings had it, which this class once was.
    model_config = ConfigDict(extra="forbid", validate_default=True)

    server: ServerSettings = Field(default_factory=ServerSettings)
    models: ModelSettings = Field(default_factory=ModelSettings)
    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)
    detection: DetectionSettings = Field(default_factory=DetectionSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    jobs: JobSettings = Field(default_factory=JobSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)


def environment_names_a_setting(environ: Mapping[str, str] | None = None) -> bool:
    """Whether a variable of ``environ`` (default: this process's) is one pydantic-settings
    reads into :class:`Settings`: ``FACEFLOW_<GROUP>`` or ``FACEFLOW_<GROUP>__…``, in any case
    (its matching is case-insensitive). Others (``FACEFLOW_CONFIG``, a test's
    ``FACEFLOW_TESTDATA``) it never reads."""
    groups = tuple(f"{ENV_PREFIX}{name}".lower() for name in Settings.model_fields)
    for name in os.environ if environ is None else environ:
        lowered = name.lower()
        if any(
            lowered == group or lowered.startswith(group + ENV_NESTED_DELIMITER) for group in groups
        ):
            return True
    return False


def settings_problems(exc: ValidationError) -> list[str]:
    """One line per problem a Settings validation found: the setting as a file names it and as
    the environment does, what is wrong with it, and for an unknown one the setting it likely
    meant (``server.prot`` → ``server.port``)."""
    lines = []
    for error in exc.errors():
        path = [str(part) for part in error["loc"]]
        where = ".".join(path)
        variable = "FACEFLOW_" + "__".join(path).upper()
        if error["type"] == "extra_forbidden":
            known = [".".join([*path[:-1], name]) for name in _setting_names(path[:-1])]
            what = "unknown setting" + did_you_mean(where, known)
        else:
            # pydantic prefixes a validator's own message with its kind: not for people.
            what = error["msg"].removeprefix("Value error, ")
        lines.append(f"{where} ({variable}): {what}")
    return lines


def _setting_names(group: list[str]) -> list[str]:
    """The names of the settings in ``group`` (``[]``: the groups themselves)."""
    model: type[BaseModel] = Settings
    for name in group:
        field = model.model_fields.get(name)
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def unparsed_variables(field: str, environ: Mapping[str, str] | None = None) -> list[str]:
    """The variables of settings group ``field`` (``FACEFLOW_SERVER``, ``FACEFLOW_SERVER__…``) whose
    setting is a list or a group, which the environment writes as JSON, and whose value is not
    JSON: the ones pydantic-settings could not read."""
    import json

    variables = os.environ if environ is None else environ
    prefix = f"{ENV_PREFIX}{field}".lower()
    found = []
    for name, value in variables.items():
        lowered = name.lower()
        if lowered != prefix and not lowered.startswith(prefix + ENV_NESTED_DELIMITER):
            continue
        path = [field, *filter(None, lowered[len(prefix) :].split(ENV_NESTED_DELIMITER))]
        if not _takes_json(path):
            continue
        try:
            json.loads(value)
        except ValueError:
            found.append(name)
    return sorted(found)


def _takes_json(path: list[str]) -> bool:
    """Whether the setting at ``path`` (names as the environment gives them, any case) is read
    from the environment as JSON: a group, a list or a mapping."""
    annotation: object = Settings
    for part in path:
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return False
        fields = {name.lower(): info for name, info in annotation.model_fields.items()}
        if part not in fields:
            return False
        annotation = fields[part].annotation
    return _is_complex(annotation)


def _is_complex(annotation: object) -> bool:
    """A model, a collection, or a union holding one (``list[str] | None``)."""
    from typing import get_origin

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    origin = get_origin(annotation)
    if origin in (list, tuple, set, frozenset, dict):
        return True
    return origin is not None and any(_is_complex(arg) for arg in get_args(annotation))


def environment_json_problem(message: str, environ: Mapping[str, str] | None = None) -> str:
    """What to tell people for pydantic-settings' ``SettingsError`` (``error parsing value for
    field "server" from source "EnvSettingsSource"``, raised as a traceback from every command
    and from ``FaceFlow()``): the variable that is not JSON, and how such a setting is written.
    ``FACEFLOW_SERVER__TRUSTED_PROXIES=127.0.0.1`` is the likely case."""
    found = re.search(r'field "([^"]+)"', message)
    field = found.group(1) if found else ""
    names = unparsed_variables(field, environ) if field else []
    shown = ", ".join(names) if names else f"{ENV_PREFIX}{field.upper()} or one of its settings"
    return (
        f"{shown} is not valid JSON: from the environment, a list is written as JSON "
        f'(\'["127.0.0.1", "10.0.0.0/8"]\') and a group as a JSON object (\'{{"port": 8000}}\')'
    )


MAX_CONFIG_BYTES = 1 << 20
"""A settings file is a few KB; one larger is refused after reading one more byte than this."""


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse a YAML (.yaml/.yml) or TOML (.toml) settings file into a plain dict.

    The name is checked before the file is opened, and at most :data:`MAX_CONFIG_BYTES` are
    read: ``--config /dev/zero`` (or a settings.yaml linked to it) read without end, the
    command's memory growing until the kernel killed it; a file that is not UTF-8 ended in a
    UnicodeDecodeError traceback."""
    if path.suffix not in {".toml", ".yaml", ".yml"}:
        raise InvalidParameter(f"config file {path} must end in .yaml, .yml or .toml")
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise InvalidParameter(f"cannot read config file {path}: {exc.strerror}") from exc
    if len(raw) > MAX_CONFIG_BYTES:
        raise InvalidParameter(f"config file {path} is over {MAX_CONFIG_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidParameter(f"config file {path} is not UTF-8 text (byte {exc.start})") from None
    if path.suffix == ".toml":
        import tomllib

        try:
            data: Any = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:  # its message names the line and column
            raise InvalidParameter(f"config file {path} is not valid TOML: {exc}") from None
    else:
        import yaml

        try:
            data = yaml.load(text, Loader=_loader_refusing_repeats()) or {}  # noqa: S506 - a SafeLoader
        except yaml.YAMLError as exc:
            raise InvalidParameter(
                f"config file {path} is not valid YAML: {_yaml_problem(exc)}"
            ) from None
    if not isinstance(data, dict):
        raise InvalidParameter(f"config file {path} must hold a mapping at the top level")
    return data


_YAML_MERGE = "tag:yaml.org,2002:merge"


def _loader_refusing_repeats() -> Any:
    """PyYAML's safe loader, but a key given twice in one mapping is an error naming it and its
    line. PyYAML keeps the last: a second ``server:`` block silently dropped every setting of the
    first (an ``api_key_hashes`` among them), where TOML refuses the file."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _value in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _YAML_MERGE:
                continue  # a complex key, or a merge (whose keys its own may override)
            key = loader.construct_object(key_node)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"{key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
        return loader.construct_mapping(node)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return Loader


def _yaml_problem(exc: Exception) -> str:
    """PyYAML's error in one line: what is wrong and where (its own text spans several lines,
    quoting the source)."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    if mark is None:
        return str(problem)
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings from defaults, an optional file, the environment and explicit overrides.

    ``config_file`` falls back to ``FACEFLOW_CONFIG``. Explicit overrides win over everything.
    """
    path = config_file or (Path(p) if (p := os.environ.get("FACEFLOW_CONFIG")) else None)
    file_values = read_config_file(path) if path else {}
    if environment_names_a_setting():
        from pydantic_settings import SettingsError

        from faceflow.settings_env import EnvironmentSettings

        try:
            settings: Settings = EnvironmentSettings(**file_values)
        except SettingsError as exc:
            raise InvalidParameter(environment_json_problem(str(exc))) from None
    else:
        settings = Settings(**file_values)
    if overrides:
        # Applied group by group once the sources are read: validating a whole new Settings
        # would read the environment again, and the environment would win over the overrides.
        update: dict[str, BaseModel] = {}
        for group, values in overrides.items():
            current = getattr(settings, group, None)
            if not isinstance(current, _Group):
                raise InvalidParameter(f"unknown settings group {group!r}")
            merged = {**current.model_dump(), **values} if isinstance(values, dict) else values
            update[group] = type(current).model_validate(merged)
        settings = settings.model_copy(update=update)
    return settings

"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from faceflow import __version__
from faceflow.cache.compute import CachedCompute
from faceflow.cache.tiered import ResultCache
from faceflow.config import ServerSettings, Settings, load_settings
from faceflow.errors import FaceflowError
from faceflow.jobs.peers import PEERS_ENV, PeerGroup
from faceflow.jobs.runner import JobRunner, build_runner
from faceflow.logs import configure_logging
from faceflow.runtime.budget import ByteBudget
from faceflow.runtime.context import WorkerContext, load_server_pool_context, warm_up
from faceflow.runtime.lanes import background_lanes
from faceflow.runtime.orphan import stop_when_parent_is_gone
from faceflow.runtime.pool import HeadStart, InferencePool
from faceflow.service.answers import AnswerBudget
from faceflow.service.edge import (
    EXPOSED_HEADERS,
    JsonCors,
    KeyGate,
    route_path,
    trusted_forwarding,
)
from faceflow.service.errors import install_error_handlers
from faceflow.service.examples import ExamplePhoto, ExampleThumbnails, load_examples
from faceflow.service.files import WholeFiles
from faceflow.service.hotpath import Entry, HotPath
from faceflow.service.metrics import Metrics
from faceflow.service.middleware import HeadAsGet, RequestContext
from faceflow.service.process import before_threads, settle
from faceflow.service.protocol import protocol_state
from faceflow.service.query import QueryLimit
from faceflow.service.routes import examples as example_routes
from faceflow.service.routes import faces, idphoto, jobs, system
from faceflow.service.routes.docs import install_docs
from faceflow.service.security import ApiKeys, KeyFailures, RateLimit
from faceflow.service.state import Current, Services
from faceflow.service.upload import BodyLimits

log = logging.getLogger(__name__)

_START_UP_TIMEOUT_S = 300.0
WEB_PAGE_ROUTE = "/{web page file}"
"""The route label of the web page's files (and of any other path no route has)."""

_PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "media-src 'self' blob: mediastream:; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors "
)


def web_page_headers(frame_ancestors: list[str]) -> tuple[tuple[bytes, bytes], ...]:
    """The web page's security headers. The page handles people's photos and a camera: it runs
    only its own files, talks only to its own server, shows only its own and in-memory (blob:)
    images, and is framed by no page but ``frame_ancestors`` (``server.web_page_frame_ancestors``:
    a page framing it could trick a person into uploading, or into turning the camera on)."""
    policy = _PAGE_POLICY + (" ".join(frame_ancestors) or "'none'")
    headers = [
        (b"content-security-policy", policy.encode("latin-1")),
        (b"referrer-policy", b"no-referrer"),
        (b"permissions-policy", b"camera=(self), microphone=(), geolocation=()"),
    ]
    if not frame_ancestors:  # for browsers without frame-ancestors; it names no list
        headers.append((b"x-frame-options", b"DENY"))
    return tuple(headers)


DESCRIPTION = """
Self-hosted face analysis and ID photos. Send an image as the raw request body (with an image
content type) or as the multipart field `image`; options go in the query string. Every error is
`{"error": {"code": ..., "message": ...}}` with a stable code; 429 and 503 carry `Retry-After`.
"""


class FaceflowApp:
    """What uvicorn serves: forwarding headers from trusted proxies → request context (ids,
    access log, metrics) → CORS → a bound on query parameters → HEAD answered as GET → body
    limits (upload budget, body timeout) → API keys outside /v1 → the cache-hit fast path → the
    FastAPI app, which owns the lifespan and every documented route."""

    def __init__(
        self,
        api: FastAPI,
        settings: Settings,
        metrics: Metrics,
        budget: ByteBudget,
        current: Current,
    ) -> None:
        self.api = api
        hot = HotPath(api, current)
        inner: ASGIApp = hot
        gate = KeyGate(inner, settings.server, current)
        if gate.enabled:
            inner = gate
        limits = BodyLimits(inner, budget, settings.server.body_timeout_s)
        metrics.bind_uploads(limits)
        checked: ASGIApp = QueryLimit(HeadAsGet(limits))
        if settings.server.cors_origins:
            # Outside every layer that answers for itself (the query's bound, the upload budget):
            # inside them, their 400, 413 and 503 had no Access-Control-Allow-Origin, and a page
            # on an allowed origin saw a network error instead of the code and Retry-After.
            checked = JsonCors(
                checked,
                allow_origins=settings.server.cors_origins,
                allow_methods=["GET", "POST", "DELETE"],
                allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-ID"],
                expose_headers=list(EXPOSED_HEADERS),
            )
        context = RequestContext(checked, metrics)
        # The face operations' uploads skip the layers' wrappers (see Entry), unless a CORS layer
        # sits between: its headers are the layers' to add.
        first: ASGIApp = (
            context if settings.server.cors_origins else Entry(context, hot, context, limits)
        )
        self._app = trusted_forwarding(first, settings.server)
        self._server = settings.server
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            # For the HTTP protocol (header timeout and size, connection cap, and counting what
            # it refuses), which sees the lifespan state but not the app; the connection cap
            # fitted under this process's open-file limit.
            scope.get("state", {}).update(protocol_state(self._server, self._metrics))
            await self.api(scope, receive, send)
        else:
            await self._app(scope, receive, send)


async def _refresh_gauges(metrics: Metrics, every_s: float = 1.0) -> None:
    """Keep this worker's pool and job gauges current for scrapes another worker answers."""
    while True:
        try:
            metrics.refresh_pool()
            await metrics.refresh_jobs()
        except Exception:
            # A figure left stale for a second is better than gauges frozen for good.
            log.exception("refreshing the shared pool and job gauges failed")
        await asyncio.sleep(every_s)


@dataclass(frozen=True)
class _Parts:
    """What the app's layers and its lifespan share, made once with the app (:func:`_parts`):
    they outlive each lifespan, and ``current`` is where the layers outside FastAPI find the
    services a lifespan holds."""

    settings: Settings
    head_start: HeadStart | None
    job_peers: PeerGroup | None
    metrics: Metrics
    budget: ByteBudget
    answer_budget: AnswerBudget
    current: Current


def _parts(settings: Settings, head_start: HeadStart | None, job_peers: PeerGroup | None) -> _Parts:
    metrics = Metrics()
    budget = ByteBudget(settings.limits.upload_budget_bytes)
    answer_budget = AnswerBudget(
        settings.limits.answer_budget_bytes, keep_for_others=settings.runtime.keep_last_place
    )
    metrics.bind_answers(answer_budget)
    return _Parts(settings, head_start, job_peers, metrics, budget, answer_budget, Current())


def create_app(
    settings: Settings,
    *,
    head_start: HeadStart | None = None,
    job_peers: PeerGroup | None = None,
) -> FaceflowApp:
    """An app that, while its lifespan runs, owns an inference pool, a result cache and metrics.

    Nothing starts until the lifespan does; the pool's processes load the models themselves
    (``/readyz`` turns 200 once every one has warmed up). The pool adopts the processes of
    ``head_start`` when they were started with its setup (``faceflow serve`` starts them before
    it imports the web stack). With ``job_peers`` (one of several HTTP workers) its job runner
    answers for the other workers' jobs too. ``.api`` is the FastAPI app.
    """
    parts = _parts(settings, head_start, job_peers)

    def lifespan(app: FastAPI) -> AbstractAsyncContextManager[None]:
        # openapi_json is made below, from the app this lifespan belongs to.
        return _serving(app, parts, openapi_json)

    app = _fastapi(lifespan)
    openapi_json = install_docs(app, "faceflow")
    install_error_handlers(app)
    for routes in (system, faces, idphoto, jobs, example_routes):
        app.include_router(routes.router)
    if settings.server.web_page:
        # The router's fallback, not a mount at "/": a mount matches every path fully, so a wrong
        # method on an API route (GET /v1/detect) would reach it and get 404 instead of 405.
        app.router.default = _WebPage(settings.server)
    return FaceflowApp(app, settings, parts.metrics, parts.budget, parts.current)


def _fastapi(lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]]) -> FastAPI:
    return FastAPI(
        title="faceflow",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # No 307 from /path/ to /path: it would be an absolute URL built from the client's Host
        # header, for paths the API never had. A trailing slash is simply not found.
        redirect_slashes=False,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served by install_docs, made once
    )


@dataclass(frozen=True)
class _Running:
    """What one lifespan started, for it to stop."""

    pool: InferencePool[WorkerContext]
    cache: ResultCache
    job_runner: JobRunner
    watcher: asyncio.Task[None]
    refresher: asyncio.Task[None] | None


@asynccontextmanager
async def _serving(
    app: FastAPI, parts: _Parts, openapi_json: Callable[[], bytes]
) -> AsyncIterator[None]:
    """The app's lifespan: its :class:`Services` in ``app.state`` and ``parts.current`` (where
    the layers outside FastAPI find them) from start-up to shutdown."""
    running = await _start(app, parts, openapi_json)
    try:
        yield
    finally:
        running.watcher.cancel()
        if running.refresher is not None:
            running.refresher.cancel()
        parts.metrics.process_exiting()
        app.state.services = parts.current.services = None
        await running.job_runner.close()
        await running.pool.close()
        await running.cache.close()


async def _start(app: FastAPI, parts: _Parts, openapi_json: Callable[[], bytes]) -> _Running:
    """Everything a lifespan runs, started in order; the watcher reports when the pool is ready."""
    settings, metrics = parts.settings, parts.metrics
    before_threads()
    # An HTTP worker of `--http-workers N` (spawned): if `faceflow serve` is killed outright,
    # it stops nothing, and this worker kept serving on the port, so a server started again
    # could not bind it. It now stops on its own. Nothing in a server of one process.
    stop_when_parent_is_gone("http worker")
    pool = _pool(parts)
    cache = ResultCache.from_settings(
        settings.cache, metrics, deadline_s=settings.runtime.deadline_s
    )
    await cache.start()
    await pool.start()
    compute = CachedCompute(cache, pool, metrics.observe_stages)
    # The OpenAPI schema's JSON too, once: built at the first /openapi.json, on the event
    # loop, it cost 58 ms of CPU, everyone else's requests waiting.
    examples, _ = await asyncio.gather(
        asyncio.to_thread(load_examples, settings.models), asyncio.to_thread(openapi_json)
    )
    services = _services(parts, pool, cache, compute, examples)
    # A rediss:// rate-limit storage's SSL context, built in a thread before the first request.
    for limit in (services.rate_limit, services.key_failures):
        if limit is not None:
            await limit.prepare()
    app.state.services = parts.current.services = services
    _log_serving(settings)
    job_runner = await _start_jobs(parts, compute, services)
    watcher = asyncio.create_task(_report_start_up(pool, services))
    refresher = asyncio.create_task(_refresh_gauges(metrics)) if metrics.multiprocess_dir else None
    settle()
    return _Running(pool, cache, job_runner, watcher, refresher)


def _pool(parts: _Parts) -> InferencePool[WorkerContext]:
    """The inference pool, not started yet: its processes load the models themselves."""
    pool: InferencePool[WorkerContext] = InferencePool.from_settings(
        parts.settings.runtime,
        init=load_server_pool_context,
        init_arg=parts.settings.model_dump_json(),
        warmup=warm_up,
        on_task_done=parts.metrics.task_done,
        head_start=parts.head_start,
    )
    parts.metrics.bind_pool(pool.stats)
    return pool


def _services(
    parts: _Parts,
    pool: InferencePool[WorkerContext],
    cache: ResultCache,
    compute: CachedCompute,
    examples: tuple[ExamplePhoto, ...],
) -> Services:
    settings, metrics = parts.settings, parts.metrics

    def rate_limit_error() -> None:
        metrics.redis_errors.labels("rate_limit").inc()

    return Services(
        settings=settings,
        metrics=metrics,
        pool=pool,
        cache=cache,
        compute=compute,
        api_keys=ApiKeys(settings.server.api_key_hashes),
        rate_limit=RateLimit.from_settings(settings.server, on_error=rate_limit_error),
        key_failures=KeyFailures.from_settings(settings.server, on_error=rate_limit_error),
        thumbnails=ExampleThumbnails(examples),
        upload_budget=parts.budget,
        answer_budget=parts.answer_budget,
        examples=examples,
        lanes=background_lanes(
            settings.runtime.processes, keep_for_others=settings.runtime.keep_last_place
        ),
    )


def _log_serving(settings: Settings) -> None:
    log.info(
        "faceflow %s: %d inference processes, cache %s, auth %s",
        __version__,
        settings.runtime.processes,
        "memory+redis" if settings.cache.redis_url else "memory",
        "on" if settings.server.api_key_hashes else "off",
    )


async def _start_jobs(parts: _Parts, compute: CachedCompute, services: Services) -> JobRunner:
    """The job runner, started and in ``services``; it shares ``services.lanes`` with batches."""
    job_runner = build_runner(
        parts.settings,
        compute,
        parts.budget,
        services.lanes,
        peers=parts.job_peers,
        hold=parts.answer_budget.holding,
    )
    await job_runner.start()
    services.jobs = job_runner
    parts.metrics.bind_jobs(job_runner)
    return job_runner


class _WebPage:
    """The web page's files (``server.web_page``), with their security headers
    (:func:`web_page_headers`) and one route label in the request metrics."""

    def __init__(self, server: ServerSettings) -> None:
        static = files("faceflow.service") / "static"
        self._files = WholeFiles(directory=str(static), html=True)
        self._headers = web_page_headers(server.web_page_frame_ancestors)
        self._paths = _page_paths(Path(str(static)))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._refuse_what_is_no_file(scope)
        # One label for the page's files in the request metrics (no route matched them).
        scope["faceflow.route"] = WEB_PAGE_ROUTE

        async def guarded(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *self._headers]
            await send(message)

        await self._files(scope, receive, guarded)

    def _refuse_what_is_no_file(self, scope: Scope) -> None:
        # Files answer GET and HEAD: any other method on one of the page's paths is a 405
        # naming them, as on the API's routes (POST / was a 404); on a path no route has, a
        # 404, not StaticFiles' "405, allow GET" for a resource that does not exist.
        if scope["type"] == "http" and scope["method"] not in ("GET", "HEAD"):
            if route_path(scope) in self._paths:
                raise StarletteHTTPException(405, headers={"Allow": "GET, HEAD"})
            raise StarletteHTTPException(404)
        # A file's path with a slash after it is no path of the page's (StaticFiles found
        # the file anyway, and the page it served loaded its own scripts and styles from
        # under "/index.html/": unstyled, without scripts).
        path = route_path(scope)
        if path != "/" and path.endswith("/"):
            raise StarletteHTTPException(404)


def _page_paths(static: Path) -> frozenset[str]:
    """The paths of the web page's files, ``/`` (its index) among them: read once, as the files
    are the installed package's."""
    found = (
        "/" + path.relative_to(static).as_posix() for path in static.rglob("*") if path.is_file()
    )
    return frozenset({"/", *found})


def address(server: ServerSettings) -> str:
    """Where a person reaches this server, for the start-up log: the public URL, else the bound
    address (an every-interface bind as this machine's loopback)."""
    if server.public_url:
        return server.public_url.rstrip("/") + "/"
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(server.host, server.host)  # noqa: S104 - read, not bound
    return f"http://{f'[{host}]' if ':' in host else host}:{server.port}/"


async def _report_start_up(pool: InferencePool[WorkerContext], services: Services) -> None:
    """Log when every inference process is ready, or why one could not start (e.g. a missing
    model): otherwise /readyz would stay 503 with the reason only in a worker's log. Once ready,
    have the pool make the example photos' thumbnails."""
    try:
        await pool.wait_ready(timeout_s=_START_UP_TIMEOUT_S)
    except FaceflowError as exc:  # NotReady on timeout, else the worker's own start-up error
        services.start_up_error = exc.message
        log.error("inference processes failed to start: %s", exc.message)
        services.thumbnails.give_up()
    else:
        server = services.settings.server
        where = address(server)
        log.info(
            "ready: every inference process has loaded and warmed up its models; %s",
            f"web page {where}, API docs {where}docs"
            if server.web_page
            else f"API docs {where}docs",
        )
        await services.thumbnails.make(pool)


def app_from_env() -> FaceflowApp:
    """Factory for ``uvicorn --factory``: settings from the environment (and
    ``FACEFLOW_CONFIG``), as ``faceflow serve`` sets them up."""
    return create_app(load_settings(), job_peers=PeerGroup.from_env(os.environ.get(PEERS_ENV)))


def http_worker_app() -> FaceflowApp:
    """Factory for each worker of `faceflow serve --http-workers N`: :func:`app_from_env` in a
    process whose log lines are written as the server's own (``server.log_level``,
    ``server.log_json``), each naming its worker (``http-<pid>``).

    uvicorn spawns its workers afresh, and sets up no logging in them (`faceflow serve` gives it
    none to set up): a worker's root logger had no handler, so with two workers no request's
    access line was ever written, nor the ready line, and a warning or a traceback came out bare
    on stderr, as plain text among the JSON lines of ``--log-json``.
    """
    settings = load_settings()
    server = settings.server
    configure_logging(server.log_level, server.log_json, process=f"http-{os.getpid()}")
    return create_app(settings, job_peers=PeerGroup.from_env(os.environ.get(PEERS_ENV)))

"""`faceflow serve`: the HTTP API, the web page and the embedded inference pool."""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from faceflow.cli.common import ConfigOption, escape, help_examples, settings_from, stderr_console

if TYPE_CHECKING:
    import uvicorn

    from faceflow.config import Settings
    from faceflow.runtime.pool import HeadStart

KEEP_ALIVE_S = 5
"""uvicorn's idle keep-alive; a proxy in front must close idle connections sooner
(deploy/nginx.conf: upstream keepalive_timeout 4s)."""

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus_client's directory variable (faceflow.service.metrics reads the same name)."""


def _export(name: str, value: object | None, flag: str, given: dict[str, str]) -> None:
    """Pass a command-line override to every uvicorn worker through the environment, the one
    channel Settings reads in each process; ``given`` records the variable's ``flag``, so that
    a bad value is named by it."""
    if value is not None:
        os.environ[name] = str(value)
        given[name] = flag


SERVE_EXAMPLES = help_examples(
    "faceflow serve",
    "faceflow serve --port 8080 --processes 2 --log-json",
    "faceflow serve --host 0.0.0.0 --http-workers 2",
    "faceflow serve -c faceflow.yaml",
)


def serve(
    host: Annotated[str | None, typer.Option(help="address to bind (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default 8000)")] = None,
    processes: Annotated[
        int | None, typer.Option(min=1, help="inference processes (default: one per core)")
    ] = None,
    http_workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="uvicorn worker processes; each holds its own cache and inference pool, so "
            "set a Redis cache to share results between them",
        ),
    ] = None,
    log_json: Annotated[
        bool | None,
        typer.Option(
            "--log-json/--log-text",
            help="log one JSON object per line, or plain text (default: text)",
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Start the service on the embedded default (in-process cache, local inference processes).

    Ready when GET /readyz answers 200: every inference process has loaded and warmed up its
    models. The web page is at /, the API documentation at /docs.
    """
    if config is not None:
        os.environ["FACEFLOW_CONFIG"] = str(Path(config).resolve())
    given: dict[str, str] = {}
    _export("FACEFLOW_SERVER__HOST", host, "--host", given)
    _export("FACEFLOW_SERVER__PORT", port, "--port", given)
    _export("FACEFLOW_SERVER__HTTP_WORKERS", http_workers, "--http-workers", given)
    _export("FACEFLOW_SERVER__LOG_JSON", log_json, "--log-json", given)
    _export("FACEFLOW_RUNTIME__PROCESSES", processes, "--processes", given)
    # Only what the checks and the head start need comes before the inference processes are
    # spawned; uvicorn, FastAPI and the app are imported while they load (see _head_start).

    from faceflow.logs import configure_logging
    from faceflow.models.catalog import models_for
    from faceflow.models.store import ModelState, ModelStore

    settings = settings_from(None, given)
    workers = settings.server.http_workers
    if workers > 1 and processes is None and "processes" not in settings.runtime.model_fields_set:
        # Share the cores between the HTTP workers' pools instead of starting cores × workers.
        share = max(1, (os.cpu_count() or 1) // workers)
        os.environ["FACEFLOW_RUNTIME__PROCESSES"] = str(share)
    configure_logging(settings.server.log_level, settings.server.log_json)
    # Only what runtime.operations loads: a server without ID photos needs no u2netp file. A
    # file unchanged since it was last verified is not hashed again here: each inference
    # process hashes the bytes it loads, and refuses them if they are not the pinned ones.
    store = ModelStore(settings.models)
    unusable = [
        status
        for status in (
            store.status(spec, trust_stamp=True) for spec in models_for(settings.runtime.operations)
        )
        if status.state is not ModelState.VERIFIED
    ]
    if unusable:
        for status in unusable:
            stderr_console().print(
                f"[red]model {status.spec.name} is {status.state.value}[/red]"
                f" at {escape(status.path)}"
            )
        stderr_console().print("run `faceflow models pull` (or `make setup`) first")
        raise typer.Exit(2)
    # One HTTP worker: the port is bound here, before the inference processes are spawned, so
    # a port in use is one line and exit 3 at once, not after every model has loaded (uvicorn
    # binds last). Several: uvicorn's supervisor binds first anyway.
    listener = _listen(settings.server.host, settings.server.port) if workers == 1 else None
    head_start = _head_start(settings) if workers == 1 else None

    import uvicorn

    from faceflow.service.protocol import FaceflowHttpProtocol

    app: object = "faceflow.service.app:http_worker_app"
    if head_start is not None:
        from faceflow.service.app import create_app

        # The settings http_worker_app would load (the same environment and file), already loaded.
        app = create_app(settings, head_start=head_start)
    extra: dict[str, Any] = {}  # only options the installed uvicorn has
    if "timeout_worker_healthcheck" in inspect.signature(uvicorn.Config).parameters:
        # uvicorn kills a worker that misses a 5 s health check by default: too short for a
        # worker still importing on a busy machine, which then restarts forever.
        extra["timeout_worker_healthcheck"] = settings.server.worker_healthcheck_timeout_s
    options: dict[str, Any] = {
        "factory": isinstance(app, str),
        "host": settings.server.host,
        "port": settings.server.port,
        "workers": workers,
        "log_config": None,
        "access_log": False,
        "timeout_keep_alive": KEEP_ALIVE_S,
        # httptools' protocol with a header timeout and a connection cap (settings.server).
        "http": FaceflowHttpProtocol,
        # Then the requests still running are cancelled, and answered 503 (service/protocol.py).
        "timeout_graceful_shutdown": settings.server.drain_s,
        "server_header": False,
        # faceflow serves no WebSocket: an upgrade request is answered as the HTTP request it
        # also is (JSON, 404 or 405), not by the websockets library (a 403 in plain text).
        "ws": "none",
        # X-Forwarded-* are believed only from server.trusted_proxies, which the app applies
        # itself (faceflow.service.edge, with uvicorn's own middleware): uvicorn's default
        # forwarded-allow-ips would let any local client choose its address.
        "proxy_headers": False,
        # A proxy's prefix (server.root_path), which it strips: uvicorn gives it to the app as
        # the ASGI root_path for the documents and links it writes. Each worker takes this
        # Config, so with several HTTP workers every one serves under it.
        "root_path": settings.server.root_path,
        **extra,
    }
    with _shared_metrics(workers), _job_peers(settings):
        if listener is None:
            uvicorn.run(app, **options)  # type: ignore[arg-type]
            return
        server = _hangup_stops(uvicorn.Server)(uvicorn.Config(app, **options))  # type: ignore[arg-type]
        server.run(sockets=[listener])
    if not server.started:  # as uvicorn.run ends a start-up failure
        raise typer.Exit(3)


def _hangup_stops(base: type[uvicorn.Server]) -> type[uvicorn.Server]:
    """A uvicorn server that stops gracefully on SIGHUP too, as on SIGTERM and SIGINT.

    uvicorn's server catches only those two: SIGHUP (the terminal that started the server
    closed, an SSH session dropped, ``kill -HUP``) killed it at once, its requests cut without
    an answer, its inference processes left to notice on their own and its embedded jobs gone
    without the line that counts them. A SIGHUP ignored when the server starts (``nohup``)
    stays ignored. Like the other two, the signal is raised again once the server has stopped,
    so the process still ends by it. Several HTTP workers: uvicorn's supervisor takes SIGHUP
    itself, to restart them.
    """

    class Server(base):  # type: ignore[valid-type,misc]
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            with super().capture_signals():
                main = threading.current_thread() is threading.main_thread()
                before = signal.getsignal(signal.SIGHUP) if main else signal.SIG_IGN
                if before is signal.SIG_IGN:
                    yield
                    return
                signal.signal(signal.SIGHUP, self.handle_exit)
                try:
                    yield
                finally:
                    # Restored before uvicorn raises the caught signals again, on leaving.
                    signal.signal(signal.SIGHUP, signal.SIG_DFL if before is None else before)

    return Server


def _listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` as uvicorn binds one (``SO_REUSEADDR``; uvicorn's server
    listens on it); exit 3 with the reason if the address is taken or not this machine's."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()

        stderr_console(highlight=False).print(
            f"[red]cannot listen on {escape(host)}:{port}:[/red] {escape(exc.strerror or exc)}"
        )
        raise typer.Exit(3) from None
    # uvicorn says where it listens only for a socket it bound itself.
    shown = f"[{host}]" if ":" in host else host
    logging.getLogger("faceflow.serve").info(
        "listening on http://%s:%d (Ctrl+C to stop)", shown, sock.getsockname()[1]
    )
    return sock


def _head_start(settings: Settings) -> HeadStart:
    """Spawn the inference processes now, for the app's pool to adopt (one HTTP worker only:
    with several, each worker process has its own pool).

    They then import numpy and onnxruntime and load the models while this process imports
    uvicorn, FastAPI and the app, instead of after it: on 2 cores the API process's imports
    and the workers' start-up overlap.
    """
    from faceflow.runtime.context import load_server_pool_context, warm_up
    from faceflow.runtime.pool import HeadStart

    return HeadStart.from_settings(
        settings.runtime,
        init=load_server_pool_context,
        init_arg=settings.model_dump_json(),
        warmup=warm_up,
    )


@contextlib.contextmanager
def _job_peers(settings: Settings) -> Iterator[None]:
    """With several HTTP workers on the embedded job runner, a fresh key for them to sign
    handles with and to call each other (faceflow.jobs.peers), in their environment; where
    there is no abstract namespace, also a private (0700) directory for their sockets, removed
    when the server stops. A single worker keeps a key of its own."""
    if settings.server.http_workers == 1 or settings.jobs.redis_url:
        yield
        return
    from faceflow.jobs.handles import new_key
    from faceflow.jobs.peers import PEERS_ENV, PeerGroup, abstract_namespace

    directory = None if abstract_namespace() else tempfile.mkdtemp(prefix="faceflow-jobs-")
    os.environ[PEERS_ENV] = PeerGroup(new_key(), directory).to_env()
    try:
        yield
    finally:
        del os.environ[PEERS_ENV]
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def _shared_metrics(workers: int) -> Iterator[None]:
    """With several HTTP workers, a fresh directory for their shared Prometheus values (see
    faceflow.service.metrics), in /dev/shm when there is one, removed when the server stops. An
    operator's own ``PROMETHEUS_MULTIPROC_DIR`` is used as it is."""
    if workers == 1 or os.environ.get(MULTIPROC_ENV):
        yield
        return
    shm = Path("/dev/shm")  # noqa: S108 - mkdtemp below makes a private (0700), unique dir
    parent = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    directory = tempfile.mkdtemp(prefix="faceflow-metrics-", dir=parent)
    os.environ[MULTIPROC_ENV] = directory
    try:
        yield
    finally:
        del os.environ[MULTIPROC_ENV]
        shutil.rmtree(directory, ignore_errors=True)

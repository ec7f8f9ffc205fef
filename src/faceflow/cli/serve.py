"""`faceflow serve`: the HTTP API, the web page and the embedded inference pool."""

from __future__ import annotations

import contextlib
import inspect
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from faceflow.cli.common import ConfigOption, settings_from

KEEP_ALIVE_S = 5
"""uvicorn's idle keep-alive; a proxy in front must close idle connections sooner
(deploy/nginx.conf: upstream keepalive_timeout 4s)."""

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus_client's directory variable (faceflow.service.metrics reads the same name)."""


def _export(name: str, value: object | None) -> None:
    """Pass a command-line override to every uvicorn worker through the environment, the one
    channel Settings reads in each process."""
    if value is not None:
        os.environ[name] = str(value)


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
    log_json: Annotated[bool | None, typer.Option("--log-json/--log-text")] = None,
    config: ConfigOption = None,
) -> None:
    """Start the service on the embedded default (in-process cache, local inference processes).

    Ready when GET /readyz answers 200: every inference process has loaded and warmed up its
    models. The web page is at /, the API documentation at /docs.
    """
    if config is not None:
        os.environ["FACEFLOW_CONFIG"] = str(Path(config).resolve())
    _export("FACEFLOW_SERVER__HOST", host)
    _export("FACEFLOW_SERVER__PORT", port)
    _export("FACEFLOW_SERVER__HTTP_WORKERS", http_workers)
    _export("FACEFLOW_SERVER__LOG_JSON", log_json)
    _export("FACEFLOW_RUNTIME__PROCESSES", processes)
    import uvicorn
    from rich.console import Console

    from faceflow.models.catalog import models_for
    from faceflow.models.store import ModelState, ModelStore
    from faceflow.service.logs import configure_logging
    from faceflow.service.protocol import FaceflowHttpProtocol

    settings = settings_from(None)
    workers = settings.server.http_workers
    if workers > 1 and processes is None and "processes" not in settings.runtime.model_fields_set:
        # Share the cores between the HTTP workers' pools instead of starting cores × workers.
        share = max(1, (os.cpu_count() or 1) // workers)
        os.environ["FACEFLOW_RUNTIME__PROCESSES"] = str(share)
    configure_logging(settings.server.log_level, settings.server.log_json)
    # Only what runtime.operations loads: a server without ID photos needs no u2netp file.
    unusable = [
        status
        for status in map(
            ModelStore(settings.models).status, models_for(settings.runtime.operations)
        )
        if status.state is not ModelState.VERIFIED
    ]
    if unusable:
        for status in unusable:
            Console(stderr=True).print(
                f"[red]model {status.spec.name} is {status.state.value}[/red] at {status.path}"
            )
        Console(stderr=True).print("run `faceflow models pull` (or `make setup`) first")
        raise typer.Exit(2)
    extra: dict[str, Any] = {}  # only options the installed uvicorn has
    if "timeout_worker_healthcheck" in inspect.signature(uvicorn.Config).parameters:
        # uvicorn kills a worker that misses a 5 s health check by default: too short for a
        # worker still importing on a busy machine, which then restarts forever.
        extra["timeout_worker_healthcheck"] = settings.server.worker_healthcheck_timeout_s
    with _shared_metrics(workers):
        uvicorn.run(
            "faceflow.service.app:app_from_env",
            factory=True,
            host=settings.server.host,
            port=settings.server.port,
            workers=workers,
            log_config=None,
            access_log=False,
            timeout_keep_alive=KEEP_ALIVE_S,
            # httptools' protocol with a header timeout and a connection cap (settings.server).
            http=FaceflowHttpProtocol,
            timeout_graceful_shutdown=30,
            server_header=False,
            # X-Forwarded-* are believed only from server.trusted_proxies, which the app applies
            # itself (faceflow.service.edge, with uvicorn's own middleware): uvicorn's default
            # forwarded-allow-ips would let any local client choose its address.
            proxy_headers=False,
            **extra,
        )


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

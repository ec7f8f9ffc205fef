"""`faceflow worker`: run job worker processes against the queue Redis (scale-out mode)."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from faceflow.cli.common import ConfigOption, help_examples, settings_from

WORKER_EXAMPLES = help_examples(
    "faceflow worker",
    "faceflow worker --queue-url redis://host:6381/0",
    "faceflow worker -n 4 -c faceflow.yaml",
)


def worker(
    processes: Annotated[
        int | None,
        typer.Option(
            "--processes",
            "-n",
            min=1,
            help="worker processes; each loads the models once (default: jobs.worker_processes, "
            "one per core)",
        ),
    ] = None,
    queue_url: Annotated[
        str | None,
        typer.Option(help="queue Redis URL (default: jobs.redis_url, FACEFLOW_JOBS__REDIS_URL)"),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Work the job queue: N processes, each with its own models, replaced if one dies.

    SIGTERM (or Ctrl+C) lets every process finish its current job, then exits 0.
    """
    from faceflow.jobs.supervisor import Supervisor
    from faceflow.logs import configure_logging

    given = {}
    if queue_url is not None:  # as `faceflow serve` passes its flags: checked with the rest
        os.environ["FACEFLOW_JOBS__REDIS_URL"] = queue_url
        given["FACEFLOW_JOBS__REDIS_URL"] = "--queue-url"
    settings = settings_from(config, given)
    if not settings.jobs.redis_url:
        typer.echo("faceflow worker needs a queue: --queue-url or jobs.redis_url", err=True)
        raise typer.Exit(2)
    configure_logging(settings.server.log_level, settings.server.log_json)
    supervisor = Supervisor(
        settings,
        processes or settings.jobs.worker_processes,
        log_level=settings.server.log_level,
    )
    raise typer.Exit(supervisor.run())

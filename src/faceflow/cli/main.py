"""The `faceflow` command."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from faceflow import __version__
from faceflow.cli import flags, models, stdout
from faceflow.cli.analyze import analyze
from faceflow.cli.bench import bench
from faceflow.cli.common import TERMINATED_STATUS, Terminated, reflowed
from faceflow.cli.idphoto import id_photo, list_id_specs
from faceflow.cli.serve import serve
from faceflow.cli.worker import worker

flags.install()

app = typer.Typer(
    name="faceflow",
    help="Self-hosted, high-throughput face analysis and ID photos.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(models.app, name="models")
app.command(no_args_is_help=True)(reflowed(analyze))
app.command()(reflowed(serve))
app.command("id-photo", no_args_is_help=True)(reflowed(id_photo))
app.command("id-photo-specs")(reflowed(list_id_specs))
app.command()(reflowed(worker))
app.command(no_args_is_help=True)(reflowed(bench))


def _version(value: bool) -> None:
    if value:
        typer.echo(f"faceflow {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
) -> None:
    """Self-hosted, high-throughput face analysis and ID photos."""


def main() -> None:
    stdout.fill_closed_descriptors()
    stdout.guard()
    try:
        app()
    except stdout.OutputLost as exc:
        sys.exit(stdout.lost(exc))
    except Terminated:
        sys.exit(TERMINATED_STATUS)

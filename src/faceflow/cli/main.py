"""The `faceflow` command."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from faceflow import __version__
from faceflow.cli import flags, models, stdout
from faceflow.cli.analyze import ANALYZE_EXAMPLES, analyze
from faceflow.cli.bench import BENCH_EXAMPLES, bench
from faceflow.cli.common import TERMINATED_STATUS, Terminated, help_examples, reflowed
from faceflow.cli.idphoto import ID_PHOTO_EXAMPLES, ID_SPECS_EXAMPLES, id_photo, list_id_specs
from faceflow.cli.serve import SERVE_EXAMPLES, serve
from faceflow.cli.worker import WORKER_EXAMPLES, worker

flags.install()

FACEFLOW_EXAMPLES = help_examples(
    "faceflow analyze photos/ --json",
    "faceflow id-photo portrait.jpg --spec icao -o out/",
    "faceflow models pull",
    "faceflow serve --port 8080",
)

EXIT_STATUSES = (
    "Exit status: 0 every file done; 1 a file failed (or, with id-photo --fail-on, a photo's"
    " verdict), an output the disk refused, a model missing or corrupt (models verify, pull),"
    " or standard output lost; 2 a usage error (a bad flag or value, an output folder that"
    " cannot be made, invalid settings, models missing); 3 serve cannot listen; 130 Ctrl-C;"
    " 141 the reader of standard output gone; 143 SIGTERM."
)
"""`faceflow --help`'s summary of the exit statuses: a script's author reads them there (the
README's table has the details; tests/cli/test_main.py keeps the two the same)."""

app = typer.Typer(
    name="faceflow",
    help="Self-hosted, high-throughput face analysis and ID photos.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    epilog=EXIT_STATUSES + "\n" + FACEFLOW_EXAMPLES,
)
app.add_typer(models.app, name="models")
app.command(no_args_is_help=True, epilog=ANALYZE_EXAMPLES)(reflowed(analyze))
app.command(epilog=SERVE_EXAMPLES)(reflowed(serve))
app.command("id-photo", no_args_is_help=True, epilog=ID_PHOTO_EXAMPLES)(reflowed(id_photo))
app.command("id-photo-specs", epilog=ID_SPECS_EXAMPLES)(reflowed(list_id_specs))
app.command(epilog=WORKER_EXAMPLES)(reflowed(worker))
app.command(no_args_is_help=True, epilog=BENCH_EXAMPLES)(reflowed(bench))


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

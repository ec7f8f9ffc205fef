"""`faceflow id-photo IN...`: ID photos (and print sheets) for files, folders and globs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from faceflow.cli import stdout, values
from faceflow.cli.analyze import expand_paths
from faceflow.cli.common import (
    ConfigOption,
    OutputFolderFull,
    OutputNames,
    PhotoQueryOptions,
    Terminated,
    escape,
    file_progress,
    help_examples,
    make_output_folder,
    print_table,
    printable,
    query_options,
    refuse_a_terminal_on_stdin,
    said_interrupted,
    settings_from,
    setup_logging,
    stderr_console,
    write_outputs,
)
from faceflow.operations.choices import Gradient, OutputFormat

if TYPE_CHECKING:  # rich, OpenCV and the ONNX stack are imported when the command runs
    from rich.console import Console

    from faceflow.cli.files import FileOutcome
    from faceflow.config import Settings
    from faceflow.runtime.idphoto_tasks import IdPhotoFile, IdPhotoFileRequest


def _consoles() -> tuple[Console, Console]:
    """stdout and stderr."""
    from rich.console import Console

    return Console(highlight=False), stderr_console(highlight=False)


ID_PHOTO_EXAMPLES = help_examples(
    "faceflow id-photo portrait.jpg --spec icao -o out/",
    "faceflow id-photo portrait.jpg -o out/ --sheet 6inch",
    "faceflow id-photo group.jpg -o out/ -O face=2",
    "faceflow id-photo staff/ -o out/ --fail-on warn",
)


def id_photo(
    paths: Annotated[
        list[str],
        typer.Argument(
            metavar="PATH",
            help="photos, folders (recursive, hidden files and the --out folder passed over),"
            " globs, or - for a photo on standard input",
        ),
    ],
    out_dir: Annotated[Path, typer.Option("--out", "-o", file_okay=False, help="output folder")],
    spec: Annotated[
        str | None,
        typer.Option(
            help="size preset (default cn-1inch; `faceflow id-photo-specs` lists them), or a"
            " custom size with -O width=… -O height=…",
            show_default=False,
            callback=values.spec,
        ),
    ] = None,
    background: Annotated[
        str, typer.Option(help="white, blue, red, grey or #rrggbb", callback=values.background)
    ] = "white",
    # The options model's own types: a choice added there is offered and checked here too.
    gradient: Annotated[Gradient, typer.Option(help="fade the background to white")] = "none",
    output_format: Annotated[
        OutputFormat, typer.Option("--format", help="image format of the ID photo")
    ] = OutputFormat.JPEG,
    max_kb: Annotated[
        int | None,
        # The options model's bounds (tests/cli/test_idphoto_cli.py keeps them the same).
        typer.Option(min=1, max=10_000, help="JPEG file-size cap in KB (1 KB = 1,000 bytes)"),
    ] = None,
    transparent: Annotated[bool, typer.Option(help="PNG with a transparent background")] = False,
    sheet: Annotated[
        str | None,
        typer.Option(help="also write a print sheet: 6inch, 5inch or a4", callback=values.sheet),
    ] = None,
    option: PhotoQueryOptions = None,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="processes, this one included (see analyze)")
    ] = 1,
    fail_on: Annotated[
        Literal["never", "warn", "fail"],
        typer.Option(
            help="exit 1 also when a photo's compliance is this or worse: fail (a counter would"
            " refuse it) or warn (a person should look); never: only files that failed count",
        ),
    ] = "never",
    config: ConfigOption = None,
) -> None:
    """Make an ID photo of every input, with its compliance report and, with --sheet, a print sheet.

    One face, cut out, on the chosen background, at the preset's exact size and DPI, head placed
    by the preset's rules; the report is written beside the photo (<name>.report.json). Exit code
    1 if any file failed (or, with --fail-on, if a photo's compliance is that bad)."""
    from rich.table import Table
    from rich.text import Text

    from faceflow.cli.files import FileOutcome, only, run_files
    from faceflow.domain import Operation
    from faceflow.errors import FaceflowError
    from faceflow.operations.idphoto import PhotoOptions, sheet_work
    from faceflow.operations.parse import parse_options
    from faceflow.pipeline.idphoto.compliance import CheckStatus
    from faceflow.runtime.idphoto_tasks import IdPhotoFileRequest, id_photo_file

    # Its results are the files it writes; the table is a summary of them. Started with standard
    # output closed (cron's `>&-`), it writes them without the table, as with `> /dev/null`,
    # and names each file that failed on standard error instead (it refused to start before).
    summary = not stdout.closed()
    err = stderr_console(highlight=False)  # a console on a closed stdout raises when it is made
    settings = settings_from(config)
    setup_logging("warning")
    try:
        # The HTTP API's options model: the same checks, and the same photo for the same values.
        flags = {
            "spec": spec,
            "background": background,
            "gradient": gradient,
            "format": output_format,
            "max_kb": max_kb,
            "transparent": transparent,
        }
        parsed = parse_options(PhotoOptions, query_options(option, flags), "id-photo")
        options = parsed.photo()
        paper = None if sheet is None else sheet_work([(options, None)], sheet).paper
    except FaceflowError as exc:
        err.print(f"[red]error:[/red] {escape(exc.message)}")
        raise typer.Exit(2) from None
    files = expand_paths(paths, out_dir)
    refuse_a_terminal_on_stdin(err, files)
    make_output_folder(err, out_dir, "--out")
    suffix = "png" if options.output_format is OutputFormat.PNG else "jpg"
    table = Table()
    for column in ("file", "result", "size", "compliance"):
        table.add_column(column, overflow="fold")
    failed = 0
    failures: list[str] = []  # each failed file's row, for stderr when there is no table
    refused = 0  # photos whose compliance reaches --fail-on
    handled = 0
    stopped: OutputFolderFull | None = None  # the write that stopped the batch (a full disk)
    interrupted: BaseException | None = None  # Ctrl-C or SIGTERM, raised again once reported

    def outputs_of(stem: str) -> list[Path]:
        name = f"{stem}.{options.spec.key}"
        written = [out_dir / f"{name}.{suffix}", out_dir / f"{name}.report.json"]
        return written + ([out_dir / f"{name}.sheet-{paper}.jpg"] if paper is not None else [])

    names = OutputNames(files, outputs_of)

    def done(outcome: FileOutcome[IdPhotoFile]) -> None:
        nonlocal failed, refused, handled
        progress.advance(task)
        progress.refresh()
        name = Text(printable(outcome.path))
        if outcome.error is None and outcome.result is not None:
            photo = outcome.result.photo
            stem = f"{names.unique(outcome.path)}.{options.spec.key}"
            target = out_dir / f"{stem}.{suffix}"
            # The report last: it marks the photo and sheet beside it as whole and its own.
            outputs = [(target, photo.data)]
            if outcome.result.sheet is not None:
                outputs.append((out_dir / f"{stem}.sheet-{paper}.jpg", outcome.result.sheet))
            report = (json.dumps(photo.to_dict(), indent=2) + "\n").encode()
            outputs.append((target.with_suffix(".report.json"), report))
            try:
                write_outputs(outputs)
            except FaceflowError as exc:  # none of its files is left: not a photo alone
                outcome = FileOutcome(outcome.path, None, exc)
        handled += 1
        if outcome.error is not None or outcome.result is None:
            failed += 1
            code = outcome.error.code if outcome.error else "internal"
            message = outcome.error.message if outcome.error else ""
            table.add_row(name, Text(printable(f"{code}: {message}"), style="red"), "", "")
            failures.append(printable(f"{outcome.path}: {code}: {message}"))
            return
        status = photo.report.status.value
        if fail_on != "never" and photo.report.status.rank >= CheckStatus(fail_on).rank:
            refused += 1
        colour = {"pass": "green", "warn": "yellow", "fail": "red"}[status]
        table.add_row(
            name,
            Text(printable(target)),
            f"{photo.width_px}×{photo.height_px} @ {photo.dpi} dpi, {len(photo.data) // 1024} KB",
            Text(status, style=colour),
        )

    with file_progress(err, len(files)) as progress:
        task = progress.add_task("ID photos", total=len(files))

        def make_request(data: bytes) -> IdPhotoFileRequest:
            return IdPhotoFileRequest(data, options, paper, parsed.face)

        try:
            run_files(
                batch_settings(only(settings, Operation.ID_PHOTO)),
                files,
                make_request,
                id_photo_file,
                workers,
                done,
            )
        except FaceflowError as exc:
            err.print(f"[red]error:[/red] {escape(exc.message)}")
            raise typer.Exit(2) from None
        except OutputFolderFull as exc:  # the photos done are reported; no other is started
            stopped = exc
        except (KeyboardInterrupt, Terminated) as exc:  # the run is unwound: its workers gone
            interrupted = exc
    if summary and (table.row_count or (stopped is None and interrupted is None)):
        print_table(_consoles()[0], table)
    else:
        for failure in failures:
            err.print(f"[red]error:[/red] {escape(failure)}")
    if interrupted is not None:
        said_interrupted(err, handled, len(files), failed)
        raise interrupted
    if stopped is not None:
        err.print(
            f"[red]error:[/red] {escape(stopped)}: stopped after {handled} of {len(files)} files"
        )
    elif failed:
        err.print(f"[red]{failed} of {len(files)} files failed[/red]")
    if refused:
        err.print(
            f"[red]{refused} of {len(files)} photos "
            + ("fail" if fail_on == "fail" else "warn or fail")
            + " their compliance check[/red] (--fail-on; their reports say why)"
        )
    if failed or refused or stopped is not None:
        raise typer.Exit(1)


def batch_settings(settings: Settings) -> Settings:
    """``settings`` with u2netp's onnxruntime arena kept (``models.segmenter_arena``), unless the
    settings chose either way.

    The command's processes cut portraits out back to back, so the arena holds no more than
    each run's own peak would map anyway (≈ 250 MB): it costs the batch no memory at its peak,
    and spares every photo after the first the kernel zeroing that peak's fresh pages. Without
    it, this process (and the ones it forks) run u2netp in 4 KB pages, not in the inference
    pool's huge pages (glibc reads ``GLIBC_TUNABLES`` only when a process starts): ≈ 180 ms of
    system time a photo more (bench/u2netp_session.py in docs/performance.md). The service keeps the
    arena off by default because its processes wait between requests holding what they keep.
    """
    if "segmenter_arena" in settings.models.model_fields_set:
        return settings
    models = settings.models.model_copy(update={"segmenter_arena": True})
    return settings.model_copy(update={"models": models})


ID_SPECS_EXAMPLES = help_examples(
    "faceflow id-photo-specs",
    "faceflow id-photo portrait.jpg --spec cn-1inch -o out/",
)


def list_id_specs() -> None:
    """Every ID-photo size preset with its pixel size and head rules."""
    from rich.table import Table

    from faceflow.pipeline.idphoto.specs import list_specs

    out, _ = _consoles()
    table = Table(
        title="ID-photo size presets",
        caption="head: chin to crown; eyes: the eye line's height above the bottom edge",
    )
    # A key (what --spec takes) and the figures are never cut or wrapped; on a narrow terminal
    # the titles wrap between words.
    table.add_column("key", no_wrap=True)
    table.add_column("title 名称", overflow="fold")
    table.add_column("size", no_wrap=True)
    table.add_column("head, eyes (mm)", no_wrap=True)
    for spec in list_specs():
        table.add_row(
            spec.key,
            f"{spec.title}\n{spec.title_zh}",
            f"{spec.width_mm:g}×{spec.height_mm:g} mm\n"
            f"{spec.width_px}×{spec.height_px} px @ {spec.dpi} dpi",
            "head {:g}–{:g}\n".format(*spec.head_height_mm)
            + "eyes {:g}–{:g}".format(*spec.eye_line_mm),
        )
    print_table(out, table)

"""`faceflow analyze PATH...`: faces, ages and genders for files, folders and globs."""

from __future__ import annotations

import dataclasses
import fnmatch
import glob
import json
import os
import re
import stat
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from faceflow.cli import stdout, values
from faceflow.cli.common import (
    IMAGE_SUFFIXES,
    STDIN,
    ConfigOption,
    FaceQueryOptions,
    OutputFolderFull,
    OutputNames,
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
    table_width,
    write_output,
)

if TYPE_CHECKING:  # rich and the ONNX stack are imported when the command runs, not on every start
    from rich.console import Console
    from rich.text import Text

    from faceflow.cli.files import FileOutcome
    from faceflow.domain import Attribute
    from faceflow.runtime.tasks import FileAnalysis


def _consoles() -> tuple[Console, Console]:
    """stdout and stderr."""
    from rich.console import Console

    return Console(highlight=False), stderr_console()


def expand_paths(patterns: list[str], output_folder: Path | None = None) -> list[Path]:
    """Files named directly, image files under folders (recursively), and glob matches; in order,
    without duplicates. A pattern that matches nothing is kept so it is reported as an error;
    ``-`` is standard input.

    Under a folder, hidden files and folders are passed over (named directly, they are not):
    macOS leaves a ``._IMG_0001.jpg`` of metadata beside each photo it copies to a foreign disk,
    and photo tools keep thumbnails in ``.thumbnails/``; neither is a photo to analyse. So are the
    command's own outputs, in ``output_folder``, when a folder or a glob above it finds them
    (named directly, or by a folder or a glob inside it, they are not): `faceflow id-photo
    photos/ -o photos/out` run again made ID photos of the last run's ID photos
    (a.cn-1inch.cn-1inch.jpg), one more generation a run.

    A file is found once under the first name it is given by: the same file named relative and
    absolute, or through a symbolic link, was analysed twice (and written out twice).

    A folder with no image file under it is kept, as a pattern that matches nothing is, so
    that it is reported as an error: the run ended without a word, exit 0, when the folder was
    the wrong one or held only photos of another format (an iPhone's HEIC); a glob's folder is
    searched as a named one is."""
    outputs = None if output_folder is None else os.path.realpath(output_folder) + os.sep
    found: dict[Path, None] = {}
    resolve = _Resolver()
    resolved: set[str] = set()

    def not_output(path: Path | str) -> bool:
        return outputs is None or not (resolve(Path(path)) + os.sep).startswith(outputs)

    def add(path: Path) -> None:
        if path == STDIN:
            found[STDIN] = None
            return
        real = resolve(path)
        if real not in resolved:
            resolved.add(real)
            found[path] = None

    def add_folder(folder: Path) -> bool:
        """Add the image files under ``folder``; whether it has any."""
        above_outputs = not_output(folder)
        children = [child for child in _walk(folder) if not above_outputs or not_output(child)]
        for child in children:
            add(child)
        return bool(children)

    for pattern in patterns:
        path = Path(pattern)
        try:
            kind = "folder" if path.is_dir() else "file" if path.exists() else None
        except OSError:  # a name too long, a folder above it unreadable: its read says which
            kind = "file"
        if path == STDIN:
            add(STDIN)
        elif kind == "folder":
            if not add_folder(path):
                add(path)  # read as a file, it says that it holds no image (files._read)
        elif kind == "file":
            add(path)
        else:
            matches = _glob(pattern)
            if not_output(pattern):
                matches = [match for match in matches if not_output(match)]
            # A folder it matches is searched as one named is, as the shell's own expansion of
            # the pattern would have it searched: it was read as a file ("Is a directory").
            anything = False
            for match in matches:
                if _is_folder(match):
                    anything |= add_folder(match)
                else:
                    add(match)
                    anything = True
            if not anything:
                add(Path(pattern))  # read as a file, it says that nothing matches it
    return list(found)


def _is_folder(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


class _Resolver:
    """:func:`os.path.realpath` of many paths, each folder resolved once: realpath reads every
    part of a path (an ``lstat`` each), ≈ 9 system calls a file for a photo five folders down,
    where a file of a folder already resolved takes one (is it a link?)."""

    def __init__(self) -> None:
        self._folders: dict[str, str] = {}

    def __call__(self, path: Path) -> str:
        if path.name in ("", ".", ".."):  # no name of its own to join to its folder's
            return os.path.realpath(path)
        folder = str(path.parent)
        real_folder = self._folders.get(folder)
        if real_folder is None:
            real_folder = self._folders[folder] = os.path.realpath(folder)
        joined = os.path.join(real_folder, path.name)  # noqa: PTH118 - strs, as realpath gives
        try:
            if stat.S_ISLNK(os.lstat(joined).st_mode):
                return os.path.realpath(joined)
        except (OSError, ValueError):  # missing, unreadable, too long: its read says which
            pass
        return joined


def _walk(folder: Path) -> list[Path]:
    """The image files under ``folder``, sorted, passing over hidden names and links to folders
    (as :meth:`Path.rglob` does); with each folder under it that cannot be read, so that the
    run reports it as a file it could not read ("Permission denied", "File name too long").

    ``rglob`` passed over a folder it had no permission to read without a word, and ended the
    command in an OSError traceback at one whose path was past the system's 4,096 bytes."""
    found: list[Path] = []

    def unreadable(exc: OSError) -> None:
        found.append(Path(exc.filename))

    for top, folders, files in os.walk(folder, onerror=unreadable):
        folders[:] = [name for name in folders if not name.startswith(".")]
        for name in files:
            child = Path(top, name)
            if not name.startswith(".") and child.suffix.lower() in IMAGE_SUFFIXES:
                try:
                    if child.is_file():
                        found.append(child)
                except OSError:
                    found.append(child)
    return sorted(found)


def _glob(pattern: str) -> list[Path]:
    """The paths ``pattern`` matches, sorted, as :func:`glob.glob` finds them (``**`` any
    folders, ``*`` no hidden name), except that ``**`` never descends into a symbolic link to a
    folder, as a folder named directly is walked (and as bash's ``globstar`` does).

    ``glob.glob`` follows them: a link back up the tree (``photos/all -> ..``) had each photo
    under it found 41 times over (the kernel's 40 links a path), and two such links in one
    folder made the pattern's matches double at each level: `faceflow analyze 'photos/**/*.jpg'`
    never began, its memory growing by the path (442,037 paths in its first minute)."""
    parts = Path(pattern).parts
    if "**" not in parts:  # no recursion: bounded by the pattern's own depth
        return sorted(Path(match) for match in glob.glob(pattern))  # noqa: PTH207 - user glob
    fixed = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    root = Path(*parts[:fixed]) if fixed else Path()
    # pathlib takes ``**`` only as a whole part, where glob reads ``a**`` as ``a*``.
    wanted = [part if part == "**" else re.sub(r"\*+", "*", part) for part in parts[fixed:]]
    if wanted[-1] == "**":  # everything below, as glob's last ``**`` (pathlib's: folders only)
        wanted.append("*")
    try:
        matches = root.glob("/".join(wanted))
        return sorted(
            match for match in matches if _shown(match.relative_to(root).parts, tuple(wanted))
        )
    except OSError:  # the root cannot be read: no match, as glob.glob has none
        return []


def _shown(names: tuple[str, ...], wanted: tuple[str, ...]) -> bool:
    """Whether ``names`` (a match's parts below the pattern's fixed root) match the pattern's
    parts ``wanted`` as :func:`glob.glob` matches them: a hidden name only where the pattern's
    part begins with a dot (pathlib's ``*`` and ``**`` match hidden names, glob's do not)."""
    if not wanted:
        return not names
    head, rest = wanted[0], wanted[1:]
    if head == "**":
        return _shown(names, rest) or (
            bool(names) and not names[0].startswith(".") and _shown(names[1:], wanted)
        )
    if not names or (names[0].startswith(".") and not head.startswith(".")):
        return False
    return fnmatch.fnmatchcase(names[0], head) and _shown(names[1:], rest)


# The file column's width below which the box column is left out of the table (--json has it):
# with it the other columns take 77 characters, and on an 80-column terminal file names were
# folded into a column 3 characters wide.
_FILE_COLUMN_MIN = 24
_BOX_HEADER = "box (x1, y1, x2, y2)"


def _print_table(
    out: Console, outcomes: list[FileOutcome[FileAnalysis]], attributes: Collection[Attribute]
) -> None:
    """One row per face (a file without faces has one row), then the files that failed, each
    with its error code and message; both fit the terminal's width. A column of an attribute not
    asked for is left out: `--attributes none` showed an empty gender and age column on every
    row."""
    from rich.table import Table

    rows: list[list[str]] = []
    failed: list[FileOutcome[FileAnalysis]] = []
    for outcome in outcomes:
        if outcome.error is not None:
            failed.append(outcome)
            continue
        assert outcome.result is not None
        rows.extend(_face_rows(str(outcome.path), outcome.result, attributes))
    if rows:
        headers = ["file", "faces", "face", "score", *_attribute_headers(attributes), _BOX_HEADER]
        if not _fits(out, headers[1:], [row[1:] for row in rows]):
            headers, rows = headers[:-1], [row[:-1] for row in rows]
        table = Table(show_lines=False)
        table.add_column(headers[0], overflow="fold", min_width=_FILE_COLUMN_MIN)
        for header in headers[1:]:
            table.add_column(header, no_wrap=True)
        for row in rows:
            table.add_row(_plain(row[0]), *row[1:])
        print_table(out, table)
    if failed:
        errors = Table.grid(padding=(0, 2))
        errors.add_column(overflow="fold")
        errors.add_column(style="red")
        for outcome in failed:
            assert outcome.error is not None
            errors.add_row(
                _plain(outcome.path), _plain(f"{outcome.error.code}: {outcome.error.message}")
            )
        out.print("[bold]failed[/bold]")
        print_table(out, errors)


def _attribute_headers(attributes: Collection[Attribute]) -> list[str]:
    """The attribute columns of the table, in their order: those asked for."""
    from faceflow.domain import Attribute

    return [a.value for a in (Attribute.GENDER, Attribute.AGE) if a in attributes]


def _face_rows(
    path: str, analysis: FileAnalysis, attributes: Collection[Attribute]
) -> list[list[str]]:
    """The table's cells for one file: file, faces, face, score, the attributes asked for, box."""
    from faceflow.domain import Attribute
    from faceflow.pipeline.annotate import face_label

    faces = analysis.report.faces
    headers = _attribute_headers(attributes)
    if not faces:
        return [[path, "0", "", "", *("" for _ in headers), ""]]
    rows = []
    for index, face in enumerate(faces):
        cells = {
            Attribute.GENDER.value: (
                f"{face.gender.label.value} {face.gender.probability:.0%}" if face.gender else ""
            ),
            Attribute.AGE.value: (
                f"{face.age.years:.0f} ({face.age.low:.0f}–{face.age.high:.0f})" if face.age else ""
            ),
        }
        rows.append(
            [
                path if index == 0 else "",
                str(len(faces)) if index == 0 else "",
                # Without attributes the label is the score, which has its own column.
                f"{index + 1} {face_label(face)}" if headers else str(index + 1),
                f"{face.score:.2f}",
                *(cells[header] for header in headers),
                ", ".join(f"{v:.0f}" for v in face.box.to_dict()),
            ]
        )
    return rows


def _fits(out: Console, headers: list[str], rows: list[list[str]]) -> bool:
    """Whether columns of these cells, unwrapped, leave the file column its minimum width (each
    column takes its widest cell, one space either side and a border)."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    needed = _FILE_COLUMN_MIN + sum(width + 3 for width in widths) + 4
    return needed <= table_width(out)


def _plain(value: object) -> Text:
    """Text shown as it is: a file called ``[red]a.jpg`` or ``:smile:.jpg`` is not markup, and
    one holding a terminal's escape sequence is shown, not obeyed (:func:`printable`)."""
    from rich.text import Text

    return Text(printable(value))


def _json_text(value: object) -> object:
    """``value`` as strict JSON can hold it: a string with the bytes of a file name that are
    not UTF-8 written as ``\\xNN``, as the table writes a control character. Python holds such
    bytes as lone surrogates (its surrogate escape: ``bad\\xff.jpg`` is ``'bad\\udcff.jpg'``),
    which ``json.dumps`` wrote as ``\\udcff``: no character at all, refused by strict parsers
    ("lone leading surrogate in hex escape", serde_json's and pydantic's) and read as U+FFFD,
    the byte lost, by lenient ones."""
    if not isinstance(value, str) or value.isascii():
        return value
    try:
        value.encode()
    except UnicodeEncodeError:
        try:
            raw = value.encode(errors="surrogateescape")
        except UnicodeEncodeError:  # a surrogate no undecodable byte makes: as \udXXX
            raw = value.encode(errors="backslashreplace")
        return raw.decode(errors="backslashreplace")
    return value


def _json_line(outcome: FileOutcome[FileAnalysis]) -> str:
    if outcome.error is not None:
        return _error_line(outcome.path, outcome.error.to_dict())
    assert outcome.result is not None
    return json.dumps(
        {
            "file": _json_text(str(outcome.path)),
            **outcome.result.report.to_dict(),
            "timings_ms": outcome.result.timings_ms,
        }
    )


def _error_line(path: Path, error: Mapping[str, object]) -> str:
    error = {name: _json_text(value) for name, value in error.items()}
    return json.dumps({"file": _json_text(str(path)), "error": error})


OUTPUT_FOLDER_FULL = "output_folder_full"
"""The ``--json`` error code of the file whose annotated image a full disk or quota, or a file
system gone read-only, refused: the batch stops after its line."""


MIN_THRESHOLD = 0.3
"""The least ``--threshold`` takes: the settings' ``MIN_FACE_SCORE``, repeated so that the CLI
starts without importing them (tests/cli/test_analyze.py keeps the two the same)."""

ANALYZE_EXAMPLES = help_examples(
    "faceflow analyze photos/ more/*.jpg",
    "faceflow analyze photos/ --json",
    "faceflow analyze photos/ --annotate out/ --workers 2",
    "curl -s https://example.org/me.jpg | faceflow analyze -",
)


def analyze(
    paths: Annotated[
        list[str],
        typer.Argument(
            metavar="PATH",
            help="image files, folders (searched recursively, hidden files and the --annotate"
            " folder passed over), globs, or - for an image on standard input",
        ),
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="one JSON object per file on stdout")
    ] = False,
    annotate_dir: Annotated[
        Path | None,
        typer.Option("--annotate", help="write annotated images into this folder", file_okay=False),
    ] = None,
    attributes: Annotated[
        str,
        typer.Option(
            help="comma-separated: age,gender; 'none' to only detect", callback=values.attributes
        ),
    ] = "age,gender",
    threshold: Annotated[
        float | None,
        typer.Option(
            min=MIN_THRESHOLD,
            max=1.0,
            help=f"minimum face score, {MIN_THRESHOLD} to 1 (default from settings)",
        ),
    ] = None,
    option: FaceQueryOptions = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="processes, this one included (the others forked from it; each loads the models)",
        ),
    ] = 1,
    config: ConfigOption = None,
) -> None:
    """Find every face in the given images, with age and gender; print a table or JSON lines.

    Each file succeeds or fails on its own; the exit code is 1 if any file failed.
    """
    from faceflow.cli.files import FileOutcome, only, run_files
    from faceflow.domain import Operation
    from faceflow.errors import FaceflowError, InvalidParameter
    from faceflow.operations.faces import AnalyzeOptions
    from faceflow.operations.parse import parse_options
    from faceflow.runtime.tasks import analyze_file

    out, err = _consoles()
    stdout.check()  # the result is printed there: fail before any work if it is closed
    settings = settings_from(config)
    setup_logging("warning")
    try:
        # The HTTP API's options model, so the CLI takes the same values with the same bounds.
        flags = {"threshold": threshold, "attributes": attributes}
        options = parse_options(AnalyzeOptions, query_options(option, flags), "analyze")
        work = options.work(Operation.ANALYZE, settings.detection)
    except InvalidParameter as exc:
        err.print(f"[red]error:[/red] {escape(exc.message)}")
        raise typer.Exit(2) from None
    if annotate_dir:
        work = dataclasses.replace(work, operation=Operation.ANNOTATE)
    elif not work.attributes:
        work = dataclasses.replace(work, operation=Operation.DETECT)
    files = expand_paths(paths, annotate_dir)
    refuse_a_terminal_on_stdin(err, files)
    if annotate_dir:
        make_output_folder(err, annotate_dir, "--annotate")

    # Kept for the table printed at the end (--json prints each line as it comes, and keeps
    # none), each without its annotated image, which is written as soon as it is made.
    outcomes: list[FileOutcome[FileAnalysis]] = []
    failed = 0
    handled = 0
    stopped: OutputFolderFull | None = None  # the write that stopped the batch (a full disk)
    interrupted: BaseException | None = None  # Ctrl-C or SIGTERM, raised again once reported
    with file_progress(err, len(files)) as progress:
        task = progress.add_task("analysing", total=len(files))
        names = OutputNames(
            files, lambda stem: [annotate_dir / f"{stem}.annotated.jpg"] if annotate_dir else []
        )

        def done(outcome: FileOutcome[FileAnalysis]) -> None:
            nonlocal failed, handled
            analysis = outcome.result
            if annotate_dir and analysis is not None and analysis.annotated is not None:
                target = annotate_dir / f"{names.unique(outcome.path)}.annotated.jpg"
                try:
                    write_output(target, analysis.annotated)
                except FaceflowError as exc:  # the image asked for is not there: the file failed
                    outcome = FileOutcome(outcome.path, None, exc)
                except OutputFolderFull as exc:
                    # Its line too: a reader of the lines saw the batch end without a word on
                    # the file it stopped at.
                    if as_json:
                        error = {"code": OUTPUT_FOLDER_FULL, "message": str(exc)}
                        line = _error_line(outcome.path, error)
                        out.print(line, soft_wrap=True, markup=False, emoji=False)
                    raise
                else:
                    # Kept, the images grew the run by each one's size (≈ 160 KB a 1,000 px
                    # photo: 400 files took 61 MB more than 100), without bound.
                    kept = dataclasses.replace(analysis, annotated=None)
                    outcome = FileOutcome(outcome.path, kept, None)
            failed += outcome.error is not None
            handled += 1
            if not as_json:
                outcomes.append(outcome)
            progress.advance(task)
            progress.refresh()
            if as_json:
                # JSON is data: rich must not read "[...]" in it as markup or ":x:" as emoji.
                out.print(_json_line(outcome), soft_wrap=True, markup=False, emoji=False)

        try:
            run_files(
                only(settings, work.operation),
                files,
                work.request,
                analyze_file,
                workers,
                done,
            )
        except FaceflowError as exc:  # models missing or corrupt: nothing can run
            err.print(f"[red]error:[/red] {escape(exc.message)}")
            raise typer.Exit(2) from None
        except OutputFolderFull as exc:  # the files done are reported; no other is started
            stopped = exc
        except (KeyboardInterrupt, Terminated) as exc:  # the run is unwound: its workers gone
            interrupted = exc
    if not as_json:
        order = {path: index for index, path in enumerate(files)}
        _print_table(out, sorted(outcomes, key=lambda o: order[o.path]), work.attributes)
    if interrupted is not None:
        said_interrupted(err, handled, len(files), failed)
        raise interrupted
    if stopped is not None:
        err.print(
            f"[red]error:[/red] {escape(stopped)}: stopped after {handled} of {len(files)} files"
        )
        raise typer.Exit(1)
    if failed:
        err.print(f"[red]{failed} of {len(files)} files failed[/red]")
        raise typer.Exit(1)

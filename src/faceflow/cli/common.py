"""Pieces every CLI command shares.

The CLI imports only typer at start-up; every command imports what it uses (rich, settings,
the catalogue, the ONNX stack, OpenCV, FastAPI, Redis) when it runs, so ``faceflow --help`` and
the listing commands start in a fraction of a second (tests/cli/test_startup.py keeps it so).
"""

from __future__ import annotations

import contextlib
import errno
import inspect
import logging
import os
import re
import secrets
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from faceflow.config import Settings

P = ParamSpec("P")
R = TypeVar("R")


def reflowed(command: Callable[P, R]) -> Callable[P, R]:
    """``command`` with each paragraph of its docstring on one line. Typer shows a command's help
    with the docstring's line breaks kept, so lines wrapped at 100 columns in the source came
    out broken mid-sentence at any other terminal width; rich wraps one-line paragraphs itself."""
    text = inspect.cleandoc(command.__doc__ or "")
    command.__doc__ = "\n\n".join(" ".join(part.split()) for part in text.split("\n\n"))
    return command


def help_examples(*lines: str) -> str:
    """A command's help epilog: an "Examples:" heading over ``lines``, each a command line as
    typed, indented (tests/cli/test_main.py parses each, and checks none is wrapped at 60
    columns). The leading newline keeps the indent: typer dedents an epilog by the indent its
    lines after the first share."""
    return "\nExamples:\n\n" + "\n".join(f"  {line}" for line in lines)


ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="YAML or TOML settings file (env: FACEFLOW_CONFIG)",
        exists=True,
        dir_okay=False,
    ),
]


def _query_options(example: str) -> Any:
    return typer.Option(
        "--option",
        "-O",
        metavar="NAME=VALUE",
        help="any other option of the matching HTTP endpoint's query, as the API takes it "
        f"(e.g. -O {example}); repeatable",
    )


FaceQueryOptions = Annotated[list[str] | None, _query_options("max_faces=3")]
"""``-O NAME=VALUE`` for the face commands (/v1/analyze's query)."""
PhotoQueryOptions = Annotated[list[str] | None, _query_options("face=2")]
"""``-O NAME=VALUE`` for the ID-photo command (/v1/id-photo's query)."""


def query_options(given: list[str] | None, flags: Mapping[str, object]) -> dict[str, object]:
    """A command's options for its operation's model (:mod:`faceflow.operations`): its own flags'
    values ``flags``, by their query names, and each ``-O NAME=VALUE``, a string as in a query.
    So every option the HTTP API takes is the command's too, with no flag of its own.

    InvalidParameter for an entry without ``=``, or a name given twice or set by a flag (the
    flag is the one way to give it).
    """
    from faceflow.errors import InvalidParameter

    # A flag left unset is left out, as an absent query parameter is: the model's default then
    # applies, and the model can tell it from a value the user chose (a preset beside a size).
    options = {name: value for name, value in flags.items() if value is not None}
    for entry in given or ():
        name, equals, value = entry.partition("=")
        name = name.strip()
        if not equals or not name:
            raise InvalidParameter(f"--option {entry!r}: expected NAME=VALUE")
        if name in flags:
            raise InvalidParameter(f"--option {name}: use --{name.replace('_', '-')}")
        if name in options:
            raise InvalidParameter(f"--option {name}: given twice")
        options[name] = value
    return options


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: object) -> str:
    """``text`` with its control characters but tab and newline written as ``\\xNN``: a file
    name holding ESC [2J cleared the terminal when a table showed it, and ESC ] 0 set its window
    title (terminals take more such commands: a clipboard write, a link), since rich passes ESC
    through."""
    return _CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", str(text))


def escape(text: object) -> str:
    """``text`` as it reads, for a rich markup string: a name, path, URL or error message holding
    ``[/x]`` crashed the command with a MarkupError traceback instead of its message, and
    ``[bold]`` in one was read as a style and dropped from what was shown; control characters
    are shown as :func:`printable` does."""
    from rich.markup import escape as escape_markup

    return escape_markup(printable(text))


def stderr_console(*, highlight: bool = True) -> Console:
    """The console a command writes its errors and notes to. Where standard error is not a
    terminal (a log file, a CI job's capture, ``2>&1 | grep``), a message is one line however
    long: rich wrapped it at 80 columns there, and a grep for the error found half of it."""
    from rich.console import Console

    console = Console(stderr=True, highlight=highlight)
    console.soft_wrap = not console.is_terminal
    return console


def settings_from(config: Path | None, flags: Mapping[str, str] | None = None) -> Settings:
    """Settings from the file (if any) and the environment; exits readably if they are invalid.

    ``flags``: the variables the command set from its own flags (`faceflow serve --port` sets
    ``FACEFLOW_SERVER__PORT``), by the flag that set each; a bad value is named by its flag.
    `faceflow serve --port 99999` said ``server.port (FACEFLOW_SERVER__PORT)``, a variable the
    user never set, and sent them looking for it in their environment."""
    from pydantic import ValidationError

    from faceflow.config import load_settings, settings_problems
    from faceflow.errors import FaceflowError

    err = stderr_console(highlight=False)
    try:
        return load_settings(config)
    except ValidationError as exc:
        sources = "the command's flags, " if flags else ""
        err.print(
            f"[red]invalid settings[/red] ({sources}the config file and FACEFLOW_* variables):"
        )
        for line in settings_problems(exc):
            for variable, flag in (flags or {}).items():
                line = line.replace(f" ({variable}): ", f" ({flag}): ", 1)
            err.print(f"  {line}", markup=False)
    except FaceflowError as exc:
        err.print(f"[red]invalid settings:[/red] {escape(exc.message)}")
    raise typer.Exit(2)


def setup_logging(level: str = "info") -> None:
    """Log records to standard error: rich's columns on a terminal; elsewhere (a log file, a CI
    job's capture, a service manager's journal, ``2>&1 | grep``) one line per record, as the
    server writes them (:mod:`faceflow.logs`). rich's handler set the message in a column of its
    80-column table there, and a warning over 50 characters came out on two lines or more."""
    from rich.console import Console

    console = Console(stderr=True)
    handler: logging.Handler
    if console.is_terminal:
        from rich.logging import RichHandler

        handler = RichHandler(console=console, show_path=False)
    else:
        from faceflow.logs import TextFormatter

        handler = logging.StreamHandler()
        handler.setFormatter(
            TextFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
    logging.basicConfig(level=level.upper(), format="%(message)s", handlers=[handler])


TERMINATED_STATUS = 128 + 15
"""The exit status of a command stopped by SIGTERM: what the shell reports for a process
killed by it (as 130 is Ctrl-C's), so callers and ``timeout`` tell it from a file that failed."""


class Terminated(BaseException):
    """SIGTERM, raised where the command stands (see :func:`faceflow.cli.files.run_files`). A
    BaseException, as KeyboardInterrupt is: only the cleanups that let Ctrl-C through (``finally``,
    ``except BaseException``) see it; the entry point exits with :data:`TERMINATED_STATUS`."""


IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif"})
"""The files a folder given as input is searched for (in any case: ``.JPG``)."""


def said_interrupted(console: Console, handled: int, files: int, failed: int) -> None:
    """The line a batch that Ctrl-C or SIGTERM stopped ends with, after the results of the files
    it finished: it ended without a word (exit 130), the table of what was done never shown."""
    tail = f" ({failed} failed)" if failed else ""
    console.print(f"[red]interrupted[/red] after {handled} of {files} files{tail}")


STDIN = Path("-")
"""The input ``-``: an image read from standard input (``curl … | faceflow analyze -``)."""


def refuse_a_terminal_on_stdin(console: Console, files: Collection[Path]) -> None:
    """Exit 2 if ``-`` is an input and standard input is a terminal: no image is typed there.
    `faceflow analyze -` typed without a pipe waited without a word for what never came (until
    Ctrl-D, then "not an image"); gzip refuses to read compressed data from a terminal so."""
    import sys

    if STDIN in files and sys.stdin is not None and sys.stdin.isatty():
        console.print(
            "[red]error:[/red] - reads an image from standard input, which is a terminal: pipe"
            " one in (curl -s URL | faceflow analyze -) or name the file"
        )
        raise typer.Exit(2)


class OutputNames:
    """Output stems that never collide within one run (a/x.jpg and b/x.png → x, x-2), also where
    the file system ignores case (a/X.jpg and b/x.jpg → X, x-2), each cut to fit every output's
    name in :data:`NAME_MAX` bytes; the image from standard input is ``stdin``.

    With ``inputs`` (the run's files) and ``outputs`` (the files a stem is written to), a stem is
    also passed over when one of its outputs is one of the inputs: `faceflow id-photo photos/
    -o photos/` wrote a.jpg's photo over the input a.cn-1inch.jpg (a photo of its own, or one
    read after it was replaced); it now writes a-2.cn-1inch.jpg."""

    def __init__(
        self,
        inputs: Iterable[Path] = (),
        outputs: Callable[[str], Iterable[Path]] = lambda _stem: (),
    ) -> None:
        self._used: set[str] = set()
        # Per stem, the serial its next search starts from: every one below it is taken (a stem
        # used stays used, an input stays one). Searched from 1 each time, 5,000 inputs of one
        # name tried 12.5 million candidates (3.5 s); now each candidate is tried once.
        self._serial: dict[str, int] = {}
        self._inputs = {identity for path in inputs if (identity := _identity(path)) is not None}
        self._outputs = outputs
        # What the longest output's name adds to its stem (".cn-1inch.report.json").
        self._suffix_bytes = max((len(os.fsencode(path.name)) for path in outputs("")), default=0)

    def unique(self, source: Path) -> str:
        stem = "stdin" if source == STDIN else source.stem
        # Compared as a file system that ignores case would (a USB stick's exFAT or FAT, an SMB
        # share, macOS's APFS): a/Photo.jpg and b/photo.jpg wrote Photo.… and photo.…, one
        # file there, the second photo over the first without a word.
        key = stem.casefold()
        serial = self._serial.get(key, 1)
        candidate = self._fitted(stem, serial)
        while candidate.casefold() in self._used or self._replaces_an_input(candidate):
            serial += 1
            candidate = self._fitted(stem, serial)
        self._used.add(candidate.casefold())
        self._serial[key] = serial + 1
        return candidate

    def _fitted(self, stem: str, serial: int) -> str:
        """``stem`` with its serial (none for the first), its end cut off as far as needed for
        every output's name to fit :data:`NAME_MAX` bytes: a photo named in 240 bytes was made,
        then failed as its report's name, 21 bytes longer, could not be written ("File name
        too long")."""
        tail = "" if serial == 1 else f"-{serial}"
        room = NAME_MAX - self._suffix_bytes - len(tail)
        while stem and len(os.fsencode(stem)) > room:
            stem = stem[:-1]
        return stem + tail

    def _replaces_an_input(self, stem: str) -> bool:
        return bool(self._inputs) and any(
            _identity(path) in self._inputs for path in self._outputs(stem)
        )


NAME_MAX = 255
"""The most bytes of a file's name on the file systems outputs are written to (ext4, XFS, APFS;
NTFS and exFAT take 255 UTF-16 units, which a name of 255 UTF-8 bytes never exceeds)."""


def _identity(path: Path) -> tuple[int, int] | None:
    """The file's device and inode (the same file under any name), None if there is none."""
    if path == STDIN:
        return None
    try:
        info = path.stat()
    except (OSError, ValueError):
        return None
    return info.st_dev, info.st_ino


def read_at_most(path: Path, max_bytes: int) -> bytes:
    """Up to ``max_bytes`` + 1 bytes of the file at ``path`` (one more, so a caller can tell a
    file over the limit without reading it whole); OSError if it cannot be read.

    Opened without waiting for a FIFO's writer, then read as blocking: a FIFO that has none reads
    as its end at once (one hung the command in ``open``), while a pipe with a writer
    (``<(curl …)``) is read as any file."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    os.set_blocking(descriptor, True)
    with os.fdopen(descriptor, "rb") as file:
        return file.read(max_bytes + 1)


TEMP_PREFIX = ".faceflow-"
TEMP_SUFFIX = ".tmp"
"""A file being written is ``.faceflow-<random>.tmp`` in its output's folder (hidden: a folder
read as input passes it over) until it is renamed to its output's name."""

STALE_TEMP_S = 3600.0
"""A temporary file older than this is one a killed run left (a write takes well under a
second): :func:`make_output_folder` removes it."""


def make_output_folder(console: Console, folder: Path, option: str) -> None:
    """Make the folder ``option`` names for a command's outputs, before any work; exit 2 with the
    reason if it cannot be made (under a file, no permission, a device or a FIFO of that name):
    that was a NotADirectoryError or PermissionError traceback, exit 1.

    A folder that exists but takes no file (no write permission, a read-only mount) is refused
    the same way, by creating a file in it and removing it: every photo of the batch was made,
    then each failed to be written ("Read-only file system", exit 1), where the same folder not
    yet made was refused at once.

    The temporary files a run killed mid-write left there (SIGKILL, the OOM killer, a power cut:
    see :func:`write_outputs`) are removed once over an hour old, so that they do not pile up;
    a younger one may be another run's, still being written."""
    import tempfile

    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX):
            pass
    except FileExistsError:
        # A device or a FIFO in its place (click's file_okay=False refuses only a regular file):
        # mkdir's own words, "File exists", read as if the folder were fine.
        reason = "exists and is not a folder"
    except OSError as exc:
        reason = exc.strerror or str(exc)
    else:
        _remove_stale_temps(folder)
        return
    console.print(f"[red]error:[/red] {option} {escape(folder)}: {escape(reason)}")
    raise typer.Exit(2) from None


def _remove_stale_temps(folder: Path) -> None:
    import time

    oldest = time.time() - STALE_TEMP_S
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if not (entry.name.startswith(TEMP_PREFIX) and entry.name.endswith(TEMP_SUFFIX)):
                    continue
                with contextlib.suppress(OSError):  # gone already, or not ours to remove
                    if entry.is_file(follow_symlinks=False) and (
                        entry.stat(follow_symlinks=False).st_mtime < oldest
                    ):
                        Path(entry.path).unlink()
    except OSError:  # a folder that cannot be listed is still one that can be written to
        pass


class OutputFolderFull(Exception):
    """An output could not be written for a reason every later one shares: the disk or the
    user's quota full, the file system gone read-only. It stops the batch (see
    :func:`write_output`); ``str()`` names the file and the reason."""


_FOLDER_WIDE = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


def write_output(target: Path, data: bytes) -> None:
    """Write one of the files a command was asked for: :func:`write_outputs` of that one file."""
    write_outputs([(target, data)])


def write_outputs(files: Sequence[tuple[Path, bytes]]) -> None:
    """Write the files of one input (an ID photo, its sheet, then its report, last), each whole
    or not at all under its name, old or new: a reader never sees a file half-written.

    Each is written to a temporary file beside it (``.faceflow-<random>.tmp``, created anew,
    with the mode a new file gets from the umask), flushed to the disk (fsync: ≈ 5 ms a file,
    0.8 % of an ID-photo batch's time, 6 % of an ``analyze --annotate``'s), then renamed over its
    name. The folder is not flushed: after a power cut a name holds the old file or the new,
    each whole. Written in place, a SIGKILL,
    the OOM killer or a power cut mid-write left a truncated JPEG under the photo's name, read
    as finished by whatever came next (an upload script); and a run cut short had already
    truncated the good file of the run before. An output in place of a link replaces the link:
    it is no longer written through it.

    The rule between the files: the last one (the report) is the mark that the others are
    whole and its own. Its old version is removed before any file is renamed, and it is renamed
    after all of them. A run killed at any point leaves either the old files with their old
    report, or files without a report, never a new photo with an old report or the other way
    round: a photo or sheet without its report is unfinished. The run after writes them again.

    InvalidParameter, naming the file and why, if one cannot be written (a folder in its place,
    no permission), so that its input fails alone as any other error of it does: an OSError
    ended the batch in a traceback, with the files after it never made. Nothing of the input is
    then left: not one of its new files (a photo without its report), nor a temporary file, also
    when a Ctrl-C (KeyboardInterrupt) or SIGTERM stops the writing.

    A full disk or quota, or a file system gone read-only, is :class:`OutputFolderFull`, which
    stops the batch: every file after it was read and worked through (a photo ≈ 1 s of a core),
    then failed the same way, 5,000 photos an hour of work thrown away one by one."""
    from faceflow.errors import InvalidParameter

    staged: list[tuple[Path, Path]] = []  # (temporary file, its output)
    renamed: list[Path] = []
    current = files[0][0] if files else Path()
    try:
        for target, data in files:
            current = target
            staged.append((_write_temp(target.parent, data), target))
        if len(staged) > 1:  # a file alone is replaced by its rename, old or new at any time
            current = staged[-1][1]
            current.unlink(missing_ok=True)
        for temp, target in staged:
            current = target
            renamed.append(target)  # first: an interrupt just after the rename finds it here
            temp.replace(target)
    except BaseException as exc:
        # Every file in place (an interrupt after the last rename) is kept; else not one.
        if len(staged) < len(files) or staged[-1][0].exists():
            for temp, target in staged:
                with contextlib.suppress(OSError):
                    if temp.exists():
                        temp.unlink()
                    elif target in renamed:
                        target.unlink()
        if isinstance(exc, OSError):
            message = f"cannot write {current}: {exc.strerror or exc}"
            if exc.errno in _FOLDER_WIDE:
                raise OutputFolderFull(message) from None
            raise InvalidParameter(message) from None
        raise


def _write_temp(folder: Path, data: bytes) -> Path:
    """``data`` in a new temporary file in ``folder``, flushed to the disk (removed if it
    cannot be written whole)."""
    while True:
        temp = folder / f"{TEMP_PREFIX}{secrets.token_hex(8)}{TEMP_SUFFIX}"
        try:
            # 0o666 less the umask: what open("wb") gave a new output.
            descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        except FileExistsError:  # another run's, by a 1 in 2**64 chance
            continue
        break
    try:
        with os.fdopen(descriptor, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return temp


def table_width(console: Console) -> int:
    """The width :func:`print_table` lays a table out at: the terminal's or, piped, at least 200
    columns, so that it stays readable (rich assumes 80 for a pipe)."""
    return console.width if console.is_terminal else max(console.width, 200)


def print_table(console: Console, table: object) -> None:
    """Print a table at :func:`table_width` (``print(width=)`` cannot go past the console's own
    width, so a pipe's console is widened while it prints; a terminal's is left to follow the
    terminal)."""
    if console.is_terminal:
        console.print(table)
        return
    width = console.width
    console.width = table_width(console)
    try:
        console.print(table)
    finally:
        console.width = width


def file_progress(console: Console, files: int) -> Progress:
    """The progress bar of a command working through files (hidden for a single file, and where
    standard error is not a terminal).

    Redrawn by the command as files complete (``advance`` then ``refresh``), never by a thread of
    its own: with one, `faceflow analyze --workers` could not fork its workers (see
    :func:`faceflow.cli.files.fork_refusal`)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        auto_refresh=False,
        # Drawn only on a terminal: elsewhere rich draws no bar but ends it with an empty line.
        disable=files < 2 or not console.is_terminal,
    )

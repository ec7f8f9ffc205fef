"""`faceflow analyze` end to end through the command line, on the real models and photos."""

from __future__ import annotations

import errno
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer.main
from PIL import Image
from typer.testing import CliRunner, Result

from faceflow.cli.analyze import expand_paths
from faceflow.cli.main import app
from faceflow.config import MIN_FACE_SCORE, ModelSettings
from faceflow.runtime import tasks
from faceflow.runtime.context import WorkerContext
from faceflow.runtime.tasks import analyze_file
from tests.cli.terminal import NARROW_TERMINAL, plain_lines
from tests.fixtures.images import load_rgb
from tests.fixtures.models import PhotoFacts

# Wide enough that rich never folds a file name in the table.
WIDE = {"COLUMNS": "250"}
PHOTOS = ["two_people.jpg", "obama_small.jpg", "coffee.jpg"]

# The in-process commands load their models once for the module (tests/cli/conftest.py).
pytestmark = pytest.mark.usefixtures("commands_load_models_once")


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(app, ["analyze", *map(str, args)], env=WIDE)


def json_lines(result: Result) -> dict[str, dict[str, Any]]:
    """The --json output, one parsed object per file, by file name."""
    parsed = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    by_name = {Path(entry["file"]).name: entry for entry in parsed}
    assert len(by_name) == len(parsed)
    return by_name


def comparable(entry: dict[str, Any]) -> dict[str, Any]:
    """A result without its timings, which differ from run to run."""
    return {key: value for key, value in entry.items() if key != "timings_ms"}


@pytest.fixture
def photo_folder(tmp_path: Path, testdata: Path, pulled_model_settings: ModelSettings) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in PHOTOS:
        shutil.copyfile(testdata / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def testdata_json(testdata: Path, pulled_model_settings: ModelSettings) -> Result:
    """`analyze --json` over the whole test photo folder, once."""
    return run("--json", testdata)


def test_table_lists_every_file_with_its_faces(photo_folder: Path) -> None:
    result = run(photo_folder)

    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if "photos" in line]
    assert [Path(line.split("│")[1].strip()).name for line in rows] == sorted(PHOTOS)
    faces_column = {
        Path(line.split("│")[1].strip()).name: line.split("│")[2].strip() for line in rows
    }
    assert faces_column == {"coffee.jpg": "0", "obama_small.jpg": "1", "two_people.jpg": "2"}
    assert "M " in result.stdout  # "1 M 47"-style labels


def test_json_lines_match_the_face_counts_of_every_test_photo(
    testdata_json: Result, photo_facts: dict[str, PhotoFacts]
) -> None:
    assert testdata_json.exit_code == 0, testdata_json.output
    results = json_lines(testdata_json)

    assert set(results) == set(photo_facts)
    for name, entry in results.items():
        facts = photo_facts[name]
        assert facts.faces_min <= entry["face_count"] <= facts.faces_max, name
        assert entry["face_count"] == len(entry["faces"])
        assert all("age" in face and "gender" in face for face in entry["faces"])


def test_annotate_writes_one_image_per_file_at_the_input_size(
    photo_folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "annotated"

    result = run("--annotate", out, photo_folder)

    assert result.exit_code == 0, result.output
    written = sorted(path.name for path in out.iterdir())
    assert written == sorted(f"{Path(name).stem}.annotated.jpg" for name in PHOTOS)
    for name in PHOTOS:
        with Image.open(out / f"{Path(name).stem}.annotated.jpg") as drawn:
            assert drawn.format == "JPEG"
            assert drawn.size == load_rgb(photo_folder / name).size


def test_an_annotated_image_that_cannot_be_written_fails_its_file_alone(
    photo_folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "annotated"
    (out / "obama_small.annotated.jpg").mkdir(parents=True)  # a folder in its image's place

    result = run(
        "--json",
        "--annotate",
        out,
        photo_folder / "obama_small.jpg",
        photo_folder / "two_people.jpg",
    )

    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # a message, not a traceback
    entries = json_lines(result)
    assert entries["obama_small.jpg"]["error"]["code"] == "invalid_parameter"
    assert "cannot write" in entries["obama_small.jpg"]["error"]["message"]
    assert entries["two_people.jpg"]["face_count"] == 2
    assert sorted(path.name for path in out.iterdir()) == [
        "obama_small.annotated.jpg",  # the folder
        "two_people.annotated.jpg",
    ]


def test_a_full_disk_stops_the_batch_at_the_first_image_it_cannot_take(
    photo_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every file after it was read and analysed, then failed as it had ("No space left on
    # device"): thousands of photos worked through for nothing. The disk fills as the first
    # image is flushed to it.
    def full(_descriptor: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    out = tmp_path / "annotated"

    result = run(
        "--json",
        "--annotate",
        out,
        photo_folder / "obama_small.jpg",
        photo_folder / "two_people.jpg",
    )

    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # a message, not a traceback
    assert "obama_small.annotated.jpg: No space left on device" in result.stderr
    assert "stopped after 0 of 2 files" in result.stderr
    # The file it stopped at has its line (a reader of the lines saw the batch end without a
    # word on it); two_people.jpg, never analysed, has none.
    [line] = result.stdout.splitlines()
    assert json.loads(line) == {
        "file": str(photo_folder / "obama_small.jpg"),
        "error": {
            "code": "output_folder_full",
            "message": f"cannot write {out / 'obama_small.annotated.jpg'}: No space left on device",
        },
    }
    assert list(out.iterdir()) == []  # nothing half-written, no temporary file


def test_an_image_named_near_the_file_systems_limit_is_annotated_under_a_cut_name(
    photo_folder: Path, tmp_path: Path
) -> None:
    # Its name fits the file system; with ".annotated.jpg" after it, it did not, and it failed.
    long_name = photo_folder / ("x" * 250 + ".jpg")
    shutil.copyfile(photo_folder / "obama_small.jpg", long_name)
    out = tmp_path / "annotated"

    result = run("--annotate", out, long_name)

    assert result.exit_code == 0, result.output
    assert [path.name for path in out.iterdir()] == ["x" * 241 + ".annotated.jpg"]


@pytest.mark.parametrize(
    ("attributes", "keys"),
    [("age", {"age"}), ("gender", {"gender"}), ("none", set()), ("age,gender", {"age", "gender"})],
)
def test_attributes_option_selects_what_is_computed(
    photo_folder: Path, attributes: str, keys: set[str]
) -> None:
    result = run("--json", "--attributes", attributes, photo_folder / "two_people.jpg")

    assert result.exit_code == 0, result.output
    [entry] = json_lines(result).values()
    assert entry["face_count"] == 2
    for face in entry["faces"]:
        assert {"age", "gender"} & set(face) == keys


@pytest.mark.parametrize(
    ("attributes", "columns"),
    [
        ("none", ["file", "faces", "face", "score", "box (x1, y1, x2, y2)"]),
        ("age", ["file", "faces", "face", "score", "age", "box (x1, y1, x2, y2)"]),
        ("age,gender", ["file", "faces", "face", "score", "gender", "age", "box (x1, y1, x2, y2)"]),
    ],
)
def test_the_table_shows_only_the_attributes_asked_for(
    photo_folder: Path, attributes: str, columns: list[str]
) -> None:
    # `--attributes none` showed a gender and an age column, empty on every row.
    result = run("--attributes", attributes, photo_folder / "two_people.jpg")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    [header] = [[cell.strip() for cell in line.split("┃")[1:-1]] for line in lines if "┃" in line]
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in lines if "│" in line]
    assert header == columns
    assert len(rows) == 2
    assert all(len(row) == len(columns) and all(row[3:]) for row in rows)


def test_any_option_of_the_api_is_taken_with_dash_o(photo_folder: Path) -> None:
    result = run("--json", "-O", "max_faces=1", photo_folder / "two_people.jpg")

    assert result.exit_code == 0, result.output
    [entry] = json_lines(result).values()
    assert entry["face_count"] == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["-O", "max_faces"], "NAME=VALUE"),
        (["-O", "max_faces=1", "-O", "max_faces=2"], "given twice"),
        (["-O", "threshold=0.5"], "use --threshold"),
        (["-O", "format=png"], "format"),  # an annotate option, not analyze's
        (["-O", "max_faces=0"], "max_faces"),
        (["-O", "[/x]"], "--option '[/x]'"),  # markup in a message: shown, not a traceback
        (["-O", "[bold]x=1"], "[bold]x"),
    ],
)
def test_a_bad_dash_o_option_is_a_usage_error(
    photo_folder: Path, options: list[str], message: str
) -> None:
    result = run(*options, photo_folder)

    assert result.exit_code == 2, result.output
    assert message in result.stderr


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (["--attributes", "mood"], "'--attributes': unknown attribute 'mood'"),
        (["--attributes", "agee"], "(did you mean 'age'?); allowed: age, gender (or none)"),
        (["--threshold", "2"], "'--threshold'"),
        (["--threshold", "0.2"], "'--threshold'"),
    ],
)
def test_a_bad_flag_value_is_refused_by_the_parser(
    photo_folder: Path, options: list[str], said: str
) -> None:
    # Before the command runs: no settings read, no model loaded (tests/cli/test_startup.py).
    result = run(*options, photo_folder)

    assert result.exit_code == 2, result.output
    message = " ".join(result.stderr.replace("│", " ").split())  # out of typer's box
    assert "Invalid value for" in message
    assert said in message


def test_the_threshold_flag_takes_the_bounds_the_api_takes() -> None:
    # Repeated in the flag so that the parser checks it without importing the settings.
    command: Any = typer.main.get_command(app)
    [param] = [p for p in command.commands["analyze"].params if p.name == "threshold"]

    assert (param.min, param.max) == (MIN_FACE_SCORE, 1.0)


def test_the_threshold_help_states_the_bound_the_api_applies() -> None:
    # The help is written before pydantic is imported (the CLI's start-up), so it repeats the
    # bound: this keeps the two together.
    assert f"{MIN_FACE_SCORE} to 1" in "\n".join(plain_lines(run("--help").output))


def test_a_high_threshold_finds_fewer_faces(testdata: Path, testdata_json: Result) -> None:
    strict = run("--json", "--threshold", "0.99", testdata)

    assert strict.exit_code == 0, strict.output
    default_total = sum(e["face_count"] for e in json_lines(testdata_json).values())
    strict_total = sum(e["face_count"] for e in json_lines(strict).values())
    assert strict_total < default_total


def test_hidden_files_and_folders_under_a_folder_are_passed_over_but_not_when_named(
    photo_folder: Path,
) -> None:
    (photo_folder / "._obama_small.jpg").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (photo_folder / ".thumbnails").mkdir()
    shutil.copyfile(photo_folder / "coffee.jpg", photo_folder / ".thumbnails" / "coffee.jpg")

    folder = run("--json", "--attributes", "none", photo_folder)
    named = run("--json", "--attributes", "none", photo_folder / "._obama_small.jpg")

    assert folder.exit_code == 0, folder.output
    assert set(json_lines(folder)) == set(PHOTOS)
    assert named.exit_code == 1
    assert "unsupported_format" in named.stdout


def test_a_bad_file_fails_alone_with_its_code_and_exit_code_1(photo_folder: Path) -> None:
    (photo_folder / "notes.jpg").write_text("shopping list, not a photo\n")
    missing_file = photo_folder / "gone.jpg"

    result = run("--json", photo_folder, missing_file)

    assert result.exit_code == 1
    results = json_lines(result)
    assert results["notes.jpg"]["error"]["code"] == "unsupported_format"
    assert results["gone.jpg"]["error"]["code"] == "invalid_parameter"
    assert {name: results[name]["face_count"] for name in PHOTOS} == {
        "two_people.jpg": 2,
        "obama_small.jpg": 1,
        "coffee.jpg": 0,
    }
    assert "2 of 5 files failed" in result.stderr


def test_a_batch_writes_nothing_to_a_stderr_that_is_not_a_terminal(photo_folder: Path) -> None:
    # The progress bar, hidden there, still wrote an empty line when it stopped: the one line of
    # an error after a batch (its output lost, a file failed) came second, after a blank.
    result = run("--json", photo_folder)

    assert result.exit_code == 0, result.output
    assert result.stderr == ""


def test_a_bad_file_is_reported_in_the_table_with_its_code(photo_folder: Path) -> None:
    (photo_folder / "notes.jpg").write_text("shopping list, not a photo\n")

    result = run(photo_folder)

    assert result.exit_code == 1
    [row] = [line for line in result.stdout.splitlines() if "notes.jpg" in line]
    assert "unsupported_format" in row
    assert all(name in result.stdout for name in PHOTOS)


def test_a_narrow_terminal_gets_every_row_within_its_width(
    photo_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (photo_folder / "notes.jpg").write_text("shopping list, not a photo\n")
    monkeypatch.chdir(photo_folder)

    result = CliRunner().invoke(app, ["analyze", "."], env=NARROW_TERMINAL)

    assert result.exit_code == 1, result.output
    lines = plain_lines(result.stdout)
    assert max(map(len, lines)) <= 80, "\n".join(lines)
    # Each photo's row keeps its name whole; the box column is what gave way.
    names = {line.split("│")[1].strip() for line in lines if line.startswith("│ ")}
    assert set(PHOTOS) <= names
    assert not any("box (x1" in line for line in lines)
    [failure] = [line for line in lines if line.startswith("notes.jpg")]
    assert "unsupported_format: " in failure


def test_piped_output_keeps_every_column_whatever_the_width(photo_folder: Path) -> None:
    # rich assumes 80 columns for a pipe: the table is laid out wider and must not be cropped.
    result = CliRunner().invoke(app, ["analyze", str(photo_folder)], env={"COLUMNS": "80"})

    assert result.exit_code == 0, result.output
    [row] = [line for line in result.stdout.splitlines() if "obama_small.jpg" in line]
    assert "box (x1, y1, x2, y2)" in result.stdout
    assert row.rstrip().endswith("│")
    assert len(row.split("│")) == 9  # seven cells between eight borders


def test_file_names_are_printed_verbatim(photo_folder: Path) -> None:
    for odd in ("team[red]photo.jpg", ":smile:.jpg"):
        shutil.copyfile(photo_folder / "obama_small.jpg", photo_folder / odd)

    as_json = run("--json", "--attributes", "none", photo_folder)
    as_table = run("--attributes", "none", photo_folder)

    assert {"team[red]photo.jpg", ":smile:.jpg"} <= set(json_lines(as_json))
    assert "team[red]photo.jpg" in as_table.stdout
    assert ":smile:.jpg" in as_table.stdout


def test_json_names_a_file_of_bytes_not_utf8_in_strict_json(
    tmp_path: Path, testdata: Path, pulled_model_settings: ModelSettings
) -> None:
    import pydantic_core

    photo = Path(os.fsdecode(bytes(tmp_path) + b"/bad\xff.jpg"))
    shutil.copyfile(testdata / "obama_small.jpg", photo)
    missing = Path(os.fsdecode(bytes(tmp_path) + b"/gone\xfe\xe5\xbc\xa0.jpg"))

    result = run("--json", photo, missing)

    # json.dumps wrote Python's surrogate escape, "bad\udcff.jpg": no character, refused by a
    # strict parser ("lone leading surrogate in hex escape").
    found, gone = [pydantic_core.from_json(line) for line in result.stdout.splitlines()]
    assert (found["file"], found["face_count"]) == (f"{tmp_path}/bad\\xff.jpg", 1)
    assert gone["file"] == f"{tmp_path}/gone\\xfe张.jpg"  # valid UTF-8 kept as it is
    assert gone["error"]["message"] == f"cannot read {gone['file']}: No such file or directory"


def test_a_terminal_escape_in_a_file_name_is_shown_not_obeyed(photo_folder: Path) -> None:
    clears = "a\x1b[2Jb.jpg"  # ESC [2J: clear the screen
    shutil.copyfile(photo_folder / "obama_small.jpg", photo_folder / clears)
    (photo_folder / "t\x1b]0;title\x07.jpg").write_bytes(b"not an image")  # set window title

    as_table = run("--attributes", "none", photo_folder)
    as_json = run("--json", "--attributes", "none", photo_folder)

    assert as_table.exit_code == 1, as_table.output
    assert "\x1b" not in as_table.output
    assert "a\\x1b[2Jb.jpg" in as_table.stdout
    assert "t\\x1b]0;title\\x07.jpg" in as_table.stdout
    assert clears in json_lines(as_json)  # JSON has the name itself, escaped as JSON does


FACEFLOW = Path(sys.executable).parent / "faceflow"


def in_order(stdout: str) -> list[dict[str, Any]]:
    """The --json lines as printed, without their timings."""
    return [comparable(json.loads(line)) for line in stdout.splitlines() if line.strip()]


@pytest.mark.slow
def test_a_dash_reads_the_image_from_standard_input_beside_files(
    testdata: Path, testdata_json: Result, tmp_path: Path
) -> None:
    piped = (testdata / "two_people.jpg").read_bytes()
    annotated = tmp_path / "annotated"

    result = CliRunner().invoke(
        app,
        ["analyze", "--json", "--annotate", str(annotated), "-", str(testdata / "obama.jpg")],
        input=piped,
        env=WIDE,
    )

    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["file"] for line in lines] == ["-", str(testdata / "obama.jpg")]
    expected = json_lines(testdata_json)["two_people.jpg"]
    assert comparable({**lines[0], "file": ""}) == comparable({**expected, "file": ""})
    assert sorted(path.name for path in annotated.iterdir()) == [
        "obama.annotated.jpg",
        "stdin.annotated.jpg",
    ]


def test_two_workers_give_the_same_results_as_one(testdata: Path, testdata_json: Result) -> None:
    # In this process, which may have threads of its own: forked or spawned workers.
    pooled = run("--json", "--workers", "2", testdata)

    assert pooled.exit_code == 0, pooled.output
    assert in_order(pooled.stdout) == in_order(testdata_json.stdout)


@pytest.mark.slow
def test_two_forked_workers_print_the_same_lines_in_the_same_order_as_one(
    testdata: Path, testdata_json: Result
) -> None:
    # The installed command, a process of its own: it forks its second worker.
    forked = subprocess.run(
        [str(FACEFLOW), "analyze", "--json", "--workers", "2", str(testdata)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert forked.returncode == 0, forked.stderr
    assert in_order(forked.stdout) == in_order(testdata_json.stdout)


def children_of(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.mark.slow
def test_ctrl_c_stops_the_command_and_its_forked_worker(tmp_path: Path, testdata: Path) -> None:
    photos = sorted(testdata.glob("*.jpg"))
    for copy in range(20):  # enough work that Ctrl-C comes mid-batch
        for photo in photos:
            shutil.copyfile(photo, tmp_path / f"{copy}-{photo.name}")
    # Its own process group, as a shell gives a command: Ctrl-C signals the whole group. And
    # SIGINT at its default, as an interactive shell gives it: pytest-xdist's workers ignore it,
    # which a command started from them would inherit (and then rightly ignore Ctrl-C).
    command = subprocess.Popen(
        [str(FACEFLOW), "analyze", "--json", "--workers", "2", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert command.stdout is not None
        command.stdout.readline()  # a first result: the models are loaded, the worker forked
        workers = children_of(command.pid)
        assert workers

        os.killpg(command.pid, signal.SIGINT)
        _stdout, stderr = command.communicate(timeout=60)

        assert command.returncode != 0
        assert b"Traceback" not in stderr, stderr.decode()
        deadline = time.monotonic() + 60  # reaped by the command before it exits: at once
        while any(Path(f"/proc/{pid}").exists() for pid in workers):
            assert time.monotonic() < deadline, "a forked worker outlived the command"
            time.sleep(0.05)
    finally:
        if command.poll() is None:
            command.kill()
            command.wait(timeout=60)


@pytest.mark.slow
@pytest.mark.parametrize("to_group", [False, True], ids=["kill", "timeout"])
def test_sigterm_stops_the_command_and_its_forked_worker_as_ctrl_c_does(
    tmp_path: Path, testdata: Path, to_group: bool
) -> None:
    """`kill PID` (the command alone) or `timeout` (its whole group): exit 143, as a shell
    reports a process SIGTERM ended, after the run's cleanups; no traceback. Killed where it
    stood before (-15), its forked worker ran on, orphaned, to the end of its file."""
    photos = sorted(testdata.glob("*.jpg"))
    for copy in range(20):  # enough work that SIGTERM comes mid-batch
        for photo in photos:
            shutil.copyfile(photo, tmp_path / f"{copy}-{photo.name}")
    command = subprocess.Popen(
        [str(FACEFLOW), "analyze", "--json", "--workers", "2", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert command.stdout is not None
        command.stdout.readline()  # a first result: the models are loaded, the worker forked
        workers = children_of(command.pid)
        assert workers

        if to_group:
            os.killpg(command.pid, signal.SIGTERM)
        else:
            os.kill(command.pid, signal.SIGTERM)
        _stdout, stderr = command.communicate(timeout=60)

        assert command.returncode == 143, stderr.decode()
        assert b"Traceback" not in stderr, stderr.decode()
        assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]  # reaped already
    finally:
        if command.poll() is None:
            command.kill()
            command.wait(timeout=60)


def test_an_annotate_folder_that_cannot_be_made_is_a_usage_error(
    tmp_path: Path, testdata: Path
) -> None:
    (tmp_path / "a-file").write_text("")

    result = run("--annotate", tmp_path / "a-file" / "out", testdata / "obama_small.jpg")

    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # a message, not a traceback
    assert "--annotate" in result.stderr
    assert "Not a directory" in result.stderr


def test_an_annotated_image_never_replaces_an_input_of_the_run(photo_folder: Path) -> None:
    named_as_output = photo_folder / "coffee.annotated.jpg"
    shutil.copyfile(photo_folder / "two_people.jpg", named_as_output)
    before = named_as_output.read_bytes()

    result = run("--annotate", photo_folder, photo_folder)

    assert result.exit_code == 0, result.output
    assert named_as_output.read_bytes() == before
    assert (photo_folder / "coffee-2.annotated.jpg").is_file()


def test_a_glob_never_descends_into_a_link_back_up_the_tree(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    (photos / "2024").mkdir(parents=True)
    (photos / "2024" / "a.jpg").write_bytes(b"")
    (photos / "2024" / "all").symlink_to("..")  # glob.glob: a.jpg 41 times over

    assert expand_paths([f"{photos}/**/*.jpg"]) == [photos / "2024" / "a.jpg"]


def test_one_file_under_several_names_is_found_once_under_the_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Relative and absolute, or through a link, the same photo was analysed twice.
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    for name in ("a.jpg", "b.jpg", "sub/c.jpg"):
        (photos / name).write_bytes(b"")
    (tmp_path / "link.jpg").symlink_to(photos / "a.jpg")
    (tmp_path / "linked").symlink_to(photos / "sub")
    (photos / "sub" / "d.jpg").symlink_to("../b.jpg")  # found by the walk too
    monkeypatch.chdir(tmp_path)

    found = expand_paths(
        [
            "photos/a.jpg",
            str(photos / "a.jpg"),
            "link.jpg",
            "./photos/../photos/a.jpg",
            "linked/c.jpg",
            str(photos),
            "photos/*.jpg",
            "-",
            "-",
        ]
    )

    assert found == [
        Path("photos/a.jpg"),
        Path("linked/c.jpg"),
        photos / "b.jpg",
        Path("-"),
    ]
    # Distinct files keep distinct entries, whatever their names.
    assert expand_paths(["photos/a.jpg", "photos/b.jpg", "nope.jpg", "photos/sub"]) == [
        Path("photos/a.jpg"),
        Path("photos/b.jpg"),
        Path("nope.jpg"),
        Path("photos/sub/c.jpg"),
    ]


@pytest.mark.parametrize(
    "pattern",
    ["**/*.jpg", "**", "*/**/*.jpg", "**/b*/*.png", "2024/**/a**.jpg", ".hidden/**/*.jpg", "*.gif"],
)
def test_a_glob_without_links_matches_what_glob_glob_matches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pattern: str
) -> None:
    for name in [
        "a.jpg",
        "2024/a.jpg",
        "2024/b/c.png",
        "2024/b/d/e.jpg",
        ".hidden/f.jpg",
        "2024/.g.jpg",
        "2024/.h/i.jpg",
        "j.gif",
    ]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    matched = [Path(match) for match in sorted(glob.glob(pattern, recursive=True))]
    # The folders it matches (a last ``**`` matches every one) are searched for their photos,
    # each found once: the photos glob.glob matches below them too.
    expected = [match for match in matched if not match.is_dir()]

    assert expand_paths([pattern]) == expected
    # The same from the root (which glob.glob names too for a last ``**``).
    assert expand_paths([str(tmp_path / pattern)]) == [tmp_path / m for m in expected]


def test_a_folder_a_glob_matches_is_searched_as_a_named_one_is(tmp_path: Path) -> None:
    # As the shell's expansion of the pattern would name it: read as a file, each folder failed
    # ("Is a directory") and the photos in it were never seen.
    for name in ("a.jpg", "2024/b.jpg", "2024/notes.txt", "2024/.c.jpg", "empty/notes.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")

    assert expand_paths([f"{tmp_path}/*"]) == [tmp_path / "2024" / "b.jpg", tmp_path / "a.jpg"]
    # A glob whose folders hold no photo matches nothing: it is kept, to be reported.
    assert expand_paths([f"{tmp_path}/e*"]) == [Path(f"{tmp_path}/e*")]


def test_a_folder_with_no_image_file_is_kept_to_be_reported(tmp_path: Path) -> None:
    # Named, and holding no photo of the formats read (the wrong folder, or HEIC photos), it is
    # an input that fails: the run said nothing and exited 0, as if every photo were done.
    photos, empty = tmp_path / "photos", tmp_path / "heic"
    for name in ("photos/a.jpg", "heic/IMG_0001.HEIC", "heic/.thumb.jpg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")

    assert expand_paths([str(empty), str(photos)]) == [empty, photos / "a.jpg"]
    # A folder whose photos were all found already is not one without any.
    assert expand_paths([str(photos), str(photos)]) == [photos / "a.jpg"]


def test_a_folder_with_no_image_file_fails_saying_so(tmp_path: Path, testdata: Path) -> None:
    empty = tmp_path / "heic"
    empty.mkdir()
    (empty / "IMG_0001.HEIC").write_bytes(b"")

    result = run("--json", empty, testdata / "obama_small.jpg")

    assert result.exit_code == 1, result.output
    lines = json_lines(result)
    assert lines["heic"]["error"] == {
        "code": "invalid_parameter",
        "message": f"no image file under {empty} (looked for .gif, .jpeg, .jpg, .png, .webp)",
    }
    assert lines["obama_small.jpg"]["face_count"] == 1
    assert "1 of 2 files failed" in result.stderr


def test_the_output_folder_is_passed_over_by_a_folder_or_glob_above_it(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    for name in ("a.jpg", "sub/b.jpg", "out/a.cn-1inch.jpg", "outer/c.jpg"):
        (photos / name).parent.mkdir(parents=True, exist_ok=True)
        (photos / name).write_bytes(b"")
    out = photos / "out"
    inputs = [photos / "a.jpg", photos / "outer" / "c.jpg", photos / "sub" / "b.jpg"]
    written = out / "a.cn-1inch.jpg"

    assert expand_paths([str(photos)], out) == inputs
    assert expand_paths([str(photos)], photos / "sub" / ".." / "out") == inputs
    assert expand_paths([f"{photos}/**/*.jpg"], out) == inputs
    assert expand_paths([str(photos)]) == sorted([*inputs, written])
    # Named directly, or by a folder or a glob inside it: read, as asked.
    assert expand_paths([str(written)], out) == [written]
    assert expand_paths([str(out)], out) == [written]
    assert expand_paths([f"{out}/*.jpg"], out) == [written]


def test_a_name_too_long_is_kept_for_its_read_to_report(tmp_path: Path) -> None:
    # os.stat's ENAMETOOLONG from Path.is_dir ended the command in a traceback.
    name = str(tmp_path / ("x" * 300 + ".jpg"))

    assert expand_paths([name]) == [Path(name)]


def test_a_folder_past_the_systems_path_length_is_kept_for_its_read_to_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Made a level at a time from inside (a path of over 4,096 bytes cannot be named whole):
    # rglob raised ENAMETOOLONG from scandir, a traceback, the photos above never read.
    (tmp_path / "a.jpg").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    for _ in range(25):
        os.mkdir("d" * 200)
        os.chdir("d" * 200)
    Path("deep.jpg").write_bytes(b"")

    found = expand_paths([str(tmp_path)])

    assert found[0] == tmp_path / "a.jpg"
    assert len(found) == 2
    assert len(str(found[1])) > os.pathconf("/", "PC_PATH_MAX")
    assert set(found[1].relative_to(tmp_path).parts) == {"d" * 200}


def test_a_folder_without_read_permission_is_kept_for_its_read_to_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # rglob passed over it without a word: its photos were missing from the run. The refusal is
    # injected where the walk lists a folder (root, as CI runs, reads a folder of mode 0).
    (tmp_path / "a.jpg").write_bytes(b"")
    private = tmp_path / "private"
    private.mkdir()
    (private / "b.jpg").write_bytes(b"")
    listed = os.scandir

    def scandir(path: str | os.PathLike[str]) -> Any:
        if Path(path) == private:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return listed(path)

    monkeypatch.setattr(os, "scandir", scandir)

    assert expand_paths([str(tmp_path)]) == [tmp_path / "a.jpg", private]


@pytest.mark.parametrize("output", [[], ["--json"]], ids=["table", "json"])
def test_annotated_images_are_not_held_once_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, output: list[str]
) -> None:
    """A batch's memory does not grow by its annotated images: each is let go once written
    (they were all kept to the end, ≈ 160 KB a photo: 400 files took 61 MB more than 100)."""
    import tracemalloc

    from faceflow.cli import files as files_module
    from faceflow.domain import FaceReport
    from faceflow.runtime.tasks import FileAnalysis

    files, image_bytes = 24, 1_000_000
    inputs = []
    for index in range(files):
        (tmp_path / f"p{index}.jpg").write_bytes(b"unread")
        inputs.append(str(tmp_path / f"p{index}.jpg"))
    held_after: list[int] = []

    def run_files(
        _settings: object,
        paths: list[Path],
        _make_request: object,
        _task: object,
        _workers: int,
        on_done: Callable[[files_module.FileOutcome[FileAnalysis]], None],
    ) -> None:
        for path in paths:
            image = bytes(image_bytes)  # fresh: counted by tracemalloc until nothing holds it
            analysis = FileAnalysis(FaceReport(9, 9, ()), image, {})
            on_done(files_module.FileOutcome(path, analysis, None))
            del image
            held_after.append(tracemalloc.get_traced_memory()[0])

    monkeypatch.setattr(files_module, "run_files", run_files)
    tracemalloc.start()
    try:
        result = run(*output, "--annotate", tmp_path / "out", *inputs)
    finally:
        tracemalloc.stop()

    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "out").iterdir())) == files
    # Held before: 23 images more at the last file than at the first.
    assert held_after[-1] - held_after[0] < 4 * image_bytes


def test_ctrl_c_mid_batch_shows_the_files_done_then_exits_130(
    photo_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The table of the files done was never shown: exit 130 without a word, their results lost.
    calls = 0

    def interrupted_at_the_third(context: WorkerContext, request: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise KeyboardInterrupt
        return analyze_file(context, request)

    monkeypatch.setattr(tasks, "analyze_file", interrupted_at_the_third)

    result = run(photo_folder)

    assert result.exit_code == 130, result.output
    assert "coffee.jpg" in result.stdout
    assert "obama_small.jpg" in result.stdout
    assert "two_people.jpg" not in result.stdout
    assert "interrupted after 2 of 3 files" in result.stderr
    assert "Traceback" not in result.output

"""`faceflow bench` end to end against the real service."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from faceflow.cli.bench import MAX_IMAGE_BYTES
from faceflow.cli.main import app
from tests.fixtures.live_server import LiveServer, free_port

WIDE = {"COLUMNS": "200"}


def test_a_sweep_reports_each_step_as_json_and_plots_it(
    live_server: LiveServer, testdata: Path, tmp_path: Path
) -> None:
    plot = tmp_path / "charts" / "sweep.png"  # its folder made for it, before the sweep
    photo = testdata / "obama_small.jpg"

    result = CliRunner().invoke(
        app,
        [
            "bench",
            live_server.url,
            "-i",
            str(photo),
            "--endpoint",
            "/v1/detect",
            "--concurrency",
            "1,2",
            "--requests",
            "4",
            "--hit-ratio",
            "1",
            "--json",
            "--plot",
            str(plot),
        ],
        env=WIDE,
    )

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["url"] == f"{live_server.url}/v1/detect"
    assert [step["concurrency"] for step in report["steps"]] == [1, 2]
    assert all(step["ok"] == 4 and step["cache_hit_ratio"] == 1.0 for step in report["steps"])
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_table_names_errors_by_status_and_code(live_server: LiveServer, tmp_path: Path) -> None:
    # A JPEG's first bytes and nothing else: the load tool varies it, the server cannot decode it.
    not_an_image = tmp_path / "broken.jpg"
    not_an_image.write_bytes(b"\xff\xd8\xff\xe0 and then nothing a decoder can use")

    result = CliRunner().invoke(
        app,
        [
            "bench",
            live_server.url,
            "-i",
            str(not_an_image),
            "--concurrency",
            "1",
            "--requests",
            "2",
        ],
        env=WIDE,
    )

    assert result.exit_code == 0, result.output
    assert "422×2 (undecodable×2)" in result.stdout


def test_a_bad_sweep_is_a_usage_error(live_server: LiveServer, testdata: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["bench", live_server.url, "-i", str(testdata / "obama_small.jpg"), "--concurrency", "1,x"],
        env=WIDE,
    )

    assert result.exit_code == 2
    assert "comma-separated integers" in result.output


@pytest.mark.parametrize("sweep", ["1,x", "0", ","])
def test_a_bad_sweep_is_refused_before_the_plot_folder_is_made(
    testdata: Path, tmp_path: Path, sweep: str
) -> None:
    # By the parser: no server is asked, no folder made for a chart that will not be drawn.
    nobody = f"http://127.0.0.1:{free_port()}"
    plot = tmp_path / "charts" / "sweep.png"

    photo = str(testdata / "obama_small.jpg")

    result = CliRunner().invoke(
        app, ["bench", nobody, "-i", photo, "--concurrency", sweep, "--plot", str(plot)], env=WIDE
    )

    assert result.exit_code == 2, result.output
    assert "Invalid value for '--concurrency'" in result.output
    assert not plot.parent.exists()


def test_a_server_that_is_not_there_is_said_so_before_any_sweep(testdata: Path) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"

    result = CliRunner().invoke(
        app, ["bench", nobody, "-i", str(testdata / "obama_small.jpg")], env=WIDE
    )

    assert result.exit_code == 2
    assert f"cannot reach {nobody}" in result.stderr
    assert "clients" not in result.stdout  # no table of a sweep that never reached it


def test_a_url_that_is_no_faceflow_is_said_so(live_server: LiveServer, testdata: Path) -> None:
    result = CliRunner().invoke(
        app, ["bench", f"{live_server.url}/v1", "-i", str(testdata / "obama_small.jpg")], env=WIDE
    )

    assert result.exit_code == 2
    assert "is not a ready faceflow: GET /readyz answered 404" in result.stderr


def test_a_url_without_a_scheme_is_taken_as_http(live_server: LiveServer, testdata: Path) -> None:
    bare = live_server.url.removeprefix("http://")
    photo = str(testdata / "obama_small.jpg")

    result = CliRunner().invoke(
        app,
        ["bench", bare, "-i", photo, "--concurrency", "1", "--requests", "1", "--json"],
        env=WIDE,
    )

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["url"] == f"{live_server.url}/v1/analyze"


def test_a_file_that_is_no_image_is_a_usage_error(live_server: LiveServer, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("plain text, not a photo")

    result = CliRunner().invoke(app, ["bench", live_server.url, "-i", str(notes)], env=WIDE)

    assert result.exit_code == 2
    assert "not a JPEG" in result.output


def test_a_photo_past_the_read_bound_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    # `-i /dev/zero` was read without end; a sparse file one byte past the bound stands for it.
    huge = tmp_path / "huge.jpg"
    with huge.open("wb") as file:
        file.truncate(MAX_IMAGE_BYTES + 1)

    result = CliRunner().invoke(app, ["bench", "http://127.0.0.1:9", "-i", str(huge)], env=WIDE)

    assert result.exit_code == 2
    assert "is over 64 MiB" in result.output
    assert "cannot reach" not in result.output


def _bench_nothing_with_a_plot(testdata: Path, plot: Path) -> Result:
    """`faceflow bench` with --plot against a URL that answers nothing: had the sweep started,
    the command would fail differently than a refusal before it."""
    return CliRunner().invoke(
        app,
        [
            "bench",
            "http://127.0.0.1:9",
            "-i",
            str(testdata / "obama_small.jpg"),
            "--plot",
            str(plot),
        ],
        env=WIDE,
    )


def test_a_plot_without_matplotlib_is_refused_before_the_sweep(
    testdata: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """matplotlib comes with the `bench` extra; without it --plot says so at once. The URL
    answers nothing: had the sweep started, the command would fail differently."""
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "matplotlib" else find_spec(name, *args),
    )
    result = _bench_nothing_with_a_plot(testdata, tmp_path / "sweep.png")
    assert result.exit_code == 2, result.output
    assert "pip install 'faceflow[loadgen]'" in result.output
    assert not (tmp_path / "sweep.png").exists()


def test_a_plot_whose_folder_cannot_be_made_is_refused_before_the_sweep(
    testdata: Path, tmp_path: Path
) -> None:
    """A folder under a file: the chart could not be written, which the sweep found out only at
    its end, in a traceback. The URL answers nothing: had the sweep started, the command would
    fail differently."""
    (tmp_path / "a-file").write_bytes(b"")
    result = _bench_nothing_with_a_plot(testdata, tmp_path / "a-file" / "sweep.png")
    assert result.exit_code == 2, result.output
    assert "--plot" in result.output

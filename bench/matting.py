"""Matte quality against known alpha: people composited over plain, textured and busy backdrops.

    .venv/bin/python bench/matting.py [--subjects NAME ...] [--json]

Needs the ``matting`` extra (``pip install -e '.[matting]'``: pymatting, for the reference mattes).

Reference cut-outs (alpha and foreground colour) are made here, in memory, from portraits shot
against a plain backdrop (``portrait_2.jpg`` from ``../shared/testdata``, ``df_img11/12/14.jpg``
from ``../shared/devset``), shrunk to 720 px: a trimap from u2netp (definite where the network is
sure, unknown in a band around its edge, wider where it is unsure), Levin et al.'s closed-form
matting for the alpha (pymatting ``estimate_alpha_cf``) and Germer et al.'s multi-level
foreground estimation for the colour (``estimate_foreground_ml``). Each reference is composited
(``I = αF + (1 − α)B``) over every backdrop:

* plain: white, light grey, ID blue, beige, near-black (with a faint vertical light fall-off, as
  a wall or paper sweep has);
* textured: a plaster-like wall (smooth blotches and grain) and a coarse fabric weave;
* busy: ``coffee.jpg`` and ``rocket.jpg`` from the test photos, scaled to cover.

Each composite runs through the pipeline (YuNet, then :func:`compute_matte`), and the matte is
compared with the reference alpha cropped to the matte's box:

* SAD (sum of |Δα| over the crop, in thousands, as matting papers report it) and MSE (×10³), over
  the whole crop and inside the hair band: the reference's soft region (0.02 < α < 0.98) widened by
  1/100 of the crop's long side, above the face box's bottom (hair and the head's edge);
* leakage: the matte rendered over a new colour (red, or white on the darkest backdrops), the share
  of hair-band pixels whose colour lies within ΔE 10 (CIE 1976, Lab) of the old backdrop at that
  pixel, against the same share for the reference composited over the new colour ("floor");
* the backdrop kind the matte reports (``plain`` / ``busy``).

"Before" figures are this script run against main's code (``PYTHONPATH=/path/to/main/src``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray
from rich.console import Console
from rich.table import Table

from faceflow.config import LimitSettings, load_settings
from faceflow.imaging.ingest import decode_image
from faceflow.models.registry import ModelSet
from faceflow.pipeline.detect import detect_faces
from faceflow.pipeline.detect_options import DetectOptions
from faceflow.pipeline.idphoto.background import composite
from faceflow.pipeline.idphoto.matte import compute_matte

SHARED = Path(__file__).resolve().parents[2] / "shared"
DEFAULT_SUBJECTS = (
    "testdata/portrait_2.jpg",
    "devset/df_img11.jpg",
    "devset/df_img12.jpg",
    "devset/df_img14.jpg",
)
REFERENCE_SIDE_PX = 720
PLAIN: dict[str, tuple[int, int, int]] = {
    "white": (250, 250, 250),
    "light grey": (214, 214, 210),
    "ID blue": (67, 142, 219),
    "beige": (222, 205, 176),
    "near-black": (22, 22, 24),
}
BUSY = ("coffee.jpg", "rocket.jpg")
NEW_RED = (217, 0, 27)
NEW_WHITE = (255, 255, 255)
LEAK_DELTA_E = 10.0

FloatImage = NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Reference:
    name: str
    alpha: FloatImage
    """(H, W) in [0, 1]."""
    foreground: FloatImage
    """(H, W, 3) sRGB in [0, 1]."""


@dataclass(frozen=True, slots=True)
class Case:
    subject: str
    backdrop: str
    kind: str
    sad_hair: float
    mse_hair: float
    sad_all: float
    mse_all: float
    leak: float
    leak_floor: float
    reported: str


def make_reference(path: Path, models: ModelSet, cache: Path | None) -> Reference:
    """A careful cut-out of a portrait shot against a plain backdrop (closed-form matting).

    With ``cache``, kept there as ``NAME.npz`` and read back on later runs (a minute each).
    """
    stored = None if cache is None else cache / f"{path.stem}.npz"
    if stored is not None and stored.is_file():
        with np.load(stored) as saved:
            return Reference(path.stem, saved["alpha"], saved["foreground"])
    from pymatting import estimate_alpha_cf, estimate_foreground_ml

    rgb = decode_image(path.read_bytes(), LimitSettings()).rgb
    height, width = rgb.shape[:2]
    k = min(1.0, REFERENCE_SIDE_PX / max(height, width))
    rgb = np.asarray(
        cv2.resize(rgb, (round(width * k), round(height * k)), interpolation=cv2.INTER_AREA)
    )
    coarse = models.segmenter.predict(rgb)
    sure = (coarse > 0.5).astype(np.uint8)
    r = max(3, round(max(rgb.shape[:2]) / 50))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    trimap = np.full(sure.shape, 0.5)
    trimap[cv2.erode(sure, kernel) == 1] = 1.0
    trimap[cv2.dilate(sure, kernel) == 0] = 0.0
    unsure = cv2.dilate(((coarse > 0.05) & (coarse < 0.95)).astype(np.uint8), kernel) == 1
    trimap[unsure] = 0.5
    image = rgb.astype(np.float64) / 255.0
    # pymatting prints solver warnings to stdout; keep it for the report.
    with contextlib.redirect_stdout(io.StringIO()):
        alpha = np.clip(estimate_alpha_cf(image, trimap), 0.0, 1.0)
    foreground = np.clip(estimate_foreground_ml(image, alpha), 0.0, 1.0)
    reference = Reference(path.stem, alpha.astype(np.float32), foreground.astype(np.float32))
    if stored is not None:
        stored.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(stored, alpha=reference.alpha, foreground=reference.foreground)
    return reference


def plain_backdrop(colour: tuple[int, int, int], height: int, width: int) -> FloatImage:
    """A flat colour with a faint light fall-off from top to bottom (±4 %)."""
    fall = np.linspace(1.04, 0.96, height, dtype=np.float32)[:, None, None]
    base = np.asarray(colour, dtype=np.float32) / 255.0
    return np.clip(np.broadcast_to(base * fall, (height, width, 3)), 0.0, 1.0).astype(np.float32)


def textured_backdrop(kind: str, height: int, width: int) -> FloatImage:
    rng = np.random.default_rng(7)
    if kind == "plaster":
        blotch = cv2.resize(rng.normal(0, 1, (12, 9)).astype(np.float32), (width, height))
        grain = cv2.GaussianBlur(rng.normal(0, 1, (height, width)).astype(np.float32), (0, 0), 1.2)
        shade = 0.72 + 0.05 * blotch + 0.04 * grain
        tint = np.array([1.0, 0.96, 0.9], dtype=np.float32)
        return np.clip(shade[..., None] * tint, 0, 1).astype(np.float32)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    weave = 0.5 + 0.5 * np.sin(xx / 2.2) * np.sin(yy / 2.2)
    noise = cv2.GaussianBlur(rng.normal(0, 1, (height, width)).astype(np.float32), (0, 0), 0.8)
    shade = 0.35 + 0.12 * weave + 0.04 * noise
    tint = np.array([0.55, 0.65, 1.0], dtype=np.float32)
    return np.asarray(np.clip(shade[..., None] * tint, 0, 1), dtype=np.float32)


def busy_backdrop(name: str, height: int, width: int) -> FloatImage:
    rgb = decode_image((SHARED / "testdata" / name).read_bytes(), LimitSettings()).rgb
    k = max(height / rgb.shape[0], width / rgb.shape[1])
    size = (max(width, round(rgb.shape[1] * k)), max(height, round(rgb.shape[0] * k)))
    big = cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR)
    y0, x0 = (big.shape[0] - height) // 2, (big.shape[1] - width) // 2
    return big[y0 : y0 + height, x0 : x0 + width].astype(np.float32) / 255.0


def backdrops(height: int, width: int) -> list[tuple[str, str, FloatImage]]:
    out = [("plain", name, plain_backdrop(c, height, width)) for name, c in PLAIN.items()]
    out += [("textured", k, textured_backdrop(k, height, width)) for k in ("plaster", "weave")]
    out += [("busy", n.removesuffix(".jpg"), busy_backdrop(n, height, width)) for n in BUSY]
    return out


def to_lab(rgb_u8: NDArray[np.uint8]) -> FloatImage:
    return np.asarray(cv2.cvtColor(rgb_u8.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab))


def run_case(
    reference: Reference, kind: str, name: str, backdrop: FloatImage, models: ModelSet
) -> Case:
    a = reference.alpha[..., None]
    photo = np.clip(np.round((a * reference.foreground + (1 - a) * backdrop) * 255), 0, 255)
    rgb = photo.astype(np.uint8)
    faces = detect_faces(rgb, models.detector, DetectOptions())
    if len(faces) != 1:
        raise SystemExit(f"{reference.name} over {name}: {len(faces)} faces found, not 1")
    face = faces[0]
    matte = compute_matte(rgb, face, models.segmenter)
    box = matte.crop_box
    x1, y1, x2, y2 = int(box.x1), int(box.y1), int(box.x2), int(box.y2)
    height, width = matte.alpha.shape

    def crop(values: NDArray[np.float32]) -> NDArray[np.float32]:
        part = values[y1:y2, x1:x2]
        if part.shape[:2] != (height, width):
            return np.asarray(
                cv2.resize(part, (width, height), interpolation=cv2.INTER_AREA), np.float32
            )
        return np.asarray(part, dtype=np.float32)

    truth = crop(reference.alpha)
    old = crop(backdrop)
    soft = ((truth > 0.02) & (truth < 0.98)).astype(np.uint8)
    r = max(2, round(max(height, width) / 100))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    band = cv2.dilate(soft, kernel) == 1
    chin = round((face.box.y2 - y1) * height / (y2 - y1))
    band[max(0, chin) :] = False
    error = matte.alpha - truth
    old_u8 = np.clip(np.round(old * 255), 0, 255).astype(np.uint8)
    old_lab = to_lab(old_u8)
    new_colour = NEW_WHITE if float(old_lab[..., 0].mean()) < 30 else NEW_RED
    new = np.empty_like(old_u8)
    new[...] = new_colour
    ours = composite(matte.foreground, matte.alpha, new)
    truth_fg = np.clip(np.round(crop(reference.foreground) * 255), 0, 255).astype(np.uint8)
    floor = composite(truth_fg, truth, new)

    def leak(rgb_out: NDArray[np.uint8]) -> float:
        delta = np.linalg.norm(to_lab(rgb_out) - old_lab, axis=2)
        return float((delta[band] < LEAK_DELTA_E).mean()) if band.any() else 0.0

    backdrop_kind = getattr(matte, "backdrop", None)
    return Case(
        subject=reference.name,
        backdrop=name,
        kind=kind,
        sad_hair=float(np.abs(error[band]).sum() / 1000),
        mse_hair=float((error[band] ** 2).mean() * 1000) if band.any() else 0.0,
        sad_all=float(np.abs(error).sum() / 1000),
        mse_all=float((error**2).mean() * 1000),
        leak=leak(ours),
        leak_floor=leak(floor),
        reported=str(getattr(backdrop_kind, "value", backdrop_kind)),
    )


def summarise(cases: list[Case], console: Console) -> None:
    table = Table(title="Matte against the reference alpha (means over subjects and backdrops)")
    columns = ("backdrop", "cases", "SAD hair", "MSE hair ×10³", "SAD all", "MSE all ×10³")
    for column in (*columns, "leak", "leak floor", "reported plain"):
        table.add_column(column, justify="right")
    for kind in ("plain", "textured", "busy"):
        group = [c for c in cases if c.kind == kind]
        if not group:
            continue

        def mean(field: str, rows: list[Case] = group) -> float:
            return statistics.fmean(getattr(c, field) for c in rows)

        table.add_row(
            kind,
            str(len(group)),
            f"{mean('sad_hair'):.2f}",
            f"{mean('mse_hair'):.1f}",
            f"{mean('sad_all'):.2f}",
            f"{mean('mse_all'):.2f}",
            f"{mean('leak'):.1%}",
            f"{mean('leak_floor'):.1%}",
            f"{sum(c.reported == 'plain' for c in group)}/{len(group)}",
        )
    console.print(table)
    detail = Table(title="Per case")
    for column in ("subject", "backdrop", "SAD hair", "MSE hair ×10³", "leak", "reported"):
        detail.add_column(column, justify="right")
    for c in cases:
        detail.add_row(
            c.subject,
            c.backdrop,
            f"{c.sad_hair:.2f}",
            f"{c.mse_hair:.1f}",
            f"{c.leak:.1%}",
            c.reported,
        )
    console.print(detail)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--subjects",
        nargs="+",
        default=list(DEFAULT_SUBJECTS),
        help="portraits on a plain backdrop, one or more, as paths under ../shared "
        "(default: %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print every case as JSON")
    parser.add_argument(
        "--reference-cache", type=Path, help="keep the reference mattes in this folder"
    )
    args = parser.parse_args()
    cv2.setNumThreads(1)
    models = ModelSet.load(load_settings(models={"intra_op_threads": 1}).models)
    cases = []
    for subject in args.subjects:
        reference = make_reference(SHARED / subject, models, args.reference_cache)
        height, width = reference.alpha.shape
        for kind, name, backdrop in backdrops(height, width):
            cases.append(run_case(reference, kind, name, backdrop, models))
    console = Console(highlight=False, width=130)
    if args.json:
        print(json.dumps([asdict(c) for c in cases], indent=2))
    else:
        console.print("$ " + " ".join([".venv/bin/python", "bench/matting.py", *sys.argv[1:]]))
        summarise(cases, console)


if __name__ == "__main__":
    main()

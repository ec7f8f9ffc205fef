"""The ID-photo verdict table: every labelled case of tests/pipeline/idphoto/verdict_cases.py
through detection, the matte and the render, with the verdict the report gave and the checks that
decided it. Its ``--markdown`` output is the verdict table in docs/id-photos.md.

    .venv/bin/python scripts/idphoto_verdicts.py [--markdown]

Reads the photos from ``../shared/testdata`` (or ``FACEFLOW_TESTDATA``); the models must be pulled
(``faceflow models pull``). Prints one row per case and the share of verdicts right.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.environment import TESTDATA
from tests.pipeline.idphoto.verdict_cases import CASES, judge

from faceflow.config import LimitSettings, Settings
from faceflow.imaging.ingest import decode_image
from faceflow.runtime.context import load_context


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="a Markdown table")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    testdata = TESTDATA
    context = load_context(Settings().model_dump_json())
    limits = LimitSettings()

    def photo(name: str) -> NDArray[np.uint8]:
        return decode_image((testdata / name).read_bytes(), limits).rgb

    right = 0
    rows = []
    for case in CASES:
        report = judge(case, photo, context.models, context.models.segmenter)
        if isinstance(report, str):
            verdict, deciding = "error", report
        else:
            verdict = report.status.value
            deciding = ", ".join(
                f"{c.name} ({c.status.value})" for c in report.checks if c.status.value != "pass"
            )
        ok = verdict == case.expected
        right += ok
        rows.append(
            (case.name, case.spec, case.expected, verdict, "yes" if ok else "**no**", deciding)
        )
        if not args.markdown:
            print(
                f"{case.name:40s} {case.spec:12s} {case.expected:5s} {verdict:5s}",
                "" if ok else "WRONG",
                deciding,
                flush=True,
            )
    if args.markdown:
        print("| case | size | expected | verdict | right | checks not passed |")
        print("|---|---|---|---|---|---|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
    print(f"\n{right} of {len(CASES)} verdicts right ({right / len(CASES):.0%})")


if __name__ == "__main__":
    main()

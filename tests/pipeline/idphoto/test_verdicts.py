"""The report's verdicts on a labelled set of real and spoiled portraits (verdict_cases.py):
at least 90 % must be what a counter would decide."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from faceflow.models.detector import YuNetDetector
from faceflow.models.segmenter import U2NetpSegmenter
from tests.pipeline.idphoto.verdict_cases import CASES, judge


def test_at_least_90_percent_of_verdicts_are_right(
    decode_photo: Callable[[str], NDArray[np.uint8]],
    detector: YuNetDetector,
    segmenter: U2NetpSegmenter,
) -> None:
    assert len(CASES) >= 20
    wrong = []
    for case in CASES:
        report = judge(case, decode_photo, detector, segmenter)
        verdict = report if isinstance(report, str) else report.status.value
        if verdict != case.expected:
            wrong.append(f"{case.name}: {verdict}, expected {case.expected}")
        elif case.decided_by and not isinstance(report, str):
            # The check meant to decide it does, and says what to do in both languages.
            check = report.check(case.decided_by)
            assert check.status.value == case.expected, (case.name, check)
            hint, hint_zh = check.hints()
            assert hint, case.name
            assert hint_zh, case.name
    assert len(wrong) <= len(CASES) // 10, wrong

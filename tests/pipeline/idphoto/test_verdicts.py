"""The report's verdicts on a labelled set of real and spoiled portraits (verdict_cases.py):
at least 90 % must be what a counter would decide.

Each source is detected and matted through the ID-photo tests' shared cut-outs (conftest.py), so a
source another test already matted (a portrait as taken, the framing tests' crops) is not
segmented again, and the two cases on portrait_2 as taken share one matte: a spec is a render.
"""

from __future__ import annotations

from collections.abc import Callable

from faceflow.pipeline.idphoto.matte import Matte
from tests.pipeline.idphoto.conftest import CutOut, FindSource
from tests.pipeline.idphoto.verdict_cases import CASES, Case, report_on


def test_at_least_90_percent_of_verdicts_are_right(source: FindSource, cut_out: CutOut) -> None:
    def matte_of(case: Case) -> Callable[[], Matte]:
        return lambda: cut_out(case.photo, case.edit).matte

    assert len(CASES) >= 20
    wrong = []
    for case in CASES:
        found = source(case.photo, case.edit)
        report = report_on(case, found.faces, matte_of(case))
        verdict = report if isinstance(report, str) else report.status.value
        if not isinstance(report, str):
            # Every hint reads as a sentence (the cut-off ones were built starting in lower case).
            assert all(check.hints()[0][:1].isupper() for check in report.checks), case.name
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

"""The web page's words (static/js/i18n.js): every check the compliance report can carry is named
in both of its languages, and the two tables hold the same keys, so no label falls back to a
made-up one ("skin_colour" → "Skin colour") or to English on the Chinese page."""

from __future__ import annotations

import re
from pathlib import Path

import faceflow.service
from faceflow.pipeline.idphoto.compliance import HINTS

I18N = Path(faceflow.service.__file__).parent / "static" / "js" / "i18n.js"


def _keys(table: str) -> set[str]:
    text = I18N.read_text(encoding="utf-8")
    block = text.split(f"const {table} = {{", 1)[1].split("\n};", 1)[0]
    return set(re.findall(r'^\s*"([^"]+)":', block, re.MULTILINE))


def test_every_check_of_the_report_is_named_in_english_and_chinese() -> None:
    for table in ("EN", "ZH"):
        missing = sorted(name for name in HINTS if f"check.{name}" not in _keys(table))
        assert not missing, (table, missing)


def test_the_english_and_chinese_tables_hold_the_same_words() -> None:
    english, chinese = _keys("EN"), _keys("ZH")

    assert english, "no keys read from i18n.js"
    assert sorted(english - chinese) == []
    assert sorted(chinese - english) == []

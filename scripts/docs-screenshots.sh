#!/usr/bin/env bash
# Refreshes the screenshots of the web page in docs/ (English: web-page.png, Chinese:
# web-page-zh.png) from the browser tests that check them: a real server, headless Chromium, the
# test photos in ../shared/testdata. Needs Chromium and the CJK font (make system-deps).
set -euo pipefail
cd "$(dirname "$0")/.."
FACEFLOW_UPDATE_DOCS=1 exec .venv/bin/python -m pytest tests/service/test_web_page.py \
  -k docs_screenshot -q "$@"

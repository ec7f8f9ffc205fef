"""The API process never imports the image and inference stack: only inference processes do.

Decoding, inference and encoding all run in the inference pool, so numpy, OpenCV, Pillow and
onnxruntime in the API process would only cost memory (about 50 MB of RSS per HTTP worker) and
start-up time. A fresh interpreter (tests/service/lean_process.py) serves one request of every
kind through the real app, then reports what it imported; the test session's own imports would
hide the answer.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from faceflow.config import ModelSettings
from tests.fixtures.environment import PROJECT_ROOT

# A bound, not a margin: the inference process loads the models (seconds when idle, over a
# minute at a load average of 17).
RUN_TIMEOUT_S = 300


@pytest.mark.slow
def test_serving_every_kind_of_request_imports_no_image_or_inference_library(
    pulled_examples: ModelSettings, testdata: Path
) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.service.lean_process",
            str(pulled_examples.dir),
            str(testdata / "obama_small.jpg"),
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    report = json.loads(run.stdout.splitlines()[-1])
    statuses = report["statuses"]
    for operation in ("detect", "analyze", "annotate"):
        assert statuses[f"{operation} miss"] == [200, "miss"]
        assert statuses[f"{operation} hit"] == [200, "hit"]
    assert statuses["id-photo"][0] == statuses["id-photo json"][0] == 200
    assert statuses["id-photo sheet"][0] == 200
    assert statuses["job"][0] == 202
    assert statuses["job result"] == 200
    assert statuses["examples"] == 2
    assert statuses["thumbnail astronaut"] == statuses["thumbnail camera"] == 200
    assert statuses["/v1/info"] == statuses["/v1/id-photo/specs"] == statuses["/metrics"] == 200
    assert statuses["corrupt upload"] == 422
    assert report["heavy_modules"] == []

"""Log set-up for the long-running processes (faceflow/logs.py)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from faceflow.logs import configure_logging


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """configure_logging replaces the root handlers: put pytest's back afterwards. RQ's worker
    logger is left as a fresh process has it (an RQ worker run earlier in this process may have
    given it a handler of its own and stopped it propagating), and put back too."""
    root, worker = logging.getLogger(), logging.getLogger("rq.worker")
    saved = root.handlers[:], root.level, worker.handlers[:], worker.level, worker.propagate
    worker.handlers[:], worker.propagate = [], True
    worker.setLevel(logging.NOTSET)
    yield
    root.handlers[:], worker.handlers[:], worker.propagate = saved[0], saved[2], saved[4]
    root.setLevel(saved[1])
    worker.setLevel(saved[3])


def _log_a_worker_pass(worker: logging.Logger) -> None:
    worker.info("Worker %s: cleaning registries for queue: %s", "w1", "faceflow")
    worker.info("Worker %s: cleaning group registries", "w1")
    worker.info("%s: %s (%s)", "faceflow", "Job OK", "ff1-detect-abc")


@pytest.mark.usefixtures("restored_logging")
def test_rqs_maintenance_lines_show_only_at_debug_and_its_job_lines_always(
    capsys: pytest.CaptureFixture[str],
) -> None:
    worker = logging.getLogger("rq.worker")

    configure_logging("info", as_json=False, process="worker-0")
    _log_a_worker_pass(worker)
    at_info = capsys.readouterr().err.splitlines()
    configure_logging("debug", as_json=False, process="worker-0")
    _log_a_worker_pass(worker)
    at_debug = capsys.readouterr().err.splitlines()

    assert len(at_info) == 1
    assert "INFO    worker-0 rq.worker: faceflow: Job OK (ff1-detect-abc)" in at_info[0]
    assert [line.split()[1] for line in at_debug] == ["DEBUG", "DEBUG", "INFO"]


@pytest.mark.usefixtures("restored_logging")
def test_json_lines_carry_the_process_and_the_request_fields(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("info", as_json=True, process="worker-1")

    logging.getLogger("faceflow.access").info("GET /healthz", extra={"status": 200, "ms": 1.5})

    entry = json.loads(capsys.readouterr().err)
    assert {k: entry[k] for k in ("level", "logger", "message", "process", "status", "ms")} == {
        "level": "info",
        "logger": "faceflow.access",
        "message": "GET /healthz",
        "process": "worker-1",
        "status": 200,
        "ms": 1.5,
    }


@pytest.mark.usefixtures("restored_logging")
def test_a_message_holding_a_newline_or_an_escape_stays_one_readable_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A request's path is percent-decoded: /x%0A… wrote a forged access line after its own,
    and an ESC in it recoloured the operator's terminal."""
    configure_logging("info", as_json=False)
    access = logging.getLogger("faceflow.access")

    access.info("%s GET %s 404", "127.0.0.1", "/x\n04:38:99 INFO faceflow.access: forged\x1b[31m")
    lines = capsys.readouterr().err.splitlines()

    assert len(lines) == 1
    assert lines[0].endswith(r"GET /x\n04:38:99 INFO faceflow.access: forged\x1b[31m 404")

    try:
        raise ValueError("boom")
    except ValueError:
        access.exception("failed on %s", "/y\r\n")
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].endswith(r"failed on /y\r\n")
    assert lines[1] == "Traceback (most recent call last):"  # a traceback keeps its lines
    assert lines[-1] == "ValueError: boom"


@pytest.mark.usefixtures("restored_logging")
def test_printable_text_and_other_scripts_are_left_as_they_are(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("info", as_json=False)
    logging.getLogger("faceflow.access").info("GET /证件照/ñ 200")
    assert capsys.readouterr().err.rstrip("\n").endswith("GET /证件照/ñ 200")

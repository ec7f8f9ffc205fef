"""`faceflow serve`'s start-up check: the model files of the enabled operations, and no others."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from faceflow.config import ModelSettings
from faceflow.models.catalog import model_spec
from faceflow.models.store import ModelState, ModelStore
from tests.fixtures.live_server import LiveServer, LiveServerFactory, pulled_model_dir, server_env
from tests.fixtures.models import flip_a_byte
from tests.service.support import fresh


def store_with(tmp_path: Path, *names: str) -> Path:
    """A model store holding only the named models (copies of the pulled, verified files)."""
    pulled = pulled_model_dir()
    for name in names:
        filename = model_spec(name).filename
        shutil.copyfile(pulled / filename, tmp_path / filename)
    return tmp_path


def test_serve_starts_with_only_the_detector_when_it_serves_detection_only(
    tmp_path: Path, live_server_factory: LiveServerFactory
) -> None:
    store = store_with(tmp_path, "yunet")

    server = live_server_factory(MODELS__DIR=store, RUNTIME__OPERATIONS='["detect"]')
    try:
        info = httpx.get(f"{server.url}/v1/info", timeout=30.0)
    finally:
        server.stop()

    assert info.status_code == 200


def serve_until_refused(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`faceflow serve` on a port it never binds: it is expected to refuse before serving."""
    return subprocess.run(
        [sys.executable, "-m", "faceflow", "serve", "--port", "9"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_serve_refuses_to_start_without_a_model_an_enabled_operation_needs(tmp_path: Path) -> None:
    store = store_with(tmp_path, "yunet")
    env = server_env(store, {"RUNTIME__OPERATIONS": '["detect", "id-photo"]'})

    done = serve_until_refused(env)

    assert done.returncode == 2
    assert "model u2netp is missing" in done.stderr
    assert "age-v1" not in done.stderr  # analyze is not enabled: its models are not asked for
    assert "faceflow models pull" in done.stderr


def test_serve_refuses_a_model_changed_after_it_was_verified(tmp_path: Path) -> None:
    store = store_with(tmp_path, "yunet")
    assert ModelStore(ModelSettings(dir=store)).status(model_spec("yunet")).state is (
        ModelState.VERIFIED  # and stamped so
    )
    flip_a_byte(store / model_spec("yunet").filename)
    env = server_env(store, {"RUNTIME__OPERATIONS": '["detect"]'})

    done = serve_until_refused(env)

    assert done.returncode == 2
    assert "model yunet is corrupt" in done.stderr


def test_serve_on_a_port_in_use_exits_3_at_once_without_starting_inference_processes(
    tmp_path: Path,
) -> None:
    env = server_env(store_with(tmp_path, "yunet"), {"RUNTIME__OPERATIONS": '["detect"]'})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        done = subprocess.run(
            [sys.executable, "-m", "faceflow", "serve", "--port", str(port)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    assert done.returncode == 3, done.stderr
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in done.stderr
    assert "inference process" not in done.stderr + done.stdout  # none was spawned


def test_serve_on_a_host_that_reads_as_markup_names_it_and_exits_3(tmp_path: Path) -> None:
    env = server_env(store_with(tmp_path, "yunet"), {"RUNTIME__OPERATIONS": '["detect"]'})

    done = subprocess.run(
        [sys.executable, "-m", "faceflow", "serve", "--host", "[/x]", "--port", "8000"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 3, done.stderr
    assert "cannot listen on [/x]:8000:" in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_hands_the_inference_processes_it_started_first_to_the_app(
    live_server_factory: LiveServerFactory,
) -> None:
    """They are spawned before the web stack is imported, and adopted, not started twice."""
    server = live_server_factory(RUNTIME__PROCESSES=2)
    try:
        log = server.log_path.read_text()
    finally:
        server.stop()

    assert log.count("adopted from the head start") == 2
    assert " started (pid" not in log


def test_sigterm_to_the_whole_process_group_stops_serve_without_respawning(
    live_server_factory: LiveServerFactory,
) -> None:
    """What `kill -- -PGID`, a container runtime or a service manager killing a control group
    does: every process gets SIGTERM at once. The inference processes leave their shutdown to
    the server, which stops them, instead of dying under it and being replaced while it stops."""
    server = live_server_factory(RUNTIME__PROCESSES=2)
    assert server.process is not None
    try:
        os.killpg(server.process.pid, signal.SIGTERM)
        code = server.process.wait(timeout=60)
    finally:
        server.stop()
    log = server.log_path.read_text(errors="replace")

    # uvicorn shuts down gracefully, then re-raises the signal it caught: -SIGTERM.
    assert code in (0, -signal.SIGTERM), log[-2000:]
    assert "Application shutdown complete" in log
    assert "died with exit code" not in log
    assert " started (pid" not in log  # no replacement was spawned


def test_sighup_stops_serve_gracefully_as_sigterm_does(
    live_server_factory: LiveServerFactory,
) -> None:
    """The terminal that started the server closing, or an SSH session dropping, sends SIGHUP.
    uvicorn catches only SIGTERM and SIGINT, so SIGHUP killed the server at once: requests cut
    without an answer, no shutdown of the app (its embedded jobs gone without the line counting
    them), inference processes left to notice alone. It now stops as on SIGTERM, then ends by
    the signal it got, as a process killed by SIGHUP does."""
    server = live_server_factory(RUNTIME__PROCESSES=2)
    assert server.process is not None
    try:
        started = server.log_path.read_text(errors="replace")
        inference = [
            int(pid) for pid in re.findall(r"adopted from the head start \(pid (\d+)\)", started)
        ]
        server.process.send_signal(signal.SIGHUP)
        code = server.process.wait(timeout=60)
    finally:
        server.stop()
    log = server.log_path.read_text(errors="replace")

    assert code == -signal.SIGHUP, log[-2000:]
    assert "Application shutdown complete" in log, log[-2000:]
    assert len(inference) == 2
    # The server waited for them (the pool's close), so none outlives it.
    assert [pid for pid in inference if Path(f"/proc/{pid}").exists()] == []


def test_a_job_still_uploading_when_serve_is_told_to_stop_is_refused_not_lost(
    testdata: Path, live_server_factory: LiveServerFactory
) -> None:
    """A job's upload still arriving at SIGTERM was answered 202 during the graceful shutdown,
    and the embedded runner dropped it the next moment (its handle then 404): a client told
    its job was accepted lost it without a word. Refused 503, the client sends it again."""
    server = live_server_factory()
    photo = (testdata / "portrait_1.jpg").read_bytes()
    half = len(photo) // 2
    head = (
        f"POST /v1/jobs?operation=detect HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: image/jpeg\r\nContent-Length: {len(photo)}\r\n\r\n"
    ).encode()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=60) as conn:
            conn.sendall(head + photo[:half])
            # The route has taken the body's declared length from the upload budget: under way.
            deadline = time.monotonic() + 60
            while server.metrics().value("faceflow_upload_bytes_held") < len(photo):
                assert time.monotonic() < deadline, "the upload never began"
                time.sleep(0.05)
            server.request_stop()
            while "Waiting for connections to close" not in server.log_path.read_text():
                assert time.monotonic() < deadline, server.log_tail()
                time.sleep(0.05)
            conn.sendall(photo[half:])
            answer = b""
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                answer += chunk
        assert server.process is not None
        server.process.wait(timeout=60)
    finally:
        server.stop()

    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 503 Service Unavailable", answer[:300]
    headers, _, body = rest.partition(b"\r\n\r\n")
    assert b"retry-after: 1" in headers.lower()
    assert json.loads(body)["error"]["code"] == "unavailable"
    assert "jobs: 1 accepted jobs" not in server.log_path.read_text()


# A proxy serving faceflow at /faces strips the prefix (nginx: location /faces/ { proxy_pass
# http://faceflow/; }): faceflow is asked for /openapi.json when a client asked the proxy for
# /faces/openapi.json, and server.root_path tells it what the prefix was. These clients ask the
# server what such a proxy forwards.
ROOT_PATH = "/faces"


def test_serve_under_a_root_path_serves_the_api_and_the_fast_path_under_it(
    testdata: Path, live_server_factory: LiveServerFactory
) -> None:
    server = live_server_factory(SERVER__ROOT_PATH=ROOT_PATH)
    image = fresh((testdata / "obama_small.jpg").read_bytes())
    try:
        with httpx.Client(base_url=server.url, timeout=60.0) as client:
            document = client.get("/openapi.json")
            health = client.get("/healthz")
            answers = [
                client.post("/v1/analyze", content=image, headers={"Content-Type": "image/jpeg"})
                for _ in range(2)
            ]
            docs = client.get("/docs")
            accepted = client.post(
                "/v1/jobs?operation=detect",
                content=image,
                headers={"Content-Type": "image/jpeg"},
            )
        scrape = server.metrics()
    finally:
        server.stop()

    assert document.status_code == 200, document.text
    assert document.json()["servers"] == [{"url": ROOT_PATH}]
    assert health.status_code == 200
    assert [a.status_code for a in answers] == [200, 200], answers[0].text
    assert [a.headers["X-Cache"] for a in answers] == ["miss", "hit"]
    assert answers[1].content == answers[0].content
    # Counted under the app's own route, the prefix left out: the hit came through the first
    # layer, which matches the path without the root path.
    assert scrape.value("faceflow_http_requests_total", route="/v1/analyze", status="200") == 2
    assert f"{ROOT_PATH}/openapi.json" in docs.text
    assert accepted.status_code == 202, accepted.text
    assert accepted.headers["Location"].startswith(f"{ROOT_PATH}/v1/jobs/")


@pytest.mark.slow
def test_serve_under_a_root_path_gives_it_to_every_http_worker(
    live_server_factory: LiveServerFactory,
) -> None:
    # Several HTTP workers are started by uvicorn's supervisor (uvicorn.run), one by this
    # process: each must be given the root path. Fresh connections spread over the workers.
    server = live_server_factory(SERVER__ROOT_PATH=ROOT_PATH, SERVER__HTTP_WORKERS=2)
    try:
        documents = [
            httpx.get(f"{server.url}/openapi.json", timeout=60.0, headers={"Connection": "close"})
            for _ in range(8)
        ]
    finally:
        server.stop()

    assert [d.json()["servers"] for d in documents] == [[{"url": ROOT_PATH}]] * 8


def test_serve_refuses_a_root_path_that_is_no_prefix_naming_the_variable(tmp_path: Path) -> None:
    env = server_env(
        store_with(tmp_path, "yunet"),
        {"RUNTIME__OPERATIONS": '["detect"]', "SERVER__ROOT_PATH": "/faces/"},
    )
    env["COLUMNS"] = "200"  # the error on one line

    done = serve_until_refused(env)

    assert done.returncode == 2, done.stderr
    assert "server.root_path (FACEFLOW_SERVER__ROOT_PATH)" in done.stderr
    assert "must be empty or a path such as /faces" in done.stderr
    assert "Traceback" not in done.stderr


LOG_WAIT_S = 60.0


def _json_lines(text: str) -> list[dict[str, object]]:
    """The JSON objects among a log's lines (the fixture writes a plain line of its own)."""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.mark.slow
@pytest.mark.parametrize("http_workers", [1, 2])
def test_every_process_of_serve_writes_its_lines_to_the_log_naming_itself(
    live_server_factory: LiveServerFactory, http_workers: int
) -> None:
    # Spawned processes start with no logging set up: with two HTTP workers no request's
    # access line was written, and no inference process ever wrote an info line.
    server = live_server_factory(
        SERVER__HTTP_WORKERS=http_workers, SERVER__LOG_JSON="true", RUNTIME__PROCESSES=1
    )
    marker = f"/no-such-page-{os.urandom(4).hex()}"

    def lines() -> tuple[list[dict[str, object]], list[dict[str, object]]]:
        logged = _json_lines(server.log_path.read_text(errors="replace"))
        accessed = [e for e in logged if e["logger"] == "faceflow.access"]
        loaded = [e for e in logged if str(e["message"]).startswith("models loaded from")]
        return [e for e in accessed if marker in str(e["message"])], loaded

    try:
        for _ in range(4):  # fresh connections, which either HTTP worker may take
            httpx.get(f"{server.url}{marker}", timeout=30.0, headers={"Connection": "close"})
        # The second worker's inference process may still be loading: /readyz had one ready.
        deadline = time.monotonic() + LOG_WAIT_S
        while [len(found) for found in lines()] != [4, http_workers]:
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        accessed, loaded = lines()
    finally:
        server.stop()

    assert len(accessed) == 4, server.log_tail()
    assert len(loaded) == http_workers, server.log_tail()
    assert all(str(e["process"]).startswith("inference-") for e in loaded)
    if http_workers > 1:
        assert all(str(e["process"]).startswith("http-") for e in accessed)


class HeldRequest:
    """One ID photo sent to ``server`` (one inference process) from a thread, held running: its
    inference process is stopped (SIGSTOP) once it has the task, so the request cannot finish
    whatever the machine's speed. :meth:`release` lets the process go on, for the server to
    stop it as it stops."""

    def __init__(self, server: LiveServer, testdata: Path) -> None:
        log = server.log_path.read_text(errors="replace")
        (self.inference,) = [
            int(pid) for pid in re.findall(r"adopted from the head start \(pid (\d+)\)", log)
        ]
        self.answers: list[httpx.Response | httpx.HTTPError] = []
        photo = fresh((testdata / "obama.jpg").read_bytes())
        self._client = threading.Thread(target=self._ask, args=(server.url, photo))
        self._client.start()
        deadline = time.monotonic() + 120
        while server.metrics().value("faceflow_pool_in_flight") < 1:
            assert time.monotonic() < deadline, server.log_tail()
            time.sleep(0.05)
        os.kill(self.inference, signal.SIGSTOP)

    def _ask(self, url: str, photo: bytes) -> None:
        try:
            self.answers.append(
                httpx.post(
                    f"{url}/v1/id-photo",
                    content=photo,
                    headers={"Content-Type": "image/jpeg"},
                    timeout=120.0,
                )
            )
        except httpx.HTTPError as exc:
            self.answers.append(exc)

    def answer(self) -> httpx.Response | httpx.HTTPError:
        self._client.join(timeout=120)
        (answer,) = self.answers
        return answer

    def release(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.inference, signal.SIGCONT)


def _exited(pid: int) -> bool:
    """Whether ``pid`` has exited. A zombie counts: orphaned, it is reaped by whatever runs as
    pid 1, which in a container may be a shell or the test runner itself that never reaps it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def assert_stopped_answer(answer: httpx.Response | httpx.HTTPError) -> None:
    """``answer`` is the service's 503 for a request the server stopped before finishing."""
    assert isinstance(answer, httpx.Response), answer
    assert answer.status_code == 503, answer.text
    assert answer.headers["Retry-After"] == "1"
    assert answer.json()["error"]["code"] == "unavailable"


def test_ctrl_c_twice_answers_a_request_still_running_in_json_not_a_plain_500(
    testdata: Path, live_server_factory: LiveServerFactory
) -> None:
    """A second Ctrl-C during the graceful drain is uvicorn's force quit: it cancels every
    request still running, which uvicorn answered ``500 Internal Server Error`` in plain text,
    with a traceback each."""
    server = live_server_factory(RUNTIME__PROCESSES=1)
    assert server.process is not None
    held = HeldRequest(server, testdata)
    try:
        server.process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 60
        while "Waiting for connections to close" not in server.log_path.read_text():
            assert time.monotonic() < deadline, server.log_tail()
            time.sleep(0.05)
        server.process.send_signal(signal.SIGINT)
        answer = held.answer()
        held.release()
        server.process.wait(timeout=60)
    finally:
        held.release()
        server.stop()
    log = server.log_path.read_text(errors="replace")

    assert_stopped_answer(answer)
    assert "Exception in ASGI application" not in log
    assert "POST /v1/id-photo 503 unavailable" in log  # its access line
    # The force quit skips the app's stop: the inference process, orphaned, ends by itself once
    # its task is done (it reads its pipe's end).
    deadline = time.monotonic() + 60
    while not _exited(held.inference):
        assert time.monotonic() < deadline, "the inference process outlived the server"
        time.sleep(0.1)


def test_a_request_still_running_when_the_drain_ends_is_answered_503_and_nothing_is_left(
    testdata: Path, live_server_factory: LiveServerFactory
) -> None:
    """uvicorn waited 30 s (not a setting), exactly Kubernetes' default grace period, whose
    SIGKILL then cut the answers; and it answered what it cancelled 500 in plain text."""
    server = live_server_factory(RUNTIME__PROCESSES=1, SERVER__DRAIN_S=1)
    assert server.process is not None
    held = HeldRequest(server, testdata)
    try:
        server.request_stop()
        answer = held.answer()
        held.release()
        code = server.process.wait(timeout=120)
    finally:
        held.release()
        server.stop()
    log = server.log_path.read_text(errors="replace")

    assert_stopped_answer(answer)
    assert code == -signal.SIGTERM, log[-2000:]
    assert "Cancel 1 running task(s), timeout graceful shutdown exceeded" in log
    assert "Exception in ASGI application" not in log
    assert "Application shutdown complete" in log
    assert _exited(held.inference)

"""Job payloads and outcomes encrypted at rest in the queue Redis (``jobs.payload_key_file``),
against a real ``redis-server`` with its append-only file, and real workers in this process."""

from __future__ import annotations

import base64
import logging
import os
from pathlib import Path

import pytest
from redis import Redis

from faceflow.config import Settings
from faceflow.errors import Unavailable
from faceflow.jobs.records import JobStatus
from faceflow.jobs.redis_store import JobKeys
from faceflow.jobs.sealing import MARK, OUTCOME, PAYLOAD, CannotOpen, Sealer, key_id
from faceflow.operations.registry import prepare
from faceflow.runtime.context import WorkerContext
from tests.fixtures.redis_server import RedisProcess
from tests.jobs.support import QUEUE, job_settings, runner_for, variant, work_burst

KEY, OTHER = os.urandom(32), os.urandom(32)


def key_file(tmp_path: Path, *keys: bytes) -> Path:
    path = tmp_path / f"keys-{len(list(tmp_path.iterdir()))}"
    path.write_text("".join(base64.b64encode(key).decode() + "\n" for key in keys))
    return path


def test_a_sealed_value_opens_only_for_its_kind_and_job_and_with_its_key() -> None:
    sealer = Sealer([KEY], "q")
    raw = sealer.seal(PAYLOAD, "job-1", b"image bytes")
    assert raw.startswith(MARK + key_id(KEY))
    assert b"image bytes" not in raw
    assert sealer.open(PAYLOAD, "job-1", raw) == b"image bytes"
    for kind, job_id in [(PAYLOAD, "job-2"), (OUTCOME, "job-1")]:
        with pytest.raises(CannotOpen, match="another job"):
            sealer.open(kind, job_id, raw)
    with pytest.raises(CannotOpen, match="another job"):
        Sealer([KEY], "other-queue").open(PAYLOAD, "job-1", raw)
    with pytest.raises(CannotOpen, match=r"no jobs\.payload_key_file"):
        Sealer([], "q").open(PAYLOAD, "job-1", raw)
    with pytest.raises(CannotOpen, match="other keys"):
        Sealer([OTHER], "q").open(PAYLOAD, "job-1", raw)
    # Rotation: the new key seals, the old one still opens what it sealed.
    rotated = Sealer([OTHER, KEY], "q")
    assert rotated.open(PAYLOAD, "job-1", raw) == b"image bytes"
    assert rotated.seal(PAYLOAD, "job-1", b"x").startswith(MARK + key_id(OTHER))
    # Records stored in clear (msgpack arrays) read as before; without keys nothing is sealed.
    assert sealer.open(PAYLOAD, "job-1", b"\x94plain") == b"\x94plain"
    assert Sealer([], "q").seal(PAYLOAD, "job-1", b"\x94plain") == b"\x94plain"
    assert base64.b64encode(KEY).decode() not in repr(sealer)


def test_a_key_file_that_holds_no_key_is_refused_at_start_without_its_text(
    tmp_path: Path,
) -> None:
    bad = tmp_path / "bad"
    bad.write_text(base64.b64encode(KEY).decode() + "\nnot-a-key-but-secret\n")
    with pytest.raises(ValueError, match="line 2 of") as refused:
        Settings.model_validate({"jobs": {"payload_key_file": str(bad)}})
    assert "not-a-key-but-secret" not in str(refused.value)
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ValueError, match="holds no key"):
        Settings.model_validate({"jobs": {"payload_key_file": str(tmp_path / "empty")}})


def aof_sizes(queue_redis: RedisProcess) -> dict[Path, int]:
    return {p: p.stat().st_size for p in queue_redis.workdir.rglob("*.aof*") if p.is_file()}


def aof_since(queue_redis: RedisProcess, sizes: dict[Path, int]) -> bytes:
    """What the queue Redis appended to its AOF files since ``sizes`` (the fixture's server
    serves the whole session: earlier tests wrote the same photo there in clear)."""
    return b"".join(path.read_bytes()[sizes.get(path, 0) :] for path in aof_sizes(queue_redis))


def middle(data: bytes) -> bytes:
    return data[len(data) // 2 : len(data) // 2 + 64]


async def test_with_a_key_no_upload_or_result_reaches_the_queue_rediss_disk(
    queue_redis: RedisProcess, worker_context: WorkerContext, face_jpeg: bytes, tmp_path: Path
) -> None:
    """The queue Redis's append-only file kept every upload and result in clear (a slice of
    both was found in it after the job had ended). With a key neither is there, and the job
    answers as before: its status from the sealed outcome, its result whole."""
    settings = job_settings(queue_redis.url, payload_key_file=str(key_file(tmp_path, KEY)))
    runner = runner_for(settings)
    image = variant(face_jpeg)
    before = aof_sizes(queue_redis)
    try:
        record = await runner.submit(prepare("id-photo", image, {"format": "png"}, settings), None)
        work_burst(settings, worker_context)
        status = await runner.status(record.handle, None)
        assert (status.status, status.media_type) == (JobStatus.FINISHED, "image/png")
        _, entry = await runner.result(record.handle, None)
    finally:
        await runner.close()
    assert entry.body.startswith(b"\x89PNG")
    aof = aof_since(queue_redis, before)
    assert b"jobresult" in aof  # what was written is in it, sealed
    assert middle(image) not in aof
    assert middle(entry.body) not in aof


async def cannot_run(
    queue_redis: RedisProcess,
    worker_context: WorkerContext,
    face_jpeg: bytes,
    tmp_path: Path,
    worker_keys: tuple[bytes, ...],
) -> tuple[str, Settings]:
    """A job submitted with KEY, run by a worker holding ``worker_keys``, no wait for another
    worker and no retry: its failure message."""
    node = job_settings(
        queue_redis.url, payload_key_file=str(key_file(tmp_path, KEY)), max_retries=0
    )
    worker = job_settings(
        queue_redis.url,
        payload_key_file=str(key_file(tmp_path, *worker_keys)) if worker_keys else None,
        other_version_wait_s=0,
        max_retries=0,
    )
    runner = runner_for(node)
    try:
        record = await runner.submit(prepare("detect", variant(face_jpeg), {}, node), None)
        work_burst(worker, worker_context)
        failed = await runner.status(record.handle, None)
    finally:
        await runner.close()
    assert (failed.status, failed.attempts) == (JobStatus.FAILED, 1)
    assert failed.error is not None
    assert (failed.error.code, failed.error.status) == ("unavailable", 503)
    return failed.error.message, worker


@pytest.mark.parametrize(
    ("worker_keys", "why"),
    [
        pytest.param((), "no jobs.payload_key_file", id="no-key"),
        pytest.param((OTHER,), "other keys", id="wrong-key"),
    ],
)
async def test_a_worker_without_the_key_fails_the_job_saying_so_and_goes_on(
    queue_redis: RedisProcess,
    worker_context: WorkerContext,
    face_jpeg: bytes,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    worker_keys: tuple[bytes, ...],
    why: str,
) -> None:
    """A worker that cannot open a payload refuses it as a worker of another release does:
    given back for one that can (for other_version_wait_s, 0 here), then failed unavailable,
    naming the setting and the key id, never the key; the worker takes the next job."""
    with caplog.at_level(logging.DEBUG):
        message, worker = await cannot_run(
            queue_redis, worker_context, face_jpeg, tmp_path, worker_keys
        )
    assert why in message
    assert "jobs.payload_key_file" in message
    assert key_id(KEY).hex() in message
    for key in (KEY, OTHER):
        assert base64.b64encode(key).decode() not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    runner = runner_for(worker)  # the same worker runs a job it can read
    try:
        record = await runner.submit(prepare("detect", variant(face_jpeg), {}, worker), None)
        work_burst(worker, worker_context)
        assert (await runner.status(record.handle, None)).status is JobStatus.FINISHED
    finally:
        await runner.close()


async def test_a_payload_moved_to_another_job_does_not_open(
    queue_redis: RedisProcess, worker_context: WorkerContext, face_jpeg: bytes, tmp_path: Path
) -> None:
    """Whoever writes to the queue Redis cannot have one job's image read as another's."""
    settings = job_settings(
        queue_redis.url,
        payload_key_file=str(key_file(tmp_path, KEY)),
        other_version_wait_s=0,
        max_retries=0,
    )
    runner = runner_for(settings)
    connection = Redis.from_url(queue_redis.url)
    keys = JobKeys(QUEUE)
    try:
        first = prepare("detect", variant(face_jpeg), {}, settings)
        second = prepare("detect", variant(face_jpeg), {}, settings)
        await runner.submit(first, None)
        record = await runner.submit(second, None)
        moved = connection.get(keys.data(first.job_id))
        assert isinstance(moved, bytes)
        connection.set(keys.data(second.job_id), moved)
        work_burst(settings, worker_context)
        failed = await runner.status(record.handle, None)
    finally:
        connection.close()
        await runner.close()
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None
    assert "stored for another job" in failed.error.message


async def test_a_rotated_key_still_opens_and_a_node_without_it_answers_503(
    queue_redis: RedisProcess, worker_context: WorkerContext, face_jpeg: bytes, tmp_path: Path
) -> None:
    """Rotation: a job taken under the old key runs on a worker whose file puts the new key
    first; its outcome, sealed with the new key, reads on a node holding both. A node holding
    no key answers 503 (another node may hold it), not a wrong or empty result."""
    old = job_settings(queue_redis.url, payload_key_file=str(key_file(tmp_path, KEY)))
    rotated = job_settings(queue_redis.url, payload_key_file=str(key_file(tmp_path, OTHER, KEY)))
    runner = runner_for(old)
    submission = prepare("analyze", variant(face_jpeg), {}, old)
    try:
        record = await runner.submit(submission, None)
    finally:
        await runner.close()
    work_burst(rotated, worker_context)
    connection = Redis.from_url(queue_redis.url)
    stored = connection.get(JobKeys(QUEUE).result(submission.job_id))
    connection.close()
    assert isinstance(stored, bytes)
    assert stored.startswith(MARK + key_id(OTHER))
    for settings in (rotated, job_settings(queue_redis.url)):
        runner = runner_for(settings)
        try:
            if settings is rotated:
                _, entry = await runner.result(record.handle, None)
                assert entry.media_type == "application/json"
            else:
                with pytest.raises(Unavailable):
                    await runner.result(record.handle, None)
        finally:
            await runner.close()


def test_a_key_file_of_raw_bytes_is_refused_without_any_of_them(tmp_path: Path) -> None:
    # `head -c32 /dev/urandom > keys`, base64 forgotten: the refusal quoted the decode error,
    # which names a byte of the key and where it is ("can't decode byte 0x9f in position 0").
    raw = tmp_path / "raw"
    raw.write_bytes(b"\x9f" + KEY[1:])
    with pytest.raises(ValueError, match="not text") as refused:
        Settings.model_validate({"jobs": {"payload_key_file": str(raw)}})
    assert "0x9f" not in str(refused.value)
    assert "position" not in str(refused.value)


@pytest.mark.parametrize("kept", [12, 8, len(MARK) + 4 + 12])
def test_a_sealed_value_cut_short_does_not_open(kept: int) -> None:
    # Cut within its nonce, AESGCM's ValueError ("Nonce must be between 8 and 128 bytes")
    # escaped: an internal error for the job, a 500 for its result, where an altered value is
    # CannotOpen (a worker gives the job back, the API answers 503).
    sealer = Sealer([KEY], "q")
    raw = sealer.seal(OUTCOME, "job-1", b"result")
    with pytest.raises(CannotOpen, match="altered"):
        sealer.open(OUTCOME, "job-1", raw[:kept])

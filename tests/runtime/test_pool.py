"""InferencePool with real spawned worker processes; tasks live in tests/runtime/pool_tasks.py.

Bounds are generous so the suite cannot hang; no test asserts a duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import hashlib
import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import weakref
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio

from faceflow.errors import (
    DeadlineExceeded,
    FaceflowError,
    ModelMissing,
    NoFace,
    NotReady,
    Overloaded,
    WorkerCrashed,
)
from faceflow.runtime import pool as pool_module
from faceflow.runtime.child import checkpoint
from faceflow.runtime.pool import (
    CHILD_GLIBC_TUNABLES,
    DEADLINE_AT,
    PLACE_OWNER,
    HeadStart,
    InferencePool,
    TaskObserver,
    WorkerState,
)
from tests.runtime import pool_tasks
from tests.runtime.pool_tasks import Config, Context

BOUND_S = 30.0

pytestmark = pytest.mark.timeout(120)

module_loop = pytest.mark.asyncio(loop_scope="module")


def make_pool(
    processes: int = 2,
    max_waiting: int = 8,
    *,
    config: Config | None = None,
    on_task_done: TaskObserver | None = None,
    stop_timeout_s: float = 10.0,
    cancel_grace_s: float = BOUND_S,
    head_start: HeadStart | None = None,
    keep_last_place: bool = False,
) -> InferencePool[Context]:
    return InferencePool(
        processes=processes,
        max_waiting=max_waiting,
        deadline_s=BOUND_S,
        init=pool_tasks.init,
        init_arg=config or Config(),
        warmup=pool_tasks.warmup,
        on_task_done=on_task_done,
        stop_timeout_s=stop_timeout_s,
        cancel_grace_s=cancel_grace_s,
        head_start=head_start,
        keep_last_place=keep_last_place,
    )


def head_start(processes: int = 2, config: Config | None = None) -> HeadStart:
    return HeadStart(
        processes=processes,
        init=pool_tasks.init,
        init_arg=config or Config(),
        warmup=pool_tasks.warmup,
    )


@contextlib.asynccontextmanager
async def running(pool: InferencePool[Context]) -> AsyncIterator[InferencePool[Context]]:
    async with pool:
        await pool.wait_ready(BOUND_S)
        yield pool


async def until(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` on the loop, for at most BOUND_S."""
    async with asyncio.timeout(BOUND_S):
        # Nothing can signal us: the condition is about other processes.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_pool() -> AsyncIterator[InferencePool[Context]]:
    """Two processes, room for 20 waiting, for the tests that only run tasks on a healthy pool
    (nothing crashes, times out, is cancelled or stopped): under coverage each pool costs about a
    second to spawn and stop. Its counters run on from test to test: compare before and after."""
    async with running(make_pool(processes=2, max_waiting=20)) as pool:
        yield pool


def pid_exists(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def worker_pids(pool: InferencePool[Context]) -> set[int]:
    return {w.pid for w in pool.workers() if w.pid is not None}


@module_loop
async def test_results_come_back_in_order_with_two_processes(
    shared_pool: InferencePool[Context],
) -> None:
    pool = shared_pool
    before = pool.stats().completed
    results = await asyncio.gather(*(pool.run(pool_tasks.echo, i) for i in range(20)))
    assert results == list(range(20))
    assert pool.stats().completed == before + 20


def resident_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@module_loop
async def test_a_worker_gives_back_the_heap_a_task_left_once_idle() -> None:
    # 10 MB, under the 16 MB slack a task may leave without a trim: before, a worker held it
    # for as long as no task came (bench/rss.py's +6 % after the load).
    held = 10 * 1024 * 1024
    async with running(make_pool(processes=1)) as pool:
        pid = await pool.run(pool_tasks.hold_then_free, held)
        after_task = resident_of(pid)

        await until(lambda: resident_of(pid) < after_task - held // 2)


@module_loop
async def test_init_runs_once_per_process(shared_pool: InferencePool[Context]) -> None:
    pool = shared_pool
    seen = await asyncio.gather(*(pool.run(pool_tasks.whoami, None) for _ in range(20)))
    pids = {task_pid for _, _, task_pid in seen}
    assert pids == worker_pids(pool)
    assert len(pids) == 2
    assert all(context_pid == task_pid for context_pid, _, task_pid in seen)
    assert {inits for _, inits, _ in seen} == {1}


@module_loop
async def test_typed_worker_error_keeps_its_type_code_and_details(
    shared_pool: InferencePool[Context],
) -> None:
    pool = shared_pool
    with pytest.raises(NoFace) as caught:
        await pool.run(pool_tasks.no_face, None)
    assert caught.value.code == "no_face"
    assert caught.value.status == 422
    assert caught.value.message == "no face found in the image"
    assert caught.value.details == {"faces": 0}
    assert await pool.run(pool_tasks.echo, 1) == 1


async def settled() -> None:
    """Let the callbacks the failure scheduled run."""
    for _ in range(3):
        await asyncio.sleep(0)


@module_loop
async def test_a_failed_tasks_request_is_freed_with_its_error(
    shared_pool: InferencePool[Context],
) -> None:
    """Without waiting for a collection: the error is raised with ``run``'s frame in its
    traceback, and that frame held the job whose future holds the error. The cycle kept each
    failed request's upload (and its pickled copy) until the next full collection: batches of
    undecodable 10 MB images took the API process past a gigabyte."""
    request = pool_tasks.Parcel(b"upload")
    watched = weakref.ref(request)
    gc.disable()
    try:
        with pytest.raises(NoFace):
            await shared_pool.run(pool_tasks.no_face, request)
        del request
        await settled()
        assert watched() is None
    finally:
        gc.enable()


@module_loop
async def test_other_exception_becomes_a_500_without_internals(
    shared_pool: InferencePool[Context],
) -> None:
    pool = shared_pool
    with pytest.raises(FaceflowError) as caught:
        await pool.run(pool_tasks.boom, None)
    assert type(caught.value) is FaceflowError
    assert caught.value.status == 500
    assert "boom" in caught.value.message
    assert "ValueError" in caught.value.message
    assert "Traceback" not in caught.value.message
    assert "secret" not in caught.value.message
    assert "/srv" not in caught.value.message


async def test_ready_only_after_every_worker_warmed_up(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    async with make_pool(processes=2, config=Config(gate=str(gate))) as pool:
        assert not pool.ready
        await until(lambda: len(list(tmp_path.glob("gate.*.warming"))) == 2)
        assert not pool.ready
        assert pool.stats().ready_workers == 0
        assert {w.state for w in pool.workers()} == {WorkerState.STARTING}
        queued = asyncio.create_task(pool.run(pool_tasks.echo, 5))
        with pytest.raises(NotReady):
            await pool.wait_ready(0.05)

        gate.touch()
        await pool.wait_ready(BOUND_S)
        assert pool.ready
        assert pool.stats().ready_workers == 2
        assert await queued == 5
    assert not pool.ready


async def test_overload_rejects_at_once_and_loses_nothing_accepted(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    async with running(make_pool(processes=1, max_waiting=2)) as pool:
        accepted = [asyncio.create_task(pool.run(pool_tasks.hold, str(gate))) for _ in range(3)]
        await asyncio.sleep(0)  # each task runs up to its first await: all three are admitted
        assert (pool.stats().in_flight, pool.stats().waiting) == (1, 2)

        with pytest.raises(Overloaded) as caught:
            await pool.run(pool_tasks.echo, 0)
        assert caught.value.retry_after_s >= 1
        assert caught.value.status == 503

        # The same refusal is available before any work is done for a request.
        with pytest.raises(Overloaded):
            pool.check_admission()

        gate.touch()
        assert await asyncio.gather(*accepted) == [str(gate)] * 3
        assert pool.stats().rejected == 2
        pool.check_admission()  # room again: no error


async def test_an_admitted_request_is_never_refused_between_its_trips(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    async with running(make_pool(processes=1, max_waiting=1)) as pool:
        with pool.admit() as admission:
            first = asyncio.create_task(pool.run(pool_tasks.sleep, 0.3, admission=admission))
            await until(lambda: pool.stats().in_flight == 1)
            other = asyncio.create_task(pool.run(pool_tasks.hold, str(gate)))  # the waiting place
            await until(lambda: pool.stats().waiting == 1)
            assert await first == 0.3
            # The worker took `other`; a newcomer now finds the queue free, but the admitted
            # request, between its trips, holds that place: the newcomer is refused, not it.
            with pytest.raises(Overloaded):
                await pool.run(pool_tasks.echo, 2)
            second = asyncio.create_task(pool.run(pool_tasks.echo, 3, admission=admission))
            await until(lambda: pool.stats().waiting == 1)
            gate.touch()
            assert await second == 3
        assert await other == str(gate)
        assert await pool.run(pool_tasks.echo, 4) == 4  # closed: its place is free again


async def test_an_admission_takes_a_waiting_place(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    async with running(make_pool(processes=1, max_waiting=1)) as pool:
        busy = asyncio.create_task(pool.run(pool_tasks.hold, str(gate)))
        await until(lambda: pool.stats().in_flight == 1)
        with pool.admit() as admission:  # the waiting place is free: admitted
            with pytest.raises(Overloaded):  # ... and it is now the admission's
                pool.check_admission()
            trip = asyncio.create_task(pool.run(pool_tasks.echo, 5, admission=admission))
            await until(lambda: pool.stats().waiting == 1)
            gate.touch()
            assert await trip == 5
        assert await busy == str(gate)


async def test_an_admission_is_refused_like_a_run_when_there_is_no_room(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    async with running(make_pool(processes=1, max_waiting=0)) as pool:
        busy = asyncio.create_task(pool.run(pool_tasks.hold, str(gate)))
        await until(lambda: pool.stats().in_flight == 1)
        with pytest.raises(Overloaded):
            pool.admit()
        gate.touch()
        assert await busy == str(gate)
        with pool.admit() as admission:
            assert await pool.run(pool_tasks.echo, 6, admission=admission) == 6


def owned_by(owner: str | None) -> contextvars.Context:
    """A context whose pool calls are ``owner``'s, as the service sets it per request."""
    context = contextvars.copy_context()
    context.run(PLACE_OWNER.set, owner)
    return context


async def test_the_last_place_is_refused_to_an_owner_already_in_the_pool(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    async with running(make_pool(processes=1, max_waiting=1, keep_last_place=True)) as pool:
        owned_by("b").run(pool.check_admission)  # another owner is about
        busy = asyncio.create_task(pool.run(pool_tasks.hold, str(gate)), context=owned_by("a"))
        await until(lambda: pool.stats().in_flight == 1)
        rejected = pool.stats().rejected
        with pytest.raises(Overloaded, match="other clients") as refused:
            owned_by("a").run(pool.check_admission)
        assert refused.value.retry_after_s >= 1
        with pytest.raises(Overloaded):
            owned_by("a").run(pool.admit)
        assert pool.stats().rejected == rejected + 2
        owned_by(None).run(pool.check_admission)  # nobody's (a job, the CLI): first come
        other = asyncio.create_task(pool.run(pool_tasks.echo, 7), context=owned_by("b"))
        await until(lambda: pool.stats().waiting == 1)
        gate.touch()
        assert await busy == str(gate)
        assert await other == 7
        # "a" holds nothing now (its refusals took nothing either): the last place is its again.
        again = tmp_path / "again"
        held = asyncio.create_task(pool.run(pool_tasks.hold, str(again)), context=owned_by("b"))
        await until(lambda: pool.stats().in_flight == 1)
        owned_by("a").run(pool.check_admission)
        again.touch()
        assert await held == str(again)


async def test_an_admission_holds_its_owners_place_until_closed() -> None:
    async with running(make_pool(processes=1, max_waiting=1, keep_last_place=True)) as pool:
        owned_by("b").run(pool.check_admission)  # another owner is about
        admission = owned_by("a").run(pool.admit)
        with pytest.raises(Overloaded):
            owned_by("a").run(pool.check_admission)
        owned_by("b").run(pool.check_admission)
        # Its trips are the admission's place, not another one.
        assert await pool.run(pool_tasks.echo, 8, admission=admission) == 8
        with pytest.raises(Overloaded):
            owned_by("a").run(pool.check_admission)
        admission.close()
        owned_by("a").run(pool.check_admission)


@pytest.mark.parametrize(
    ("keep_last_place", "others"),
    [(False, ["b"]), (True, []), (True, [None])],
    ids=["off", "nobody-else-about", "only-ownerless-tasks-about"],
)
async def test_an_owner_may_take_every_place_when_none_is_kept(
    tmp_path: Path, keep_last_place: bool, others: list[str | None]
) -> None:
    gate = tmp_path / "gate"
    async with running(
        make_pool(processes=1, max_waiting=1, keep_last_place=keep_last_place)
    ) as pool:
        for other in others:
            owned_by(other).run(pool.check_admission)
        busy = asyncio.create_task(pool.run(pool_tasks.hold, str(gate)), context=owned_by("a"))
        await until(lambda: pool.stats().in_flight == 1)
        owned_by("a").run(pool.check_admission)  # a single client keeps its waiting place
        gate.touch()
        assert await busy == str(gate)


async def test_another_owner_is_about_for_a_while(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = tmp_path / "gate"
    async with running(make_pool(processes=1, max_waiting=1, keep_last_place=True)) as pool:
        owned_by("b").run(pool.check_admission)
        busy = asyncio.create_task(pool.run(pool_tasks.hold, str(gate)), context=owned_by("a"))
        await until(lambda: pool.stats().in_flight == 1)
        with pytest.raises(Overloaded):
            owned_by("a").run(pool.check_admission)
        # Once "b" has not asked for OTHERS_ABOUT_S, "a" is alone again.
        monkeypatch.setattr(pool_module, "OTHERS_ABOUT_S", 0.0)
        owned_by("a").run(pool.check_admission)
        gate.touch()
        assert await busy == str(gate)


async def test_deadline_on_a_running_task_discards_it_and_the_pool_keeps_working(
    tmp_path: Path,
) -> None:
    gate = tmp_path / "gate"
    async with running(make_pool(processes=1)) as pool:
        with pytest.raises(DeadlineExceeded) as caught:
            # Held past its deadline (no checkpoint, as the old sleep), let go below.
            await pool.run(pool_tasks.hold, str(gate), deadline_s=0.2)
        assert caught.value.retry_after_s >= 1
        # The worker was not killed: this waits for the slow task to end, then runs there.
        before = worker_pids(pool)
        after = asyncio.create_task(pool.run(pool_tasks.echo, 7))
        await until(lambda: pool.stats().waiting == 1)
        gate.touch()
        assert await after == 7
        assert worker_pids(pool) == before
        stats = pool.stats()
        assert (stats.timed_out, stats.completed, stats.crashed) == (1, 2, 0)


async def test_a_task_gets_only_what_is_left_of_its_callers_deadline() -> None:
    async with running(make_pool(processes=1, cancel_grace_s=10 * BOUND_S)) as pool:
        loop = asyncio.get_running_loop()
        token = DEADLINE_AT.set(loop.time())  # a caller that spent its whole deadline waiting
        try:
            with pytest.raises(DeadlineExceeded):
                await pool.run(pool_tasks.echo, 1)
        finally:
            DEADLINE_AT.reset(token)
        stats = pool.stats()
        assert (stats.completed, stats.timed_out) == (0, 1)  # refused, never started
        token = DEADLINE_AT.set(loop.time() + 0.2)  # far less than the pool's BOUND_S
        try:
            with pytest.raises(DeadlineExceeded):
                await pool.run(pool_tasks.staged, 10 * BOUND_S)
        finally:
            DEADLINE_AT.reset(token)
        await until(lambda: pool.stats().in_flight == 0)
        token = DEADLINE_AT.set(loop.time() + 10 * BOUND_S)  # more than the pool's own
        try:
            assert await pool.run(pool_tasks.echo, 2) == 2
        finally:
            DEADLINE_AT.reset(token)


async def test_deadline_stops_a_running_task_at_its_next_checkpoint() -> None:
    # The grace period outlasts the test: the worker frees itself, nobody kills it.
    async with running(make_pool(processes=1, cancel_grace_s=10 * BOUND_S)) as pool:
        before = worker_pids(pool)
        with pytest.raises(DeadlineExceeded):
            await pool.run(pool_tasks.staged, 10 * BOUND_S, deadline_s=0.2)
        await until(lambda: pool.stats().in_flight == 0)
        assert worker_pids(pool) == before
        # The stop was for that task only: the next one on the same worker runs to its end.
        assert await pool.run(pool_tasks.staged, 0.1) == 0.1
        stats = pool.stats()
        assert (stats.timed_out, stats.killed, stats.crashed, stats.replaced) == (1, 0, 0, 0)


async def test_a_task_running_past_deadline_and_grace_is_killed_and_replaced() -> None:
    async with running(make_pool(processes=1, cancel_grace_s=0.5)) as pool:
        before = worker_pids(pool)
        with pytest.raises(DeadlineExceeded):
            await pool.run(pool_tasks.sleep, 10 * BOUND_S, deadline_s=0.2)  # no checkpoint
        await until(lambda: pool.stats().in_flight == 0 and pool.stats().ready_workers == 1)
        assert worker_pids(pool).isdisjoint(before)
        assert not any(pid_exists(pid) for pid in before)
        assert await pool.run(pool_tasks.echo, 5) == 5
        stats = pool.stats()
        assert (stats.killed, stats.crashed, stats.replaced) == (1, 0, 1)


async def test_cancelling_a_running_request_stops_its_task() -> None:
    async with running(make_pool(processes=1, cancel_grace_s=10 * BOUND_S)) as pool:
        task = asyncio.create_task(pool.run(pool_tasks.staged, 10 * BOUND_S))
        await until(lambda: pool.stats().in_flight == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await until(lambda: pool.stats().in_flight == 0)
        assert pool.stats().killed == 0


def test_checkpoint_outside_a_worker_does_nothing() -> None:
    checkpoint()


async def test_deadline_on_a_waiting_task_removes_it_from_the_queue(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    async with running(make_pool(processes=1)) as pool:
        busy = asyncio.create_task(pool.run(pool_tasks.hold, str(gate)))
        await asyncio.sleep(0)
        with pytest.raises(DeadlineExceeded):
            await pool.run(pool_tasks.echo, 1, deadline_s=0.1)
        assert pool.stats().waiting == 0
        gate.touch()
        assert await busy == str(gate)
        assert pool.stats().completed == 1  # the expired task never ran


async def test_cancelling_a_waiting_request_frees_its_slot(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    async with running(make_pool(processes=1, max_waiting=1)) as pool:
        busy = asyncio.create_task(pool.run(pool_tasks.hold, str(gate)))
        waiter = asyncio.create_task(pool.run(pool_tasks.echo, 1))
        await asyncio.sleep(0)
        with pytest.raises(Overloaded):
            await pool.run(pool_tasks.echo, 2)

        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert pool.stats().waiting == 0
        third = asyncio.create_task(pool.run(pool_tasks.echo, 3))
        await asyncio.sleep(0)
        assert pool.stats().waiting == 1  # accepted: the slot is free again
        gate.touch()
        assert await third == 3
        assert await busy == str(gate)


async def test_cancelling_a_running_request_discards_its_result(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    async with running(make_pool(processes=1)) as pool:
        running_task = asyncio.create_task(pool.run(pool_tasks.hold, str(gate)))
        await until(lambda: pool.stats().in_flight == 1)
        running_task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running_task
        gate.touch()
        assert await pool.run(pool_tasks.echo, 4) == 4
        assert pool.stats().completed == 2


async def test_worker_dying_once_is_replaced_and_the_task_retried(tmp_path: Path) -> None:
    async with running(make_pool(processes=1)) as pool:
        (original,) = worker_pids(pool)
        answered_by = await pool.run(pool_tasks.crash_once, str(tmp_path / "crashed"))
        assert answered_by != original
        assert not pid_exists(original)
        stats = pool.stats()
        assert (stats.crashed, stats.replaced, stats.ready_workers) == (1, 1, 1)
        (worker,) = pool.workers()
        assert (worker.generation, worker.pid) == (1, answered_by)
        assert pool.ready


async def test_worker_dying_twice_raises_and_spares_other_tasks(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    async with running(make_pool(processes=2)) as pool:
        slow = asyncio.create_task(pool.run(pool_tasks.hold, str(gate)))
        await asyncio.sleep(0)
        with pytest.raises(WorkerCrashed) as caught:
            await pool.run(pool_tasks.crash_always, None)
        assert caught.value.status == 503
        gate.touch()
        assert await slow == str(gate)
        assert await asyncio.gather(*(pool.run(pool_tasks.echo, i) for i in range(4))) == [
            0,
            1,
            2,
            3,
        ]
        stats = pool.stats()
        assert (stats.crashed, stats.replaced) == (2, 2)


async def test_idle_worker_killed_from_outside_is_replaced_while_ready_holds() -> None:
    async with running(make_pool(processes=2)) as pool:
        victim = pool.workers()[0].pid
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        await until(lambda: pool.stats().crashed == 1)
        assert pool.ready  # the other worker still serves
        await until(lambda: pool.stats().ready_workers == 2)
        assert victim not in worker_pids(pool)
        assert await pool.run(pool_tasks.echo, 9) == 9


async def test_init_failure_surfaces_from_wait_ready_and_run() -> None:
    async with make_pool(processes=1, config=Config(fail_init=True)) as pool:
        with pytest.raises(ModelMissing) as caught:
            await pool.wait_ready(BOUND_S)
        assert caught.value.details == {"model": "yunet"}
        assert not pool.ready
        assert [w.state for w in pool.workers()] == [WorkerState.FAILED]
        with pytest.raises(NotReady):
            await pool.run(pool_tasks.echo, 1)
        assert pool.stats().replaced == 0  # a failing start is not restarted in a loop


def new_children(before: set[multiprocessing.process.BaseProcess]) -> list[str]:
    """Processes this test started that are still alive (a session fixture's own inference
    process, started earlier, is not this test's)."""
    return [p.name for p in multiprocessing.active_children() if p not in before]


async def test_close_stops_every_process() -> None:
    before = set(multiprocessing.active_children())
    pool = make_pool(processes=2)
    async with running(pool):
        assert await pool.run(pool_tasks.echo, 1) == 1
        pids = worker_pids(pool)
        assert len(pids) == 2
    assert new_children(before) == []
    assert not any(pid_exists(pid) for pid in pids)
    assert {w.state for w in pool.workers()} == {WorkerState.STOPPED}
    with pytest.raises(NotReady):
        await pool.run(pool_tasks.echo, 1)


async def test_close_kills_a_worker_stuck_in_a_task_and_fails_its_callers() -> None:
    before = set(multiprocessing.active_children())
    async with running(make_pool(processes=1, stop_timeout_s=0.2)) as pool:
        (pid,) = worker_pids(pool)
        stuck = asyncio.create_task(pool.run(pool_tasks.sleep, 60.0))
        waiting = asyncio.create_task(pool.run(pool_tasks.echo, 1))
        await asyncio.sleep(0)
    with pytest.raises(NotReady):
        await stuck
    with pytest.raises(NotReady):
        await waiting
    assert not pid_exists(pid)
    assert new_children(before) == []


@module_loop
async def test_large_request_round_trips(shared_pool: InferencePool[Context]) -> None:
    data = os.urandom(10 * 1024 * 1024)
    size, digest = await shared_pool.run(pool_tasks.digest, data)
    assert size == len(data)
    assert digest == hashlib.sha256(data).hexdigest()


async def test_workers_start_with_the_malloc_tunables_and_the_parent_keeps_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    async with running(make_pool(processes=1)) as pool:
        seen = await pool.run(pool_tasks.env, "GLIBC_TUNABLES")
    assert seen == ":".join(CHILD_GLIBC_TUNABLES)
    assert "GLIBC_TUNABLES" not in os.environ


async def test_an_operators_glibc_tunables_are_kept_and_win(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    own = "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=0"
    monkeypatch.setenv("GLIBC_TUNABLES", own)
    async with running(make_pool(processes=1)) as pool:
        seen = await pool.run(pool_tasks.env, "GLIBC_TUNABLES")
    added = [t for t in CHILD_GLIBC_TUNABLES if not t.startswith("glibc.malloc.hugetlb=")]
    assert seen == ":".join([own, *added])
    assert os.environ["GLIBC_TUNABLES"] == own


async def test_observer_sees_every_task() -> None:
    calls: list[tuple[str, float, bool]] = []
    observer: TaskObserver = lambda name, seconds, ok: calls.append((name, seconds, ok))  # noqa: E731
    async with running(make_pool(processes=1, on_task_done=observer)) as pool:
        await pool.run(pool_tasks.echo, 1)
        with pytest.raises(NoFace):
            await pool.run(pool_tasks.no_face, None)
    assert [(name, ok) for name, _, ok in calls] == [("echo", True), ("no_face", False)]
    assert all(seconds >= 0 for _, seconds, _ in calls)


async def test_run_before_start_is_not_ready() -> None:
    pool = make_pool(processes=1)
    with pytest.raises(NotReady):
        await pool.run(pool_tasks.echo, 1)
    with pytest.raises(NotReady):
        await pool.wait_ready(0.1)
    await pool.close()


def test_usable_from_a_plain_script() -> None:
    before = set(multiprocessing.active_children())

    async def main() -> list[int]:
        async with running(make_pool(processes=2)) as pool:
            return await asyncio.gather(*(pool.run(pool_tasks.echo, i) for i in range(3)))

    assert asyncio.run(main()) == [0, 1, 2]
    assert new_children(before) == []


def test_constructor_refuses_local_functions_and_bad_bounds() -> None:
    def local_init(config: Config) -> Context:
        return {}

    with pytest.raises((AttributeError, TypeError, pickle.PicklingError)):
        InferencePool(
            processes=1, max_waiting=0, deadline_s=1.0, init=local_init, init_arg=Config()
        )
    with pytest.raises(ValueError, match="processes"):
        make_pool(processes=0)


async def test_a_pool_adopts_the_workers_of_a_head_start_with_its_setup() -> None:
    early = head_start(processes=2)
    started = {spawned.process.pid or 0 for spawned in early._spawned or ()}

    async with running(make_pool(processes=2, head_start=early)) as pool:
        assert worker_pids(pool) == started
        seen = await asyncio.gather(*(pool.run(pool_tasks.whoami, None) for _ in range(10)))
        assert {inits for _, inits, _ in seen} == {1}  # init ran once, before the pool existed
    assert not any(pid_exists(pid) for pid in started)


async def test_a_pool_with_another_setup_stops_the_head_start_and_spawns_its_own(
    tmp_path: Path,
) -> None:
    # Another setup: a gate (never opened), so the head start's workers hold in warm-up, where
    # they announce themselves with files beside the gate (in tmp_path, not the working directory).
    early = head_start(processes=2, config=Config(gate=str(tmp_path / "never-opened")))
    started = [spawned.process for spawned in early._spawned or ()]

    async with running(make_pool(processes=2, head_start=early)) as pool:
        assert all(process.exitcode is not None for process in started)
        assert worker_pids(pool).isdisjoint(process.pid for process in started)
        assert await pool.run(pool_tasks.echo, 3) == 3


async def test_a_smaller_pool_adopts_what_it_needs_and_stops_the_rest() -> None:
    early = head_start(processes=2)
    first, second = (spawned.process for spawned in early._spawned or ())

    async with running(make_pool(processes=1, head_start=early)) as pool:
        assert worker_pids(pool) == {first.pid}
        assert second.exitcode is not None


_SCRIPT = """
import asyncio, sys
from pathlib import Path

from faceflow.runtime.pool import InferencePool
from tests.runtime import pool_tasks

with Path(sys.argv[1]).open("a") as runs:  # once per process that runs this file
    runs.write("ran\\n")


async def main() -> None:
    pool = InferencePool(
        processes=2, max_waiting=2, deadline_s=30.0, init=pool_tasks.init,
        init_arg=pool_tasks.Config(), warmup=pool_tasks.warmup,
    )
    async with pool:
        await pool.wait_ready(30.0)
        print(await pool.run(pool_tasks.echo, 7))


if __name__ == "__main__":
    asyncio.run(main())
"""


def test_a_worker_does_not_run_the_parents_main_script_again(tmp_path: Path) -> None:
    """spawn would run the parent's main script (for ``faceflow serve``, the console script and
    with it the whole CLI) in each worker; the pool's functions never need it."""
    script, runs = tmp_path / "main_script.py", tmp_path / "runs"
    script.write_text(_SCRIPT)
    root = Path(__file__).resolve().parents[2]

    done = subprocess.run(
        [sys.executable, str(script), str(runs)],
        capture_output=True,
        text=True,
        timeout=BOUND_S * 2,
        env={**os.environ, "PYTHONPATH": str(root)},
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "7"
    assert runs.read_text().splitlines() == ["ran"]

"""The RQ side of jobs: the job function and the worker class that runs it.

One worker process = one :class:`FaceflowWorker`, an RQ ``SimpleWorker``: it runs every job in its
own process, where it loaded the models once at start (no fork per job, so no ONNX session is
ever used across a fork and none is re-created per job). The price of not forking is that a
crash takes the worker down with its job; the job is not lost:

* while a job runs, the worker's lease thread (one per process, started with its first job)
  renews the job's lease in RQ's started registry every ``lease_s / 3`` seconds (RQ's
  SimpleWorker would otherwise claim ``job_timeout + 60`` s), also while the queue Redis is out of
  memory (the lease alone, which needs no room);
* a worker killed mid-job stops renewing, so within ``lease_s`` the job counts as abandoned, and
  the next maintenance pass (every ``maintenance_interval_s``, by any worker or supervisor)
  retries it on another worker while it has retries left, and parks it in the failed registry
  (the dead-letter list) after that; no pass judges leases in the first seconds after a queue
  Redis restart or hang (nobody could renew while it was down or hung; the supervisors' ticks
  tell a hang from a dead worker, :data:`_HANG_CHECK_LUA`), a job delivered again after an
  earlier attempt stored its outcome is not run again, and a job a stopped worker was served
  and a pass gave back meanwhile is not started by it once it resumes;
* the supervisor (:mod:`faceflow.jobs.supervisor`) starts a fresh worker process in its place.

A job's own Redis work shares RQ's (see :meth:`FaceflowWorker.execute_job`): while the queue
has work, one script per job, run atomically by the queue Redis, records a job's end (the
outcome, the payload deleted, RQ's finished state and registries), takes the next job and
starts it (RQ's started state and the lease, the outcome fence, the payload read, the attempt
counted), so the start is stored before the job runs, as it always was.

No setting changes what a job does: whoever embeds a worker (the tests do, to make a job hold or
kill its worker) passes a ``before_job`` callable to :func:`build_worker` in code.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
import time
from base64 import b64encode
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any, TypeVar
from uuid import uuid4

import msgpack
from redis import Redis
from redis.client import Pipeline
from redis.commands.core import Script
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, OutOfMemoryError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Queue, SimpleWorker, get_current_job
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.exceptions import DequeueTimeout, NoSuchJobError
from rq.executions import Execution, ExecutionRegistry
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job, JobStatus
from rq.job_lifecycle import call_exception_handlers
from rq.rate_limit import RateLimitRegistry
from rq.registry import (
    BaseRegistry,
    DeferredJobRegistry,
    FailedJobRegistry,
    FinishedJobRegistry,
    ReadyJobRegistry,
    StartedJobRegistry,
)
from rq.results import Result
from rq.serializers import JSONSerializer, resolve_serializer
from rq.suspension import WORKERS_SUSPENDED
from rq.timeouts import JobTimeoutException
from rq.utils import current_timestamp, now, str_to_date, utcformat
from rq.worker import WorkerStatus
from rq.worker_registration import clean_worker_registry, unregister

from faceflow.cache.entry import CacheEntry, failure_entry
from faceflow.cache.keys import cache_key
from faceflow.cache.redis_cache import jittered_ttl_ms, stored_form
from faceflow.config import RuntimeSettings, Settings
from faceflow.errors import (
    DeadlineExceeded,
    FaceflowError,
    InvalidParameter,
    JsonScalar,
    OperationDisabled,
    Unavailable,
)
from faceflow.jobs.records import (
    JobError,
    JobOutcome,
    JobPayload,
    decode_payload,
    encode_outcome,
)
from faceflow.jobs.redis_store import (
    READ_CHUNK_BYTES,
    HeldConnection,
    JobKeys,
    bulk_limit,
    connect,
)
from faceflow.jobs.retry import is_retryable
from faceflow.jobs.sealing import OUTCOME, PAYLOAD, CannotOpen, Sealer
from faceflow.operations.registry import OperationSpec, check_enabled, job_id_for, spec_for
from faceflow.runtime.context import WorkerContext

log = logging.getLogger(__name__)

_EXPIRED_MESSAGE = "the job's stored image expired before it ran; submit the image again"
_NO_ROOM_MESSAGE = (
    "the job's result ({size:.1f} MB) did not fit in the job queue's Redis (out of memory) now; "
    "send it again later, or use the synchronous route"
)
MIN_BULK_LIMIT = 1 << 20
"""The least ``proto-max-bulk-len`` Redis accepts (1 MB): a smaller outcome always fits."""
_OVER_BULK_MESSAGE = (
    "the job's result ({size:.1f} MB) is larger than the job queue's Redis takes in one value "
    "({limit} bytes, its proto-max-bulk-len); use the synchronous route"
)

# The maintenance lock RQ takes before cleaning registries expires after 899 s: a process killed
# while holding it (a supervisor holds it for every pass, so killing a whole machine often
# does) would stop abandoned-job recovery for 15 minutes. A pass takes well under a second, so
# ours expires after a few: a killed holder delays recovery by at most this much (measured in
# bench/jobs.py: killing the whole group; with 30 s here the retry waited out the 30 s).
MAINTENANCE_LOCK_S = 5

# How long a worker waits between tries while the queue Redis is out of memory: doubling from
# the first to the last, then the last. A try costs the queue Redis two refused commands; a
# worker resumes at most this long after room comes back (results expire, or an operator
# raises maxmemory).
NO_ROOM_WAIT_S = (1.0, 8.0)
# How often a wait for room looks for a stop asked before RQ's signal handlers are in: a tenth
# of a second of the wait, which is itself a second or more.
_STOP_POLL_S = 0.1


@dataclass(slots=True)
class _NoRoom:
    """Whether the queue Redis refuses this worker's writes for want of room (at ``maxmemory``,
    policy ``noeviction``), and since when: said once when it begins and once when it ends,
    not at every try (a worker tries every few seconds while it lasts)."""

    worker_name: str
    since: float | None = None
    wait_s: float = NO_ROOM_WAIT_S[0]

    def refused(self) -> None:
        """A write of this worker's was refused for want of room."""
        if self.since is not None:
            return
        self.since = time.monotonic()
        self.wait_s = NO_ROOM_WAIT_S[0]
        log.warning(
            "worker %s: the queue Redis is out of memory (maxmemory, noeviction); taking no job "
            "until it has room again (trying every %.0f s at most)",
            self.worker_name,
            NO_ROOM_WAIT_S[1],
        )

    def next_wait_s(self) -> float:
        """The wait before the next try, after a refused one (a growing, bounded delay)."""
        self.refused()
        wait_s = self.wait_s
        self.wait_s = min(NO_ROOM_WAIT_S[1], wait_s * 2)
        return wait_s

    def had_room(self) -> None:
        """A write of this worker's that needs room went through."""
        if self.since is None:
            return
        log.info(
            "worker %s: the queue Redis has room again, after %.0f s; taking jobs",
            self.worker_name,
            time.monotonic() - self.since,
        )
        self.since = None


@dataclass(frozen=True, slots=True)
class WorkerState:
    """What the job function needs, bound by the worker around each job it runs."""

    settings: Settings
    context: WorkerContext
    connection: Redis
    """The queue Redis."""
    cache: Redis | None
    """The shared result cache's Redis, if configured."""
    before_job: Callable[[JobPayload], None] | None = None
    """Called with each job's payload before its task runs, within the attempt: what it raises
    fails the attempt as the task's own error would (injected by embedding code only)."""
    sealer: Sealer | None = None
    """Opens payloads and seals outcomes (``jobs.payload_key_file``); None: no keys."""

    @property
    def keys(self) -> JobKeys:
        return JobKeys(self.settings.jobs.queue_name)


_STATE: ContextVar[WorkerState] = ContextVar("faceflow_worker_state")

# RQ's sighting of a job in its intermediate queue, recorded only while the job is still there,
# at the queue Redis's time (the passes that judge it may run on any host: see queue_redis_time).
# KEYS: the intermediate queue, the sighting; ARGV: the job id, the sighting's TTL.
# 1: nothing more to do in this pass (recorded now, or the job left the queue); 0: seen before.
_SEE_LUA = """
if not redis.call('LPOS', KEYS[1], ARGV[1]) then return 1 end
local time = redis.call('TIME')
local seen = time[1] .. '.' .. string.format('%06d', tonumber(time[2]))
if redis.call('SET', KEYS[2], seen, 'NX', 'EX', ARGV[2]) then return 1 end
return 0
"""
_FIRST_SEEN_TTL_S = 24 * 3600  # RQ's


class FaceflowIntermediateQueue(IntermediateQueue):
    """RQ's intermediate queue, whose cleanup retries a job taken and never started once it has
    been seen there for ``stuck_after_s`` instead of RQ's fixed minute.

    A worker moves a job there as it takes it and removes it in the script that starts it (most
    often the same one, :data:`_TAKE_LUA_FUNCTION`), so a job stays there only while its taker
    is dead: most
    often a worker SIGKILLed while blocked in RQ's BLMOVE, whose dead connection the queue Redis
    serves one more job before it notices the close (measured: the gate variant of
    tests/jobs/test_cluster.py, 'enqueued for retry' 60.6 s after the job was first seen there).
    RQ waited a minute for such a job, where a running job's dead worker costs a lease.
    """

    stuck_after_s: float = 60.0

    def set_first_seen(self, job_id: str) -> bool:
        """RQ's, but only while ``job_id`` is still in the intermediate queue.

        RQ's cleanup lists the queue, then checks each job and records its sighting: a worker
        that started the job in between has already deleted the sighting (with the job's move out
        of the queue, in :data:`_START_LUA_FUNCTION`), and RQ's write would bring it back for a
        day. Checked and written in one script, the write cannot follow the start. True when
        there is nothing more to do for the job in this pass (just seen, or gone)."""
        return bool(
            self.connection.eval(
                _SEE_LUA,
                2,
                self.key,
                self.get_first_seen_key(job_id),
                job_id,
                _FIRST_SEEN_TTL_S,
            )
        )

    def should_be_cleaned_up(self, job_id: str) -> bool:
        """Whether the job was first seen there over ``stuck_after_s`` ago, by the queue
        Redis's clock, which the sighting was written by."""
        first_seen = self.get_first_seen(job_id)
        if first_seen is None:
            return False
        return queue_redis_time(self.connection) - first_seen.timestamp() > self.stuck_after_s


# The hang check. A queue Redis that hangs (SIGSTOP, a stalled disk or VM) answers nobody, so no
# worker can renew its lease either: leases are then not judged for a grace, as after a restart.
# A hang shows as a gap on the queue Redis's own clock between two calls that come at a known
# pace: the supervisors' ticks, every quarter lease (HANG_TICKS_PER_LEASE, independently of the
# maintenance interval), read in microseconds; and the maintenance passes themselves, every
# maintenance_interval_s, read in whole seconds (all there is when no supervisor ticks). Each
# pass, by any process, runs it before it takes RQ's lock, so the first call after a hang, a
# tick or a pass, sees the hang and starts the grace before any pass can judge a lease; a pass
# judges leases as of a time read before it (FaceflowQueue.clean_registries), so a hang that
# begins after the check is not judged either. A pass that finds the ticks stale forgets them
# (no supervisor ticks any more): one grace, then the passes' own gap alone. KEYS: the last
# pass, the grace, the last tick; ARGV: the longest ordinary gap between passes (s), the grace
# (s), the longest ordinary gap between ticks (µs; 0: none judged), who calls: 'pass', 'tick',
# or 'first' (a supervisor's first tick, which has no gap of its own to judge). 1: judge leases
# now; 0: not yet.
_HANG_CHECK_LUA = """
local time = redis.call('TIME')
local now_us = tonumber(time[1]) * 1000000 + tonumber(time[2])
local tick = tonumber(redis.call('GET', KEYS[3]))
local gap_us = tonumber(ARGV[3])
local hung = tick ~= nil and gap_us > 0 and ARGV[4] ~= 'first' and now_us - tick > gap_us
if ARGV[4] == 'pass' then
  if hung then redis.call('DEL', KEYS[3]) end
  local now = tonumber(time[1])
  local last = tonumber(redis.call('GET', KEYS[1]))
  redis.call('SET', KEYS[1], now, 'EX', 86400)
  if last and now - last > tonumber(ARGV[1]) then hung = true end
else
  redis.call('SET', KEYS[3], time[1] .. string.format('%06d', tonumber(time[2])), 'EX', 86400)
end
if hung then
  redis.call('SET', KEYS[2], 1, 'EX', ARGV[2])
  return 0
end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
return 1
"""

_Registry = TypeVar("_Registry", bound=BaseRegistry)

HANG_TICKS_PER_LEASE = 4
"""How often per lease each supervisor feeds the hang check (:meth:`FaceflowQueue.tick`)."""


class FaceflowQueue(Queue):
    """An RQ queue whose maintenance lock expires after :data:`MAINTENANCE_LOCK_S`, which runs
    no maintenance on a queue Redis that restarted, or hung (:data:`_HANG_CHECK_LUA`: a gap
    over ``tick_gap_s`` between the supervisors' ticks, or over ``quiet_after_s`` between
    passes), less than ``restart_grace_s`` ago, and whose intermediate queue gives up on a job
    taken and never started after ``stuck_after_s``.

    Why the grace: while the queue Redis was down nobody could renew a lease, so right after it
    comes back from its AOF every running job's lease may look expired although its worker is
    alive and about to renew it. A maintenance pass then would retry live jobs and run them
    twice. Waiting until a worker has had the time to reconnect and renew (see
    :func:`restart_grace_s`) costs a truly abandoned job those few seconds, once. A Redis that
    hung without restarting (its uptime runs on) did the same: paused 4 s with 3 s leases, the
    job running was retried at once and run again beside itself (measured: 3 trials of 4, both
    runs "Job OK"; none of 3 with the grace).
    """

    restart_grace_s: float = 0.0
    quiet_after_s: float = 0.0
    tick_gap_s: float = 0.0
    stuck_after_s: float = 60.0
    leases_judged_at: int | None = None
    """The time (the queue Redis's clock, whole seconds, as leases are scored) the last
    maintenance lock taken here was checked at: :meth:`clean_registries` judges leases as of
    it."""

    @property
    def intermediate_queue(self) -> FaceflowIntermediateQueue:
        queue = FaceflowIntermediateQueue(self.key, connection=self.connection)
        queue.stuck_after_s = self.stuck_after_s
        return queue

    def acquire_maintenance_lock(self) -> bool:
        # Read before the checks: they vouch that no restart or hang came before them, so a
        # lease expired by this time expired while its worker could have renewed it. On the
        # queue Redis's clock, as leases are scored: this host's may be far from the workers'.
        checked_at = int(queue_redis_time(self.connection))
        if self.restart_grace_s > 0 and _up_for_s(self.connection) < self.restart_grace_s:
            return False
        if self.quiet_after_s > 0 and not self._leases_judged():
            return False
        if not self.connection.set(self.registry_cleaning_key, 1, nx=True, ex=MAINTENANCE_LOCK_S):
            return False
        self.leases_judged_at = checked_at
        return True

    def clean_registries(self, exception_handlers: list[Any] | None = None) -> None:
        """RQ's :func:`rq.registry.clean_registries` (rq 3.0), run under the lock
        :meth:`acquire_maintenance_lock` took, with abandoned jobs judged as of the time it was
        checked at (:attr:`leases_judged_at`; the queue Redis's time now without that lock).

        RQ judges leases by its clock when the clean-up reads them, some round trips after the
        hang check: a queue Redis that hung in between (the lock's SET, or the finished
        registry's clean-up, waiting the hang out) had every running job's lease judged
        expired by its end, and a live worker's job given back to run again beside itself. A
        lease expired by the time of the check expired before any hang it did not see."""
        judged_at, self.leases_judged_at = self.leases_judged_at, None
        if judged_at is None:
            judged_at = int(queue_redis_time(self.connection))

        def registry(cls: type[_Registry]) -> _Registry:
            return cls(self.name, self.connection, self.job_class, serializer=self.serializer)

        registry(FinishedJobRegistry).cleanup()
        registry(StartedJobRegistry).cleanup(
            timestamp=judged_at, exception_handlers=exception_handlers
        )
        registry(FailedJobRegistry).cleanup()
        registry(DeferredJobRegistry).cleanup()
        registry(ReadyJobRegistry).cleanup()
        for rate_limit_registry in RateLimitRegistry.all(self.connection):
            rate_limit_registry.cleanup()

    def _leases_judged(self) -> bool:
        return self._hang_check("pass")

    def tick(self, *, first: bool = False) -> None:
        """Feed the hang check (a supervisor, every ``lease_s / HANG_TICKS_PER_LEASE``): a gap
        over ``tick_gap_s`` since the last tick, by any supervisor, starts the lease grace.
        ``first``: this supervisor's first, which judges no gap (nobody may have ticked)."""
        self._hang_check("first" if first else "tick")

    def _hang_check(self, caller: str) -> bool:
        keys = JobKeys(self.name)
        return bool(
            self.connection.eval(
                _HANG_CHECK_LUA,
                3,
                keys.last_pass,
                keys.lease_grace,
                keys.last_tick,
                math.ceil(self.quiet_after_s),
                math.ceil(self.restart_grace_s),
                math.ceil(self.tick_gap_s * 1_000_000),
                caller,
            )
        )


def queue_redis_time(connection: Redis) -> float:
    """The queue Redis's clock (Unix seconds): the one clock every worker host and API node
    shares, so the only one a time written on one host is judged by on another (leases, a taken
    job's sighting). Hosts' own clocks may be any distance apart."""
    seconds, micros = connection.time()
    return seconds + micros / 1_000_000


_UPTIME_DENIED: list[str] = []
"""Why ``INFO`` was refused, once it was (said once per process)."""


def _up_for_s(connection: Redis) -> float:
    """How long the queue Redis has been up; infinite where ``INFO`` is refused (an ACL user
    without ``@dangerous``, as managed services hand out): a worker's maintenance pass raised
    there, and the worker left its loop at its first pass ("found an unhandled exception,
    quitting"), taking no job. A restart is then judged by the hang check alone: a queue Redis
    down over half a lease leaves a gap in the supervisors' ticks, as a hang does; one back
    sooner, whose workers then reconnect slowly (their backoff, up to 2 s), may have a running
    job given back and run twice (wasted work: results are keyed)."""
    try:
        uptime = connection.info("server").get("uptime_in_seconds", 0)
    except ResponseError as exc:  # NOPERM, or INFO renamed away
        if not _UPTIME_DENIED:
            _UPTIME_DENIED.append(str(exc))
            log.warning(
                "the queue Redis refuses INFO (%s): its restarts are judged by the supervisors' "
                "hang check alone (one shorter than half a lease may run a job twice)",
                exc,
            )
        return math.inf
    return float(uptime) if isinstance(uptime, int | float) else 0.0


def restart_grace_s(lease_s: float) -> float:
    """How long after a queue Redis restart leases are not judged: a lease (``lease_s``), plus
    one renewal interval (``lease_s / 3``), plus the worker client's reconnect backoff (capped
    at 2 s, see :func:`faceflow.jobs.redis_store.connect`), rounded up to two leases."""
    return max(2.0 * lease_s, lease_s + lease_s / 3 + 2.0)


def open_queue(settings: Settings, connection: Redis) -> FaceflowQueue:
    queue = FaceflowQueue(
        settings.jobs.queue_name,
        connection=connection,
        serializer=JSONSerializer,
        default_timeout=settings.jobs.job_timeout_s,
    )
    queue.restart_grace_s = restart_grace_s(settings.jobs.lease_s)
    # A taker alive takes one round trip (a few more seconds if the queue Redis restarts in
    # between, which the restart grace covers) from the move to the start: as long as a lease,
    # a renewal and a reconnect is ample, and what a dead taker's job now waits beyond a pass.
    queue.stuck_after_s = restart_grace_s(settings.jobs.lease_s)
    queue.quiet_after_s = quiet_after_s(settings.jobs.lease_s, settings.jobs.maintenance_interval_s)
    queue.tick_gap_s = tick_gap_s(settings.jobs.lease_s)
    return queue


def quiet_after_s(lease_s: float, maintenance_interval_s: float) -> float:
    """The gap between two maintenance passes that starts the lease grace (a hung queue Redis,
    on its clock in whole seconds): half a lease, and more than the ordinary gap (passes come
    every ``maintenance_interval_s`` from each supervisor, twice that allowed for a slow one).
    The ticks (:func:`tick_gap_s`) see every hang that can let a lease lapse whatever the
    interval; this sees them only where no supervisor ticks and passes come often enough."""
    return max(lease_s / 2, 2.0 * maintenance_interval_s)


def tick_gap_s(lease_s: float) -> float:
    """The gap between two supervisor ticks (one every ``lease_s / HANG_TICKS_PER_LEASE``) that
    starts the lease grace: twice the ordinary gap (for a slow supervisor), half a lease. A live
    worker renews every third of a lease, so its lease can lapse only in a hang of two thirds
    of one or more: longer than this, so seen, whatever the maintenance interval. Read in
    microseconds: in whole seconds (as the passes' gap is), the check missed hangs up to a
    second and more past it, which for some leases under 8 s outlasts two thirds of one."""
    return 2.0 * lease_s / HANG_TICKS_PER_LEASE


# A standalone worker-key heartbeat (RQ sends one before and after every dequeue and after every
# job, three commands and a round trip each) is skipped when one asking for at least as long a
# TTL went out less than this long ago: the key then still has nearly that TTL left. Leases are
# not these heartbeats (see FaceflowWorker._renew_lease).
_WORKER_HEARTBEAT_EVERY_S = 1.0

# A job's start, where RQ 3 and the job function spent two pipelines and a read: what RQ's
# Execution.create, the worker's busy state, an optional worker heartbeat and
# Job.prepare_for_execution write, the job out of the intermediate queue (and its sighting
# there), the attempt counted in its meta; then the outcome fence read back, and the payload
# left for the worker: not read here but copied to the worker's own key (argv[a + 17], with the
# payload's TTL), which the worker reads and deletes with the command it sends right behind the
# script (FaceflowWorker._start_and_read). A string Lua is handed, Lua hashes byte by byte (Redis
# 7.0's Lua, measured about 1.2 µs a KB: 40 µs for the benchmark's 33 KB photo, 5 ms of the
# queue Redis, which serves everyone, for a 4 MB one), and the payload was only handed back.
# Written as RQ writes them (RQ's own readers see them: tests/jobs/test_rq_runner.py), in a
# script, which Redis runs atomically as it ran a transaction; redis-py packs one command and
# parses one reply instead of 15 twice (each "QUEUED", then EXEC's array). Keys are built here
# from their prefixes (one Redis, not a cluster, as RQ's own scripts assume).
# Each of these scripts gets its arguments as one msgpack array (``argv``, see :func:`_packed`)
# and answers the job's hash as one msgpack array: redis-py packed some 50 arguments and parsed
# some 45 reply elements a job in Python, one by one, where msgpack does it in C (measured in
# docs/performance.md, Jobs).
# argv[a], argv[a + 1], ...: see FaceflowWorker._start_args. The lease runs from the queue
# Redis's clock (TIME), the one every pass judges leases by (FaceflowQueue): a worker host's own
# clock, a lease's worth behind another's, had its live job run again there.
# Deletes the worker's copy of a payload when the read sent with it had all of it (ARGV[1]: the
# most that read asks for); a longer one is read in ranges, then deleted (_start_and_read).
_DROP_IF_READ_LUA = """
if redis.call('STRLEN', KEYS[1]) <= tonumber(ARGV[1]) then
    return redis.call('DEL', KEYS[1])
end
return 0
"""

_START_LUA_FUNCTION = """
local argv = cmsgpack.unpack(ARGV[1])
local function start(id, meta, origin, a)
  local execution_id = argv[a + 10]
  local composite = id .. ':' .. execution_id
  local execution = argv[a] .. composite
  local executions = argv[a + 1] .. id
  local job = argv[a + 2] .. id
  local worker, worker_executions = argv[a + 7], argv[a + 8]
  local created, name = argv[a + 11], argv[a + 12]
  local lease, now = tonumber(argv[a + 13]), tonumber(redis.call('TIME')[1])
  local stamp, beat_ttl = argv[a + 14], argv[a + 15]
  redis.call('HSET', execution, 'id', execution_id, 'job_id', id, 'created_at', created,
    'last_heartbeat', created, 'worker_name', name)
  redis.call('EXPIRE', execution, lease)
  redis.call('ZADD', executions, now + lease + 60, execution_id)
  redis.call('EXPIRE', executions, lease + 60)
  redis.call('ZADD', argv[a + 6] .. origin, now + lease, composite)
  redis.call('SADD', worker_executions, composite)
  redis.call('EXPIRE', worker_executions, lease + 60)
  redis.call('HSET', worker, 'state', 'busy')
  if beat_ttl ~= '0' then
    redis.call('HSET', worker, 'last_heartbeat', stamp)
    redis.call('EXPIRE', worker, beat_ttl)
    redis.call('EXPIRE', worker_executions, beat_ttl)
  end
  redis.call('HSET', job, 'last_heartbeat', stamp, 'status', 'started', 'started_at', stamp,
    'worker_name', name, 'meta', meta)
  redis.call('PERSIST', job)
  redis.call('LREM', argv[a + 9], 1, id)
  redis.call('DEL', argv[a + 3] .. id)
  if redis.call('COPY', argv[a + 5] .. id, argv[a + 17], 'REPLACE') == 0 then
    redis.call('DEL', argv[a + 17])
  end
  return {redis.call('EXISTS', argv[a + 4] .. id)}
end
"""

# The start of a job RQ's own blocking dequeue took (the queue was empty when the worker
# looked): argv[1] the job id, argv[2] its meta with the attempt counted, argv[3] its origin,
# then the start's.
# A job no longer in the intermediate queue is not started: RQ's blocking dequeue served it to a
# worker that was paused (SIGSTOP, a frozen host) past ``stuck_after_s``, a maintenance pass gave
# it back to its queue meanwhile and another worker took it; started here too, it ran twice, at
# the same time (measured: both runs "Job OK", the job's attempts 2).
_START_LUA = (
    _START_LUA_FUNCTION
    + "if not redis.call('LPOS', argv[4 + 9], argv[1]) then return {'given_back'} end\n"
    + "return start(argv[1], argv[2], argv[3], 4)"
)

# Takes the next job, and starts it, in one round trip, where RQ 3 spent three to take it (its
# suspension check, sent with a worker heartbeat; LMOVE; HGETALL) and one more (two pipelines
# before) to start it: nothing while the workers are suspended, else the job id moved to RQ's
# intermediate queue exactly as RQ's LMOVE does, the job's hash as it was, and the job started
# (:data:`_START_LUA_FUNCTION`, its attempt counted in its meta with this process's pid), so the
# start is in Redis before the job can run, as it was, and a worker dying after this script has
# its job recovered by its lease (counted, retried first), as one dying while the job runs. A
# job whose meta is not a JSON object is left taken and not started (the worker then starts it
# as any other). KEYS: the suspension flag, the queue, its intermediate queue; argv[a], ...:
# the start's (:data:`_START_LUA_FUNCTION`).
_TAKE_LUA_FUNCTION = """
local function take(suspended, queue, intermediate, a)
  if redis.call('EXISTS', suspended) == 1 then return {'suspended'} end
  local id = redis.call('LMOVE', queue, intermediate, 'LEFT', 'RIGHT')
  if not id then return {'empty'} end
  local fields = redis.call('HGETALL', argv[a + 2] .. id)
  local meta, origin = {}, ''
  for i = 1, #fields, 2 do
    if fields[i] == 'origin' then origin = fields[i + 1] end
    if fields[i] == 'meta' then
      local ok, decoded = pcall(cjson.decode, fields[i + 1])
      if not ok or type(decoded) ~= 'table' then return {'job', id, cmsgpack.pack(fields)} end
      meta = decoded
    end
  end
  if #fields == 0 then return {'job', id, cmsgpack.pack(fields)} end
  local attempts = meta['attempts']
  if type(attempts) ~= 'number' then attempts = 0 end
  meta['attempts'] = attempts + 1
  meta['pid'] = tonumber(argv[a + 16])
  local read = start(id, cjson.encode(meta), origin, a)
  return {'job', id, cmsgpack.pack(fields), read[1]}
end
"""
_TAKE_NEXT_LUA = (
    _START_LUA_FUNCTION + _TAKE_LUA_FUNCTION + "return take(KEYS[1], KEYS[2], KEYS[3], 1)"
)
_SUSPENDED = "suspended"
_MISSING = "missing"


class _GivenBack(Exception):
    """The job RQ's blocking dequeue took was given back to its queue before its start
    (:data:`_START_LUA`): another worker runs it."""


def _packed(argv: list[Any]) -> bytes:
    """``argv`` as the one argument the scripts above unpack: each value as redis-py would have
    sent it (bytes as they are, anything else as its ``str``), in msgpack's raw strings, the only
    strings the queue Redis's ``cmsgpack`` reads (Redis 7.0 refuses msgpack's bin type)."""
    values = [value if isinstance(value, bytes) else str(value) for value in argv]
    packed: bytes = msgpack.packb(values, use_bin_type=False)
    return packed


def _unpacked_hash(packed: bytes) -> dict[bytes, bytes]:
    """A job's hash as a take's script answers it (``cmsgpack.pack`` of HGETALL's array)."""
    flat: list[bytes] = msgpack.unpackb(packed, raw=True)
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _take_keys(queue: Queue) -> list[str]:
    """:data:`_TAKE_NEXT_LUA`'s keys for ``queue``."""
    return [WORKERS_SUSPENDED, queue.key, queue.intermediate_queue_key]


# The job's handles (those still wanting it, in its ``jobrefs`` set: see faceflow.jobs.
# redis_store), their owners' lists of them and that set expire with what the job keeps, ``keep``
# seconds from its end, never later than they would have (``LT``): the API writes them for as
# long as a failed job is kept (``failure_ttl_s``, 7 days), not knowing how the job will end,
# and a finished job's handles outlived its result by 6 days. Their names are made from the
# outcome's key (``{base}jobresult:{id}``, one queue Redis node): the key's base, then the
# owner read from the handle's record (msgpack ``[version, job id, operation, owner, ...]``).
_EXPIRE_HANDLES_LUA_FUNCTION = """
local function expire_handles(outcome_key, id, keep)
  local base = string.sub(outcome_key, 1, #outcome_key - #id - #'jobresult:')
  local refs = base .. 'jobrefs:' .. id
  for _, handle in ipairs(redis.call('SMEMBERS', refs)) do
    local key = base .. 'handle:' .. handle
    local raw = redis.call('GET', key)
    if raw then
      redis.call('EXPIRE', key, keep, 'LT')
      local ok, record = pcall(cmsgpack.unpack, raw)
      local owner = ok and type(record) == 'table' and record[4]
      if type(owner) ~= 'string' then owner = '-' end
      redis.call('EXPIRE', base .. 'jobowned:' .. id .. ':' .. owner, keep, 'LT')
    end
  end
  redis.call('EXPIRE', refs, keep, 'LT')
end
"""

# A successful job's end, in one script where it was one transaction of 17 commands: the
# attempt's own writes (its meta; its outcome and its payload deleted, stored together), the
# worker's counters, what RQ 3's Job._handle_success (the changed fields only), Result.create,
# the finished registry, Job.cleanup and the execution's cleanup write, then the next job taken
# and started (:data:`_TAKE_LUA_FUNCTION`), or else the worker written idle (the job's handles
# made to expire with it before: :data:`_EXPIRE_HANDLES_LUA_FUNCTION`): when no next job is
# to be taken, and when the take starts none (the queue empty, the workers suspended; a job
# taken whose hash is gone or whose meta the take cannot read). Atomic, as the transaction was:
# whoever reads the worker's state (``rq info``, RQ's ``Worker.get_state``) reads it busy
# exactly while a job of its is started. Left to the worker's next round trip, the state of a
# worker with no job read busy from the job's end until then (on a busy machine, for long).
# KEYS: 1 the job, 2 its outcome, 3 its payload, 4 the worker, 5 the job's results stream,
# 6 the finished registry, 7 the job's dependents, 8 its dependencies, 9 the execution,
# 10 the started registry, 11 the job's executions, 12 the worker's executions, 13 the
# suspension flag, 14 the queue, 15 its intermediate queue.
# ARGV[2]: the outcome ('': none), beside the packed arguments (see :func:`_end_argv`).
# argv: 1 the meta ('': unchanged), 2 unused (''), 3 the outcome's TTL (s), 4 the
# working time (s), 5 the end (RQ's UTC format), 6 the worker's name, 7 the return value (RQ's
# base64 JSON; '': none), 8 the execution id, 9 the execution's creation (Unix s), 10 the end
# (Unix s), 11 the result TTL (s, > 0), 12 now (whole Unix s), 13 the job id, 14 the
# execution's composite key, 15 '1' to take the next job, 16 ...: the next job's start
# (FaceflowWorker._start_args).
_END_LUA = (
    _START_LUA_FUNCTION
    + _TAKE_LUA_FUNCTION
    + _EXPIRE_HANDLES_LUA_FUNCTION
    + """
local ttl = tonumber(argv[11])
if argv[1] ~= '' then redis.call('HSET', KEYS[1], 'meta', argv[1]) end
if ARGV[2] ~= '' then
  redis.call('SET', KEYS[2], ARGV[2], 'EX', argv[3])
  redis.call('DEL', KEYS[3])
end
redis.call('HINCRBY', KEYS[4], 'successful_job_count', 1)
redis.call('HINCRBYFLOAT', KEYS[4], 'total_working_time', argv[4])
redis.call('HSET', KEYS[1], 'status', 'finished', 'ended_at', argv[5], 'last_heartbeat', argv[5])
local result = {'type', '1', 'worker_name', argv[6]}
if argv[7] ~= '' then
  table.insert(result, 'return_value')
  table.insert(result, argv[7])
end
for _, field in ipairs({'execution_id', argv[8], 'execution_started_at', argv[9],
                        'execution_ended_at', argv[10]}) do
  table.insert(result, field)
end
redis.call('XADD', KEYS[5], 'MAXLEN', '~', 10, '*', unpack(result))
redis.call('EXPIRE', KEYS[5], ttl)
redis.call('ZADD', KEYS[6], tonumber(argv[12]) + ttl, argv[13])
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[7], ttl)
redis.call('EXPIRE', KEYS[8], ttl)
redis.call('DEL', KEYS[9])
redis.call('ZREM', KEYS[10], argv[14])
redis.call('ZREM', KEYS[11], argv[8])
redis.call('SREM', KEYS[12], argv[14])
expire_handles(KEYS[2], argv[13], ARGV[2] ~= '' and math.max(ttl, tonumber(argv[3])) or ttl)
if argv[15] == '1' then
  local taken = take(KEYS[13], KEYS[14], KEYS[15], 16)
  if #taken < 4 then redis.call('HSET', KEYS[4], 'state', 'idle') end
  return taken
end
redis.call('HSET', KEYS[4], 'state', 'idle')
return {'ended'}
"""
)
_END_ARGS = 15
"""The arguments of :data:`_END_LUA` before the next job's start."""


def _end_argv(args: list[Any]) -> list[bytes]:
    """:data:`_END_LUA`'s ARGV for its arguments ``args`` (the outcome second): the others
    packed, the outcome beside them. Lua hashes every string it is handed, byte by byte (see
    :data:`_START_LUA_FUNCTION`): inside the packed arguments, an outcome was hashed twice, as
    part of them and once more unpacked (10 ms of the queue Redis for a 4 MB ID photo)."""
    return [_packed([args[0], b"", *args[2:]]), args[1]]


# The end of a job whose end the queue Redis refused for want of room (maxmemory, noeviction;
# see FaceflowWorker._end_without_room): its payload deleted first, then :data:`_END_LUA`'s end
# with no outcome and no next job taken. ``allow-oom``: it is written even while the queue Redis
# stays over maxmemory (else the job would stay started, and its lease, once expired, would run
# it again): the job's meta and state, a stream entry and registry members, a few hundred bytes,
# less than the payload it deletes.
_END_WITHOUT_ROOM_LUA = "#!lua flags=allow-oom\nredis.call('DEL', KEYS[3])\n" + _END_LUA

# A job taken by RQ's blocking dequeue whose start the queue Redis then refused for want of room
# (see FaceflowWorker.execute_job): back at the front of its queue, out of the intermediate
# queue, its sighting there forgotten, as it was before the take. ``allow-oom``: a move, it
# needs no room. KEYS: the intermediate queue, the queue, the sighting; ARGV: the job id.
_HAND_BACK_LUA = """#!lua flags=allow-oom
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 1 then redis.call('LPUSH', KEYS[2], ARGV[1]) end
redis.call('DEL', KEYS[3])
return 1
"""

# A running job's lease renewed (FaceflowWorker.maintain_heartbeats), scored on the queue Redis's
# clock (TIME), which every pass judges leases by (FaceflowQueue): RQ scores it on the worker
# host's clock, and a host a lease's worth behind the judging one had its live job judged
# abandoned and run again beside itself (one ahead held a dead worker's job that much longer).
# Sent alone while the queue Redis is out of memory (FaceflowWorker._renew): RQ's renewal is a
# transaction whose HSETs Redis refuses then, so the lease would expire under a job still
# running. ``allow-oom``: only scores of members that exist (XX) and TTLs, which need no room;
# the heartbeat stamps wait for room. KEYS: the started registry, the execution, the job's
# executions, the worker, the worker's executions; ARGV: the execution's member in the started
# registry, its id, the lease (s), the worker's TTL (s).
_RENEW_LEASE_LUA = """#!lua flags=allow-oom
local lease, now = tonumber(ARGV[3]), tonumber(redis.call('TIME')[1])
redis.call('ZADD', KEYS[1], 'XX', now + lease, ARGV[1])
redis.call('EXPIRE', KEYS[2], lease)
redis.call('ZADD', KEYS[3], 'XX', now + lease + 60, ARGV[2])
redis.call('EXPIRE', KEYS[3], lease + 60)
redis.call('EXPIRE', KEYS[4], ARGV[4])
redis.call('EXPIRE', KEYS[5], ARGV[4])
return 1
"""


@dataclass(slots=True)
class _Attempt:
    """One attempt of the job being run, between the worker and :func:`run_job`: what the start
    round trip read, and what the end writes for it."""

    job_id: str
    has_outcome: bool
    """The job's outcome was stored by an earlier attempt (read before the attempt counted)."""
    payload: bytes | None
    meta_before: dict[str, Any]
    """The job's meta as dequeued, before this attempt was counted in it."""
    meta: bytes | None = None
    """The job's meta to store with its end (serialized), if the attempt changed it."""
    outcome: bytes | None = None
    """The outcome to store with the job's end (encoded), which also deletes its payload."""
    error: JobError | None = None
    """The outcome's error, when it is one."""
    waits_for_version: bool = False
    """This worker could not run the job (:class:`_OtherVersion`) and it is given back for one
    that can, without spending an attempt (:meth:`FaceflowWorker.handle_job_failure`)."""


_ATTEMPT: ContextVar[_Attempt] = ContextVar("faceflow_job_attempt")


@dataclass(slots=True)
class _Started:
    """A job's start as this worker sent it (in the script that took the job, or in its own)."""

    execution: Execution
    at: datetime
    beat_ttl: int
    """The worker heartbeat's TTL sent with it (0: none)."""
    has_outcome: bool = False
    payload: bytes | None = None
    fields: dict[bytes, bytes] = field(default_factory=dict)
    """The job's hash as the take read it, before the start (to hand the job back)."""


@dataclass(slots=True)
class _Leased:
    job: Job
    execution: Execution
    renewed_at: float
    """When the job started or its lease was last renewed (monotonic seconds)."""


# The dates RQ's Job.restore parses from a job's hash (RQ's UTC format, "...T13:53:04.273000Z").
_JOB_DATES = (b"created_at", b"enqueued_at", b"started_at", b"ended_at", b"last_heartbeat")


# faceflow's serializer, passed through RQ's check once, here.
_SERIALIZER = resolve_serializer(JSONSerializer)


class FaceflowJob(Job):
    """RQ's job, built without RQ's check of faceflow's serializer and restored from its hash
    with its dates read by ``datetime.fromisoformat`` (C) instead of RQ's ``strptime`` (pure
    Python, about 15 µs a date, two or more a job)."""

    def __init__(
        self, id: str | None = None, connection: Redis | None = None, serializer: Any = None
    ) -> None:
        """RQ's; for faceflow's serializer, without RQ's runtime check that it is one (an
        ``isinstance`` against a ``typing.Protocol``, which walks the protocol's attributes on
        every call on Python 3.11: about 20 µs a job), done once for it (:data:`_SERIALIZER`)."""
        if serializer is not _SERIALIZER:
            super().__init__(id, connection, serializer)
            return
        super().__init__(id, connection, None)  # None: RQ's default, set without a check
        self.serializer = _SERIALIZER

    def restore(self, raw_data: dict[bytes, bytes]) -> None:
        dates = {name: raw_data[name] for name in _JOB_DATES if raw_data.get(name)}
        if not dates:
            super().restore(raw_data)
            return
        super().restore({name: value for name, value in raw_data.items() if name not in dates})
        for name, value in dates.items():
            setattr(self, name.decode(), _utc_date(value))


def _utc_date(stamp: bytes) -> datetime:
    """An RQ timestamp as RQ's ``str_to_date`` reads it (aware, UTC); anything but an ISO stamp in
    UTC goes to RQ's own parser, which reads it, or refuses it, as RQ would."""
    try:
        parsed = datetime.fromisoformat(stamp.decode())
    except ValueError:
        return str_to_date(stamp)
    if parsed.utcoffset() != timedelta(0):
        return str_to_date(stamp)
    return parsed.replace(tzinfo=UTC)


class FaceflowWorker(SimpleWorker):
    """A SimpleWorker holding one process's loaded models and renewing a short lease per job.

    While the queue has work, a job costs it one queue Redis round trip where RQ's SimpleWorker
    and a job function storing its own outcome made about 25 (counted with MONITOR): one script
    that ends the job and takes and starts the next (the suspension check, the move, the job
    hash, the start). The rest went to worker heartbeats and state
    writes repeated around every job (sent only when due or changed here) and to the dependents
    RQ watches and reads at each success (faceflow enqueues no job with dependents, callbacks or
    repeats; a failure keeps RQ's own path)."""

    queue_class = FaceflowQueue
    job_class = FaceflowJob
    # RQ logs "result is kept for N seconds" after every job, the job's result TTL (the same for
    # every faceflow job: the API's jobs.result_ttl_s, also in the job's hash): one log line of
    # three a job, about 10-20 µs, for nothing a reader of the log does not know.
    log_result_lifespan = False

    def __init__(
        self, queue: FaceflowQueue, state: WorkerState, *, name: str | None = None
    ) -> None:
        jobs = state.settings.jobs
        super().__init__(
            [queue],
            connection=state.connection,
            serializer=JSONSerializer,
            name=name,
            worker_ttl=jobs.worker_ttl_s,
            maintenance_interval=jobs.maintenance_interval_s,
            job_monitoring_interval=jobs.lease_s,
        )
        self._ff_state = state
        self._lease_s = jobs.lease_s
        self._ff_max_bulk: int | None = None
        """The queue Redis's ``proto-max-bulk-len`` (None: not known), read at the first end
        whose outcome could pass it (see :func:`~faceflow.jobs.redis_store.bulk_limit`)."""
        self._ff_max_bulk_read = False
        self._ff_stop_requested = False
        self._ff_signal_before_work: int | None = None
        self._ff_beat_at = -float("inf")
        self._ff_beat_ttl = 0
        self._ff_state_written: str | None = None
        # The running job's lease, renewed by one thread for the worker's life (a thread started
        # and joined per job cost a scheduling round per job, much more on a busy machine).
        self._ff_lease_lock = threading.Lock()
        self._ff_leased: _Leased | None = None
        self._ff_lease_thread: threading.Thread | None = None
        self._ff_take_next = self.connection.register_script(_TAKE_NEXT_LUA)
        self._ff_start = self.connection.register_script(_START_LUA)
        self._ff_end = self.connection.register_script(_END_LUA)
        self._ff_end_without_room = self.connection.register_script(_END_WITHOUT_ROOM_LUA)
        self._ff_hand_back = self.connection.register_script(_HAND_BACK_LUA)
        self._ff_renew_lease = self.connection.register_script(_RENEW_LEASE_LUA)
        self._ff_no_room = _NoRoom(self.name)
        self._ff_payload_key = state.keys.taken_payload(self.name)
        # The connection of the one round trip a job (_pipelined), held by the worker's thread.
        self._ff_held = HeldConnection(self.connection)
        self._ff_burst = False
        # The next job, taken (and most often started) by the script that ended the last one
        # (see handle_job_success) while the worker may take one that way.
        self._ff_next: Job | None = None
        self._ff_take_with_end = False
        # The start of the job in _ff_next when the script that took it started it.
        self._ff_started: _Started | None = None
        keys = state.keys
        probe = Execution("E", "J", self.connection)
        self._ff_start_prefixes = [
            probe.key.removesuffix(probe.composite_key),
            ExecutionRegistry.key_template.format(""),
            self.job_class.redis_job_namespace_prefix,
            queue.intermediate_queue.get_first_seen_key(""),
            keys.result(""),
            keys.data(""),
            StartedJobRegistry.key_template.format(""),
            self.key,
            self.executions_key,
            queue.intermediate_queue_key,
        ]

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        """RQ's, with the stop marked before RQ raises ``StopRequested`` from this handler
        (when idle): raised inside a call that takes any exception for its own failure (a log
        line's write: logging hands it to ``handleError``) the raise was lost, and the idle
        worker went on taking jobs until killed. The mark ends its wait for a job instead
        (:meth:`dequeue_job_and_maintain_ttl`)."""
        self._ff_stop_requested = True
        self._stop_requested = True
        super().request_stop(signum, frame)  # type: ignore[no-untyped-call]

    def stop_before_work(self, signum: int, frame: FrameType | None) -> None:
        """A SIGTERM/SIGINT handler for the time between the worker's process saying it is
        ready and RQ's own handlers (installed by ``work()`` after its bootstrap): it marks the
        stop, which ``work()``'s loop reads before it takes a job, and ends the wait for room of
        :meth:`register_birth`. It raises nothing and takes no lock: an exception from there
        could cut the bootstrap's registration half-way, or leave the supervisor's ready event
        locked for good."""
        self._ff_stop_requested = True
        self._stop_requested = True
        self._ff_signal_before_work = signum

    def _install_signal_handlers(self) -> None:
        """RQ's, and a stop asked for before them said (RQ's loop then ends at once)."""
        super()._install_signal_handlers()  # type: ignore[no-untyped-call]
        if self._ff_signal_before_work is not None:
            self.log.info(
                "Worker %s: %s received while starting; stopping",
                self.name,
                signal.Signals(self._ff_signal_before_work).name,
            )

    @property
    def stop_requested(self) -> bool:
        """Whether a warm shutdown was asked for (SIGTERM/SIGINT), as opposed to RQ returning
        from ``work()`` on its own (a Redis timeout, an unhandled error)."""
        return self._ff_stop_requested

    def unsubscribe(self) -> None:
        """RQ's own, with the pubsub thread told to stop *before* the channel is left.

        The thread polls with a 60 s wait (RQ's ``sleep_time``) and waits as long for a
        subscription while it has none: when it read RQ's unsubscription before RQ stopped it,
        RQ's unbounded join waited out those 60 s, and a burst worker or a warm shutdown took a
        minute longer. Stopped first, it leaves at the unsubscription's reply; a thread already
        waiting is a daemon and is left to finish on its own.
        """
        if self.pubsub_thread:
            # What the thread's stop() does first; stop() itself also joins, without a bound in
            # redis-py 8, while the thread may still be in its 60 s read.
            self.pubsub_thread._running.clear()
            self.pubsub.unsubscribe()
            self.pubsub_thread.join(timeout=1)
            self.pubsub.close()

    def bootstrap(
        self,
        logging_level: str | None = "INFO",
        date_format: str = DEFAULT_LOGGING_DATE_FORMAT,
        log_format: str = DEFAULT_LOGGING_FORMAT,
    ) -> None:
        """RQ's, and the dequeue script loaded (its first call would otherwise be refused and
        sent again; after a queue Redis restart it is, once)."""
        super().bootstrap(logging_level, date_format, log_format)
        for script in (
            _TAKE_NEXT_LUA,
            _START_LUA,
            _END_LUA,
            _END_WITHOUT_ROOM_LUA,
            _HAND_BACK_LUA,
            _RENEW_LEASE_LUA,
        ):
            self.connection.script_load(script)

    def check_for_suspension(self, burst: bool) -> None:
        """Done by :meth:`dequeue_job_and_maintain_ttl`, in the round trip that takes the next
        job; RQ's own wait runs only when that found the workers suspended."""
        self._ff_burst = burst

    def register_birth(self) -> None:
        """RQ's, tried again after a growing, bounded wait while the queue Redis is out of
        memory: refused, the worker process stopped, and its replacement loaded its models again
        to be refused again, in a loop until there was room."""
        while not self._stop_requested:
            try:
                super().register_birth()  # type: ignore[no-untyped-call]
            except OutOfMemoryError:
                self._sleep_unless_stopped(self._ff_no_room.next_wait_s())
            else:
                self._ff_no_room.had_room()
                return

    def _sleep_unless_stopped(self, seconds: float) -> None:
        """``time.sleep(seconds)``, cut short by a stop (:meth:`stop_before_work` can only mark
        it: a sleep resumes after a handler that raises nothing), looked at every
        :data:`_STOP_POLL_S`."""
        deadline = time.monotonic() + seconds
        while not self._stop_requested and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(_STOP_POLL_S, left))

    def register_death(self) -> None:
        """RQ's; while the queue Redis is out of memory, without its ``death`` field (refused,
        and in RQ's transaction all the rest with it), so the worker leaves the registry all the
        same and its key expires in a minute, as RQ's does."""
        try:
            super().register_death()  # type: ignore[no-untyped-call]
        except OutOfMemoryError:
            with self.connection.pipeline(transaction=False) as pipe:  # none of these needs room
                unregister(self, pipe)
                pipe.expire(self.key, 60)
                pipe.delete(self.executions_key)
                pipe.execute()

    def clean_registries(self) -> None:
        """RQ's, with each queue's registries cleaned by
        :meth:`FaceflowQueue.clean_registries` (leases judged as of the hang check)."""
        for queue in self.queues:
            assert isinstance(queue, FaceflowQueue)
            if queue.acquire_maintenance_lock():
                self.log.info("Worker %s: cleaning registries for queue: %s", self.name, queue.name)
                # Released however the pass ends (RQ's own leaves it for MAINTENANCE_LOCK_S when
                # a Redis call fails half-way), as the supervisor's passes release theirs.
                try:
                    queue.clean_registries(self._exc_handlers)
                    clean_worker_registry(queue)
                    queue.intermediate_queue.cleanup(self, queue)
                finally:
                    queue.release_maintenance_lock()  # type: ignore[no-untyped-call]
        self.last_cleaned_at = now()  # type: ignore[assignment]  # RQ: None until a pass

    def run_maintenance_tasks(self) -> None:
        """RQ's; skipped until the next interval when the queue Redis is out of memory (its
        lock, a write, is refused first; the supervisor runs them too)."""
        try:
            super().run_maintenance_tasks()  # type: ignore[no-untyped-call]
        except OutOfMemoryError:
            self._ff_no_room.refused()
            self.last_cleaned_at = now()  # type: ignore[assignment]  # RQ: None until a pass

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Queue] | None:
        """RQ's, with a queued job taken and started in one round trip (:data:`_TAKE_NEXT_LUA`:
        the suspension check, the move to RQ's intermediate queue, the job's hash, its start)
        instead of four; only an empty queue waits in RQ's blocking dequeue.

        The queue Redis out of memory (maxmemory, noeviction) refuses the take before it moves
        anything (its first write): the worker takes no job, which it could not end, and tries
        again after a growing, bounded wait (:data:`NO_ROOM_WAIT_S`), until it has room."""
        self._ff_take_with_end = max_idle_time is None and len(self.queues) == 1
        if not self._ff_take_with_end:
            return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        queue = self.queues[0]
        if self._ff_next is not None:
            job, self._ff_next = self._ff_next, None
            self.log.info("Worker %s: %s: %s", self.name, queue.name, job.id)
            return job, queue
        self.procline(f"Listening on {queue.name}")  # type: ignore[no-untyped-call]
        wait_s = 1.0
        while True:
            if self._stop_requested:  # a stop whose StopRequested was lost (request_stop)
                return None
            try:
                self.set_state(WorkerStatus.IDLE)
                self.heartbeat()
                if self.should_run_maintenance_tasks:
                    self.run_maintenance_tasks()
                taken = self._take_next(queue)
                self._ff_no_room.had_room()
                if taken == _SUSPENDED:
                    super().check_for_suspension(self._ff_burst)
                    if self._stop_requested:
                        return None
                    continue
                if isinstance(taken, Job):
                    job = taken
                    break
                if timeout is None:  # burst mode: an empty queue ends the work
                    return None
                found = self.queue_class.dequeue_any(
                    [queue],
                    timeout,
                    connection=self.connection,
                    job_class=self.job_class,
                    serializer=self.serializer,
                    death_penalty_class=self.death_penalty_class,
                )
                if found is not None:
                    job = found[0]
                    break
            except DequeueTimeout:
                continue
            except OutOfMemoryError:
                time.sleep(self._ff_no_room.next_wait_s())
            except (RedisConnectionError, RedisTimeoutError) as exc:
                self.log.error(
                    "Worker %s: could not connect to Redis: %s; retrying in %.0f s",
                    self.name,
                    exc,
                    wait_s,
                )
                time.sleep(wait_s)
                wait_s = min(
                    wait_s * self.exponential_backoff_factor, self.max_connection_wait_time
                )
        # RQ's line, at RQ's level: three such lines per job cost 0.03 CPU ms (measured).
        self.log.info("Worker %s: %s: %s", self.name, queue.name, job.id)
        job.redis_server_version = self.get_redis_server_version()  # type: ignore[no-untyped-call]
        self.heartbeat()
        return job, queue

    def _take_next(self, queue: Queue) -> Job | str | None:
        """The next queued job (moved to the intermediate queue, as RQ's dequeue does, and
        started), :data:`_SUSPENDED` while the workers are suspended, or None if the queue is
        empty. A job id whose hash is gone is passed over, as RQ does (its cleanup drops it)."""
        while True:
            args, started = self._start_args()
            argv = [_packed(args)]
            reply, payload = self._start_and_read(self._ff_take_next, _take_keys(queue), argv)
            taken = self._taken(reply, started, payload)
            if taken is not _MISSING:
                return taken

    def _start_args(self) -> tuple[list[Any], _Started]:
        """The arguments of a job's start in a script (:data:`_START_LUA_FUNCTION`'s ARGV[a],
        ARGV[a + 1], ...), and the start as sent (its execution's job id set once the job is
        known): the key prefixes of the execution, the job's executions, the job, its sighting
        in the intermediate queue, its outcome, its payload and the started registry; the worker's
        key and its executions' key; the intermediate queue; the execution id, its creation (Unix
        s), the worker's name, the lease (s), the start (RQ's UTC format), the worker heartbeat's
        TTL (0: none due), this process's pid and the key the start copies the job's payload to
        (:meth:`_start_and_read`). No time the lease is scored by: the script reads the queue
        Redis's."""
        execution = Execution(uuid4().hex, "", self.connection, worker_name=self.name)
        beat_ttl = self.worker_ttl + 60
        if not self._beat_due(beat_ttl):
            beat_ttl = 0
        at = execution.created_at
        args = [
            *self._ff_start_prefixes,
            execution.id,
            repr(at.timestamp()),
            self.name,
            self._lease_s,
            utcformat(at),
            beat_ttl,
            os.getpid(),
            self._ff_payload_key,
        ]
        return args, _Started(execution, at, beat_ttl)

    def _start_and_read(
        self, script: Script, keys: list[str], argv: list[bytes]
    ) -> tuple[list[Any], bytes | None]:
        """``script``'s reply (one that may start a job) and the payload its start copied to
        this worker's key, read and deleted by a command sent right behind the script, in the
        same round trip (the script reads no payload itself: see :data:`_START_LUA_FUNCTION`).
        None for the payload when the script started no job, or the job's payload is gone."""
        try:
            return self._pipelined(script, keys, argv)
        except NoScriptError:  # the queue Redis lost the scripts since bootstrap (a restart)
            self.connection.script_load(script.script)
            return self._pipelined(script, keys, argv)

    def _pipelined(
        self, script: Script, keys: list[str], argv: list[bytes]
    ) -> tuple[list[Any], bytes | None]:
        # Not GETDEL: a reply over the queue Redis's client-output-buffer-limit (managed
        # services set one, e.g. 1 MB) makes it close the connection as it answers, the copy
        # deleted, the job left started with no one to run it (every upload over 1 MB).
        key = self._ff_payload_key
        reply, head, _ = self._ff_held.send(
            [
                ("EVALSHA", script.sha, len(keys), *keys, *argv),
                ("GETRANGE", key, 0, READ_CHUNK_BYTES - 1),
                ("EVAL", _DROP_IF_READ_LUA, 1, key, READ_CHUNK_BYTES),
            ]
        )
        if not isinstance(head, bytes) or not head:
            return reply, None
        if len(head) < READ_CHUNK_BYTES:
            return reply, head
        parts = [head]  # this worker's own key: nothing else writes it meanwhile
        while len(parts[-1]) == READ_CHUNK_BYTES:
            start = len(parts) * READ_CHUNK_BYTES
            part = self.connection.getrange(key, start, start + READ_CHUNK_BYTES - 1)
            parts.append(part if isinstance(part, bytes) else b"")
        self.connection.delete(key)
        return reply, b"".join(parts)

    def _taken(
        self, reply: list[Any], started: _Started, payload: bytes | None
    ) -> Job | str | None:
        """A take's reply (:data:`_TAKE_LUA_FUNCTION`) as :meth:`_take_next` returns it, or
        :data:`_MISSING` for a job id whose hash is gone; a job the take also started is kept
        with its start (``started``, and the ``payload`` read behind it) for :meth:`_begin`."""
        if reply[0] == b"suspended":
            return _SUSPENDED
        if reply[0] == b"empty":
            return None
        fields = _unpacked_hash(reply[2])
        job = self.job_class(
            reply[1].decode(), connection=self.connection, serializer=self.serializer
        )
        try:
            job.restore(fields)
        except NoSuchJobError:
            return _MISSING
        if len(reply) == 4:
            started.execution.job_id = job.id
            started.has_outcome = bool(reply[3])
            started.payload = payload
            started.fields = fields
            self._ff_started = started
        return job

    def teardown(self) -> None:
        """RQ's, after handing a job taken (and started) with the last one's end back to the
        front of the queue: the worker stopped before running it (SIGTERM, ``max_jobs``)."""
        job, self._ff_next = self._ff_next, None
        started, self._ff_started = self._ff_started, None
        if job is not None:
            try:
                self._hand_back(job, started)
            except RedisError as exc:  # its lease, or RQ's intermediate-queue cleanup, acts
                log.error("job %s: could not put it back on the queue: %s", job.id, exc)
        self._ff_held.release()
        super().teardown()  # type: ignore[no-untyped-call]

    def _hand_back(self, job: Job, started: _Started | None) -> None:
        """Put ``job`` back at the front of the queue as it was before it was taken: its start
        (if the take sent one) undone, the attempt uncounted, out of the intermediate queue."""
        queue = self.queues[0]
        with self.connection.pipeline() as pipe:
            if started is not None and started.execution.job_id == job.id:
                execution = started.execution
                pipe.delete(execution.key)
                pipe.zrem(
                    StartedJobRegistry.key_template.format(job.origin), execution.composite_key
                )
                pipe.zrem(ExecutionRegistry.key_template.format(job.id), execution.id)
                pipe.srem(self.executions_key, execution.composite_key)
                names = (b"status", b"started_at", b"last_heartbeat", b"worker_name", b"meta")
                kept = {name: started.fields[name] for name in names if name in started.fields}
                gone = [name for name in names if name not in started.fields]
                if kept:
                    pipe.hset(job.key, mapping=kept)  # type: ignore[arg-type]
                if gone:
                    pipe.hdel(job.key, *gone)
            pipe.lrem(queue.intermediate_queue_key, 1, job.id)
            pipe.lpush(queue.key, job.id)
            pipe.execute()

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        return self._lease_s

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        """RQ's worker heartbeat, as one round trip, and none when one went out just before;
        while the queue Redis is out of memory, only its TTL (RQ's work loop sends one after
        every job: refused, it stopped the worker)."""
        ttl = timeout or self.worker_ttl + 60
        if pipeline is not None:
            super().heartbeat(ttl, pipeline=pipeline)
        elif not self._beat_due(ttl):
            return
        else:
            try:
                with self.connection.pipeline(transaction=False) as pipe:
                    super().heartbeat(ttl, pipeline=pipe)
                    pipe.execute()
            except OutOfMemoryError:
                # Its EXPIRE (which needs no room) went through: the worker stays registered.
                self._ff_no_room.refused()
                return
        self._ff_beat_at, self._ff_beat_ttl = time.monotonic(), ttl

    def _beat_due(self, ttl: int) -> bool:
        """Whether a worker heartbeat asking for ``ttl`` seconds is worth sending: not when one
        asking for at least as long went out less than a second ago."""
        recent = time.monotonic() - self._ff_beat_at < _WORKER_HEARTBEAT_EVERY_S
        return not (recent and ttl <= self._ff_beat_ttl)

    def set_state(self, state: str, pipeline: Pipeline | None = None) -> None:
        """RQ's, without the write when the worker's stored state is already ``state`` (RQ writes
        ``idle`` after every job and again before every dequeue), and not stopping the worker
        when the queue Redis is out of memory for it."""
        if pipeline is None and state == self._ff_state_written:
            self._state = state
            return
        try:
            super().set_state(state, pipeline)
        except OutOfMemoryError:  # RQ set it here first; written at the next change or try
            self._ff_no_room.refused()
            return
        self._ff_state_written = state

    def execute_job(self, job: Job, queue: Queue) -> None:
        """RQ's SimpleWorker run of ``job``, started before it runs (:meth:`_begin`), its lease
        renewed by the worker's lease thread, and its success in one script
        (:meth:`handle_job_success`).

        A job RQ's blocking dequeue took whose start the queue Redis refused for want of room
        (served to a BLMOVE sent while it had some) is not run: put back at the front of its
        queue as it was, for a worker to take when there is room."""
        try:
            execution, attempt = self._begin(job, queue)
        except OutOfMemoryError:
            first_seen = queue.intermediate_queue.get_first_seen_key(job.id)
            self._ff_hand_back(
                keys=[queue.intermediate_queue_key, queue.key, first_seen], args=[job.id]
            )
            self._ff_no_room.refused()
            log.info("job %s: put back on the queue, not started: no room to start it", job.id)
            return
        except _GivenBack:
            log.warning(
                "job %s: not started: given back to its queue while this worker was stopped "
                "after taking it (another worker runs it)",
                job.id,
            )
            return
        self._lease(job, execution)
        tokens = (_STATE.set(self._ff_state), _ATTEMPT.set(attempt))
        try:
            self.perform_job(job, queue, execution)
        finally:
            _ATTEMPT.reset(tokens[1])
            _STATE.reset(tokens[0])
            self._release_lease()
        # After a success, written already by the script of its end (handle_job_success); after a
        # failure, by RQ's end (cleanup_execution), and here as recorded.
        if self._ff_next is None:
            self.set_state(WorkerStatus.IDLE)

    def _begin(self, job: Job, queue: Queue) -> tuple[Execution, _Attempt]:
        """The job's start (:data:`_START_LUA_FUNCTION`: RQ's two start pipelines, the execution
        and its lease in the started registry, this worker busy, the job started and out of the
        intermediate queue; and the attempt's own reads and writes, the outcome fence, the
        payload, the attempt counted in the job's meta with this process's pid, which a client
        and the benchmark read while the job runs): sent by the script that took the job, else
        (RQ's blocking dequeue took it) one script now."""
        started, self._ff_started = self._ff_started, None
        meta_before = dict(job.meta)
        attempts = job.meta.get("attempts", 0)
        job.meta["attempts"] = (attempts if isinstance(attempts, int) else 0) + 1
        job.meta["pid"] = os.getpid()
        if started is None or started.execution.job_id != job.id:
            args, started = self._start_args()
            started.execution.job_id = job.id
            start = [job.id, job.serializer.dumps(job.meta), job.origin, *args]
            reply, payload = self._start_and_read(self._ff_start, [], [_packed(start)])
            if reply[0] == b"given_back":
                raise _GivenBack(job.id)
            started.has_outcome = bool(reply[0])
            started.payload = payload
        execution = started.execution
        execution._job = job
        self.executions[execution.id] = execution
        job.worker_name = self.name
        job.last_heartbeat = job.started_at = started.at
        job._status = JobStatus.STARTED
        self._state = self._ff_state_written = WorkerStatus.BUSY
        if started.beat_ttl:
            self.last_heartbeat = started.at
            self._ff_beat_at, self._ff_beat_ttl = time.monotonic(), started.beat_ttl
        self.procline(  # type: ignore[no-untyped-call]
            f"Processing {job.func_name} from {job.origin} since {time.time()}"
        )
        return execution, _Attempt(job.id, started.has_outcome, started.payload, meta_before)

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        """Done by :meth:`_begin`'s script, which created the execution."""

    def cleanup_execution(
        self, job: Job, pipeline: Pipeline, execution: Execution | None = None
    ) -> None:
        """RQ's, with the worker written idle in the same transaction: the execution's clean-up
        is part of a job's end, and the worker runs one job at a time. RQ's end of a failed
        attempt (its own, kept for failures) left the worker busy until :meth:`execute_job`
        wrote it idle in a round trip of its own (after RQ's read of the job's dependents, for
        a job failed for good). Not recorded as written: RQ logs a failed transaction and goes
        on, so :meth:`execute_job` still writes it."""
        super().cleanup_execution(job, pipeline, execution)
        pipeline.hset(self.key, "state", WorkerStatus.IDLE.value)

    def handle_exception(self, job: Job, *exc_info: Any) -> None:
        """RQ's, but a job this worker cannot run (:class:`_OtherVersion`, said in one warning
        by :func:`_refused`) is no fault: RQ logged each at ERROR with a traceback, four per
        job of the other release in a rolling deploy."""
        if isinstance(exc_info[1], _OtherVersion):
            call_exception_handlers(self._exc_handlers, job, *exc_info)
            return
        super().handle_exception(job, *exc_info)

    def handle_job_failure(
        self,
        job: Job,
        queue: Queue,
        started_job_registry: StartedJobRegistry | None = None,
        exc_string: str = "",
        execution: Execution | None = None,
    ) -> None:
        """RQ's, but a job this worker could not run and that may still wait for one that can
        (:func:`_refused`) is given back for :data:`OTHER_VERSION_RETRY_S`, its retries left as
        they were: RQ's retry spent one, the first at the queue's front, which the same worker,
        free again, took at once."""
        attempt = _ATTEMPT.get(None)
        if attempt is None or attempt.job_id != job.id or not attempt.waits_for_version:
            super().handle_job_failure(job, queue, started_job_registry, exc_string, execution)
            return
        job.ended_at = None  # it waits: a client reading it queued is not told it ended
        with self.connection.pipeline() as pipeline:
            self.cleanup_execution(job, pipeline=pipeline, execution=execution)
            job.set_status(JobStatus.SCHEDULED, pipeline=pipeline)
            due = now() + timedelta(seconds=OTHER_VERSION_RETRY_S)
            queue.schedule_job(job, due, pipeline=pipeline)
            pipeline.execute()

    def handle_execution_ended(self, job: Job, queue: Queue, heartbeat_ttl: int) -> None:
        """RQ's, without its separate write of the job's last heartbeat: the job hash is saved
        whole, with it, in the script that records the end."""
        self._release_lease()
        job.ended_at = job.last_heartbeat = now()

    def handle_job_success(
        self,
        job: Job,
        queue: Queue,
        started_job_registry: StartedJobRegistry,
        execution: Execution,
    ) -> None:
        """RQ's, as one script (:data:`_END_LUA`) with the attempt's own writes (its outcome,
        its payload deleted), so the outcome and RQ's finished state are stored together; without
        RQ's rewrite of the whole job hash (only the fields that changed since the start) and
        without its watch and read of the job's dependents (faceflow enqueues no job with
        dependents, callbacks or repeats). The next job is taken in the same script while the
        worker may take one that way (it stays busy meanwhile: a SIGTERM then lets it finish, and
        teardown puts a job taken and not started back); when the script starts none, it writes
        the worker idle itself, as it does when it takes none. A queue Redis out of memory for
        the end ends the job without its outcome (:meth:`_end_without_room`), idle alike."""
        attempt = _ATTEMPT.get(None)
        if attempt is not None and attempt.job_id != job.id:
            attempt = None
        result_ttl = job.get_result_ttl(self.default_result_ttl)
        if result_ttl <= 0:  # never for faceflow's jobs (jobs.result_ttl_s >= 1)
            self._end_in_transaction(job, queue, execution, attempt, result_ttl)
            return
        assert job.started_at is not None
        assert job.ended_at is not None
        ended = job.ended_at
        job._status = JobStatus.FINISHED
        take = self._ff_take_with_end and not self._stop_requested and self._ff_next is None
        queue = self.queues[0]  # the next job's (faceflow's workers listen on one)
        value = job._result
        composite = execution.composite_key
        start_args, started = self._start_args() if take else ([], None)
        keys = [
            job.key,
            self._ff_state.keys.result(job.id),
            self._ff_state.keys.data(job.id),
            self.key,
            Result.get_key(job.id),  # type: ignore[no-untyped-call]
            FinishedJobRegistry.key_template.format(job.origin),
            job.dependents_key,
            job.dependencies_key,
            execution.key,
            StartedJobRegistry.key_template.format(job.origin),
            ExecutionRegistry.key_template.format(job.id),
            execution.worker_executions_key,
            WORKERS_SUSPENDED,
            queue.key,
            queue.intermediate_queue_key,
        ]
        args: list[Any] = [
            attempt.meta if attempt is not None and attempt.meta is not None else b"",
            attempt.outcome if attempt is not None and attempt.outcome is not None else b"",
            self._ff_state.settings.jobs.result_ttl_s,
            repr((ended - job.started_at).total_seconds()),
            utcformat(ended),
            self.name,
            b"" if value is None else b64encode(job.serializer.dumps(value)),
            execution.id,
            repr(execution.created_at.timestamp()),
            repr(ended.timestamp()),
            result_ttl,
            current_timestamp(),
            job.id,
            composite,
            1 if take else 0,
            *start_args,
        ]
        if attempt is not None and attempt.outcome is not None:
            size = len(attempt.outcome)
            limit = self._max_bulk() if size > MIN_BULK_LIMIT else None
            if limit is not None and size > limit:
                # Sent, Redis closed the connection mid-command (no error of its own): the
                # broken pipe failed the attempt, and every retry computed it again.
                too_large = JobError(
                    "too_large",
                    _OVER_BULK_MESSAGE.format(size=size / 1_000_000, limit=limit),
                    413,
                    {"result_bytes": size, "limit_bytes": limit},
                )
                self._end_without_room(job, attempt, keys, args[:_END_ARGS], too_large)
                self.executions.pop(execution.id, None)
                return
        try:
            if take:
                reply, payload = self._start_and_read(self._ff_end, keys, _end_argv(args))
            else:
                reply, payload = self._ff_end(keys=keys, args=_end_argv(args)), None
        except OutOfMemoryError:
            self._end_without_room(job, attempt, keys, args[:_END_ARGS])
            self.executions.pop(execution.id, None)
            return
        self.executions.pop(execution.id, None)
        if started is not None:
            taken = self._taken(reply, started, payload)
            self._ff_next = taken if isinstance(taken, Job) else None
        if started is None or len(reply) < 4:  # no job started: the script wrote the worker idle
            self._state = self._ff_state_written = WorkerStatus.IDLE

    def _max_bulk(self) -> int | None:
        """The queue Redis's ``proto-max-bulk-len``, read once (under RQ's socket timeout)."""
        if not self._ff_max_bulk_read:
            self._ff_max_bulk = bulk_limit(self.connection)
            self._ff_max_bulk_read = True
        return self._ff_max_bulk

    def _end_without_room(
        self,
        job: Job,
        attempt: _Attempt | None,
        keys: list[str],
        args: list[Any],
        too_large: JobError | None = None,
    ) -> None:
        """The end of a job whose end (``keys``, ``args``: :data:`_END_LUA`'s, without a next
        job's start) the queue Redis refused for want of room (at ``maxmemory``, ``noeviction``),
        most often for the size of its result. Raised, RQ took that for the job's own error and
        ran it again, computing it each time, to fail it as ``internal`` after the last retry.

        It ends once instead: its payload deleted, finished without an outcome (as a job whose
        image had expired), its error in its meta, where a client's status and result read it:
        ``queue_full`` (503) with the result's size, or the outcome's own error when it was one.
        Nothing is stored under its content key, so the same work submitted again runs again.
        Redis refused the script before its first write (a script out of memory is refused only
        then), so none of the refused end was stored, nor a next job taken.

        ``too_large``: the outcome is larger than the queue Redis takes in one value (not sent);
        the job ends the same way, failed with that error, room or not."""
        # The refused command's arguments (the result) stay in its connection's query buffer on
        # the server for up to a second, holding the queue Redis over maxmemory for every
        # client: closed, the connection gives them back at once.
        self.connection.connection_pool.disconnect(inuse_connections=False)
        self._ff_held.disconnect()
        ended_as = "ended all the same"
        if attempt is not None and attempt.outcome is not None:
            size = len(attempt.outcome)
            error = (
                attempt.error
                or too_large
                or JobError(
                    "queue_full",
                    _NO_ROOM_MESSAGE.format(size=size / 1_000_000),
                    503,
                    {"result_bytes": size},
                )
            )
            job.meta["error"] = _error_meta(error)
            attempt.meta = job.serializer.dumps(job.meta)
            attempt.outcome = None
            job._result = {"ok": False, "code": error.code}
            args[0], args[1] = attempt.meta, b""
            args[6] = b64encode(job.serializer.dumps(job._result))
            ended_as = f"ended failed as {error.code}, its outcome ({size} bytes) not stored"
        args[_END_ARGS - 1] = 0  # no next job taken
        self._ff_end_without_room(keys=keys, args=_end_argv(args))
        self._state = self._ff_state_written = WorkerStatus.IDLE
        log.warning(
            "job %s: %s for its end; %s, not retried",
            job.id,
            "the queue Redis is out of memory (maxmemory)"
            if too_large is None
            else "its result is larger than the queue Redis takes (proto-max-bulk-len)",
            ended_as,
        )

    def _end_in_transaction(
        self,
        job: Job,
        queue: Queue,
        execution: Execution,
        attempt: _Attempt | None,
        result_ttl: int,
    ) -> None:
        """RQ's success path as one transaction with the attempt's own writes, for a job whose
        result RQ keeps forever or not at all (``result_ttl`` ≤ 0: none of faceflow's)."""
        keys = self._ff_state.keys
        with self.connection.pipeline() as pipe:
            if attempt is not None and attempt.meta is not None:
                pipe.hset(job.key, "meta", attempt.meta)
            if attempt is not None and attempt.outcome is not None:
                ttl_s = self._ff_state.settings.jobs.result_ttl_s
                pipe.set(keys.result(job.id), attempt.outcome, ex=ttl_s)
                pipe.delete(keys.data(job.id))
            self.increment_successful_job_count(pipeline=pipe)
            assert job.started_at is not None
            assert job.ended_at is not None
            self.increment_total_working_time(job.ended_at - job.started_at, pipe)
            if result_ttl != 0:
                job._status = JobStatus.FINISHED
                pipe.hset(
                    job.key,
                    mapping={
                        "status": JobStatus.FINISHED.value,
                        "ended_at": utcformat(job.ended_at),
                        "last_heartbeat": utcformat(job.last_heartbeat or job.ended_at),
                    },
                )
                Result.create(
                    job,
                    Result.Type.SUCCESSFUL,
                    result_ttl,
                    return_value=job._result,
                    worker_name=self.name,
                    pipeline=pipe,
                    execution_id=execution.id,
                    execution_started_at=execution.created_at,
                    execution_ended_at=job.ended_at,
                )
                job.finished_job_registry.add(job, result_ttl, pipe)
            job.cleanup(result_ttl, pipeline=pipe, remove_from_queue=False)
            self.cleanup_execution(job, pipeline=pipe, execution=execution)  # the worker idle
            pipe.execute()
        self._state = self._ff_state_written = WorkerStatus.IDLE

    def _lease(self, job: Job, execution: Execution) -> None:
        with self._ff_lease_lock:
            self._ff_leased = _Leased(job, execution, time.monotonic())
        if self._ff_lease_thread is None:
            self._ff_lease_thread = threading.Thread(
                target=self._renew_lease, name="faceflow-lease", daemon=True
            )
            self._ff_lease_thread.start()

    def _release_lease(self) -> None:
        # Under the lock: a renewal in flight ends before the job's end is recorded.
        with self._ff_lease_lock:
            self._ff_leased = None

    def _renew_lease(self) -> None:
        """The lease thread: looking every ``lease_s / 6``, renews the running job's lease (RQ's
        ``maintain_heartbeats``: the execution's entry in the started registry) when the next
        look would come more than ``lease_s / 3`` after the job started or its lease was last
        renewed: at most ``lease_s / 3`` between renewals, as :func:`restart_grace_s` assumes.
        It polls rather than being woken per job: a wake-up at every job's start and end cost
        the job's thread a switch to this one and back each time."""
        interval = max(0.5, self._lease_s / 3)
        tick = interval / 2
        while True:
            time.sleep(tick)
            with self._ff_lease_lock:
                leased = self._ff_leased
                if leased is None or time.monotonic() - leased.renewed_at + tick < interval:
                    continue
                self._renew(leased)
                leased.renewed_at = time.monotonic()

    def _renew(self, leased: _Leased) -> None:
        """One renewal of the running job's lease: with its heartbeat stamps, or only the lease
        itself while the queue Redis refuses the stamps for want of room."""
        job, execution = leased.job, leased.execution
        try:
            try:
                self.maintain_heartbeats(job, execution)
            except OutOfMemoryError:
                self._ff_no_room.refused()
                self._ff_renew_lease(
                    keys=self._lease_keys(job, execution),
                    args=self._lease_args(execution),
                )
        except RedisError as exc:
            log.warning("job %s: lease renewal failed: %s", job.id, exc)

    def maintain_heartbeats(self, job: Job, execution: Execution) -> None:
        """RQ's renewal of a running job's lease and heartbeat stamps, in one transaction as
        RQ's, with the lease scored on the queue Redis's clock (:data:`_RENEW_LEASE_LUA`), not
        this host's. The stamps (``last_heartbeat``) stay this host's: they are for reading,
        and nothing is judged by them."""
        worker_ttl = self.job_monitoring_interval + 60  # as RQ's renewal sends it
        stamp = now()
        with self.connection.pipeline() as pipe:
            self.heartbeat(worker_ttl, pipeline=pipe)
            pipe.hset(execution.key, "last_heartbeat", stamp.timestamp())
            job_stamp = len(pipe)
            job.heartbeat(stamp, self._lease_s, pipeline=pipe, xx=True)
            self._ff_renew_lease(
                keys=self._lease_keys(job, execution),
                args=self._lease_args(execution),
                client=pipe,
            )
            results = pipe.execute()
            # As RQ's: a stamp that made the job's hash anew (the job ended and was deleted in
            # between) is deleted; a worker's hash made anew (it had expired) is written whole.
            if results[job_stamp] == 1:
                pipe.delete(job.key)
            if results[0] == 1:
                pipe.hset(self.key, mapping=self.serialize())
                pipe.expire(self.key, worker_ttl)
            if len(pipe):
                pipe.execute()

    def _lease_keys(self, job: Job, execution: Execution) -> list[str]:
        return [
            job.started_job_registry.key,
            execution.key,
            ExecutionRegistry(job.id, connection=self.connection).key,
            self.key,
            self.executions_key,
        ]

    def _lease_args(self, execution: Execution) -> list[Any]:
        worker_ttl = self.job_monitoring_interval + 60  # as RQ's renewal sends it
        return [execution.composite_key, execution.id, self._lease_s, worker_ttl]


def run_job() -> dict[str, JsonScalar]:
    """The RQ job function: run the stored payload of the current job on this process's models.

    Stores the outcome under the job's result key (and the result in the shared cache); returns
    a small JSON summary for RQ. A failure :func:`~faceflow.jobs.retry.is_retryable` rejects (bad
    input, an internal error) is a *finished* job with an error outcome, so it is not retried; a
    retryable one (a deadline, transient unavailability) raises, and RQ retries it.

    The worker (:meth:`FaceflowWorker._begin`) has already read the outcome fence and the payload
    and counted the attempt; the outcome is stored by the script that records the job
    finished.
    """
    try:
        state = _STATE.get()
        attempt = _ATTEMPT.get()
    except LookupError:
        raise RuntimeError("run_job runs only inside a FaceflowWorker") from None
    job = get_current_job()
    if job is None or job.id != attempt.job_id:
        raise RuntimeError("run_job runs only as the RQ job its worker started")
    if attempt.has_outcome:
        # Delivered again after an earlier attempt stored its outcome (a lease judged expired
        # while its worker was alive but cut off from the queue Redis): the work is done, and
        # doing it again would only repeat it. It was no attempt: the count goes back (a rare
        # round trip, so that the common start costs one).
        log.warning("job %s: already has its outcome; not run again", job.id)
        job.meta.clear()
        job.meta.update(attempt.meta_before)
        job.save_meta()  # type: ignore[no-untyped-call]
        return {"ok": True, "repeat_delivery": True}

    if attempt.payload is None:
        # Requeued (e.g. from the dead-letter registry) after its image expired: end at once with
        # ``expired`` on the job itself. No outcome is stored under the job id, which is the
        # content key's: a new submission of the same image must run, not inherit this failure.
        log.warning("job %s: its stored image has expired; ending it as expired", job.id)
        job.meta["error"] = {"code": "expired", "message": _EXPIRED_MESSAGE, "status": 410}
        _end(attempt, job)
        return {"ok": False, "code": "expired"}

    key: str | None = None
    try:
        payload = _payload_of(attempt.payload, job.id, state.sealer)
        if state.before_job is not None:
            state.before_job(payload)
        spec, request, key = _work_of(payload, job.id, state.context.settings.runtime)
        output = spec.task(state.context, request)
    except _OtherVersion as exc:
        _refused(state, attempt, job, exc)
        raise
    except Exception as exc:
        error = attempt_error(exc, job.id)
        if not is_retryable(error):
            summary = _store(state, attempt, job, JobOutcome(error=JobError.of(error)))
            if state.cache is not None and key is not None and error.deterministic:
                # As the API nodes cache it (cache/compute.py): the sync route's repeat of
                # this work is answered this failure from the shared cache, not computed.
                _fill_cache(state, key, failure_entry(error))
            return summary
        job.meta["error"] = _error_meta(JobError.of(error))
        job.save_meta()  # type: ignore[no-untyped-call]
        raise
    entry = CacheEntry(output.media_type, output.body, output.meta)
    summary = _store(state, attempt, job, JobOutcome(entry=entry))
    if state.cache is not None:
        _fill_cache(state, key, entry)
    return summary


_OTHER_VERSION_MESSAGE = (
    "the worker that took this job runs other models or another faceflow version than the API "
    "node that accepted it ({why}); submit it again once they match"
)
OTHER_VERSION_RETRY_S = 5
"""How long a job this worker could not run waits before a worker looks at it again: in a
rolling deploy the worker that refused it is free at once, and would take it again at once."""


class _OtherVersion(Unavailable):
    """This worker cannot do the job as the API node that took it meant it (see
    :func:`_work_of`): another release's work, for a worker of that release."""


_NO_KEYS = Sealer((), "")
"""A state built without a sealer (embedding code, tests): stores in clear, opens nothing."""

_NO_KEY_MESSAGE = (
    "the worker that took this job cannot read its stored payload ({why}); give every API node "
    "and worker the same jobs.payload_key_file"
)


def _payload_of(raw: bytes, job_id: str, sealer: Sealer | None) -> JobPayload:
    """The job's payload; :class:`_OtherVersion` for one this release cannot read. It was
    read as an expired image (410 ``expired``, for good), but the image is there: a release
    that writes its payloads in a new form would have every job its API nodes took failed so
    by the workers not yet upgraded. One sealed with a key this worker lacks is refused the
    same way: given back for a worker that holds it (a fleet mid-rotation), then failed."""
    try:
        raw = (sealer or _NO_KEYS).open(PAYLOAD, job_id, raw)
    except CannotOpen as exc:
        raise _OtherVersion(_NO_KEY_MESSAGE.format(why=exc)) from None
    payload = decode_payload(raw)
    if payload is None:
        why = "this worker cannot read its stored payload"
        raise _OtherVersion(_OTHER_VERSION_MESSAGE.format(why=why))
    return payload


def _refused(state: WorkerState, attempt: _Attempt, job: Job, exc: _OtherVersion) -> None:
    """Note on the job that this worker could not run it (``exc``). Within
    ``jobs.other_version_wait_s`` of the first such refusal the attempt is not counted (the
    job's meta as it was dequeued, with the time of that first refusal) and the job is given
    back for a worker that can run it (:meth:`FaceflowWorker.handle_job_failure`); after it,
    the refusal is an attempt failed ``unavailable`` like any other, retried while retries are
    left. Half a fleet upgraded, a job spent its retries within 20 s on the half of the other
    release (1 of 10 failed ``unavailable``, measured), every refusal an ERROR with a traceback.
    The time is this host's, as RQ's backoffs are: the bound is minutes, a skew is seconds."""
    now_s = time.time()
    since = job.meta.get("other_version_since")
    if not isinstance(since, int | float) or isinstance(since, bool):
        since = now_s
    if now_s - since < state.settings.jobs.other_version_wait_s:
        job.meta.clear()
        job.meta.update(attempt.meta_before)
        job.meta["other_version_since"] = since
        attempt.waits_for_version = True
        log.warning(
            "job %s: not run here, looked at again in %d s: %s",
            job.id,
            OTHER_VERSION_RETRY_S,
            exc.message,
        )
    else:
        log.warning(
            "job %s: no worker could run it for %.0f s: %s", job.id, now_s - since, exc.message
        )
        job.meta["error"] = _error_meta(JobError.of(exc))
    job.save_meta()  # type: ignore[no-untyped-call]


def _work_of(
    payload: JobPayload, job_id: str, runtime: RuntimeSettings
) -> tuple[OperationSpec[Any, Any], Any, str]:
    """The job's operation, its request and its cache key as this worker reads its payload.

    :class:`Unavailable` (retried, perhaps by a worker that matches) when this worker cannot do
    the work the API node keyed: it refuses the stored options, or reads them into another key
    (other models, another result format, an option it does not know), as in a rolling deploy,
    or its processes do not load the operation's models (``runtime.operations``: a detect-only
    worker took analyze jobs and failed each for good, 404 ``operation_disabled``, which every
    resubmission of the same work was then answered with for ``failure_ttl_s``).
    Run anyway, the answer of this worker's version was stored as the job's outcome under the
    API's key, for the day, and an option it did not know was dropped from the answer unsaid
    (it only logged a warning); an option it refused failed the job as the client's 400 for the
    day, though the API had taken it."""
    try:
        operation, spec = spec_for(payload.operation)
        check_enabled(operation, runtime)
        request = spec.from_params(payload.data, payload.params)
    except OperationDisabled as exc:
        why = f"this worker does not load its models: {exc.message}"
        raise _OtherVersion(_OTHER_VERSION_MESSAGE.format(why=why)) from None
    except InvalidParameter as exc:
        why = f"this worker refuses its options: {exc.message}"
        raise _OtherVersion(_OTHER_VERSION_MESSAGE.format(why=why)) from None
    key = cache_key(payload.data, payload.operation, spec.params(request))
    if not job_id.startswith(job_id_for(key)):  # per-key jobs add a suffix (dedup_scope)
        why = f"this worker keys it {key}"
        raise _OtherVersion(_OTHER_VERSION_MESSAGE.format(why=why))
    return spec, request, key


def _error_meta(error: JobError) -> dict[str, object]:
    """``error`` as a job's meta holds it, where the API reads a failure that has no outcome."""
    return {
        "code": error.code,
        "message": error.message,
        "status": error.status,
        "details": dict(error.details),
    }


def _end(attempt: _Attempt, job: Job) -> None:
    """Keep the job's meta, with its end time, for the script that records the end (which also
    stores RQ's own ended_at; this one is what a reader of the meta alone sees)."""
    job.meta["ended_at"] = time.time()
    attempt.meta = job.serializer.dumps(job.meta)


def _store(
    state: WorkerState, attempt: _Attempt, job: Job, outcome: JobOutcome
) -> dict[str, JsonScalar]:
    """Keep the outcome for the script that records the job finished, which also deletes the
    payload: a client never sees one without the other."""
    _end(attempt, job)
    attempt.outcome = (state.sealer or _NO_KEYS).seal(OUTCOME, job.id, encode_outcome(outcome))
    attempt.error = outcome.error
    if outcome.entry is not None:
        return {
            "ok": True,
            "media_type": outcome.entry.media_type,
            "bytes": len(outcome.entry.body),
        }
    assert outcome.error is not None
    return {"ok": False, "code": outcome.error.code}


def attempt_error(exc: Exception, job_id: str) -> FaceflowError:
    """What a job attempt failed with, as the error :func:`is_retryable` judges: RQ's own time
    limit is a deadline; an exception outside the error tree is an internal error."""
    if isinstance(exc, FaceflowError):
        return exc
    if isinstance(exc, JobTimeoutException):
        return DeadlineExceeded("the job ran past its time limit")
    log.error("job %s failed unexpectedly", job_id, exc_info=exc)
    return FaceflowError("internal error; see the worker log")


def _fill_cache(state: WorkerState, key: str, entry: CacheEntry) -> None:
    """Store ``entry`` in the shared cache as an API node stores it (:func:`stored_form`): one
    too large to share is marked so, and an API node waiting on another's lock for this key
    computes it at once instead of waiting that lock out."""
    cache = state.settings.cache
    stored = stored_form(key, entry, cache.redis_max_entry_bytes)
    ttl_ms = jittered_ttl_ms(cache.ttl_s, cache.ttl_jitter)
    assert state.cache is not None
    try:
        state.cache.set(stored.name, stored.value, px=ttl_ms)
    except RedisError as exc:  # the cache is an optimisation: the job result is stored already
        log.warning("could not store job result in the shared cache: %s", exc)


def build_worker(
    settings: Settings,
    context: WorkerContext,
    before_job: Callable[[JobPayload], None] | None = None,
) -> FaceflowWorker:
    """A worker for this process, around models this process loaded; ``before_job`` (if given)
    sees each job's payload before its task runs."""
    jobs = settings.jobs
    assert jobs.redis_url is not None
    # RQ raises the socket timeout above its blocking dequeue time itself.
    connection = connect(jobs.redis_url, None, patient=True)
    cache = (
        connect(settings.cache.redis_url, settings.cache.redis_timeout_ms / 1000)
        if settings.cache.redis_url
        else None
    )
    sealer = Sealer(jobs.payload_keys, jobs.queue_name)
    state = WorkerState(settings, context, connection, cache, before_job, sealer)
    return FaceflowWorker(open_queue(settings, connection), state)

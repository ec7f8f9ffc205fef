"""The channel between the HTTP workers of one embedded server (faceflow.jobs.peers), probed for
cheap harm: what forwarded results hold in the asking worker, what idle or stalled connections
to a worker's socket do to the real calls, and the CPU of a forwarded status poll.

    PYTHONPATH=<checkout>/src .venv/bin/python bench/peer_channel.py --result <file.png>
                                                                     [--polls 16] [--rounds 5]

The owning worker is a child process (this script with ``--owner``, the same ``PYTHONPATH``)
whose socket answers every result call with ``--result`` (a real large answer: an ID photo in
PNG at 1200 dpi) and every status call with a record; the asking worker is this process,
under uvloop as ``faceflow serve`` runs. Each part prints one line of JSON:

- ``held``: the answer budget (128 MiB) held whole by other answers (slow readers), ``--polls``
  result polls at once, forwarded: the bytes this process allocated at the peak (tracemalloc)
  beyond the budget, and how the polls ended. The route's answer takes from the budget as
  every answer does (refused here); a checkout whose ``PeerClient`` takes ``hold`` also reads
  within the budget.
- ``idle``: 32 connections to the owner's socket sending nothing (any process of the user may
  open them), then 10 forwarded status calls: their outcomes and times.
- ``stalled``: the same with connections that send a length prefix and then nothing.
- ``status``: 2,000 forwarded status calls one after the other: CPU of each side a call.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import inspect
import json
import os
import socket
import struct
import subprocess
import sys
import time
import tracemalloc
from collections import Counter
from pathlib import Path

import uvloop

from faceflow.cache.entry import CacheEntry
from faceflow.errors import FaceflowError
from faceflow.jobs import peers
from faceflow.jobs.handles import new_key
from faceflow.jobs.peers import PeerAnswer, PeerCall, PeerClient, PeerGroup, PeerOperation
from faceflow.jobs.records import JobRecord, JobStatus
from faceflow.runtime.pool import PLACE_OWNER
from faceflow.service.answers import AnswerBudget, try_take

BUDGET = 128 * 1024 * 1024
HANDLE = "h" * 48


def _record(status: JobStatus) -> JobRecord:
    return JobRecord(HANDLE, "id-photo", status, 1.0, media_type="image/png")


async def _own(group: PeerGroup, origin: bytes, result: bytes) -> None:
    entry = CacheEntry("image/png", result, {"face_count": 1})

    async def answer(call: PeerCall) -> PeerAnswer:
        if call.operation is PeerOperation.RESULT:
            return _record(JobStatus.FINISHED), CacheEntry(entry.media_type, bytes(result), {})
        return _record(JobStatus.FINISHED), None

    await peers.PeerServer(group, origin, answer).start()
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


def _cpu() -> float:
    times = os.times()
    return times.user + times.system


def _child_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _held(
    client: PeerClient, origin: bytes, budget: AnswerBudget, polls: int
) -> dict[str, object]:
    call = PeerCall(PeerOperation.RESULT, HANDLE, None)
    ends: Counter[str] = Counter()

    async def poll(n: int) -> None:
        PLACE_OWNER.set(f"client-{n}")
        try:
            _, entry = await client.call(origin, call)
        except FaceflowError as exc:
            ends[exc.code] += 1
            return
        taken = entry is not None and try_take(budget, len(entry.body))
        ends["sent" if taken else "read, then refused"] += 1

    gc.collect()
    tracemalloc.start()
    await asyncio.gather(*(poll(n) for n in range(polls)))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"peak_bytes": peak, "ends": dict(ends)}


async def _flooded(
    group: PeerGroup, origin: bytes, client: PeerClient, prefix: bool
) -> dict[str, object]:
    """32 connections holding the owner's socket, then 10 real status calls."""
    loop = asyncio.get_running_loop()
    held = []
    for _ in range(peers.SERVED_AT_ONCE):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        await loop.sock_connect(sock, group.address(origin))
        if prefix:
            await loop.sock_sendall(sock, struct.pack(">I", 4000))
        held.append(sock)
    await asyncio.sleep(0.2)  # the owner has accepted them
    outcomes: Counter[str] = Counter()
    times = []
    for _ in range(10):
        began = time.perf_counter()
        try:
            await client.call(origin, PeerCall(PeerOperation.STATUS, HANDLE, None))
            outcomes["answered"] += 1
        except FaceflowError as exc:
            outcomes[exc.code] += 1
        times.append(round((time.perf_counter() - began) * 1000, 1))
    for sock in held:
        sock.close()
    await asyncio.sleep(0.2)
    return {"outcomes": dict(outcomes), "ms": times}


async def _status(
    client: PeerClient, origin: bytes, owner_pid: int, calls: int
) -> dict[str, object]:
    call = PeerCall(PeerOperation.STATUS, HANDLE, None)
    own, theirs = _cpu(), _child_cpu(owner_pid)
    for _ in range(calls):
        await client.call(origin, call)
    own, theirs = _cpu() - own, _child_cpu(owner_pid) - theirs
    return {"asking_ms": round(own / calls * 1000, 3), "owning_ms": round(theirs / calls * 1000, 3)}


async def _ask(
    group: PeerGroup, origin: bytes, owner_pid: int, size: int, args: argparse.Namespace
) -> None:
    budget = AnswerBudget(BUDGET, keep_for_others=True)
    assert budget.try_take_under(BUDGET)  # slow readers hold it all
    bound = BUDGET + peers.ANSWER_SLACK_BYTES
    takes_hold = "hold" in inspect.signature(PeerClient).parameters
    client = (
        PeerClient(group, bound, hold=budget.holding) if takes_hold else PeerClient(group, bound)
    )
    for _ in range(args.rounds):
        found = await _held(client, origin, budget, args.polls)
        print(json.dumps({"part": "held", "result_bytes": size, "polls": args.polls, **found}))
    plain = PeerClient(group, bound)
    print(json.dumps({"part": "idle", **await _flooded(group, origin, plain, prefix=False)}))
    print(json.dumps({"part": "stalled", **await _flooded(group, origin, plain, prefix=True)}))
    print(json.dumps({"part": "status", **await _status(plain, origin, owner_pid, 2000)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--result", required=True, help="the large answer the owning worker returns (a file)"
    )
    parser.add_argument(
        "--polls", type=int, default=16, help="result polls at once (default: %(default)s)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="rounds of the held-result part (default: %(default)s)",
    )
    parser.add_argument("--owner", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.owner:
        group = PeerGroup.from_env(args.owner[0])
        assert group is not None
        uvloop.run(_own(group, bytes.fromhex(args.owner[1]), Path(args.result).read_bytes()))
        return
    group, origin = PeerGroup(new_key()), peers.new_origin()
    command = [sys.executable, __file__, "--result", args.result, "--owner"]
    owner = subprocess.Popen(
        [*command, group.to_env(), origin.hex()], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert owner.stdout is not None
        assert owner.stdout.readline() == b"ready\n"
        uvloop.run(_ask(group, origin, owner.pid, Path(args.result).stat().st_size, args))
    finally:
        owner.kill()
        owner.wait()


if __name__ == "__main__":
    main()

"""A worker gives its free heap back once it has grown past its slack, and only then, or once it
is idle holding more than a little."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from faceflow.runtime.heap import HeapKeeper, keep_heap, resident_bytes, trim_heap

GLIBC_ONLY = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")

BLOCK_BYTES = 100_000
"""Below glibc's initial mmap threshold: these blocks come from the heap, as a task's do."""
GROWTH_BYTES = 64 * 1024 * 1024
SLACK_BYTES = 16 * 1024 * 1024


def hold_then_free(nbytes: int) -> bytes:
    """Fill ``nbytes`` of heap and free it, as a task that decoded a large photo does; the block
    returned was allocated above them and keeps what they freed inside the heap."""
    blocks = [b"\x01" * BLOCK_BYTES for _ in range(nbytes // BLOCK_BYTES)]
    above = b"\x02" * BLOCK_BYTES
    del blocks
    return above


def test_resident_bytes_reads_this_process() -> None:
    assert resident_bytes() > 10 * 1024 * 1024


def test_a_process_within_its_slack_is_not_trimmed() -> None:
    keeper = HeapKeeper(slack_bytes=1 << 40)
    kept = hold_then_free(GROWTH_BYTES)

    assert keeper.after_task() is False
    assert kept


def test_growth_past_the_slack_is_given_back_once() -> None:
    trim_heap()  # what earlier tests freed would otherwise serve these blocks without growth
    keeper = HeapKeeper(slack_bytes=SLACK_BYTES)
    before = resident_bytes()
    kept = hold_then_free(GROWTH_BYTES)
    grown = resident_bytes()

    assert keeper.after_task() is True
    assert resident_bytes() < grown - GROWTH_BYTES // 2
    assert resident_bytes() < before + SLACK_BYTES
    # The floor is now what the trim left: nothing has grown since, so no second trim.
    assert keeper.after_task() is False
    assert kept


def test_heap_a_task_left_within_the_slack_is_given_back_when_idle() -> None:
    trim_heap()
    keeper = HeapKeeper(slack_bytes=1 << 40)  # never trimmed after a task
    kept = hold_then_free(GROWTH_BYTES // 4)
    grown = resident_bytes()

    assert keeper.after_task() is False
    assert keeper.idle_trim_due
    assert keeper.idle() is True
    assert resident_bytes() < grown - GROWTH_BYTES // 8
    # Given back: nothing is due until a task leaves more.
    assert not keeper.idle_trim_due
    assert keeper.idle() is False
    assert kept


def test_a_process_holding_next_to_nothing_is_not_trimmed_when_idle() -> None:
    trim_heap()
    keeper = HeapKeeper()

    assert keeper.after_task() is False
    assert not keeper.idle_trim_due
    assert keeper.idle() is False


@GLIBC_ONLY
def test_glibc_takes_the_heap_thresholds() -> None:
    assert keep_heap()


THREAD_ALLOCATES = """
import sys, threading
from pathlib import Path
from faceflow.runtime.heap import share_one_arena

if sys.argv[1] == "shared":
    assert share_one_arena()
kept = []
thread = threading.Thread(target=lambda: kept.extend(b"x" * 200_000 for _ in range(50)))
thread.start()
thread.join()
# glibc's thread arena is a 64 MiB (HEAP_MAX_SIZE) reservation aligned to its size: an anonymous
# read-write part followed by an inaccessible rest up to 64 MiB (further when the kernel merged it
# with an inaccessible neighbour); the main heap is [heap]. Both parts are checked: an unrelated
# anonymous mapping lands on a 64 MiB boundary now and then.
HEAP = 64 << 20
maps = [line.split() for line in Path("/proc/self/maps").read_text().splitlines()]
spans = [(*(int(x, 16) for x in f[0].split("-")), f[1], len(f)) for f in maps]
arenas = 0
for (start, end, perms, n), (next_start, next_end, next_perms, _) in zip(spans, spans[1:]):
    arenas += (
        n == 5 and perms.startswith("rw") and start % HEAP == 0
        and next_start == end and next_perms.startswith("---") and next_end >= start + HEAP
    )
print(arenas)
"""


def arenas_after_a_thread_allocates(mode: str) -> int:
    """Thread arenas in a fresh process after a thread allocated 10 MB (``mode``: ``shared``
    after :func:`share_one_arena`, else glibc's default)."""
    done = subprocess.run(
        [sys.executable, "-c", THREAD_ALLOCATES, mode],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(done.stdout)


@GLIBC_ONLY
def test_threads_share_the_main_heap_once_asked() -> None:
    # The default first, so the test shows the arena it removes.
    assert arenas_after_a_thread_allocates("default") >= 1
    assert arenas_after_a_thread_allocates("shared") == 0

"""A worker gives its free heap back once it has grown past its slack, and only then."""

from __future__ import annotations

from faceflow.runtime.heap import HeapKeeper, resident_bytes, trim_heap

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

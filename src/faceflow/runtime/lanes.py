"""The inference processes that work queued up by a client (a batch's images, embedded jobs) or
large at once (an ID photo over 2 MP, a print sheet) may hold at once in one API process: one
fewer than the pool's processes, at least one, so that the single requests always find one.
Batches took every process (10 % of other clients' detects answered while one client sent
batches back to back), and 20 embedded ID-photo jobs, posted in a quarter of a second, made
others' detects take 5 s for the minute the jobs ran."""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass, field

from faceflow.runtime.pool import PLACE_OWNER, OwnersAbout

LANE_WAIT_S = 5.0
"""How long a batch (or a large render) with no lane free waits its turn for one, in line with
the jobs waiting: refused at once, eight queued ID-photo jobs kept every other client's batches
out (503) for the 42 s the jobs took, as they took each lane given back."""


def lane_count(processes: int) -> int:
    return max(1, processes - 1)


@dataclass(eq=False, slots=True)
class Waiter:
    """A client's request waiting in turn for a lane (see :meth:`Lanes.get_in_line`)."""

    owner: str
    behind: list[Waiter] = field(default_factory=list)
    """Other clients' requests this one stepped back for, when they got in line after it."""
    waiting: bool = True

    def owes_a_turn(self) -> bool:
        """Whether a request it stepped back for still waits: given a lane before that one,
        it passes it on."""
        self.behind = [other for other in self.behind if other.waiting]
        return bool(self.behind)


class Lanes(asyncio.Semaphore):
    """A semaphore of lanes that knows, with ``keep_for_others``, which client (its
    :data:`~faceflow.runtime.pool.PLACE_OWNER`) holds or awaits each lane taken through
    :func:`take_in_turn`: while another client is about (asked for a lane within
    :data:`~faceflow.runtime.pool.OTHERS_ABOUT_S`), one that holds or awaits a lane already does
    not get in line for another, so one client's many requests cannot stand in front of every
    other client's (100 connections of one client asking for large renders, waiting in line
    first come first served, had another client's batches 503 after their 5 s). A client alone
    queues as many as it likes, and those of its requests that the rule would have kept out of
    line step back when another client gets in line (:meth:`get_in_line`); jobs (no owner) are
    nobody's. A lane is given back by the task that took it (``release`` reads the owner from
    its context)."""

    def __init__(self, value: int, *, keep_for_others: bool = False) -> None:
        super().__init__(value)
        self.keep_for_others = keep_for_others
        self.owned: collections.Counter[str] = collections.Counter()
        """Per client: the lanes it holds or awaits through :func:`take_in_turn`."""
        self.about = OwnersAbout()
        self._line: list[Waiter] = []
        """Clients' requests waiting in turn, oldest first."""

    def get_in_line(self, owner: str | None) -> Waiter | None:
        """Note a request of ``owner`` getting in line, before :meth:`took` counts it.

        A client holding and awaiting no lane, getting in line, is one the rule lets in while
        others are about; requests of other clients already in line that the rule would keep out
        now step back behind it: all of a client's if it holds a lane, else all but its oldest.
        In line before that client came (it was alone), they had its first request wait behind
        all of them, 503 after its 5 s when they were large renders. They keep waiting, within
        their own 5 s, rather than being refused: a lane freed meanwhile still serves them.
        None for a request of nobody (or without ``keep_for_others``): it just waits in turn."""
        if owner is None or not self.keep_for_others:
            return None
        waiter = Waiter(owner)
        if not self.owned[owner]:
            lines: dict[str, list[Waiter]] = {}
            for in_line in self._line:
                lines.setdefault(in_line.owner, []).append(in_line)
            for other, waiting in lines.items():
                holds = self.owned[other] - len(waiting)
                for beyond in waiting[0 if holds else 1 :]:
                    beyond.behind.append(waiter)
        self._line.append(waiter)
        return waiter

    def out_of_line(self, waiter: Waiter | None) -> None:
        """``waiter`` has a lane, or has given up waiting for one."""
        if waiter is not None:
            waiter.waiting = False
            self._line.remove(waiter)

    def pass_on(self) -> None:
        """Give a lane just taken to the next in line, as the task taking it did not count it."""
        super().release()

    def took(self, owner: str | None, count: int) -> None:
        if owner is not None and self.keep_for_others:
            self.owned[owner] += count

    def gave(self, owner: str | None, count: int) -> None:
        if owner is not None and self.owned[owner] > 0:
            self.owned[owner] -= min(count, self.owned[owner])
            if not self.owned[owner]:
                del self.owned[owner]  # the counter holds only clients with a lane

    def release(self) -> None:
        self.gave(PLACE_OWNER.get(), 1)
        super().release()


def background_lanes(processes: int, *, keep_for_others: bool = False) -> Lanes:
    """The lanes of a pool of ``processes``, shared by the batches, the large renders and the
    embedded job runner of an API process: a job waits for one
    (:meth:`asyncio.Semaphore.acquire`), the others take those free now or one in turn
    (:func:`take_in_turn`; with ``keep_for_others``, see :class:`Lanes`)."""
    return Lanes(lane_count(processes), keep_for_others=keep_for_others)


async def take_free(lanes: asyncio.Semaphore, wanted: int) -> int:
    """Up to ``wanted`` lanes free now, without waiting: none while a job waits for one. The
    caller gives each back with ``lanes.release()``."""
    taken = 0
    while taken < wanted and not lanes.locked():
        await lanes.acquire()  # free: returns at once
        taken += 1
    return taken


async def take_in_turn(lanes: Lanes, wanted: int) -> int:
    """Up to ``wanted`` lanes free now; when none is, one lane in turn with the jobs waiting
    (first come, first served), waiting at most :data:`LANE_WAIT_S`; 0 when none came in that
    time, or at once for a client that holds or awaits a lane already while another is about
    (:class:`Lanes` with ``keep_for_others``). The caller gives each back with
    ``lanes.release()``, from the same task."""
    owner = PLACE_OWNER.get() if lanes.keep_for_others else None
    # Seen before any refusal: a client refused is about, and its retry finds the line kept.
    others_about = owner is not None and lanes.about.others_about(owner)
    taken = await take_free(lanes, wanted)
    if taken:
        lanes.took(owner, taken)
        return taken
    if others_about and owner is not None and lanes.owned[owner]:
        return 0
    waiter = lanes.get_in_line(owner)
    lanes.took(owner, 1)  # counted while it waits, so its next request does not get in line
    try:
        async with asyncio.timeout(LANE_WAIT_S):
            await lanes.acquire()
            while waiter is not None and waiter.owes_a_turn():
                # Stepped back (Lanes.get_in_line): the lane goes on down the line, to the
                # request this one owes a turn, and this one gets in line again at its end.
                lanes.pass_on()
                await lanes.acquire()
    except TimeoutError:
        lanes.gave(owner, 1)
        return 0
    except BaseException:
        lanes.gave(owner, 1)
        raise
    finally:
        lanes.out_of_line(waiter)
    return 1

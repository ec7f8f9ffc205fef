"""The embedded runner of one of several HTTP workers: its own jobs answered by itself, another
worker's asked of that worker (:mod:`faceflow.jobs.peers`), so a client may poll any connection."""

from __future__ import annotations

from faceflow.cache.entry import CacheEntry
from faceflow.errors import JsonScalar, Unavailable
from faceflow.jobs.embedded import EmbeddedRunner
from faceflow.jobs.handles import HandleSigner, unknown_handle
from faceflow.jobs.peers import (
    HoldAnswer,
    PeerAnswer,
    PeerCall,
    PeerClient,
    PeerGroup,
    PeerOperation,
    PeerServer,
)
from faceflow.jobs.records import JobRecord
from faceflow.operations.registry import Submission


class ForwardingRunner:
    """``local`` (whose handles ``signer`` mints with ``origin``) behind this worker's socket, and
    every other origin's handles forwarded to its worker. A forged handle is answered 404 here,
    from its tag alone, without any call. A forwarded answer is read within ``hold`` (this worker's
    answer budget)."""

    backend = "embedded"

    def __init__(
        self,
        local: EmbeddedRunner,
        signer: HandleSigner,
        origin: bytes,
        group: PeerGroup,
        max_answer_bytes: int,
        hold: HoldAnswer | None = None,
    ) -> None:
        self._local = local
        self._signer = signer
        self._origin = origin
        self._server = PeerServer(group, origin, self._answer)
        self._client = PeerClient(group, max_answer_bytes, hold)
        self._forwarded = 0

    async def start(self) -> None:
        await self._local.start()
        await self._server.start()

    async def close(self) -> None:
        await self._server.close()
        await self._local.close()

    async def submit(self, submission: Submission, owner: str | None) -> JobRecord:
        return await self._local.submit(submission, owner)

    async def status(self, handle: str, owner: str | None) -> JobRecord:
        record, _ = await self._call(PeerCall(PeerOperation.STATUS, handle, owner))
        return record

    async def result(self, handle: str, owner: str | None) -> tuple[JobRecord, CacheEntry]:
        record, entry = await self._call(PeerCall(PeerOperation.RESULT, handle, owner))
        if entry is None:  # a result call's answer always has one: not a worker of ours
            raise Unavailable("another HTTP worker's answer was not understood", retry_after_s=1)
        return record, entry

    async def cancel(self, handle: str, owner: str | None) -> JobRecord:
        record, _ = await self._call(PeerCall(PeerOperation.CANCEL, handle, owner))
        return record

    def stats(self) -> dict[str, JsonScalar]:
        return {**self._local.stats(), "forwarded": self._forwarded}

    async def queue_depth(self) -> int:
        return await self._local.queue_depth()

    async def _call(self, call: PeerCall) -> PeerAnswer:
        origin = self._signer.origin(call.handle)
        if origin is None:
            raise unknown_handle(in_memory=True)
        if origin == self._origin:
            return await self._answer(call)
        self._forwarded += 1
        return await self._client.call(origin, call)

    async def _answer(self, call: PeerCall) -> PeerAnswer:
        """What this worker answers for ``call`` about one of its own handles."""
        local = self._local
        if call.operation is PeerOperation.RESULT:
            return await local.result(call.handle, call.owner)
        if call.operation is PeerOperation.CANCEL:
            return await local.cancel(call.handle, call.owner), None
        return await local.status(call.handle, call.owner), None

"""Several HTTP workers, each accepting on its own listening socket (``SO_REUSEPORT``).

uvicorn's supervisor binds one socket and hands it to every worker: the worker whose loop wakes
first accepts a burst of connections, so 200 connections split from 1 : 1.1 to 1 : 4.6 between
two workers in the hit-path runs, and the busier worker's loop turns (and the tail) grow with
its share. Here the supervisor binds one socket per worker slot on the same address with
``SO_REUSEPORT``, and the kernel hashes each new connection to one of the sockets listening in
the group, as nginx's ``reuseport`` does.

Nothing the kernel accepted is lost with a worker: the supervisor keeps every slot's socket open
for the server's whole life, so the connections queued on it outlive the worker, and a worker
that dies or is restarted (SIGHUP) is replaced on the same socket, which its replacement accepts
from. Meanwhile the connections hashed to that socket wait (a shared socket would have given them
to the other worker). A socket joins the group when its worker starts listening, after the app's
start-up, so a worker still starting gets no connections. The kernel cannot hand a socket's
queue to the others when it closes unless ``net.ipv4.tcp_migrate_req`` is 1 (off by default), so
a worker slot is retired (SIGTTOU) only then; without it the count stays as started.
"""

from __future__ import annotations

import logging
import socket
import sys
from pathlib import Path

from uvicorn.config import STARTUP_FAILURE, Config
from uvicorn.supervisors.multiprocess import Multiprocess, Process

logger = logging.getLogger("uvicorn.error")

MIGRATE_REQ = Path("/proc/sys/net/ipv4/tcp_migrate_req")
"""1: a closing listener's queued connections move to another socket of its group (Linux 5.14+)."""


def reuse_port_balances() -> bool:
    """Whether the kernel spreads connections over sockets sharing a port: Linux's
    ``SO_REUSEPORT``. (BSD and macOS accept the option but give every connection to one socket.)"""
    return sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT")


def queues_migrate_on_close() -> bool:
    try:
        return MIGRATE_REQ.read_text().strip() == "1"
    except OSError:
        return False


class PortGroup:
    """The listening sockets of one address, one per HTTP worker slot."""

    def __init__(self, host: str, port: int, slots: int) -> None:
        self._family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._host = host
        # SO_REUSEPORT lets any process of this user bind the same address and take a share of
        # its connections: first bind as uvicorn does (SO_REUSEADDR only), so a server started on
        # a port already served refuses to start, as it did with one shared socket.
        with socket.socket(self._family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
            self.port: int = probe.getsockname()[1]  # port 0: the one the kernel chose
        self.sockets = [self.bind() for _ in range(slots)]

    def bind(self) -> socket.socket:
        """One more socket on the group's address; it takes connections once a worker listens."""
        sock = socket.socket(self._family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((self._host, self.port))
        except OSError:
            sock.close()
            raise
        sock.set_inheritable(True)
        return sock


class WorkerPerSocket(Multiprocess):
    """uvicorn's supervisor (health checks, restarts, signals) with worker ``i`` serving only
    ``group.sockets[i]``: every place uvicorn starts a worker on the shared list starts it on
    its slot's socket instead."""

    def __init__(self, config: Config, group: PortGroup) -> None:
        super().__init__(config, sockets=group.sockets)
        self.group = group

    def _start(self, slot: int) -> Process:
        process = Process(self.config, [self.group.sockets[slot]])
        process.start()
        return process

    def init_processes(self) -> None:
        self.processes = [self._start(slot) for slot in range(self.processes_num)]

    def restart_all(self) -> None:
        """As uvicorn's: each replacement serves its slot's socket before the old worker stops,
        so the slot always has a worker accepting."""
        for slot, old_process in enumerate(self.processes):
            if self.should_exit.is_set():
                return
            new_process = self._start(slot)
            if not new_process.wait_until_ready(
                self.config.timeout_worker_healthcheck, self.should_exit
            ):
                new_process.kill()
                new_process.join()
                if not self.should_exit.is_set():
                    logger.error(
                        "New child process [%s] was not ready in time; keeping worker [%s] and "
                        "aborting the restart.",
                        new_process.pid,
                        old_process.pid,
                    )
                return
            old_process.terminate()
            old_process.join()
            self.processes[slot] = new_process

    def keep_subprocess_alive(self) -> None:
        """As uvicorn's: a worker that died or stopped answering is replaced on its socket."""
        if self.should_exit.is_set():
            return
        for slot, process in enumerate(self.processes):
            if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            process.kill()
            process.join()
            if process.exitcode == STARTUP_FAILURE:
                # Failed before serving: the app or its settings are broken, and every
                # replacement would fail the same way.
                logger.error(
                    "Child process [%s] failed to start, stopping the parent process.", process.pid
                )
                self.should_exit.set()
                return
            if self.should_exit.is_set():
                return
            logger.info("Child process [%s] died", process.pid)
            self.processes[slot] = self._start(slot)

    def handle_ttin(self) -> None:
        logger.info("Received SIGTTIN, increasing the number of processes.")
        try:
            self.group.sockets.append(self.group.bind())
        except OSError as exc:
            logger.error("No socket for another worker: %s", exc)
            return
        self.processes_num += 1
        self.processes.append(self._start(len(self.processes)))

    def handle_ttou(self) -> None:
        logger.info("Received SIGTTOU, decreasing number of processes.")
        if self.processes_num <= 1:
            logger.info("Already reached one process, cannot decrease the number of processes.")
            return
        if not queues_migrate_on_close():
            logger.warning(
                "Keeping %d processes: closing a worker's socket would reset the connections "
                "queued on it unless %s is 1.",
                self.processes_num,
                MIGRATE_REQ,
            )
            return
        self.processes_num -= 1
        process = self.processes.pop()
        process.terminate()
        process.join()
        self.group.sockets.pop().close()


def run_workers(config: Config) -> None:
    """Serve ``config.app`` with ``config.workers`` workers, one listening socket each."""
    try:
        group = PortGroup(config.host, config.port, config.workers)
    except OSError as exc:
        logger.error(exc)
        sys.exit(STARTUP_FAILURE)
    scheme_host = f"[{config.host}]" if ":" in config.host else config.host
    logger.info(
        "Uvicorn running on http://%s:%d, one listening socket per worker (Press CTRL+C to quit)",
        scheme_host,
        group.port,
    )
    try:
        WorkerPerSocket(config, group).run()
    finally:
        for sock in group.sockets:
            sock.close()

"""The emulator across cores: one listening address, connections served by N worker processes.

``run_emulator(workers=N)`` / ``start_in_thread(workers=N)`` / ``voicelive-nb emulator --workers N``
give a :class:`WorkerPool`: the parent process owns the one listening socket and accepts; each
accepted TCP connection is handed, as a file descriptor (``SCM_RIGHTS`` over a Unix
``SOCK_SEQPACKET`` pair), to the worker with the fewest open connections, which runs the
WebSocket handshake and the whole conversation (an :class:`~.server.EmulatorServer` of its own).

Why a dispatcher rather than ``SO_REUSEPORT`` or an inherited listening socket: with
``SO_REUSEPORT`` the kernel hashes each connection to a worker, so two concurrent sessions land on
one worker half of the time (no speed-up); with one socket shared by all workers, whichever loop
wakes first accepts every pending connection. Handing each connection to the least-loaded worker
spreads them deterministically, lets the parent enforce limits that are per resource (the
connection rate, ``max_sessions``) in one place, and costs the parent only an ``accept`` and a
``sendmsg`` per connection (no bytes of the conversation pass through it).

Workers are fresh interpreters (``python -m voicelive_nb.emulator.workers``, not ``fork``: safe
from a process with threads and event loops, as notebooks and tests are, and unlike
``multiprocessing``'s ``spawn`` they do not re-import the caller's ``__main__``); start-up waits until every worker reported ``ready`` on its pipe (or
raises :class:`WorkerError` with the exit code of one that died). Options go to the workers by
pickling: functions (``replies=callable``) are refused with a :class:`~voicelive_nb.errors.ConfigError`.
A worker that dies while serving is logged as an error, kept in :attr:`WorkerPool.failures`
and no longer given connections; with none left, new connections get HTTP 503.
:meth:`WorkerPool.stop` asks every worker to close its connections (1001) and exit, then
terminates and kills any that did not; workers also exit when the parent's end of the pipe
closes, so none outlives the parent.

Past ``max_sessions`` open connections (and past ``max_connections_per_minute``), a new
connection is refused before the upgrade: HTTP 503 / 429 with ``Retry-After``, as the service does,
instead of slowing every session down.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import math
import os
import pickle
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol

from ..errors import ConfigError, StateError, VoiceLiveError
from ..hosts import is_loopback_host
from .endpoint import EmulatorServer
from .limits import ConnectionRate, capacity_refusal, check_limit

__all__ = ["WORKER_HEADER", "WorkerError", "WorkerPool"]

logger = logging.getLogger("voicelive_nb.emulator.workers")

#: Response header of the handshake naming the worker process that serves the connection.
WORKER_HEADER = "x-voicelive-emulator-worker"
_CONNECTION = b"C"
_QUIT = b"Q"
#: How long a refused client has to send its request line and headers before the 429/503 is sent.
_REFUSE_READ_S = 5.0


class WorkerError(VoiceLiveError):
    """A worker process of the emulator could not start, or died."""


# --- the worker process ------------------------------------------------------------------------------


class _TrackedConnection(ServerConnection):
    """A server connection that tells its worker when its TCP connection is gone."""

    on_lost: Any = None

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.on_lost is not None:
            self.on_lost()


class _WorkerServer(EmulatorServer):
    """An :class:`EmulatorServer` that does not listen: it serves sockets handed to it."""

    async def start(self) -> None:
        if self._server is not None:
            raise StateError("the emulator is already running")
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=self._threads, thread_name_prefix="voicelive-emulator"
        )
        self._options.executor = self._executor
        self._adopting: set[asyncio.Task[None]] = set()
        # the websockets server needs a listening socket to be "serving" (else it answers 503);
        # this one is a Unix socket in the abstract namespace nobody connects to: every
        # connection comes from the parent through adopt()
        self._idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._idle.bind(f"\0voicelive-emulator-worker-{os.getpid()}-{secrets.token_hex(4)}")
        self._server = await serve(
            self._handle,
            sock=self._idle,
            process_request=self._process_request,
            process_response=self._tag_response,
            max_size=self.max_message_bytes,
            compression=None,
            logger=logging.getLogger("voicelive_nb.emulator.websockets"),
        )

    @staticmethod
    def _tag_response(connection: ServerConnection, request: Request, response: Response) -> Response:
        """Name the worker that served the handshake (``x-voicelive-emulator-worker: PID``), for debugging."""
        response.headers[WORKER_HEADER] = str(os.getpid())
        return response

    def adopt(self, sock: socket.socket, on_lost: Any) -> None:
        """Serve an accepted TCP connection (the handshake runs in the websockets server)."""
        assert self._server is not None
        server = self._server
        loop = asyncio.get_running_loop()

        def factory() -> ServerConnection:
            protocol = ServerProtocol(max_size=self.max_message_bytes, logger=server.logger)
            conn = _TrackedConnection(protocol, server)
            conn.on_lost = on_lost
            return conn

        async def connect() -> None:
            try:
                await loop.connect_accepted_socket(factory, sock)
            except OSError:
                sock.close()
                on_lost()

        task = loop.create_task(connect())
        self._adopting.add(task)  # keep a reference until it is done
        task.add_done_callback(self._adopting.discard)

    async def stop(self) -> None:
        await super().stop()
        idle = getattr(self, "_idle", None)
        if idle is not None:
            idle.close()


def _worker_main(argv: list[str]) -> int:
    """Entry point of a worker process: ``python -m voicelive_nb.emulator.workers INDEX FD``.

    The options come pickled on stdin; FD is the worker's end of its pipe to the parent.
    """
    index = int(argv[0])
    ctrl = socket.socket(fileno=int(argv[1]))
    options, log_level = pickle.loads(sys.stdin.buffer.read())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us (Ctrl-C reaches the whole group)
    logging.basicConfig(level=log_level, format=f"%(levelname)s worker {index} %(name)s: %(message)s")
    try:
        asyncio.run(_worker_serve(index, ctrl, options))
    finally:
        ctrl.close()
    return 0


async def _worker_serve(index: int, ctrl: socket.socket, options: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    server = _WorkerServer("127.0.0.1", 0, **options)
    await server.start()
    ctrl.setblocking(False)
    done = asyncio.Event()
    pid = os.getpid()
    counts = {"open": 0, "total": 0}

    def report(kind: str) -> None:
        message = {"event": kind, "pid": pid, "open": counts["open"], "total": counts["total"]}
        with contextlib.suppress(OSError):
            ctrl.send(json.dumps(message).encode())

    def lost() -> None:
        counts["open"] -= 1
        report("closed")

    def readable() -> None:
        try:
            data, fds, _flags, _addr = socket.recv_fds(ctrl, 64, 16)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data, fds = b"", []
        if not data:  # the parent is gone
            done.set()
            return
        if data.startswith(_QUIT):
            done.set()
        for fd in fds:
            sock = socket.socket(fileno=fd)
            if done.is_set():
                sock.close()
                continue
            sock.setblocking(False)
            counts["open"] += 1
            counts["total"] += 1
            report("open")
            server.adopt(sock, lost)

    loop.add_reader(ctrl.fileno(), readable)
    report("ready")
    try:
        await done.wait()
    finally:
        loop.remove_reader(ctrl.fileno())
        if server._server is not None:
            server._server.close()  # close open connections with 1001 (going away)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(server._server.wait_closed(), 5.0)
        await server.stop()


# --- the parent -----------------------------------------------------------------------------------------


@dataclass
class _Worker:
    index: int
    process: subprocess.Popen[bytes]
    sock: socket.socket
    pid: int | None = None
    ready: asyncio.Future[None] | None = None
    assigned: int = 0
    total: int = 0
    reported: dict[str, Any] = field(default_factory=dict)
    alive: bool = True
    exitcode: int | None = None
    reader: asyncio.Task[None] | None = None


def _check_picklable(options: dict[str, Any]) -> None:
    for name, value in options.items():
        if callable(value) and not isinstance(value, type):
            raise ConfigError(
                name,
                value,
                "picklable values (texts, numbers, lists, Faults) when workers= is set",
                f"invalid {name}: a function cannot be sent to emulator worker processes; "
                f"pass a list of texts, or run in-process (workers=None) to use a function",
            )
        try:
            pickle.dumps(value)
        except Exception as exc:
            raise ConfigError(
                name,
                value,
                "picklable values when workers= is set",
                f"invalid {name}: it cannot be sent to emulator worker processes ({exc}); "
                "pass plain values, or run in-process (workers=None)",
            ) from None


def _spawn_worker(index: int, payload: bytes) -> tuple[subprocess.Popen[bytes], socket.socket]:
    """Start worker ``index`` (a fresh interpreter) and give it its options; returns it and our pipe end."""
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "voicelive_nb.emulator.workers", str(index), str(child.fileno())],
            stdin=subprocess.PIPE,
            pass_fds=[child.fileno()],
            close_fds=True,
        )
    except BaseException:
        parent.close()
        raise
    finally:
        child.close()
    assert process.stdin is not None
    process.stdin.write(payload)
    process.stdin.close()
    return process, parent


class WorkerPool:
    """An emulator served by ``workers`` processes behind one address. Use ``async with`` (or start/stop).

    ``max_sessions``: open connections past which new ones get HTTP 503 (default: no limit);
    ``max_connections_per_minute``: new connections per minute past which HTTP 429 (default: no limit).
    Other keyword arguments are the :class:`~.server.EmulatorServer` options, sent to every worker.
    """

    def __init__(
        self,
        workers: int,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        max_sessions: int | None = None,
        max_connections_per_minute: int | None = None,
        start_timeout_s: float = 120.0,
        **options: Any,
    ) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 64:
            raise ConfigError("workers", workers, "an integer from 1 to 64 (worker processes)")
        if max_sessions is not None:
            check_limit("max_sessions", max_sessions, integer=True)
        if max_connections_per_minute:
            check_limit("max_connections_per_minute", max_connections_per_minute, integer=True)
        options.pop("replay", None)
        _check_picklable(options)
        # validate every option here, with the server's own messages, before any process starts
        EmulatorServer(host, port, **options)
        if not is_loopback_host(host) and not options.get("allow_remote"):
            raise ConfigError("host", host, "a loopback address unless allow_remote=True")
        self.workers = workers
        self.host = host
        self.port = port
        self.api_key = options.get("api_key")
        self.max_sessions = max_sessions
        self.rate = ConnectionRate(max_connections_per_minute) if max_connections_per_minute else None
        self.start_timeout_s = start_timeout_s
        self._options = options
        self._workers: list[_Worker] = []
        self._listener: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._refusals: set[asyncio.Task[None]] = set()
        #: Workers that died while serving: ``{"index", "pid", "exitcode"}`` each.
        self.failures: list[dict[str, Any]] = []
        #: Connections refused before the upgrade (429 / 503).
        self.refused = 0
        self._changed: asyncio.Event | None = None

    # --- properties -----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}"

    @property
    def pids(self) -> list[int]:
        """Process ids of the workers (in start order)."""
        return [w.pid for w in self._workers if w.pid is not None]

    @property
    def connections(self) -> int:
        """Connections open right now (handed to a worker and not yet closed)."""
        return sum(w.assigned for w in self._workers if w.alive)

    def worker_stats(self) -> list[dict[str, Any]]:
        """Per worker: index, pid, alive, open and total connections (as counted by the worker)."""
        return [
            {
                "index": w.index,
                "pid": w.pid,
                "alive": w.alive,
                "exitcode": w.exitcode,
                "open": w.assigned,
                "total": w.reported.get("total", 0),
                "handed": w.total,
            }
            for w in self._workers
        ]

    async def wait_until(self, predicate: Any, timeout: float = 10.0) -> None:
        """Wait (on the pool's loop) until ``predicate()`` is true; it is checked after every
        message from a worker (a connection opened or closed, a worker exited)."""

        async def watch() -> None:
            while not predicate():
                if self._changed is None:
                    self._changed = asyncio.Event()
                changed = self._changed
                await changed.wait()

        try:
            await asyncio.wait_for(watch(), timeout)
        except asyncio.TimeoutError:
            raise WorkerError(
                f"the emulator workers did not reach the expected state within {timeout:g} s; "
                f"workers: {self.worker_stats()}"
            ) from None

    def _notify(self) -> None:
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._listener is not None:
            raise StateError("the emulator is already running")
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._stopping = False
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        listener = socket.create_server((self.host, self.port), family=family, backlog=256)
        listener.setblocking(False)
        self._listener = listener
        self.port = int(listener.getsockname()[1])
        level = logging.getLogger("voicelive_nb").getEffectiveLevel()
        payload = pickle.dumps((self._options, level))
        try:
            for index in range(self.workers):
                process, parent = _spawn_worker(index, payload)
                parent.setblocking(False)
                worker = _Worker(index, process, parent, pid=process.pid, ready=loop.create_future())
                worker.reader = loop.create_task(self._read(worker), name=f"emulator worker {index} pipe")
                self._workers.append(worker)
            pending = [w.ready for w in self._workers if w.ready is not None]
            done, not_done = await asyncio.wait(pending, timeout=self.start_timeout_s)
            failed = [fut.exception() for fut in done if fut.exception() is not None]
            if failed:  # a worker that died before it was ready
                raise failed[0]  # type: ignore[misc]
            if not_done:
                raise WorkerError(
                    f"emulator workers did not get ready within {self.start_timeout_s:g} s; "
                    "the machine may be overloaded: try fewer workers or a longer start_timeout_s"
                )
        except BaseException:
            await self.stop()
            raise
        loop.add_reader(listener.fileno(), self._accept)
        logger.info("emulator listening on %s with %d worker processes %s", self.url, self.workers, self.pids)

    async def stop(self) -> None:
        """Stop accepting, ask every worker to close its connections and exit; kill any that do not."""
        self._stopping = True
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(listener.fileno())
            listener.close()
        for task in list(self._refusals):
            task.cancel()
        workers, self._workers = self._workers, []
        for w in workers:
            with contextlib.suppress(OSError):
                w.sock.send(_QUIT)
        loop = asyncio.get_running_loop()

        def reap(process: subprocess.Popen[bytes]) -> None:
            try:
                process.wait(10.0)
                return
            except subprocess.TimeoutExpired:
                logger.warning("emulator worker pid %s did not exit; terminating it", process.pid)
            process.terminate()
            try:
                process.wait(3.0)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

        await asyncio.gather(*(loop.run_in_executor(None, reap, w.process) for w in workers))
        for w in workers:
            if w.reader is not None:
                w.reader.cancel()
                with contextlib.suppress(BaseException):
                    await w.reader
            w.sock.close()
            w.alive = False
            w.exitcode = w.process.returncode
        self._stopped = workers

    async def __aenter__(self) -> WorkerPool:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # --- the pipe to a worker -------------------------------------------------------------------

    async def _read(self, w: _Worker) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                data = await loop.sock_recv(w.sock, 65536)
            except OSError:
                data = b""
            if not data:
                break
            try:
                message = json.loads(data)
            except ValueError:
                continue
            kind = message.get("event")
            w.reported = message
            if kind == "ready":
                w.pid = int(message.get("pid") or w.pid or 0) or w.pid
                if w.ready is not None and not w.ready.done():
                    w.ready.set_result(None)
            elif kind == "closed":
                w.assigned = max(0, w.assigned - 1)
            self._notify()
        # the pipe closed: the worker exited
        w.alive = False
        with contextlib.suppress(subprocess.TimeoutExpired):
            await loop.run_in_executor(None, w.process.wait, 5.0)
        w.exitcode = w.process.returncode
        if w.ready is not None and not w.ready.done():
            w.ready.set_exception(
                WorkerError(
                    f"emulator worker {w.index} (pid {w.pid}) exited with code {w.exitcode} before it was "
                    "ready; run with --log-level INFO (or logging at INFO) to see why"
                )
            )
            return
        if not self._stopping:
            left = sum(1 for x in self._workers if x.alive)
            failure = {"index": w.index, "pid": w.pid, "exitcode": w.exitcode, "open": w.assigned}
            self.failures.append(failure)
            logger.error(
                "emulator worker %d (pid %s) died with exit code %s; its %d open connections were lost; "
                "%d workers left",
                w.index,
                w.pid,
                w.exitcode,
                w.assigned,
                left,
            )
            w.assigned = 0
        self._notify()

    # --- accepting -----------------------------------------------------------------------------------

    def _accept(self) -> None:
        listener = self._listener
        if listener is None:
            return
        for _ in range(64):
            try:
                conn, _addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                logger.warning("emulator: accept failed: %s", exc)
                return
            self._dispatch(conn)

    def _dispatch(self, conn: socket.socket) -> None:
        alive = [w for w in self._workers if w.alive]
        if not alive:
            self._refuse(
                conn, 503, "service unavailable: every emulator worker has exited; restart the emulator"
            )
            return
        if self.max_sessions is not None and self.connections >= self.max_sessions:
            self._refuse(
                conn,
                503,
                capacity_refusal(self.max_sessions),
                retry_after_s=1.0,
            )
            return
        if self.rate is not None:
            decision = self.rate.admit(time.monotonic())
            if not decision.allowed:
                self._refuse(
                    conn, 429, self.rate.refusal_message(decision), retry_after_s=decision.retry_after_s
                )
                return
        worker = min(alive, key=lambda w: (w.assigned, w.total, w.index))
        try:
            socket.send_fds(worker.sock, [_CONNECTION], [conn.fileno()])
        except OSError as exc:
            logger.error("emulator: could not hand a connection to worker %d: %s", worker.index, exc)
            conn.close()
            return
        worker.assigned += 1
        worker.total += 1
        conn.close()  # the worker has its own descriptor now

    def _refuse(
        self, conn: socket.socket, status: int, message: str, retry_after_s: float | None = None
    ) -> None:
        self.refused += 1
        conn.setblocking(False)
        task = asyncio.get_running_loop().create_task(
            self._send_refusal(conn, status, message, retry_after_s)
        )
        self._refusals.add(task)
        task.add_done_callback(self._refusals.discard)

    @staticmethod
    async def _send_refusal(
        conn: socket.socket, status: int, message: str, retry_after_s: float | None
    ) -> None:
        loop = asyncio.get_running_loop()
        reason = {429: "Too Many Requests", 503: "Service Unavailable"}.get(status, "Error")
        body = (message + "\n").encode()
        head = [
            f"HTTP/1.1 {status} {reason}",
            "Content-Type: text/plain; charset=utf-8",
            f"Content-Length: {len(body)}",
            "Connection: close",
        ]
        if retry_after_s is not None:
            head.append(f"Retry-After: {max(1, math.ceil(retry_after_s))}")
        try:
            # read the request first: closing with unread data would reset the connection
            # and the client would see a reset, not the status
            async def read_request() -> None:
                seen = b""
                while b"\r\n\r\n" not in seen and len(seen) < 65536:
                    chunk = await loop.sock_recv(conn, 4096)
                    if not chunk:
                        break
                    seen += chunk

            await asyncio.wait_for(read_request(), _REFUSE_READ_S)
            await loop.sock_sendall(conn, ("\r\n".join(head) + "\r\n\r\n").encode() + body)
        except (OSError, asyncio.TimeoutError):
            pass
        finally:
            conn.close()


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))

"""Loopback peers that misbehave on purpose (real websockets servers and raw TCP on 127.0.0.1:0).

Every peer starts the conversation correctly (``session.created``, then ``session.updated`` for
each ``session.update``) unless told otherwise, then does its one bad thing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from websockets.asyncio.server import ServerConnection, serve

Behaviour = Callable[[ServerConnection], Awaitable[None]]
SESSION_CREATED = json.dumps({"type": "session.created", "event_id": "e0", "session": {"id": "sess_x"}})


async def prelude(ws: ServerConnection) -> None:
    """``session.created``, then answer the first ``session.update`` with ``session.updated``."""
    await ws.send(SESSION_CREATED)
    async for raw in ws:
        event = json.loads(raw)
        if event.get("type") == "session.update":
            await ws.send(
                json.dumps({"type": "session.updated", "event_id": "e1", "session": event["session"]})
            )
            return


async def hold(ws: ServerConnection) -> None:
    """Keep the connection without reading (until the client goes)."""
    await ws.wait_closed()


class Peer:
    """A running peer: ``url``, and what it saw (``received`` texts, ``connections``)."""

    def __init__(self) -> None:
        self.url = ""
        self.received: list[str] = []
        self.connections: list[ServerConnection] = []
        self.queue: asyncio.Queue[str | bytes] = asyncio.Queue()


@contextlib.asynccontextmanager
async def peer(behaviour: Behaviour, *, do_prelude: bool = True, **serve_options: Any) -> AsyncIterator[Peer]:
    """A websockets server that runs ``prelude`` then ``behaviour`` on each connection."""
    p = Peer()

    async def handler(ws: ServerConnection) -> None:
        p.connections.append(ws)
        if do_prelude:
            await prelude(ws)
        await behaviour(ws)

    async with serve(handler, "127.0.0.1", 0, **serve_options) as server:
        p.url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        try:
            yield p
        finally:
            for ws in p.connections:  # a stalled peer would make the server's own close wait
                ws.transport.abort()


def sends(*messages: str | bytes) -> Behaviour:
    async def behaviour(ws: ServerConnection) -> None:
        for m in messages:
            await ws.send(m)
        await hold(ws)

    return behaviour


def closes(code: int, reason: str = "") -> Behaviour:
    async def behaviour(ws: ServerConnection) -> None:
        await ws.close(code, reason)

    return behaviour


async def aborts(ws: ServerConnection) -> None:
    """Drop the TCP connection with no close frame."""
    ws.transport.abort()


async def stalls(ws: ServerConnection) -> None:
    """Stop reading (so pings go unanswered and the client's sends fill the TCP buffers), keep the socket."""
    ws.transport.pause_reading()
    await hold(ws)


async def silent(ws: ServerConnection) -> None:
    """Say nothing, but keep reading (websockets answers pings)."""
    async for _ in ws:
        pass


@contextlib.asynccontextmanager
async def relay_peer() -> AsyncIterator[Peer]:
    """A peer that sends what the test puts on ``peer.queue`` and keeps reading."""
    p_holder: list[Peer] = []

    async def behaviour(ws: ServerConnection) -> None:
        p = p_holder[0]

        async def send_queued() -> None:
            while True:
                await ws.send(await p.queue.get())

        sender = asyncio.ensure_future(send_queued())
        try:
            async for raw in ws:
                p.received.append(raw if isinstance(raw, str) else raw.decode("latin-1"))
        finally:
            sender.cancel()
            with contextlib.suppress(BaseException):
                await sender

    async with peer(behaviour) as p:
        p_holder.append(p)
        yield p


@contextlib.asynccontextmanager
async def tcp_peer(
    on_connect: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[str]:
    """A raw TCP server (below WebSocket): for peers that never answer the handshake."""
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await on_connect(reader, writer)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        for w in writers:
            w.transport.abort()
        server.close()
        await server.wait_closed()


async def never_answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(65536)  # the HTTP upgrade request, left unanswered

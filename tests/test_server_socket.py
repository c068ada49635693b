"""The listening sockets: accepted connections must have Nagle's algorithm off, or every answer on a kept-alive
connection waits for the client's delayed ACK (~40 ms)."""

from __future__ import annotations

import asyncio
import socket

from correlator.api.server import _listen


def test_accepted_connections_have_tcp_nodelay() -> None:
    async def accept_one() -> int:
        listener = _listen("127.0.0.1", 0)
        port = listener.getsockname()[1]
        accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.set_result(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(on_connect, sock=listener)
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        nodelay = await asyncio.wait_for(accepted, 10)
        writer.close()
        server.close()
        await server.wait_closed()
        return nodelay

    assert asyncio.run(accept_one()) != 0

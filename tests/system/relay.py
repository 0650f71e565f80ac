"""A TCP-to-UNIX-socket relay, run inside a lab node's network namespace.

    python relay.py 127.0.0.1:6443 /tmp/kv-api-xyz/api.sock

A network namespace cannot reach the host's loopback, where the test's kube-apiserver
listens; a UNIX socket lives in the filesystem, which namespaces share. So each node
namespace runs this relay on its own loopback, and the test runs the other half on the host
(tests/realapi/cluster.py: UnixForwarder, to the API server's TCP port): a daemon in the
namespace talks to `https://127.0.0.1:6443` as if the API server were local, TLS end to
end. Every accepted connection gets its own UNIX connection; bytes are copied both ways
until either side closes. Standard library only (it runs under `ip netns exec`).

Prints "ready HOST:PORT" on stdout once listening; exits on SIGTERM / SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys

CHUNK = 65536


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF, then half-close the other side (HTTP clients may read to close)."""
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


async def serve(listen_host: str, listen_port: int, unix_path: str) -> None:
    connections: set[asyncio.Task[None]] = set()

    async def on_connect(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        connections.add(task)
        task.add_done_callback(connections.discard)
        try:
            upstream_r, upstream_w = await asyncio.open_unix_connection(unix_path)
        except OSError as exc:
            print(f"relay: cannot reach {unix_path}: {exc}", file=sys.stderr, flush=True)
            client_w.close()
            return
        try:
            await asyncio.gather(pipe(client_r, upstream_w), pipe(upstream_r, client_w))
        finally:
            for w in (client_w, upstream_w):
                w.close()
                with contextlib.suppress(Exception):
                    await w.wait_closed()

    server = await asyncio.start_server(on_connect, listen_host, listen_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"ready {listen_host}:{listen_port}", flush=True)
    async with server:
        await stop.wait()
        server.close()
        for task in list(connections):  # end open connections before the loop goes
            task.cancel()
        await asyncio.gather(*connections, return_exceptions=True)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: relay.py HOST:PORT UNIX_SOCKET_PATH", file=sys.stderr)
        return 2
    host, _, port = argv[0].rpartition(":")
    asyncio.run(serve(host or "127.0.0.1", int(port), argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""A TCP proxy on loopback that delays every chunk from the client to the server by a fixed
time (order kept), so every HTTP request reaches the server that much later: a stand-in for a
network's latency. Answers pass through at once.

Usage: delay_proxy.py LISTEN_PORT TARGET_PORT DELAY_MS
"""

import asyncio
import sys


async def pipe_delayed(reader, writer, delay):
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()

    async def read():
        while True:
            data = await reader.read(65536)
            await queue.put((loop.time() + delay, data))
            if not data:
                return

    async def write():
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    await asyncio.gather(read(), write())


async def pipe(reader, writer):
    while True:
        data = await reader.read(65536)
        if not data:
            writer.write_eof()
            return
        writer.write(data)
        await writer.drain()


async def main(listen_port, target_port, delay):
    # asyncio keeps only weak references to handler tasks once the client side closes: hold them.
    live = set()

    async def handle(client_reader, client_writer):
        task = asyncio.current_task()
        live.add(task)
        try:
            await relay(client_reader, client_writer)
        finally:
            live.discard(task)

    async def relay(client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            client_writer.close()
            return
        try:
            await asyncio.gather(
                pipe_delayed(client_reader, server_writer, delay),
                pipe(server_reader, client_writer),
            )
        except (ConnectionError, OSError):
            pass
        finally:
            client_writer.close()
            server_writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]) / 1000.0))

"""A fast HTTP sink for the benchmarks, run in its own process: ``python -m bench.sink --delay 0.05``.

It answers every request ``200 OK`` after ``--delay`` seconds (asyncio, so thousands can wait at
once), speaks HTTP/1.1 keep-alive, and prints its base URL on the first line of stdout.
``GET /__arrivals`` returns ``[[monotonic_time, target], ...]`` of the requests since the last
``GET /__reset``; arrivals are kept only after ``GET /__record``. ``CLOCK_MONOTONIC`` is shared by
the processes of one machine, so the benchmark compares these times with its own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time


class Sink:
    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.count = 0
        self.record = False
        self.arrivals: list[tuple[float, str]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                arrived = time.monotonic()
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                length = 0
                for line in lines[1:]:
                    if line[:15].lower() == "content-length:":
                        length = int(line[15:].strip())
                if length:
                    await reader.readexactly(length)
                body = b"OK"
                if target.startswith("/__"):
                    body = self.control(target)
                else:
                    self.count += 1
                    if self.record:
                        self.arrivals.append((arrived, target))
                    if self.delay:
                        await asyncio.sleep(self.delay)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    def control(self, target: str) -> bytes:
        if target.startswith("/__arrivals"):
            return json.dumps(self.arrivals).encode()
        if target.startswith("/__record"):
            self.record = True
        elif target.startswith("/__reset"):
            self.arrivals, self.count, self.record = [], 0, False
        return json.dumps({"count": self.count}).encode()


async def serve(port: int, delay: float) -> None:
    sink = Sink(delay)
    server = await asyncio.start_server(sink.handle, "127.0.0.1", port, backlog=1024)
    print(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.port, args.delay))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

"""A fast HTTP sink for the benchmarks, run in its own process: ``python -m bench.sink --delay 0.05``.

It answers every request ``200 OK`` after ``--delay`` seconds (asyncio, so thousands can wait at
once), speaks HTTP/1.1 keep-alive, and prints its base URL on the first line of stdout.
``GET /__arrivals`` returns ``[[monotonic_time, target], ...]`` of the requests since the last
``GET /__reset``; arrivals are kept only after ``GET /__record``. ``CLOCK_MONOTONIC`` is shared by
the processes of one machine, so the benchmark compares these times with its own.

``--hang`` makes a source that accepts connections and reads requests but never answers;
``GET /__status?code=503`` makes it answer that status until told otherwise (``code=200``);
``--hosts N`` listens on the same port of 127.0.0.2 ... 127.0.0.(N+1), every address of which is
loopback on Linux: N different target hosts in one process (it prints the first one's URL), and
``GET /__hosts`` returns the requests per address.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time


class Sink:
    def __init__(self, delay: float, hang: bool = False) -> None:
        self.delay = delay
        self.hang = hang
        self.status = 200
        self.by_host: dict[str, int] = {}
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
                body, status = b"OK", 200
                if target.startswith("/__"):
                    body = self.control(target)
                else:
                    self.count += 1
                    address = writer.get_extra_info("sockname")[0]
                    self.by_host[address] = self.by_host.get(address, 0) + 1
                    if self.record:
                        self.arrivals.append((arrived, target))
                    if self.hang:
                        await asyncio.sleep(3600)
                    if self.delay:
                        await asyncio.sleep(self.delay)
                    status = self.status
                    if status != 200:
                        body = b"unavailable"
                reason = b"OK" if status == 200 else b"Service Unavailable"
                writer.write(
                    b"HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"
                    % (status, reason, len(body), body)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    def control(self, target: str) -> bytes:
        if target.startswith("/__arrivals"):
            return json.dumps(self.arrivals).encode()
        if target.startswith("/__hosts"):
            return json.dumps(self.by_host).encode()
        if target.startswith("/__status"):
            self.status = int(target.rsplit("=", 1)[1])
        if target.startswith("/__record"):
            self.record = True
        elif target.startswith("/__reset"):
            self.arrivals, self.count, self.record = [], 0, False
        return json.dumps({"count": self.count}).encode()


async def serve(port: int, delay: float, hang: bool = False, hosts: int = 0) -> None:
    sink = Sink(delay, hang)
    addresses = [f"127.0.0.{n}" for n in range(2, hosts + 2)] if hosts else ["127.0.0.1"]
    server = await asyncio.start_server(sink.handle, addresses[0], port, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    others = [await asyncio.start_server(sink.handle, address, port, backlog=1024) for address in addresses[1:]]
    print(f"http://{addresses[0]}:{port}", flush=True)
    async with server:
        await asyncio.gather(server.serve_forever(), *(other.serve_forever() for other in others))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--hang", action="store_true", help="accept and read requests, never answer")
    parser.add_argument("--hosts", type=int, default=0, help="listen on 127.0.0.2 ... 127.0.0.(N+1)")
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.port, args.delay, args.hang, args.hosts))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

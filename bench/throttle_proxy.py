"""A TCP proxy on 127.0.0.1 that makes a local S3 server behave a little more like real S3.

    python bench/throttle_proxy.py --upstream 127.0.0.1:PORT --mbps 40 --latency-ms 15

Real S3 serves one GET stream at a limited rate (tens of MB/s per connection) after a first-byte
latency of some milliseconds, and scales by serving many streams at once; that is why boto3 splits
large downloads into parallel ranged GETs. A local moto server has neither limit, so on it the
number of parallel streams hardly matters. This proxy restores both, per connection:

- server -> client bytes are paced to ``--mbps`` (10^6 bytes/s) on each connection (a connection
  idle for more than 50 ms starts afresh, so keep-alive pauses earn no credit);
- each client -> server chunk (in practice each request) is held ``--latency-ms`` before it is sent.

It prints ``listening on PORT`` once ready and runs until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time


async def pump(reader, writer, rate, delay):
    start, sent, last = time.monotonic(), 0, time.monotonic()
    try:
        while True:
            data = await reader.read(64 * 1024)
            if not data:
                break
            if delay:
                await asyncio.sleep(delay)
            now = time.monotonic()
            if rate and now - last > 0.05:  # idle: no credit for the pause
                start, sent = now, 0
            writer.write(data)
            await writer.drain()
            if rate:
                sent += len(data)
                wait = start + sent / rate - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            last = time.monotonic()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def main_async(args):
    up_host, up_port = args.upstream.rsplit(":", 1)
    rate = args.mbps * 1e6 if args.mbps > 0 else 0
    delay = args.latency_ms / 1000

    async def handle(c_reader, c_writer):
        try:
            s_reader, s_writer = await asyncio.open_connection(up_host, int(up_port))
        except OSError:
            c_writer.close()
            return
        await asyncio.gather(pump(c_reader, s_writer, 0, delay), pump(s_reader, c_writer, rate, 0))

    server = await asyncio.start_server(handle, "127.0.0.1", args.port)
    port = server.sockets[0].getsockname()[1]
    print(f"listening on {port}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--upstream", required=True, help="host:port of the S3 server")
    ap.add_argument("--port", type=int, default=0, help="port to listen on (0: any free port)")
    ap.add_argument("--mbps", type=float, default=40.0, help="per-connection rate, 10^6 bytes/s (0: unlimited)")
    ap.add_argument("--latency-ms", type=float, default=15.0, help="delay added to each request")
    args = ap.parse_args(argv)
    try:
        asyncio.run(main_async(args))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

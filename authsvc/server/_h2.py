"""The server side of one HTTP/2 connection (RFC 9113), for gRPC unary calls only. No I/O.

Bytes go in through ``receive(data)``; a complete request (a header block and a body that
ended) goes to ``on_request(stream_id, headers, body)`` where ``body`` is the gRPC message
(``None`` when the body was not one well-framed, uncompressed message); the caller answers
with ``respond(stream_id, message)`` or ``respond_status(stream_id, code, text)``, at once or
later. Every byte to send goes to ``write``.

What is implemented: the client preface, SETTINGS (ACKed, INITIAL_WINDOW_SIZE and
MAX_FRAME_SIZE applied), PING, GOAWAY (both ways), RST_STREAM, WINDOW_UPDATE and flow control in
both directions, HEADERS + CONTINUATION with padding and priority, DATA with padding, stream
id rules, concurrency and size limits. What is not needed and refused or ignored: server push
(never sent), PRIORITY (ignored, as RFC 9113 allows), request trailers beyond ending the stream
(decoded for HPACK's sake, then ignored), compressed gRPC messages (UNIMPLEMENTED).

A protocol violation is a connection error: GOAWAY with the error code, then ``closed`` is
true and the caller must close the transport after flushing.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from authsvc.server._hpack import Decoder, Headers, HpackError, literal

__all__ = ["PREFACE", "H2Connection", "OnRequest"]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE = 0, 1, 2, 3, 4, 5
PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 6, 7, 8, 9
END_STREAM = ACK = 0x1
END_HEADERS, PADDED, PRIORITY_FLAG = 0x4, 0x8, 0x20
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0, 1, 2, 3
STREAM_CLOSED, FRAME_SIZE_ERROR, REFUSED_STREAM, COMPRESSION_ERROR = 5, 6, 7, 9
ENHANCE_YOUR_CALM = 11

MAX_WINDOW = 2**31 - 1
MAX_FRAME = 16384  # we accept the default maximum frame size
STREAM_WINDOW = 1 << 20  # what we let a peer send per stream before a WINDOW_UPDATE
CONN_WINDOW = 1 << 22
MAX_MESSAGE = 4 << 20  # gRPC's default maximum message size
MAX_BUFFERED = 8 << 20  # unfinished request bodies per connection before we stop granting
MAX_HEADER_BLOCK = 1 << 18
MAX_STREAMS = 1024
MAX_STATUS_TEXT = 1024  # characters of a grpc-message: even percent-encoded, one frame holds it

_HEAD = struct.Struct(">IBI")  # (length << 8 | type), flags, stream id
_U32 = struct.Struct(">I")
_RESPONSE_HEADERS = b"\x88" + literal("content-type", "application/grpc")  # :status 200
_OK_TRAILERS = literal("grpc-status", "0")

OnRequest = Callable[[int, Headers, bytes | None], None]


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return _HEAD.pack(len(payload) << 8 | kind, flags, stream_id) + payload


def _settings(pairs: dict[int, int]) -> bytes:
    return b"".join(struct.pack(">HI", k, v) for k, v in pairs.items())


def grpc_message_text(text: str) -> str:
    """``grpc-message`` percent-encoding (gRPC over HTTP/2 spec): printable ASCII but ``%``."""
    raw = text.encode("utf-8")
    return "".join(chr(b) if 0x20 <= b <= 0x7E and b != 0x25 else f"%{b:02X}" for b in raw)


class _ConnectionError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class _Stream:
    __slots__ = ("body", "ended", "headers", "pending", "recv_window", "send_window", "size")

    def __init__(self, headers: Headers, send_window: int) -> None:
        self.headers = headers
        self.body: list[bytes] = []
        self.size = 0
        self.ended = False
        self.recv_window = STREAM_WINDOW
        self.send_window = send_window
        self.pending: bytes | None = None  # response DATA waiting for window, then trailers


class H2Connection:
    """See the module docstring. ``write`` receives every frame to send, in order."""

    def __init__(self, on_request: OnRequest, write: Callable[[bytes], None]) -> None:
        self._on_request = on_request
        self._write = write
        self._out: list[bytes] = []
        self._buf = b""
        self._preface = False
        self._decoder = Decoder()
        self._streams: dict[int, _Stream] = {}
        self._last_stream = 0
        self._continuation: tuple[int, int, list[bytes]] | None = None
        self._block_size = 0  # bytes of the unfinished header block's frames, headers included
        self._peer_window = 65535  # peer's SETTINGS_INITIAL_WINDOW_SIZE
        self._peer_max_frame = 16384
        self._send_window = 65535  # connection-level, what we may send
        self._recv_unacked = 0  # connection-level bytes received and not yet granted back
        self._buffered = 0
        self._blocked: dict[int, None] = {}  # streams with a response waiting for window
        self.goaway_sent = False
        self.closed = False
        settings = {3: MAX_STREAMS, 4: STREAM_WINDOW, 6: 1 << 16}  # streams, window, list
        self._out.append(frame(SETTINGS, 0, 0, _settings(settings)))
        self._out.append(frame(WINDOW_UPDATE, 0, 0, _U32.pack(CONN_WINDOW - 65535)))

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    def flush(self) -> None:
        if self._out:
            data = b"".join(self._out)
            self._out.clear()
            self._write(data)

    # -- input -------------------------------------------------------------------------------

    def receive(self, data: bytes) -> None:
        """Process bytes from the peer; writes whatever must be sent."""
        if self.closed:
            return
        buf = self._buf + data if self._buf else data
        try:
            pos = self._frames(buf)
        except _ConnectionError as exc:
            self._fail(exc.code, str(exc))
            pos = len(buf)
        self._buf = buf[pos:]
        self._grant()
        self.flush()

    def _frames(self, buf: bytes) -> int:
        pos, end = 0, len(buf)
        if not self._preface:
            if end < len(PREFACE):
                if not PREFACE.startswith(buf):
                    raise _ConnectionError(PROTOCOL_ERROR, "not an HTTP/2 connection preface")
                return 0
            if not buf.startswith(PREFACE):
                raise _ConnectionError(PROTOCOL_ERROR, "not an HTTP/2 connection preface")
            self._preface = True
            pos = len(PREFACE)
        while end - pos >= 9 and not self.closed:
            head, flags, stream_id = _HEAD.unpack_from(buf, pos)
            length, kind = head >> 8, head & 0xFF
            if length > MAX_FRAME:
                raise _ConnectionError(FRAME_SIZE_ERROR, f"frame of {length} bytes")
            if end - pos - 9 < length:
                break
            payload = buf[pos + 9 : pos + 9 + length]
            pos += 9 + length
            self._frame(kind, flags, stream_id & MAX_WINDOW, payload)
        return pos

    def _frame(self, kind: int, flags: int, sid: int, payload: bytes) -> None:
        if self._continuation is not None and kind != CONTINUATION:
            raise _ConnectionError(PROTOCOL_ERROR, "expected CONTINUATION")
        if kind == DATA:
            self._data(flags, sid, payload)
        elif kind == HEADERS:
            self._headers(flags, sid, payload)
        elif kind == CONTINUATION:
            self._more_headers(flags, sid, payload)
        elif kind == WINDOW_UPDATE:
            self._window_update(sid, payload)
        elif kind == SETTINGS:
            self._peer_settings(flags, sid, payload)
        elif kind == PING:
            if sid or len(payload) != 8:
                raise _ConnectionError(PROTOCOL_ERROR if sid else FRAME_SIZE_ERROR, "bad PING")
            if not flags & ACK:
                self._out.append(frame(PING, ACK, 0, payload))
        elif kind == RST_STREAM:
            if not sid or len(payload) != 4:
                raise _ConnectionError(PROTOCOL_ERROR, "bad RST_STREAM")
            self._idle_check(sid)
            self._drop(sid)
        elif kind == PRIORITY:
            if not sid or len(payload) != 5:
                raise _ConnectionError(PROTOCOL_ERROR, "bad PRIORITY")
        elif kind == GOAWAY:
            if sid:
                raise _ConnectionError(PROTOCOL_ERROR, "GOAWAY on a stream")
        elif kind == PUSH_PROMISE:
            raise _ConnectionError(PROTOCOL_ERROR, "a client cannot push")
        # unknown frame types are ignored (RFC 9113 §4.1)

    def _idle_check(self, sid: int) -> None:
        if sid > self._last_stream:
            raise _ConnectionError(PROTOCOL_ERROR, f"frame on idle stream {sid}")

    @staticmethod
    def _unpad(flags: int, payload: bytes) -> bytes:
        if not flags & PADDED:
            return payload
        if not payload or payload[0] >= len(payload):
            raise _ConnectionError(PROTOCOL_ERROR, "bad padding")
        return payload[1 : len(payload) - payload[0]]

    def _headers(self, flags: int, sid: int, payload: bytes) -> None:
        if not sid:
            raise _ConnectionError(PROTOCOL_ERROR, "HEADERS on stream 0")
        block = self._unpad(flags, payload)
        if flags & PRIORITY_FLAG:
            if len(block) < 5:
                raise _ConnectionError(FRAME_SIZE_ERROR, "short HEADERS priority")
            block = block[5:]
        if flags & END_HEADERS:
            self._header_block(sid, flags & END_STREAM, block)
        else:
            self._continuation = (sid, flags & END_STREAM, [block])
            self._block_size = 9 + len(block)

    def _more_headers(self, flags: int, sid: int, payload: bytes) -> None:
        pending = self._continuation
        if pending is None or pending[0] != sid:
            raise _ConnectionError(PROTOCOL_ERROR, "unexpected CONTINUATION")
        pending[2].append(payload)
        self._block_size += 9 + len(payload)  # a running total; empty frames are not free
        if self._block_size > MAX_HEADER_BLOCK:
            raise _ConnectionError(ENHANCE_YOUR_CALM, "header block too large")
        if flags & END_HEADERS:
            self._continuation = None
            self._header_block(sid, pending[1], b"".join(pending[2]))

    def _header_block(self, sid: int, end_stream: int, block: bytes) -> None:
        try:
            headers = self._decoder.decode(block)  # always: HPACK state must stay in step
        except HpackError as exc:
            raise _ConnectionError(COMPRESSION_ERROR, str(exc)) from None
        stream = self._streams.get(sid)
        if stream is not None:  # trailers
            if stream.ended or not end_stream:
                self._reset(sid, PROTOCOL_ERROR)
                return
            self._end(sid, stream)
            return
        if sid <= self._last_stream or not sid & 1:
            if sid <= self._last_stream and sid & 1:  # a closed stream: ignore (RFC 9113 §5.1)
                return
            raise _ConnectionError(PROTOCOL_ERROR, f"bad new stream id {sid}")
        self._last_stream = sid
        if self.goaway_sent or len(self._streams) >= MAX_STREAMS:
            self._out.append(frame(RST_STREAM, 0, sid, _U32.pack(REFUSED_STREAM)))
            return
        stream = _Stream(headers, self._peer_window)
        self._streams[sid] = stream
        if end_stream:
            self._end(sid, stream)

    def _data(self, flags: int, sid: int, payload: bytes) -> None:
        if not sid:
            raise _ConnectionError(PROTOCOL_ERROR, "DATA on stream 0")
        self._recv_unacked += len(payload)
        if self._recv_unacked > CONN_WINDOW:
            raise _ConnectionError(FLOW_CONTROL_ERROR, "peer exceeded the connection window")
        stream = self._streams.get(sid)
        if stream is None:
            self._idle_check(sid)
            return  # a stream we already answered or reset: the bytes are simply dropped
        if stream.ended:
            self._reset(sid, STREAM_CLOSED)
            return
        stream.recv_window -= len(payload)
        if stream.recv_window < 0:
            self._reset(sid, FLOW_CONTROL_ERROR)
            return
        chunk = self._unpad(flags, payload)
        if chunk:
            stream.body.append(chunk)
            stream.size += len(chunk)
            self._buffered += len(chunk)
            if stream.size > MAX_MESSAGE + 5:
                self.respond_status(sid, 8, "request message larger than 4 MiB")
                return
        if flags & END_STREAM:
            self._end(sid, stream)
        elif stream.recv_window < STREAM_WINDOW // 2:
            grant = STREAM_WINDOW - stream.recv_window
            stream.recv_window = STREAM_WINDOW
            self._out.append(frame(WINDOW_UPDATE, 0, sid, _U32.pack(grant)))

    def _end(self, sid: int, stream: _Stream) -> None:
        """The request is complete: hand it over."""
        stream.ended = True
        body = b"".join(stream.body) if len(stream.body) != 1 else stream.body[0]
        self._buffered -= stream.size
        stream.body = []
        message = None
        if len(body) >= 5 and body[0] == 0 and _U32.unpack_from(body, 1)[0] == len(body) - 5:
            message = body[5:]
        self._on_request(sid, stream.headers, message)

    def _grant(self) -> None:
        """Give the peer back the connection window it used, unless too much is buffered."""
        if self._recv_unacked >= CONN_WINDOW // 4 and self._buffered <= MAX_BUFFERED:
            self._out.append(frame(WINDOW_UPDATE, 0, 0, _U32.pack(self._recv_unacked)))
            self._recv_unacked = 0

    def _window_update(self, sid: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise _ConnectionError(FRAME_SIZE_ERROR, "bad WINDOW_UPDATE")
        increment = _U32.unpack(payload)[0] & MAX_WINDOW
        if not sid:
            if not increment:
                raise _ConnectionError(PROTOCOL_ERROR, "zero WINDOW_UPDATE")
            self._send_window += increment
            if self._send_window > MAX_WINDOW:
                raise _ConnectionError(FLOW_CONTROL_ERROR, "connection window overflow")
        else:
            stream = self._streams.get(sid)
            if stream is None:
                self._idle_check(sid)
                return
            if not increment:
                self._reset(sid, PROTOCOL_ERROR)
                return
            stream.send_window += increment
            if stream.send_window > MAX_WINDOW:
                self._reset(sid, FLOW_CONTROL_ERROR)
                return
        self._unblock()

    def _peer_settings(self, flags: int, sid: int, payload: bytes) -> None:
        if sid:
            raise _ConnectionError(PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & ACK:
            if payload:
                raise _ConnectionError(FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
            return
        if len(payload) % 6:
            raise _ConnectionError(FRAME_SIZE_ERROR, "bad SETTINGS length")
        for offset in range(0, len(payload), 6):
            key, value = struct.unpack_from(">HI", payload, offset)
            if key == 2 and value > 1:
                raise _ConnectionError(PROTOCOL_ERROR, "bad ENABLE_PUSH")
            if key == 4:
                if value > MAX_WINDOW:
                    raise _ConnectionError(FLOW_CONTROL_ERROR, "bad INITIAL_WINDOW_SIZE")
                delta, self._peer_window = value - self._peer_window, value
                for stream in self._streams.values():
                    stream.send_window += delta
            elif key == 5:
                if not 16384 <= value <= 16777215:
                    raise _ConnectionError(PROTOCOL_ERROR, "bad MAX_FRAME_SIZE")
                self._peer_max_frame = value
        self._out.append(frame(SETTINGS, ACK, 0))
        self._unblock()

    # -- output ------------------------------------------------------------------------------

    def respond(self, sid: int, message: bytes) -> None:
        """Answer stream ``sid`` with one gRPC message and status OK."""
        stream = self._streams.get(sid)
        if stream is None or self.closed:
            return  # reset by the peer meanwhile
        self._out.append(frame(HEADERS, END_HEADERS, sid, _RESPONSE_HEADERS))
        stream.pending = b"\x00" + _U32.pack(len(message)) + message
        self._send_pending(sid, stream)
        self.flush()

    def respond_status(self, sid: int, code: int, text: str) -> None:
        """Answer stream ``sid`` with a gRPC error status and no message (trailers only)."""
        stream = self._streams.get(sid)
        if stream is None or self.closed:
            return
        block = _RESPONSE_HEADERS + literal("grpc-status", str(code))
        block += literal("grpc-message", grpc_message_text(text[:MAX_STATUS_TEXT]))
        self._out.append(frame(HEADERS, END_HEADERS | END_STREAM, sid, block))
        self._finish(sid, stream)
        self.flush()

    def _send_pending(self, sid: int, stream: _Stream) -> None:
        data = stream.pending
        assert data is not None
        while data:
            room = min(self._send_window, stream.send_window, self._peer_max_frame)
            if room <= 0:
                stream.pending = data
                self._blocked[sid] = None
                return
            chunk, data = data[:room], data[room:]
            self._send_window -= len(chunk)
            stream.send_window -= len(chunk)
            self._out.append(frame(DATA, 0, sid, chunk))
        stream.pending = None
        self._blocked.pop(sid, None)
        self._out.append(frame(HEADERS, END_HEADERS | END_STREAM, sid, _OK_TRAILERS))
        self._finish(sid, stream)

    def _unblock(self) -> None:
        for sid in list(self._blocked):
            stream = self._streams.get(sid)
            if stream is None:
                self._blocked.pop(sid, None)
            elif stream.pending is not None:
                self._send_pending(sid, stream)

    def _finish(self, sid: int, stream: _Stream) -> None:
        """Our side ended: forget the stream (and stop a client still sending)."""
        del self._streams[sid]
        if not stream.ended:
            self._buffered -= stream.size
            self._out.append(frame(RST_STREAM, 0, sid, _U32.pack(NO_ERROR)))

    def _drop(self, sid: int) -> None:
        stream = self._streams.pop(sid, None)
        self._blocked.pop(sid, None)
        if stream is not None and not stream.ended:
            self._buffered -= stream.size

    def _reset(self, sid: int, code: int) -> None:
        self._drop(sid)
        self._out.append(frame(RST_STREAM, 0, sid, _U32.pack(code)))

    def goaway(self) -> None:
        """Graceful shutdown: no new streams; open ones may finish."""
        if not self.goaway_sent and not self.closed:
            self.goaway_sent = True
            self._out.append(frame(GOAWAY, 0, 0, struct.pack(">II", self._last_stream, 0)))
            self.flush()

    def _fail(self, code: int, message: str) -> None:
        payload = struct.pack(">II", self._last_stream, code) + message.encode()[:200]
        self._out.append(frame(GOAWAY, 0, 0, payload))
        self.goaway_sent = self.closed = True
        self._streams.clear()
        self._blocked.clear()

"""The server side of one HTTP/2 connection (RFC 9113), for gRPC unary calls only. No I/O.

Bytes go in through ``receive(data)``; a complete request (a header block and a body that
ended) goes to ``on_request(stream_id, headers, body)`` where ``body`` is the gRPC message
(``None`` when the body was not one well-framed, uncompressed message); the caller answers
with ``respond(stream_id, message)`` or ``respond_status(stream_id, code, text)``, at once or
later. Every byte to send goes to ``write``.

What is implemented: the client preface, SETTINGS (ACKed, INITIAL_WINDOW_SIZE and
MAX_FRAME_SIZE applied), PING, GOAWAY (both ways), RST_STREAM, WINDOW_UPDATE and flow control in
both directions, HEADERS + CONTINUATION with padding and priority, DATA with padding, stream
id rules, concurrency and size limits, and the flood limits of ``FloodLimits``. What is not
needed and refused or ignored: server push (never sent), PRIORITY (counted, then ignored, as
RFC 9113 allows), request trailers beyond ending the stream (decoded for HPACK's sake, then
ignored), compressed gRPC messages (the caller answers UNIMPLEMENTED).

Work per control frame is O(1): a change of the peer's INITIAL_WINDOW_SIZE moves one
connection-level offset (a stream's send window is ``_peer_window + stream.send_delta``), a
WINDOW_UPDATE touches one stream or walks only answers that can now be sent, and at most
``max_blocked_streams`` answers wait for window at once.

A protocol violation is a connection error: GOAWAY with the error code, then ``closed`` is
true and the caller must close the transport after flushing.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from authsvc.h2wire._enums import ErrorCode, Flag, FrameType, GrpcStatus, SettingId
from authsvc.h2wire._errors import FrameError, HpackError
from authsvc.h2wire._frames import PREFACE, frame, header_fragment, iter_frames, unpad
from authsvc.h2wire._hpack import Decoder, Headers
from authsvc.h2wire._limits import FloodLimits, MemoryBudget
from authsvc.h2wire._sending import STREAM_WINDOW, Sender, Stream, grpc_message_text

__all__ = ["H2Connection", "OnRequest", "grpc_message_text"]

MAX_FRAME = 16384  # we accept the default maximum frame size
CONN_WINDOW = 1 << 22
MAX_MESSAGE = 4 << 20  # gRPC's default maximum message size
MAX_BUFFERED = 8 << 20  # unfinished request bodies per connection before we stop granting
MAX_STREAMS = 1024

# plain ints on the hot path (an IntEnum member is an int; these avoid the attribute lookups)
_DATA, _HEADERS, _PRIORITY = int(FrameType.DATA), int(FrameType.HEADERS), int(FrameType.PRIORITY)
_RST, _SETTINGS, _PUSH = int(FrameType.RST_STREAM), int(FrameType.SETTINGS), 5
_PING, _GOAWAY, _WU = int(FrameType.PING), int(FrameType.GOAWAY), int(FrameType.WINDOW_UPDATE)
_CONT = int(FrameType.CONTINUATION)
_END_STREAM = _ACK = int(Flag.END_STREAM)
_END_HEADERS = int(Flag.END_HEADERS)
_U32 = struct.Struct(">I")
_SETTING = struct.Struct(">HI")
_CALM = ErrorCode.ENHANCE_YOUR_CALM

OnRequest = Callable[[int, Headers, bytes | None], None]


class H2Connection(Sender):
    """See the module docstring. ``write`` receives every frame to send, in order.

    **Re-entrancy.** ``receive`` calls ``on_request`` *in the middle of parsing* the received
    bytes, once per request that completes in them. The callback may call ``respond``,
    ``respond_status``, ``goaway`` and ``flush`` (which may call ``write`` at once, before
    ``receive`` returns; frames stay in order) and may read ``closed``; it must not call
    ``receive`` or ``expire`` (``receive`` refuses nested calls with ``RuntimeError``). After
    the callback returns, parsing continues with the next frame unless the connection closed.

    ``write_buffer`` returns how many bytes the transport still holds unsent; while it is not
    zero, frames written count against the outbound flood limits. ``clock`` gives the time for
    ``request_deadline`` (any monotonic seconds; the caller calls ``expire(now)`` now and then).
    """

    def __init__(
        self,
        on_request: OnRequest,
        write: Callable[[bytes], None],
        *,
        limits: FloodLimits | None = None,
        budget: MemoryBudget | None = None,
        write_buffer: Callable[[], int] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(write, limits, budget, write_buffer)
        self._on_request = on_request
        self._clock = clock or (lambda: 0.0)
        self._buf = b""
        self._preface = False
        self._parsing = False
        self._decoder = Decoder()
        self._decoder.huffman_left = self._limits.max_huffman_bytes
        self._continuation: tuple[int, int, list[bytes]] | None = None
        self._block_size = 0  # bytes of the unfinished header block's frames, headers included
        self._block_started = 0.0
        self._recv_unacked = 0  # connection-level bytes received and not yet granted back
        self._opened = 0
        self._premature_resets = 0
        self._in_empty = self._in_priority = self._in_window_updates = self._in_resets = 0
        self.error: str | None = None  # why the connection failed, for the caller's log
        self.error_code: int | None = None  # and its HTTP/2 error code (for a counter)
        self.more = False  # ``receive`` stopped at its limit: complete frames are buffered
        self._requests = 0  # requests handed over, ever
        self._stop_at: tuple[int | None, int | None] = (None, None)
        settings = {
            SettingId.MAX_CONCURRENT_STREAMS: MAX_STREAMS,
            SettingId.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
            SettingId.MAX_HEADER_LIST_SIZE: 1 << 16,
        }
        payload = b"".join(_SETTING.pack(k, v) for k, v in settings.items())
        self._out.append(frame(FrameType.SETTINGS, 0, 0, payload))
        self._control(frame(FrameType.WINDOW_UPDATE, 0, 0, _U32.pack(CONN_WINDOW - 65535)))

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    @property
    def buffered(self) -> int:
        """Bytes held for unfinished requests and an unfinished header block."""
        return self._buffered + (self._block_size if self._continuation else 0)

    # -- input -------------------------------------------------------------------------------

    def receive(
        self, data: bytes, *, max_requests: int | None = None, max_bytes: int | None = None
    ) -> None:
        """Process bytes from the peer; writes whatever must be sent.

        With ``max_requests`` (``max_bytes``) parsing stops before the next frame once that
        many requests were handed over (bytes parsed) in this call: the rest stays buffered
        and ``more`` is true until a later ``receive`` (``b""`` will do) has parsed it. The
        caller bounds the work one connection does per event-loop turn this way (0: only
        buffer ``data``)."""
        if self.closed:
            return
        if self._parsing:
            raise RuntimeError("H2Connection.receive called from its own callback")
        buf = self._buf + data if self._buf else data
        self._parsing = True
        self._stop_at = (
            self._requests + max_requests if max_requests is not None else None,
            max_bytes,
        )
        self.more = False
        try:
            pos = self._frames(buf)
        except FrameError as exc:
            self._fail(exc.code, str(exc))
            pos = len(buf)
        finally:
            self._parsing = False
        self._buf = buf[pos:]
        self._grant()
        self.flush()

    def _frames(self, buf: bytes) -> int:
        pos = 0
        if not self._preface:
            if len(buf) < len(PREFACE):
                if not PREFACE.startswith(buf):
                    raise FrameError(ErrorCode.PROTOCOL_ERROR, "not an HTTP/2 connection preface")
                return 0
            if not buf.startswith(PREFACE):
                raise FrameError(ErrorCode.PROTOCOL_ERROR, "not an HTTP/2 connection preface")
            self._preface = True
            pos = len(PREFACE)
        stop_requests, max_bytes = self._stop_at
        stop_pos = pos + max_bytes if max_bytes is not None else None
        for kind, flags, sid, start, stop in iter_frames(buf, pos, MAX_FRAME):
            if (stop_requests is not None and self._requests >= stop_requests) or (
                stop_pos is not None and pos >= stop_pos
            ):
                self.more = True  # this frame (complete) and the rest wait for the next turn
                return pos
            pos = stop
            self._frame(kind, flags, sid, buf[start:stop])
            if self.closed:
                break
        return pos

    def _frame(self, kind: int, flags: int, sid: int, payload: bytes) -> None:
        if self._continuation is not None and kind != _CONT:
            raise FrameError(ErrorCode.PROTOCOL_ERROR, "expected CONTINUATION")
        if kind <= _HEADERS or kind == _CONT:  # DATA, HEADERS, CONTINUATION
            # an empty one that ends nothing is pure cost
            if payload or flags & (_END_HEADERS if kind == _CONT else _END_STREAM):
                self._in_empty = 0
            else:
                self._in_empty += 1
                if self._in_empty > self._limits.max_consecutive_inbound_frames_with_empty_payload:
                    raise FrameError(_CALM, "too many empty frames")
        if kind == _DATA:
            self._data(flags, sid, payload)
        elif kind == _HEADERS:
            self._headers(flags, sid, payload)
        elif kind == _CONT:
            self._more_headers(flags, sid, payload)
        elif kind == _WU:
            self._in_window_updates += 1
            limits = self._limits
            per_data = limits.max_inbound_window_update_frames_per_data_frame_sent
            if self._in_window_updates > 5 + 2 * self._opened + per_data * (1 + self._data_sent):
                raise FrameError(_CALM, "too many WINDOW_UPDATE frames")
            self._window_update(sid, payload)
        elif kind == _SETTINGS:
            self._peer_settings(flags, sid, payload)
        elif kind == _PING:
            if sid or len(payload) != 8:
                code = ErrorCode.PROTOCOL_ERROR if sid else ErrorCode.FRAME_SIZE_ERROR
                raise FrameError(code, "bad PING")
            if not flags & _ACK:
                self._control(frame(FrameType.PING, Flag.ACK, 0, payload))
        elif kind == _RST:
            if not sid or len(payload) != 4:
                raise FrameError(ErrorCode.PROTOCOL_ERROR, "bad RST_STREAM")
            self._idle_check(sid)
            self._in_resets += 1
            if self._in_resets > 10 + self._limits.max_inbound_rst_stream_frames_per_stream * (
                self._opened
            ):
                raise FrameError(_CALM, "too many RST_STREAM frames")
            if sid in self._streams:
                self._premature_resets += 1
                if (
                    self._opened >= 100
                    and self._premature_resets
                    > self._opened * self._limits.max_premature_reset_ratio
                ):
                    raise FrameError(_CALM, "too many streams reset before their answer")
            self._drop(sid)
        elif kind == _PRIORITY:
            if not sid or len(payload) != 5:
                raise FrameError(ErrorCode.PROTOCOL_ERROR, "bad PRIORITY")
            self._in_priority += 1
            per_stream = self._limits.max_inbound_priority_frames_per_stream
            if self._in_priority > per_stream * (1 + self._opened):
                raise FrameError(_CALM, "too many PRIORITY frames")
        elif kind == _GOAWAY:
            if sid:
                raise FrameError(ErrorCode.PROTOCOL_ERROR, "GOAWAY on a stream")
        elif kind == _PUSH:
            raise FrameError(ErrorCode.PROTOCOL_ERROR, "a client cannot push")
        # unknown frame types are ignored (RFC 9113 §4.1)

    def _headers(self, flags: int, sid: int, payload: bytes) -> None:
        if not sid:
            raise FrameError(ErrorCode.PROTOCOL_ERROR, "HEADERS on stream 0")
        block = header_fragment(_HEADERS, flags, payload)
        if flags & _END_HEADERS:
            self._header_block(sid, flags & _END_STREAM, block)
        else:
            self._continuation = (sid, flags & _END_STREAM, [block])
            self._block_size = 9 + len(block)
            self._block_started = self._clock()
            if not self._budget.take(self._block_size):
                self._block_size = 0
                raise FrameError(_CALM, "out of header block memory")

    def _more_headers(self, flags: int, sid: int, payload: bytes) -> None:
        pending = self._continuation
        if pending is None or pending[0] != sid:
            raise FrameError(ErrorCode.PROTOCOL_ERROR, "unexpected CONTINUATION")
        pending[2].append(payload)
        size = 9 + len(payload)  # a running total; empty frames are not free
        if self._block_size + size > self._limits.max_header_block:
            raise FrameError(_CALM, "header block too large")
        if not self._budget.take(size):
            raise FrameError(_CALM, "out of header block memory")
        self._block_size += size
        if flags & _END_HEADERS:
            self._end_block()
            self._header_block(sid, pending[1], b"".join(pending[2]))

    def _end_block(self) -> None:
        self._continuation = None
        self._budget.give(self._block_size)
        self._block_size = 0

    def _header_block(self, sid: int, end_stream: int, block: bytes) -> None:
        try:
            headers = self._decoder.decode(block)  # always: HPACK state must stay in step
        except HpackError as exc:
            raise FrameError(ErrorCode.COMPRESSION_ERROR, str(exc)) from None
        stream = self._streams.get(sid)
        if stream is not None:  # trailers
            if stream.ended or not end_stream:
                self._reset(sid, ErrorCode.PROTOCOL_ERROR)
                return
            self._end(sid, stream)
            return
        if sid <= self._last_stream or not sid & 1:
            if sid <= self._last_stream and sid & 1:  # a closed stream: ignore (RFC 9113 §5.1)
                return
            raise FrameError(ErrorCode.PROTOCOL_ERROR, f"bad new stream id {sid}")
        self._last_stream = sid
        self._opened += 1
        decoder, limits = self._decoder, self._limits
        if decoder.huffman_left < limits.max_huffman_bytes:
            decoder.huffman_left = min(
                decoder.huffman_left + limits.huffman_bytes_per_stream, limits.max_huffman_bytes
            )
        if self.goaway_sent or len(self._streams) >= MAX_STREAMS:
            self._control(frame(FrameType.RST_STREAM, 0, sid, _U32.pack(ErrorCode.REFUSED_STREAM)))
            return
        stream = Stream(headers, self._clock())
        self._streams[sid] = stream
        if end_stream:
            self._end(sid, stream)

    def _data(self, flags: int, sid: int, payload: bytes) -> None:
        if not sid:
            raise FrameError(ErrorCode.PROTOCOL_ERROR, "DATA on stream 0")
        self._recv_unacked += len(payload)
        if self._recv_unacked > CONN_WINDOW:
            raise FrameError(ErrorCode.FLOW_CONTROL_ERROR, "peer exceeded the connection window")
        stream = self._streams.get(sid)
        if stream is None:
            self._idle_check(sid)
            return  # a stream we already answered or reset: the bytes are simply dropped
        if stream.ended:
            self._reset(sid, ErrorCode.STREAM_CLOSED)
            return
        stream.recv_window -= len(payload)
        if stream.recv_window < 0:
            self._reset(sid, ErrorCode.FLOW_CONTROL_ERROR)
            return
        chunk = unpad(flags, payload)
        if chunk:
            if stream.size + len(chunk) > MAX_MESSAGE + 5:
                self.respond_status(
                    sid, GrpcStatus.RESOURCE_EXHAUSTED, "request message larger than 4 MiB"
                )
                return
            if flags & _END_STREAM and not stream.body:
                stream.body.append(chunk)  # a whole body in one frame is handed over, not held
            elif self._budget.take(len(chunk)):
                stream.body.append(chunk)
                stream.size += len(chunk)
                self._buffered += len(chunk)
            else:
                self.respond_status(
                    sid, GrpcStatus.RESOURCE_EXHAUSTED, "the server's request buffers are full"
                )
                return
        if flags & _END_STREAM:
            self._end(sid, stream)
        elif stream.recv_window < STREAM_WINDOW // 2:
            grant = STREAM_WINDOW - stream.recv_window
            stream.recv_window = STREAM_WINDOW
            self._control(frame(FrameType.WINDOW_UPDATE, 0, sid, _U32.pack(grant)))

    def _end(self, sid: int, stream: Stream) -> None:
        """The request is complete: hand it over."""
        stream.ended = True
        body = b"".join(stream.body) if len(stream.body) != 1 else stream.body[0]
        if stream.size:
            self._release(stream)
        else:
            stream.body = []
        message = None
        self._requests += 1
        if len(body) >= 5 and body[0] == 0 and _U32.unpack_from(body, 1)[0] == len(body) - 5:
            message = body[5:]
        self._on_request(sid, stream.headers, message)

    def _grant(self) -> None:
        """Give the peer back the connection window it used, unless too much is buffered."""
        if (
            self._recv_unacked >= CONN_WINDOW // 4
            and self._buffered <= MAX_BUFFERED
            and not self._budget.tight
        ):
            self._control(frame(FrameType.WINDOW_UPDATE, 0, 0, _U32.pack(self._recv_unacked)))
            self._recv_unacked = 0

    def expire(self, now: float) -> None:
        """Reset requests unfinished for longer than ``request_deadline`` (their buffers are
        freed); a header block that long unfinished ends the connection."""
        if self.closed:
            return
        horizon = now - self._limits.request_deadline
        if self._continuation is not None and self._block_started < horizon:
            self._fail(_CALM, "header block not finished in time")
        else:
            for sid, stream in list(self._streams.items()):  # in creation order
                if stream.started >= horizon:
                    break
                if not stream.ended:
                    self._reset(sid, ErrorCode.CANCEL)
        self.flush()

    def _fail(self, code: int, message: str) -> None:
        payload = struct.pack(">II", self._last_stream, code) + message.encode()[:200]
        self._out.append(frame(FrameType.GOAWAY, 0, 0, payload))
        self.error = f"{ErrorCode(code).name}: {message}"
        self.error_code = code
        self.release()

    def release(self) -> None:
        """The connection is over (failed, or its transport is gone): every buffered byte goes
        back to the memory budget, and nothing more is received."""
        self.goaway_sent = self.closed = True
        for stream in self._streams.values():
            if not stream.ended:
                self._release(stream)
        if self._continuation is not None:
            self._end_block()
        self._streams.clear()
        self._conn_blocked.clear()
        self._stream_blocked.clear()

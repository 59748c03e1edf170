"""The sending half of ``H2Connection``: answers, flow control towards the peer, resets.

A base class, so that the connection module holds only the parsing of what comes in. All of
its state is set up here; ``H2Connection`` adds the receiving side. No I/O.

Flow control in O(1) per control frame: a stream's send window is ``_peer_window +
stream.send_delta`` (the peer's current INITIAL_WINDOW_SIZE plus what it granted minus what
we sent), so a SETTINGS change of INITIAL_WINDOW_SIZE moves one number. An answer that cannot
be sent completely waits in ``_conn_blocked`` (its stream has window, the connection has not)
or ``_stream_blocked`` (its own stream has none). A connection WINDOW_UPDATE walks only
``_conn_blocked``, and stops as soon as the connection window is spent (every visit sends); a
stream WINDOW_UPDATE touches one stream; a raised INITIAL_WINDOW_SIZE walks
``_stream_blocked``, which holds at most ``max_blocked_streams`` answers.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from authsvc.h2wire._enums import ErrorCode, Flag, FrameType, GrpcStatus, SettingId
from authsvc.h2wire._errors import FrameError
from authsvc.h2wire._frames import frame
from authsvc.h2wire._hpack import Headers, literal
from authsvc.h2wire._limits import FloodLimits, MemoryBudget

__all__ = ["MAX_WINDOW", "STREAM_WINDOW", "Sender", "Stream", "grpc_message_text"]

MAX_WINDOW = 2**31 - 1
STREAM_WINDOW = 1 << 20  # what we let a peer send per stream before a WINDOW_UPDATE
MAX_STATUS_TEXT = 1024  # characters of a grpc-message: even percent-encoded, one frame holds it

_U32 = struct.Struct(">I")
_SETTING = struct.Struct(">HI")
_RESPONSE_HEADERS = b"\x88" + literal("content-type", "application/grpc")  # :status 200
_OK_TRAILERS = literal("grpc-status", "0")
_HEADERS, _DATA = int(FrameType.HEADERS), int(FrameType.DATA)
_END_HEADERS, _END_STREAM = int(Flag.END_HEADERS), int(Flag.END_STREAM)
_INITIAL_WINDOW, _MAX_FRAME_SIZE = int(SettingId.INITIAL_WINDOW_SIZE), int(SettingId.MAX_FRAME_SIZE)
_ENABLE_PUSH = int(SettingId.ENABLE_PUSH)


def grpc_message_text(text: str) -> str:
    """``grpc-message`` percent-encoding (gRPC over HTTP/2 spec): printable ASCII but ``%``."""
    raw = text.encode("utf-8")
    return "".join(chr(b) if 0x20 <= b <= 0x7E and b != 0x25 else f"%{b:02X}" for b in raw)


class Stream:
    __slots__ = (
        "body",
        "ended",
        "headers",
        "pending",
        "recv_window",
        "send_delta",
        "size",
        "started",
    )

    def __init__(self, headers: Headers, started: float) -> None:
        self.headers = headers
        self.body: list[bytes] = []
        self.size = 0
        self.ended = False
        self.recv_window = STREAM_WINDOW
        self.send_delta = 0  # WINDOW_UPDATEs minus DATA sent; the window adds _peer_window
        self.pending: bytes | None = None  # response DATA waiting for window, then trailers
        self.started = started


class Sender:
    """State and methods of the sending side (see the module docstring)."""

    def __init__(
        self,
        write: Callable[[bytes], None],
        limits: FloodLimits | None,
        budget: MemoryBudget | None,
        write_buffer: Callable[[], int] | None,
    ) -> None:
        self._write = write
        self._limits = limits or FloodLimits()
        self._budget = budget if budget is not None else MemoryBudget(1 << 62)
        self._write_buffer = write_buffer or (lambda: 0)
        self._out: list[bytes] = []
        self._streams: dict[int, Stream] = {}
        self._last_stream = 0
        self._buffered = 0  # request body bytes held on this connection
        self._peer_window = 65535  # peer's SETTINGS_INITIAL_WINDOW_SIZE
        self._peer_max_frame = 16384
        self._send_window = 65535  # connection-level, what we may send
        self._conn_blocked: dict[int, None] = {}
        self._stream_blocked: dict[int, None] = {}
        self._data_sent = 0
        self._out_frames = self._out_control = 0
        self.goaway_sent = False
        self.closed = False

    def _control(self, data: bytes) -> None:
        self._out.append(data)
        self._out_control += 1

    def _fail(self, code: int, message: str) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        """Write every frame prepared so far."""
        if not self._out:
            return
        self._out_frames += len(self._out)
        data = b"".join(self._out)
        self._out.clear()
        self._write(data)
        if not self._write_buffer():
            self._out_frames = self._out_control = 0
        elif not self.closed and (
            self._out_frames > self._limits.max_outbound_frames
            or self._out_control > self._limits.max_outbound_control_frames
        ):
            self._fail(
                ErrorCode.ENHANCE_YOUR_CALM, "too many frames queued for a peer that does not read"
            )
            self._write(b"".join(self._out))
            self._out.clear()

    # -- answers -----------------------------------------------------------------------------

    def respond(self, sid: int, message: bytes) -> None:
        """Answer stream ``sid`` with one gRPC message and status OK."""
        stream = self._streams.get(sid)
        if stream is None or self.closed:
            return  # reset by the peer meanwhile
        self._out.append(frame(_HEADERS, _END_HEADERS, sid, _RESPONSE_HEADERS))
        stream.pending = b"\x00" + _U32.pack(len(message)) + message
        self._send_pending(sid, stream)
        self.flush()

    def respond_status(self, sid: int, code: GrpcStatus | int, text: str) -> None:
        """Answer stream ``sid`` with a gRPC error status and no message (trailers only)."""
        stream = self._streams.get(sid)
        if stream is None or self.closed:
            return
        block = _RESPONSE_HEADERS + literal("grpc-status", str(int(code)))
        block += literal("grpc-message", grpc_message_text(text[:MAX_STATUS_TEXT]))
        self._out.append(frame(_HEADERS, _END_HEADERS | _END_STREAM, sid, block))
        self._finish(sid, stream)
        self.flush()

    def _send_pending(self, sid: int, stream: Stream) -> None:
        data = stream.pending
        assert data is not None
        while data:
            window = self._peer_window + stream.send_delta
            if self._send_window <= 0 or window <= 0:
                stream.pending = data
                blocked = self._conn_blocked if window > 0 else self._stream_blocked
                if sid not in blocked:
                    self._conn_blocked.pop(sid, None)
                    self._stream_blocked.pop(sid, None)
                    if len(self._conn_blocked) + len(self._stream_blocked) >= (
                        self._limits.max_blocked_streams
                    ):
                        self._fail(
                            ErrorCode.ENHANCE_YOUR_CALM, "too many answers blocked by flow control"
                        )
                        return
                    blocked[sid] = None
                return
            room = min(self._send_window, window, self._peer_max_frame)
            chunk, data = data[:room], data[room:]
            self._send_window -= len(chunk)
            stream.send_delta -= len(chunk)
            self._out.append(frame(_DATA, 0, sid, chunk))
            self._data_sent += 1
        stream.pending = None
        self._conn_blocked.pop(sid, None)
        self._stream_blocked.pop(sid, None)
        self._out.append(frame(_HEADERS, _END_HEADERS | _END_STREAM, sid, _OK_TRAILERS))
        self._finish(sid, stream)

    def _unblock_connection(self) -> None:
        """Send what waits for connection window, oldest first, while there is window."""
        while self._conn_blocked and self._send_window > 0 and not self.closed:
            sid = next(iter(self._conn_blocked))
            stream = self._streams.get(sid)
            if stream is None or stream.pending is None:
                del self._conn_blocked[sid]
            else:
                self._send_pending(sid, stream)  # sends, or moves it to _stream_blocked

    def _window_update(self, sid: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise FrameError(ErrorCode.FRAME_SIZE_ERROR, "bad WINDOW_UPDATE")
        increment = _U32.unpack(payload)[0] & MAX_WINDOW
        if not sid:
            if not increment:
                raise FrameError(ErrorCode.PROTOCOL_ERROR, "zero WINDOW_UPDATE")
            self._send_window += increment
            if self._send_window > MAX_WINDOW:
                raise FrameError(ErrorCode.FLOW_CONTROL_ERROR, "connection window overflow")
            self._unblock_connection()
            return
        stream = self._streams.get(sid)
        if stream is None:
            self._idle_check(sid)
            return
        if not increment:
            self._reset(sid, ErrorCode.PROTOCOL_ERROR)
            return
        stream.send_delta += increment
        if self._peer_window + stream.send_delta > MAX_WINDOW:
            self._reset(sid, ErrorCode.FLOW_CONTROL_ERROR)
            return
        if sid in self._stream_blocked and stream.pending is not None:
            self._send_pending(sid, stream)

    def _peer_settings(self, flags: int, sid: int, payload: bytes) -> None:
        if sid:
            raise FrameError(ErrorCode.PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & Flag.ACK:
            if payload:
                raise FrameError(ErrorCode.FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
            return
        if len(payload) % 6:
            raise FrameError(ErrorCode.FRAME_SIZE_ERROR, "bad SETTINGS length")
        raised = False
        for key, value in _SETTING.iter_unpack(payload):  # O(1) per entry
            if key == _INITIAL_WINDOW:
                if value > MAX_WINDOW:
                    raise FrameError(ErrorCode.FLOW_CONTROL_ERROR, "bad INITIAL_WINDOW_SIZE")
                raised = raised or value > self._peer_window
                self._peer_window = value
            elif key == _MAX_FRAME_SIZE:
                if not 16384 <= value <= 16777215:
                    raise FrameError(ErrorCode.PROTOCOL_ERROR, "bad MAX_FRAME_SIZE")
                self._peer_max_frame = value
            elif key == _ENABLE_PUSH and value > 1:
                raise FrameError(ErrorCode.PROTOCOL_ERROR, "bad ENABLE_PUSH")
        self._control(frame(FrameType.SETTINGS, Flag.ACK, 0))
        if raised:  # at most max_blocked_streams
            for blocked_sid in list(self._stream_blocked):
                stream = self._streams.get(blocked_sid)
                if stream is None or stream.pending is None:
                    self._stream_blocked.pop(blocked_sid, None)
                elif self._peer_window + stream.send_delta > 0:
                    self._send_pending(blocked_sid, stream)

    def _idle_check(self, sid: int) -> None:
        if sid > self._last_stream:
            raise FrameError(ErrorCode.PROTOCOL_ERROR, f"frame on idle stream {sid}")

    # -- ending streams ----------------------------------------------------------------------

    def _release(self, stream: Stream) -> None:
        """Forget a request's buffered body (and give its bytes back to the budget)."""
        self._buffered -= stream.size
        self._budget.give(stream.size)
        stream.size = 0
        stream.body = []

    def _finish(self, sid: int, stream: Stream) -> None:
        """Our side ended: forget the stream (and stop a client still sending)."""
        del self._streams[sid]
        if not stream.ended:
            self._release(stream)
            self._control(frame(FrameType.RST_STREAM, 0, sid, _U32.pack(ErrorCode.NO_ERROR)))

    def _drop(self, sid: int) -> None:
        stream = self._streams.pop(sid, None)
        self._conn_blocked.pop(sid, None)
        self._stream_blocked.pop(sid, None)
        if stream is not None and not stream.ended:
            self._release(stream)

    def _reset(self, sid: int, code: int) -> None:
        self._drop(sid)
        self._control(frame(FrameType.RST_STREAM, 0, sid, _U32.pack(code)))

    def goaway(self) -> None:
        """Graceful shutdown: no new streams; open ones may finish."""
        if not self.goaway_sent and not self.closed:
            self.goaway_sent = True
            self._control(frame(FrameType.GOAWAY, 0, 0, struct.pack(">II", self._last_stream, 0)))
            self.flush()

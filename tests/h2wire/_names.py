"""Short names for the protocol constants, so that tests read like the RFC's frame diagrams."""

from __future__ import annotations

from authsvc.h2wire import ErrorCode, Flag, FrameType

DATA, HEADERS, PRIORITY, RST_STREAM = (
    FrameType.DATA,
    FrameType.HEADERS,
    FrameType.PRIORITY,
    FrameType.RST_STREAM,
)
SETTINGS, PING, GOAWAY = FrameType.SETTINGS, FrameType.PING, FrameType.GOAWAY
WINDOW_UPDATE, CONTINUATION = FrameType.WINDOW_UPDATE, FrameType.CONTINUATION
ACK, END_STREAM, END_HEADERS = int(Flag.ACK), int(Flag.END_STREAM), int(Flag.END_HEADERS)
PADDED, PRIORITY_FLAG = int(Flag.PADDED), int(Flag.PRIORITY)
PROTOCOL_ERROR, FLOW_CONTROL_ERROR = ErrorCode.PROTOCOL_ERROR, ErrorCode.FLOW_CONTROL_ERROR
FRAME_SIZE_ERROR, REFUSED_STREAM = ErrorCode.FRAME_SIZE_ERROR, ErrorCode.REFUSED_STREAM
ENHANCE_YOUR_CALM = ErrorCode.ENHANCE_YOUR_CALM
CHECK_PATH = "/envoy.service.auth.v3.Authorization/Check"
HEALTH_PATH = "/grpc.health.v1.Health/Check"
FAST_PATHS = frozenset({CHECK_PATH, HEALTH_PATH})

"""Server reflection under both protocol names grpcurl may ask for.

grpcio-reflection (1.85) implements only ``grpc.reflection.v1alpha.ServerReflection``; newer
clients try ``grpc.reflection.v1.ServerReflection`` first. The v1 protocol is the v1alpha one
under another package name — same messages, same field names and numbers (a unit test compares
the two descriptors field by field) — so the v1 method is served by the *same* servicer, with
the v1alpha message classes doing the (byte-identical) parsing and serialising. Importing our
generated v1 module registers its descriptors, so reflection can also describe the v1 service.
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2

import authsvc._proto.grpc.reflection.v1.reflection_pb2 as v1_pb2

__all__ = ["V1ALPHA_SERVICE", "V1_SERVICE", "add_reflection"]

V1_SERVICE: str = v1_pb2.DESCRIPTOR.services_by_name["ServerReflection"].full_name
V1ALPHA_SERVICE: str = reflection.SERVICE_NAME
_METHOD = "ServerReflectionInfo"


def add_reflection(server: grpc.aio.Server, service_names: Iterable[str]) -> tuple[str, ...]:
    """Serve reflection (v1 and v1alpha) listing ``service_names`` plus both reflection services.

    Returns the full list of names reflection reports.
    """
    names = tuple(sorted({*service_names, V1_SERVICE, V1ALPHA_SERVICE}))
    servicer = reflection.aio.ReflectionServicer(names)
    for service in (V1ALPHA_SERVICE, V1_SERVICE):
        handlers = {
            _METHOD: grpc.stream_stream_rpc_method_handler(
                servicer.ServerReflectionInfo,
                request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
                response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
            )
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))
        server.add_registered_method_handlers(service, handlers)
    return names

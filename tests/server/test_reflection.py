"""Reflection, the way grpcurl uses it: list services, fetch the file declaring the service,
build a descriptor pool from the returned FileDescriptorProtos, make the request type from it,
fill it from JSON, call Check with it and decode the answer — for reflection v1 and v1alpha."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha import reflection_pb2 as v1alpha

from authsvc._proto.grpc.reflection.v1 import reflection_pb2 as v1
from tests.server.conftest import MASTER, Running

AUTHZ = "envoy.service.auth.v3.Authorization"


class ReflectionClient:
    """One ServerReflectionInfo stream per question, as grpcurl's client library does."""

    def __init__(self, channel: grpc.Channel, pb: Any) -> None:
        self._pb = pb
        self._call = channel.stream_stream(
            f"/{pb.DESCRIPTOR.package}.ServerReflection/ServerReflectionInfo",
            request_serializer=pb.ServerReflectionRequest.SerializeToString,
            response_deserializer=pb.ServerReflectionResponse.FromString,
        )

    def ask(self, **question: str) -> Any:
        responses: Iterator[Any] = self._call(
            iter([self._pb.ServerReflectionRequest(**question)]), timeout=10
        )
        (answer,) = list(responses)
        assert answer.WhichOneof("message_response") != "error_response", answer
        return answer

    def services(self) -> list[str]:
        return [s.name for s in self.ask(list_services="").list_services_response.service]

    def files(self, **question: str) -> list[descriptor_pb2.FileDescriptorProto]:
        raw = self.ask(**question).file_descriptor_response.file_descriptor_proto
        return [descriptor_pb2.FileDescriptorProto.FromString(b) for b in raw]

    def pool_for_symbol(self, symbol: str) -> descriptor_pool.DescriptorPool:
        known = {f.name: f for f in self.files(file_containing_symbol=symbol)}
        pool = descriptor_pool.DescriptorPool()
        added: set[str] = set()

        def add(name: str) -> None:
            if name in added:
                return
            if name not in known:  # not sent along: ask for it by name, like grpcurl
                for f in self.files(file_by_filename=name):
                    known.setdefault(f.name, f)
            for dep in known[name].dependency:
                add(dep)
            pool.Add(known[name])
            added.add(name)

        for name in list(known):
            add(name)
        return pool


@pytest.fixture(params=[v1, v1alpha], ids=["v1", "v1alpha"])
def reflection_pb(request: pytest.FixtureRequest) -> Any:
    return request.param


def call_check_from_json(
    running: Running, reflection_pb: Any, body: dict[str, Any]
) -> dict[str, Any]:
    with grpc.insecure_channel(running.unix) as ch:
        client = ReflectionClient(ch, reflection_pb)
        services = client.services()
        assert AUTHZ in services
        pool = client.pool_for_symbol(AUTHZ)
        method = pool.FindServiceByName(AUTHZ).methods_by_name["Check"]
        request_cls = message_factory.GetMessageClass(method.input_type)
        response_cls = message_factory.GetMessageClass(method.output_type)
        assert method.input_type.full_name == "envoy.service.auth.v3.CheckRequest"
        req = json_format.Parse(json.dumps(body), request_cls())
        call = ch.unary_unary(
            f"/{AUTHZ}/Check",
            request_serializer=request_cls.SerializeToString,
            response_deserializer=response_cls.FromString,
        )
        return json_format.MessageToDict(call(req, timeout=10))  # type: ignore[no-any-return]


def body(headers: dict[str, str]) -> dict[str, Any]:
    return {"attributes": {"request": {"http": {"method": "GET", "path": "/v1/models", "headers": headers}}}}  # fmt: skip


def test_lists_every_service(server: Running, reflection_pb: Any) -> None:
    with grpc.insecure_channel(server.tcp) as ch:
        assert ReflectionClient(ch, reflection_pb).services() == sorted(
            [
                AUTHZ,
                "grpc.health.v1.Health",
                "grpc.reflection.v1.ServerReflection",
                "grpc.reflection.v1alpha.ServerReflection",
            ]
        )


def test_check_built_from_reflected_descriptors_denies_without_key(
    server: Running, reflection_pb: Any
) -> None:
    answer = call_check_from_json(server, reflection_pb, body({}))
    assert answer["status"]["code"] == 16  # UNAUTHENTICATED
    denied = answer["deniedResponse"]
    assert denied["status"]["code"] == "Unauthorized"
    assert json.loads(denied["body"])["error"]["code"] == "401"


def test_check_built_from_reflected_descriptors_allows_with_key(
    server: Running, reflection_pb: Any
) -> None:
    answer = call_check_from_json(server, reflection_pb, body({"x-api-key": MASTER}))
    assert answer.get("status", {}).get("code", 0) == 0
    (header,) = answer["okResponse"]["headers"]
    assert header["header"] == {"key": "x-authsvc-key-name", "value": "master"}
    assert header["appendAction"] == "OVERWRITE_IF_EXISTS_OR_ADD"


def test_every_listed_service_resolves(server: Running, reflection_pb: Any) -> None:
    # grpcurl `describe` resolves every listed service; none may be unknown.
    with grpc.insecure_channel(server.tcp) as ch:
        client = ReflectionClient(ch, reflection_pb)
        for name in client.services():
            assert client.pool_for_symbol(name).FindServiceByName(name).full_name == name

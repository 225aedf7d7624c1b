"""The committed generated module is what `make protos` makes of the committed .proto."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from google.protobuf import descriptor_pb2
from grpc_tools import protoc

from service.grpc.proto import grpc_predict_v2_pb2 as pb
from tests.conftest import REPO_ROOT

PROTO = "service/grpc/proto/grpc_predict_v2.proto"


def test_the_generated_messages_match_the_proto(tmp_path: Path) -> None:
    compiled = tmp_path / "descriptor.pb"
    status = protoc.main(["protoc", f"-I{REPO_ROOT}", f"--descriptor_set_out={compiled}", PROTO])
    assert status == 0
    (from_proto,) = descriptor_pb2.FileDescriptorSet.FromString(compiled.read_bytes()).file
    _without_json_names(from_proto.message_type)  # the Python generator leaves them out
    committed = descriptor_pb2.FileDescriptorProto.FromString(pb.DESCRIPTOR.serialized_pb)
    assert committed == from_proto, "run `make protos` and commit the result"


def test_the_messages_are_the_protocols_on_the_wire() -> None:
    # What tritonclient.grpc and KServe read: field numbers, not names of packages.
    fields = {f.name: f.number for f in pb.ModelInferRequest.DESCRIPTOR.fields}
    assert fields == {
        "model_name": 1, "model_version": 2, "id": 3, "parameters": 4, "inputs": 5,
        "outputs": 6, "raw_input_contents": 7,
    }  # fmt: skip
    index = {f.name: f.number for f in pb.RepositoryIndexResponse.ModelIndex.DESCRIPTOR.fields}
    assert index == {"name": 1, "version": 2, "state": 3, "reason": 4}


def _without_json_names(messages: Iterable[descriptor_pb2.DescriptorProto]) -> None:
    for message in messages:
        for field in message.field:
            field.ClearField("json_name")
        _without_json_names(message.nested_type)

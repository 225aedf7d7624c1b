"""Generated protobuf modules of `grpc_predict_v2.proto`; do not edit them by hand.

Made from the repository root, with grpcio-tools (dev extra), by `make protos`:

    python -m grpc_tools.protoc -I . --python_out=. --pyi_out=. \
        service/grpc/proto/grpc_predict_v2.proto

Only the messages are generated (no `_pb2_grpc` module): service/grpc/servicer.py
registers typed handlers itself, under the protocol's service name.
"""

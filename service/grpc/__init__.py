"""The Open Inference Protocol over gRPC (`inference.GRPCInferenceService`) and gRPC health.

A grpc.aio server on `DIGITS_GRPC_PORT`, run on uvicorn's event loop in every server
process, over the same `OpenInference` dataplane as the REST `/v2` routes: same model,
same tensors, same limits, same errors (as gRPC status codes).
"""

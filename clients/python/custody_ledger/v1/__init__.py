"""Generated protobuf and gRPC stubs of `custody.v1` (proto/custody/v1/).

Do not edit `log_pb2*.py*` by hand: `bash clients/python/regen.sh`
regenerates them from the proto files.
"""

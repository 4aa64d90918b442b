"""Generated gRPC modules of search.proto (scripts/gen_grpc.sh)."""

"""Network front ends (HTTP, gRPC), thin over mm_feast.services."""

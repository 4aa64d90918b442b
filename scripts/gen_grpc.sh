#!/usr/bin/env bash
# Regenerate mm_feast/serving/proto/search_pb2*.py from search.proto. grpcio-tools is a build-time
# tool only (the generated modules are committed); pin it to the grpcio the project runs.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m grpc_tools.protoc -I mm_feast/serving/proto --python_out=mm_feast/serving/proto \
  --grpc_python_out=mm_feast/serving/proto mm_feast/serving/proto/search.proto
# grpc_tools writes an absolute import of the message module; make it package-relative
sed -i 's/^import search_pb2 as search__pb2/from mm_feast.serving.proto import search_pb2 as search__pb2/' \
  mm_feast/serving/proto/search_pb2_grpc.py

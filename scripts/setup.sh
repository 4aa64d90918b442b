#!/usr/bin/env bash
# Create .venv and install mm-feast with everything its demo and tests need. Idempotent: a
# second run with an unchanged pyproject.toml and setup.sh does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
STAMP=.venv/.mm-feast-installed
WANT="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
# torch first, pinned: 2.13.0 is a CPU build available offline here; a bare `torch` requirement
# could pull a multi-GB CUDA build.
python -m pip install --quiet "torch==2.13.0"
python -m pip install --quiet -e ".[test]"
# `feast ui` (feast.registry_server) imports grpc_health and grpc_reflection, which feast[milvus]
# does not install; take the releases that match the installed grpcio.
GRPC_MINOR="$(python -c 'import grpc; print(".".join(grpc.__version__.split(".")[:2]))')"
python -m pip install --quiet "grpcio-health-checking~=${GRPC_MINOR}.0" "grpcio-reflection~=${GRPC_MINOR}.0"
echo "$WANT" > "$STAMP"
echo "mm-feast installed in .venv"

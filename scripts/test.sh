#!/usr/bin/env bash
# The whole test suite: installs, starts a real Milvus server on 127.0.0.1 (PyPI `milvus`),
# checks the import layers (import-linter), runs pytest (Milvus Lite and server tests), and stops
# the server.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/install_chromium.sh  # for the feast ui browser test; skips itself where it cannot
. .venv/bin/activate
DATA_DIR="${MM_FEAST_MILVUS_DATA:-$(mktemp -d /tmp/mm-feast-milvus.XXXXXX)}"
bash infra/milvus_server.sh start "$DATA_DIR"
trap 'bash infra/milvus_server.sh stop "$DATA_DIR"' EXIT
export MM_FEAST_MILVUS_URI="http://127.0.0.1:19530"
lint-imports  # the layers and acyclic packages of docs/architecture.md
python -m pytest "$@"

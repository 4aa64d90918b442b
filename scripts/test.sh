#!/usr/bin/env bash
# The whole test suite: installs (Python packages, and Debian's Chromium and Tesseract where it
# can), starts a real Milvus server on 127.0.0.1 (PyPI `milvus`) and a throwaway PostgreSQL,
# checks the import layers (import-linter), runs pytest (Milvus Lite and server tests), and stops
# the server.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Debian packages: Chromium for the `feast ui` browser test, Tesseract for the OCR content filter
# and OCR views, espeak-ng for the speech the transcript tests hear, PostgreSQL for the registry
# and lineage tests
bash scripts/install_debian.sh chromium /usr/bin/chromium chromium
bash scripts/install_debian.sh tesseract /usr/bin/tesseract tesseract-ocr tesseract-ocr-eng
bash scripts/install_debian.sh espeak-ng /usr/bin/espeak-ng espeak-ng
# PostgreSQL for the SQL registry and lineage tests: a throwaway cluster on 127.0.0.1
initdb_bin=$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -1 || true)
bash scripts/install_debian.sh postgresql "${initdb_bin:-/usr/lib/postgresql/15/bin/initdb}" postgresql
. .venv/bin/activate
DATA_DIR="${MM_FEAST_MILVUS_DATA:-$(mktemp -d /tmp/mm-feast-milvus.XXXXXX)}"
PG_DIR=$(mktemp -d /tmp/mm-feast-pg.XXXXXX)
stop_servers() {
  bash infra/milvus_server.sh stop "$DATA_DIR" || true
  # its data goes only once it has stopped: never delete a running server's files
  bash infra/postgres.sh stop "$PG_DIR" && rm -rf "$PG_DIR"
}
trap stop_servers EXIT
bash infra/milvus_server.sh start "$DATA_DIR"
export MM_FEAST_MILVUS_URI="http://127.0.0.1:19530"
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  bash infra/postgres.sh start "$PG_DIR"
  export MM_FEAST_POSTGRES_URL="$(bash infra/postgres.sh url "$PG_DIR")"
else
  echo "PostgreSQL is not installed: its tests will skip" >&2
fi
lint-imports  # the layers and acyclic packages of docs/architecture.md
python -m pytest "$@"

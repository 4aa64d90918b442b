#!/usr/bin/env bash
# The whole test suite: installs (Python packages, and Debian's Chromium and Tesseract where it
# can), starts a real Milvus server on 127.0.0.1 (PyPI `milvus`),
# checks the import layers (import-linter), runs pytest (Milvus Lite and server tests), and stops
# the server.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Debian packages: Chromium for the `feast ui` browser test, Tesseract for the OCR content filter
bash scripts/install_debian.sh chromium /usr/bin/chromium chromium
bash scripts/install_debian.sh tesseract /usr/bin/tesseract tesseract-ocr tesseract-ocr-eng
. .venv/bin/activate
DATA_DIR="${MM_FEAST_MILVUS_DATA:-$(mktemp -d /tmp/mm-feast-milvus.XXXXXX)}"
bash infra/milvus_server.sh start "$DATA_DIR"
trap 'bash infra/milvus_server.sh stop "$DATA_DIR"' EXIT
export MM_FEAST_MILVUS_URI="http://127.0.0.1:19530"
lint-imports  # the layers and acyclic packages of docs/architecture.md
python -m pytest "$@"

#!/usr/bin/env bash
# The main job on the embedded default (Milvus Lite): generate media, feast apply, feast
# materialize, then cross-modal search and get_online_features.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
exec mm-feast demo --repo feature_repo "$@"

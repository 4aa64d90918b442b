#!/usr/bin/env bash
# Flake hunt: run the slow end-to-end modules N times (default 5) while a CPU-heavy process runs
# beside them. It starts its own Milvus server on MILVUS_PORT (default 19541) with its embedded
# etcd on other ports, so it can run beside CI's server on 19530. Prints one line per round and
# exits non-zero if any round failed.
#   bash scripts/stress_slow.sh [ROUNDS] [pytest args...]
set -uo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}; shift || true
. .venv/bin/activate
work=$(mktemp -d /tmp/mm-feast-stress.XXXXXX)
port=${MILVUS_PORT:-19541}
etcd_client=$((port + 1)); etcd_peer=$((port + 2))
cat >"$work/embed_etcd.yaml" <<YAML
name: default
data-dir: $work/milvus/etcd
listen-client-urls: http://127.0.0.1:$etcd_client
advertise-client-urls: http://127.0.0.1:$etcd_client
listen-peer-urls: http://127.0.0.1:$etcd_peer
initial-advertise-peer-urls: http://127.0.0.1:$etcd_peer
initial-cluster: default=http://127.0.0.1:$etcd_peer
YAML
ETCD_CONFIG_PATH="$work/embed_etcd.yaml" ETCD_ENDPOINTS="127.0.0.1:$etcd_client" MILVUS_PORT=$port \
  bash infra/milvus_server.sh start "$work/milvus" || exit 1
# the CPU hog: one busy process per core, for as long as the rounds run
hogs=()
for _ in $(seq "$(nproc)"); do python -c "while True: pass" & hogs+=($!); done
cleanup() { kill "${hogs[@]}" 2>/dev/null; MILVUS_PORT=$port bash infra/milvus_server.sh stop "$work/milvus" >/dev/null; }
trap cleanup EXIT
failed=0
for round in $(seq "$rounds"); do
  started=$(date +%s)
  MM_FEAST_MILVUS_URI="http://127.0.0.1:$port" python -m pytest -q -p no:cacheprovider \
    tests/test_e2e_demo.py tests/test_lineage.py tests/test_fault_tolerance.py "$@" >"$work/round-$round.log" 2>&1
  rc=$?
  echo "round $round: rc=$rc in $(( $(date +%s) - started )) s: $(tail -n 1 "$work/round-$round.log")"
  [[ $rc == 0 ]] || failed=$((failed + 1))
done
echo "$failed of $rounds rounds failed (logs in $work)"
[[ $failed == 0 ]]

#!/usr/bin/env bash
# Run a Milvus standalone server (PyPI package `milvus`, 2.3.5) in the background for CI.
#
#   infra/milvus_server.sh start  DATA_DIR   # start, wait until it accepts connections
#   infra/milvus_server.sh status DATA_DIR   # exit 0 if it runs and answers
#   infra/milvus_server.sh stop   DATA_DIR   # SIGINT to the wrapper, wait for it to exit
#
# Clients connect to 127.0.0.1:$MILVUS_PORT (the server listens on all interfaces, so keep
# the port firewalled). Tests pick it up with MM_FEAST_MILVUS_URI=http://127.0.0.1:19530.
# Environment: MILVUS_PORT (19530), MILVUS_START_TIMEOUT seconds (180),
# MILVUS_STOP_TIMEOUT seconds (60), MILVUS_SERVER_BIN (milvus-server), PYTHON (python).
set -euo pipefail

usage() { echo "usage: $0 start|stop|status DATA_DIR" >&2; exit 2; }
[[ $# -eq 2 ]] || usage
cmd=$1
data_dir=$(mkdir -p "$2" && cd "$2" && pwd)
port=${MILVUS_PORT:-19530}
start_timeout=${MILVUS_START_TIMEOUT:-180}
stop_timeout=${MILVUS_STOP_TIMEOUT:-60}
bin=${MILVUS_SERVER_BIN:-milvus-server}
python=${PYTHON:-python}
pid_file="$data_dir/milvus-server.pid"
log_file="$data_dir/milvus-server.out"

running_pid() {
  # The wrapper's pid, if the pid file names a live process.
  [[ -f $pid_file ]] || return 1
  local pid
  pid=$(cat "$pid_file")
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

answers() {
  # Bounded poll with pymilvus: does 127.0.0.1:$port serve within $1 seconds?
  "$python" - "$port" "$1" <<'EOF'
import sys, time
from pymilvus import MilvusClient
port, timeout = sys.argv[1], float(sys.argv[2])
deadline = time.monotonic() + timeout
while True:
    try:
        client = MilvusClient(uri=f"http://127.0.0.1:{port}", timeout=5)
        client.list_collections()
        print(f"Milvus {client.get_server_version()} serving on 127.0.0.1:{port}")
        client.close()
        sys.exit(0)
    except Exception as e:
        if time.monotonic() >= deadline:
            print(f"Milvus on 127.0.0.1:{port} did not answer within {timeout:.0f} s: {e}", file=sys.stderr)
            sys.exit(1)
        time.sleep(1)
EOF
}

case $cmd in
  start)
    if pid=$(running_pid); then
      echo "milvus-server already running (pid $pid)"
      answers "$start_timeout"
      exit
    fi
    command -v "$bin" >/dev/null || { echo "$bin not found: pip install milvus==2.3.5" >&2; exit 1; }
    # setsid: its own session, so the CI shell's signals don't reach it and stop can target it.
    setsid "$bin" --data "$data_dir" --proxy-port "$port" >"$log_file" 2>&1 </dev/null &
    echo $! >"$pid_file"
    if ! answers "$start_timeout"; then
      echo "--- last lines of $log_file" >&2
      tail -n 40 "$log_file" >&2 || true
      "$0" stop "$data_dir" || true
      exit 1
    fi
    ;;
  status)
    if pid=$(running_pid); then
      echo "milvus-server running (pid $pid)"
      answers 5
    else
      echo "milvus-server not running"
      exit 3
    fi
    ;;
  stop)
    if ! pid=$(running_pid); then
      echo "milvus-server not running"
      rm -f "$pid_file"
      exit 0
    fi
    # The wrapper stops its inner milvus on SIGINT (SIGTERM to milvus itself lingers).
    kill -INT "$pid"
    for ((i = 0; i < stop_timeout; i++)); do
      kill -0 "$pid" 2>/dev/null || { rm -f "$pid_file"; echo "milvus-server stopped"; exit 0; }
      sleep 1
    done
    echo "milvus-server (pid $pid) still running after ${stop_timeout}s; killing its session" >&2
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"
    rm -f "$pid_file"
    exit 1
    ;;
  *) usage ;;
esac

#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests (Debian's `postgresql`), on 127.0.0.1 only.
#
#   infra/postgres.sh start DATA_DIR   # initdb when new, start, wait until it accepts connections
#   infra/postgres.sh stop  DATA_DIR   # fast shutdown, wait for it
#   infra/postgres.sh url   DATA_DIR   # the SQLAlchemy URL of the cluster's `postgres` database
#
# initdb refuses to run as root, so as root the cluster belongs to the `postgres` user that the
# package creates. TCP (loopback only) needs the superuser `mm`'s password: a random one, kept in
# DATA_DIR/password (mode 600, the owner's only); the Unix socket lives inside the cluster's own
# private directory. Environment: PG_PORT (55432), PG_START_TIMEOUT seconds (60).
set -euo pipefail

[[ $# -eq 2 ]] || { echo "usage: $0 start|stop|url DATA_DIR" >&2; exit 2; }
cmd=$1
data_dir=$(mkdir -p "$2" && cd "$2" && pwd)
port=${PG_PORT:-55432}
timeout=${PG_START_TIMEOUT:-60}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
cluster="$data_dir/cluster"
password_file="$data_dir/password"

as_owner() {
  if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case $cmd in
  url) echo "postgresql+psycopg://mm:$(cat "$password_file")@127.0.0.1:$port/postgres" ;;
  start)
    [[ -n $bin && -x $bin/initdb ]] || { echo "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb)" >&2; exit 1; }
    if [[ ! -f $cluster/PG_VERSION ]]; then
      (umask 077; od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$password_file")
      if [[ $(id -u) == 0 ]]; then chown postgres "$data_dir" "$password_file"; fi
      as_owner "$bin/initdb" -D "$cluster" -U mm --auth-local=trust --auth-host=scram-sha-256 \
        --pwfile="$password_file" >"$data_dir/initdb.log" 2>&1 \
        || { cat "$data_dir/initdb.log" >&2; exit 1; }
    fi
    # -w waits until the server accepts connections, at most -t seconds
    as_owner "$bin/pg_ctl" -D "$cluster" -l "$data_dir/postgres.log" -w -t "$timeout" \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $cluster -c max_connections=200" start >/dev/null \
      || { tail -20 "$data_dir/postgres.log" >&2; exit 1; }
    echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') serving on 127.0.0.1:$port"
    ;;
  stop)
    [[ -f $cluster/postmaster.pid ]] || exit 0
    as_owner "$bin/pg_ctl" -D "$cluster" -m fast -w -t "$timeout" stop >/dev/null
    ;;
  *) echo "usage: $0 start|stop|url DATA_DIR" >&2; exit 2 ;;
esac

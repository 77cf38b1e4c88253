# PostgreSQL and NATS for the cluster tests (sourced by scripts/test.sh; also usable alone:
# `source scripts/services.sh && services_start`). The suite uses the services already listening
# on their standard local ports (PostgreSQL 127.0.0.1:5432, user postgres with trust auth; NATS
# 127.0.0.1:4222 with JetStream); otherwise it installs Debian `postgresql` and `nats-server`
# and starts PRIVATE instances on free ports under a temp dir, stopped on exit (services_stop,
# which the caller's EXIT trap runs). Either way it exports what the tests read:
#   AF_TEST_PG_URL    postgres://postgres@127.0.0.1:PORT/test
#   AF_TEST_NATS_URL  nats://127.0.0.1:PORT
# Knobs: AF_TEST_PRIVATE_SERVICES=1 ignores the standard ports (always private
# instances: how the fallback is tested); URLs already exported are kept as they are.

SERVICES_DIR=""
SERVICES_PG_BIN=""
SERVICES_NATS_PID=""

services_as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# services_port_open PORT: true when something accepts TCP on 127.0.0.1:PORT.
services_port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# services_free_port: a TCP port on 127.0.0.1 nobody listens on (49152-54999: above the
# benchmarks' RTP range start is shared, so check; below the test peers' 61000-64999).
services_free_port() {
  local p
  for _ in $(seq 200); do
    p=$(( 49152 + RANDOM % 5848 ))
    services_port_open "$p" || { echo "$p"; return 0; }
  done
  echo "no free port for a private service" >&2; return 1
}

# services_nats_jetstream URL_PORT: true when the NATS server on 127.0.0.1:PORT answers a
# JetStream account-info request ($JS.API.INFO) with an account_info_response (no error).
services_nats_jetstream() {
  timeout 3 bash -c '
    exec 3<>/dev/tcp/127.0.0.1/'"$1"' || exit 1
    printf "CONNECT {\"verbose\":false,\"pedantic\":false}\r\nSUB _INBOX.af 1\r\nPUB \$JS.API.INFO _INBOX.af 0\r\n\r\nPING\r\n" >&3
    while IFS= read -r line <&3; do
      case $line in
        *account_info_response*) case $line in *\"error\"*) exit 1 ;; *) exit 0 ;; esac ;;
        -ERR*) exit 1 ;;
      esac
    done
    exit 1' 2>/dev/null
}

services_pg_standard() {
  [ "${AF_TEST_PRIVATE_SERVICES:-0}" != 1 ] && command -v psql >/dev/null 2>&1 &&
    PGCONNECT_TIMEOUT=3 psql -w -h 127.0.0.1 -p 5432 -U postgres -d postgres -XAtqc 'select 1' >/dev/null 2>&1
}

services_install() {
  local missing=()
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && command -v psql >/dev/null 2>&1 ||
    missing+=(postgresql)
  { command -v nats-server || [ -x /usr/sbin/nats-server ]; } >/dev/null 2>&1 || missing+=(nats-server)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    services_as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive services_as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

services_workdir() {
  if [ -z "$SERVICES_DIR" ]; then
    SERVICES_DIR=$(mktemp -d /tmp/activeflow-services.XXXXXX)
    chmod 755 "$SERVICES_DIR"
  fi
}

# PostgreSQL as the `postgres` user when we are root (initdb refuses root), else as ourselves.
services_pg_run() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

services_pg_start() {
  local port initdb
  initdb=$(compgen -G '/usr/lib/postgresql/*/bin/initdb' | sort -V | tail -1)
  SERVICES_PG_BIN=$(dirname "$initdb")
  port=$(services_free_port)
  mkdir -p "$SERVICES_DIR/pg"
  [ "$(id -u)" = 0 ] && chown postgres: "$SERVICES_DIR/pg"
  services_pg_run "$SERVICES_PG_BIN/initdb" -D "$SERVICES_DIR/pg/data" -U postgres -A trust \
    --locale=C.UTF-8 -E UTF8 --no-sync >"$SERVICES_DIR/pg/initdb.log" 2>&1 ||
    { cat "$SERVICES_DIR/pg/initdb.log" >&2; return 1; }
  services_pg_run "$SERVICES_PG_BIN/pg_ctl" -D "$SERVICES_DIR/pg/data" -l "$SERVICES_DIR/pg/server.log" -w \
    -o "-p $port -k $SERVICES_DIR/pg -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" \
    start >/dev/null || { cat "$SERVICES_DIR/pg/server.log" >&2; return 1; }
  psql -w -h 127.0.0.1 -p "$port" -U postgres -d postgres -XAtqc 'CREATE DATABASE test' >/dev/null
  export AF_TEST_PG_URL="postgres://postgres@127.0.0.1:$port/test"
  echo "private PostgreSQL on 127.0.0.1:$port (data in $SERVICES_DIR/pg)"
}

services_nats_start() {
  local port bin
  bin=$(command -v nats-server || echo /usr/sbin/nats-server)
  port=$(services_free_port)
  mkdir -p "$SERVICES_DIR/nats"
  "$bin" -js -sd "$SERVICES_DIR/nats" -a 127.0.0.1 -p "$port" >"$SERVICES_DIR/nats/server.log" 2>&1 &
  SERVICES_NATS_PID=$!
  for _ in $(seq 100); do
    services_nats_jetstream "$port" && break
    kill -0 "$SERVICES_NATS_PID" 2>/dev/null || { cat "$SERVICES_DIR/nats/server.log" >&2; return 1; }
    sleep 0.1
  done
  services_nats_jetstream "$port" || { echo "private NATS did not start JetStream" >&2; return 1; }
  export AF_TEST_NATS_URL="nats://127.0.0.1:$port"
  echo "private NATS (JetStream) on 127.0.0.1:$port (pid $SERVICES_NATS_PID)"
}

# services_start: the standard instances when they answer, private ones otherwise.
services_start() {
  local private=${AF_TEST_PRIVATE_SERVICES:-0}
  if [ -z "${AF_TEST_PG_URL:-}" ]; then
    if services_pg_standard; then
      psql -w -h 127.0.0.1 -p 5432 -U postgres -d postgres -XAtqc \
        "SELECT 1 FROM pg_database WHERE datname = 'test'" | grep -q 1 ||
        psql -w -h 127.0.0.1 -p 5432 -U postgres -d postgres -XAtqc 'CREATE DATABASE test' >/dev/null
      export AF_TEST_PG_URL="postgres://postgres@127.0.0.1:5432/test"
      echo "PostgreSQL: the standard instance on 127.0.0.1:5432"
    else
      services_install; services_workdir; services_pg_start
    fi
  fi
  if [ -z "${AF_TEST_NATS_URL:-}" ]; then
    if [ "$private" != 1 ] && services_nats_jetstream 4222; then
      export AF_TEST_NATS_URL="nats://127.0.0.1:4222"
      echo "NATS: the standard instance on 127.0.0.1:4222"
    else
      services_install; services_workdir; services_nats_start
    fi
  fi
}

# services_stop: stops the private instances (if any) and removes their temp dir.
services_stop() {
  if [ -n "$SERVICES_NATS_PID" ]; then
    kill -TERM "$SERVICES_NATS_PID" 2>/dev/null || true
    wait "$SERVICES_NATS_PID" 2>/dev/null || true
    SERVICES_NATS_PID=""
  fi
  if [ -n "$SERVICES_PG_BIN" ] && [ -d "$SERVICES_DIR/pg/data" ]; then
    services_pg_run "$SERVICES_PG_BIN/pg_ctl" -D "$SERVICES_DIR/pg/data" -m fast -w stop >/dev/null 2>&1 || true
    SERVICES_PG_BIN=""
  fi
  if [ -n "$SERVICES_DIR" ]; then rm -rf "$SERVICES_DIR"; SERVICES_DIR=""; fi
}

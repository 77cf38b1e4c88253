#!/usr/bin/env bash
# Cluster figures (issue 20), each line saying exactly what it measured:
#   1. calls/s of one node on PostgreSQL against one node on SQLite, same run: bench/cps.sh's
#      method (cps_run in common.sh: SIPp's uac offers RATE/s × SECONDS, achieved = completed ÷
#      SIPp's elapsed, every call accounted for on both sides, SIPp's uas as the reference),
#      once with the default SQLite store, once with [storage] backend = "postgres" (a fresh
#      database), the engine alone (no [cluster]);
#   2. operator stop → BYE through a NON-OWNER node, p50/p99: two nodes A and B in one cluster
#      (PostgreSQL + NATS), CALLS_UP calls held on A (examples/stop_latency), STOPS stops sent
#      one at a time to B's API (forwarded to A over NATS), timed to the BYE on the wire; the
#      same through A's own API in the same run as the reference;
#   3. kill -9 → node_lost: HELD calls up on node A, A killed with SIGKILL, B's
#      GET /v1/activeflows polled every 100 ms until none of A's is running; the time, and how
#      many of A's ended node_lost;
#   4. calls lost during a node loss: three nodes behind Kamailio (deploy/kamailio/kamailio.cfg),
#      SIPp through Kamailio (tests/sipp/uac_proxy_engine_bye.xml; flow answer, 2 s, the
#      engine's BYE) at LOSS_RATE/s for LOSS_SECS, one node killed with SIGKILL half-way: calls
#      offered, completed, failed (lost), and when Kamailio logged the node down.
#
#   bench/cluster.sh [RATE (2000)] [SECONDS (10)]
# Environment: CALLS_UP (200), STOPS (100), HELD (100), LOSS_RATE (100), LOSS_SECS (20);
# AF_TEST_PG_URL (postgres://postgres@127.0.0.1:5432/test: databases af_bench_* are
# created on its server and dropped at exit), AF_TEST_NATS_URL (nats://127.0.0.1:4222);
# CLUSTER=0 runs parts 3-4 on single nodes (no [cluster]: part 3 is skipped) and skips part 2;
# PARTS="1 2 3 4" picks parts; BUILD=0 uses the binaries already built.
# Runs in a few minutes on 2 cores; the nodes share the cores with PostgreSQL, NATS, Kamailio
# and SIPp, so part 1 is the per-node cost, not a cluster's throughput.
source "$(dirname "$0")/common.sh"

RATE=${1:-2000}
SECS=${2:-10}
CALLS_UP=${CALLS_UP:-200}
STOPS=${STOPS:-100}
HELD=${HELD:-100}
LOSS_RATE=${LOSS_RATE:-100}
LOSS_SECS=${LOSS_SECS:-20}
PARTS=${PARTS:-1 2 3 4}
PG_BASE=${AF_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/test}
NATS=${AF_TEST_NATS_URL:-nats://127.0.0.1:4222}
NODE_SIP=${NODE_SIP:-5170}     # node i: SIP 127.0.0.1:NODE_SIP+i, API 8170+i, metrics 9570+i
KAM_PORT=${KAM_PORT:-5160}
KAMAILIO=$(command -v kamailio || echo /usr/sbin/kamailio)
need psql postgresql-client
[ -x "$KAMAILIO" ] || { echo "missing kamailio (apt-get install kamailio)" >&2; exit 1; }
header "$@"
if [ "${BUILD:-1}" != 0 ]; then build; build --example stop_latency; fi
TOOL="$TARGET_DIR/release/examples/stop_latency"

declare -A NODE_PIDS=()
# fresh_db runs in $(...) subshells: the names it made are kept in $WORK/databases for cleanup.
KAM_PID=""

# fresh_db: a new database on PG_BASE's server; prints its URL.
fresh_db() {
  local name="af_bench_$$_$(date +%s%N)"
  psql "$PG_BASE" -XAtqc "CREATE DATABASE $name" >/dev/null
  echo "$name" >> "$WORK/databases"
  echo "${PG_BASE%/*}/$name"
}

cluster_cleanup() {
  local i db
  for i in "${!NODE_PIDS[@]}"; do stop_node "$i"; done
  if [ -n "$KAM_PID" ]; then kill -TERM "$KAM_PID" 2>/dev/null || true; wait "$KAM_PID" 2>/dev/null || true; fi
  if [ -f "$WORK/databases" ]; then
    while read -r db; do
      psql "$PG_BASE" -XAtqc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    done < "$WORK/databases"
  fi
}
trap 'cluster_cleanup; cleanup' EXIT

# The nodes' flows and routes: number "short" → answer, 2 s, hang up; any other → hold (answer,
# 10 min).
write_node_config() {
  write_flow hold
  printf '{"name": "short", "actions": [{"type": "answer"}, {"type": "sleep", "option": {"duration": 2000}}, {"type": "hangup"}]}\n' \
    > "$WORK/flows/short.json"
  sed -n '1,/^\[\[routes\]\]/p' "$ROOT/config/default.toml" | sed '$d' > "$WORK/nodes.toml"
  printf '[[routes]]\nnumber = "short"\nflow = "short"\n\n[[routes]]\nnumber = "*"\nflow = "hold"\n' >> "$WORK/nodes.toml"
}

# launch_node I DB_URL: node I (release binary) on its ports; in the cluster (node_id bench-nodeI,
# PostgreSQL DB_URL, NATS) unless CLUSTER=0.
launch_node() {
  local i=$1 db=$2 api=127.0.0.1:$(( 8170 + $1 ))
  local -a cluster=()
  if [ "${CLUSTER:-1}" != 0 ]; then
    cluster=(ACTIVEFLOW_STORAGE_BACKEND=postgres "ACTIVEFLOW_STORAGE_URL=$db"
      "ACTIVEFLOW_CLUSTER_NODE_ID=bench-node$i" "ACTIVEFLOW_CLUSTER_NATS_URL=$NATS")
  fi
  env ACTIVEFLOW_SIP_LISTEN=127.0.0.1:$(( NODE_SIP + i )) ACTIVEFLOW_API_LISTEN=$api \
    ACTIVEFLOW_METRICS_LISTEN=127.0.0.1:$(( 9570 + i )) ACTIVEFLOW_FLOWS_DIR="$WORK/flows" \
    ACTIVEFLOW_MEDIA_RTP_PORTS=$(( 20000 + i * 5000 ))-$(( 24999 + i * 5000 )) \
    ACTIVEFLOW_MEDIA_PROMPTS_DIR="$WORK/prompts" ACTIVEFLOW_MEDIA_RECORDINGS_DIR="$WORK/recordings" \
    ACTIVEFLOW_MEDIA_CACHE_DIR="$WORK/cache" ACTIVEFLOW_STORAGE_PATH="$WORK/node$i.db" \
    ACTIVEFLOW_MEDIA_RTP_TIMEOUT_SECONDS=0 ACTIVEFLOW_ENGINE_SHUTDOWN_GRACE_SECONDS=1 \
    RUST_LOG=${LOG:-warn} "${cluster[@]}" \
    "$BIN" serve --config "$WORK/nodes.toml" 2>>"$WORK/node$i.log" &
  NODE_PIDS[$i]=$!
  for _ in $(seq 100); do
    curl -sf "http://$api/readyz" >/dev/null 2>&1 && return 0
    kill -0 "${NODE_PIDS[$i]}" 2>/dev/null || break
    sleep 0.1
  done
  echo "node $i did not start:" >&2; tail -20 "$WORK/node$i.log" >&2; return 1
}

stop_node() {
  [ -n "${NODE_PIDS[$1]:-}" ] || return 0
  kill -TERM "${NODE_PIDS[$1]}" 2>/dev/null || true
  wait "${NODE_PIDS[$1]}" 2>/dev/null || true
  unset "NODE_PIDS[$1]"
}

kill9_node() { kill -KILL "${NODE_PIDS[$1]}"; wait "${NODE_PIDS[$1]}" 2>/dev/null || true; unset "NODE_PIDS[$1]"; }

# node_activeflows I: "running_of_node lost_of_node" for node_id $2 as node I's API lists them.
node_activeflows() {
  curl -s "http://127.0.0.1:$(( 8170 + $1 ))/v1/activeflows?page_size=100000" | python3 -c '
import json, sys
items = json.load(sys.stdin).get("result", [])
mine = [a for a in items if a.get("node_id") == sys.argv[1]]
print(sum(a.get("status") == "running" for a in mine), sum(a.get("end_reason") == "node_lost" for a in mine))' "$2"
}

part1() {
  echo "== 1. calls/s, one node: SQLite (default) vs PostgreSQL, offered ${RATE}/s x ${SECS}s each, engine alone (no [cluster])"
  printf 'backend sqlite:   '; cps_run hold "$RATE" "$SECS" || true
  sleep 3
  printf 'backend postgres: '
  local url; url=$(fresh_db)
  ( export ACTIVEFLOW_STORAGE_BACKEND=postgres ACTIVEFLOW_STORAGE_URL=$url
    cps_run hold "$RATE" "$SECS" ) || echo "FAILED (see above)"
  # The figure counts only if the engine really wrote there.
  local tables
  tables=$(psql "$url" -XAtqc "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'" 2>/dev/null || echo 0)
  [ "${tables:-0}" -gt 0 ] ||
    echo "WARNING: $url has no tables: this build did not store to PostgreSQL, the postgres line is not a PostgreSQL figure"
}

part2() {
  [ "${CLUSTER:-1}" != 0 ] || { echo "== 2. skipped (CLUSTER=0)"; return; }
  echo "== 2. stop → BYE through a non-owner node: $CALLS_UP calls held on node A (1), $STOPS stops one at a time"
  local db; db=$(fresh_db)
  launch_node 1 "$db" && launch_node 2 "$db" || return 0
  sleep 2
  "$TOOL" --sip 127.0.0.1:$(( NODE_SIP + 1 )) --api 127.0.0.1:8172 --calls "$CALLS_UP" --rate 200 \
    --stops "$STOPS" --number 200 | sed 's/^/via non-owner B (stop to B, call on A): /' || true
  "$TOOL" --sip 127.0.0.1:$(( NODE_SIP + 1 )) --api 127.0.0.1:8171 --calls "$CALLS_UP" --rate 200 \
    --stops "$STOPS" --number 200 | sed 's/^/via owner A (reference, same run): /' || true
  if [[ " $PARTS " != *" 3 "* ]]; then stop_node 1; stop_node 2; fi
}

part3() {
  [ "${CLUSTER:-1}" != 0 ] || { echo "== 3. skipped (CLUSTER=0)"; return; }
  echo "== 3. kill -9 → node_lost: $HELD calls held on node A (1), A killed, B (2) polled every 100 ms"
  if [ -z "${NODE_PIDS[1]:-}" ]; then local db; db=$(fresh_db); launch_node 1 "$db"; launch_node 2 "$db"; fi
  start_sipp_bg 127.0.0.1:$(( NODE_SIP + 1 )) -sf "$ROOT/tests/sipp/uac_proxy_engine_bye.xml" -s 200 \
    -m "$HELD" -r 100 -i 127.0.0.1 -p "$CALLER_PORT" -buff_size 4194304
  local sipp_pid=$! up=0 t0 t1 res
  for _ in $(seq 200); do
    up=$(curl -s "http://127.0.0.1:9571/metrics" | awk '$1 == "activeflow_running" {print int($2)}')
    [ "${up:-0}" -ge "$HELD" ] && break; sleep 0.1
  done
  sleep 2   # let the writer flush the running rows to PostgreSQL
  t0=$(date +%s.%N); kill9_node 1
  res="?"
  for _ in $(seq 300); do
    res=$(node_activeflows 2 bench-node1)
    [ "${res%% *}" = 0 ] && break; sleep 0.1
  done
  t1=$(date +%s.%N)
  awk -v t0="$t0" -v t1="$t1" -v r="$res" -v up="$up" 'BEGIN { split(r, x, " ");
    printf "kill -9 → none of A'"'"'s activeflows running on B: %.2f s (A had %d running; on B: %d still running, %d ended node_lost; heartbeat_ms 1000, node_timeout_ms 5000: defaults)\n",
      t1 - t0, up, x[1], x[2] }'
  stop_sipp "$sipp_pid"; stop_node 2
}

part4() {
  echo "== 4. calls lost during a node loss: 3 nodes behind Kamailio, ${LOSS_RATE}/s x ${LOSS_SECS}s, node 2 killed at $(( LOSS_SECS / 2 ))s"
  local db="" i stat="$WORK/loss.csv" t0 t_down
  [ "${CLUSTER:-1}" = 0 ] || db=$(fresh_db)
  for i in 1 2 3; do launch_node "$i" "$db"; echo "1 sip:127.0.0.1:$(( NODE_SIP + i )) 0 0"; done > "$WORK/dispatcher.list"
  "$KAMAILIO" -DD -E -f "$ROOT/deploy/kamailio/kamailio.cfg" -l "udp:127.0.0.1:$KAM_PORT" \
    -A "DISPATCHER_LIST=\"$WORK/dispatcher.list\"" -Y "$WORK" -P "$WORK/kamailio.pid" -m 64 -M 8 \
    >"$WORK/kamailio.log" 2>&1 &
  KAM_PID=$!
  sleep 2
  rm -f "$stat"*
  (cd "$WORK" && sipp 127.0.0.1:$KAM_PORT -sf "$ROOT/tests/sipp/uac_proxy_engine_bye.xml" -s short \
    -r "$LOSS_RATE" -m $(( LOSS_RATE * LOSS_SECS )) -buff_size 4194304 -i 127.0.0.1 -p "$CALLER_PORT" \
    -nostdin -timeout $(( LOSS_SECS + 90 ))s -trace_stat -stf "$stat" -fd 1 >"$stat.out" 2>&1) &
  local sipp_pid=$!
  sleep $(( LOSS_SECS / 2 ))
  t0=$(date +%s.%N); kill9_node 2
  t_down=""
  for _ in $(seq 100); do
    grep -q "DST-DOWN sip:127.0.0.1:$(( NODE_SIP + 2 ))" "$WORK/kamailio.log" && { t_down=$(date +%s.%N); break; }
    sleep 0.1
  done
  wait "$sipp_pid" || true
  read -r elapsed ok failed retrans causes <<<"$(sipp_result "$stat")"
  awk -v t0="$t0" -v td="${t_down:-0}" -v m=$(( LOSS_RATE * LOSS_SECS )) -v ok="$ok" -v f="$failed" -v c="$causes" -v r="$retrans" 'BEGIN {
    printf "offered %d | completed %d | failed (lost) %d (%.2f %%; %s) | retransmissions %d | kill -9 → Kamailio DST-DOWN %s | calls up on the node at the kill are among the lost (2 s calls: ~%d)\n",
      m, ok, f, 100 * f / m, c, r, (td > 0 ? sprintf("%.2f s", td - t0) : "not seen in 10 s"), '"$LOSS_RATE"' * 2 / 3 }'
  kill -TERM "$KAM_PID" 2>/dev/null || true; wait "$KAM_PID" 2>/dev/null || true; KAM_PID=""
  for i in 1 3; do stop_node "$i"; done
}

write_node_config
for p in $PARTS; do "part$p"; sleep 2; done

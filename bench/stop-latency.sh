#!/usr/bin/env bash
# Operator stop → BYE latency with N calls up (examples/stop_latency.rs): builds release, starts the
# engine with a temp config routing every number to a `hold` flow (answer, sleep 600 s), brings N
# calls up over raw UDP, stops --stops activeflows one at a time, prints p50/p90/p99/max.
# Usage: bench/stop-latency.sh [calls (10000)] [rate (2000)] [stops (1000)]
set -euo pipefail

CALLS=${1:-10000}
RATE=${2:-2000}
STOPS=${3:-1000}
SIP_PORT=${SIP_PORT:-15060}
API_PORT=${API_PORT:-18080}
METRICS_PORT=${METRICS_PORT:-19464}
# Builds into the default target/ unless CARGO_TARGET_DIR says otherwise.
TARGET_DIR=${CARGO_TARGET_DIR:-target}

cd "$(dirname "$0")/.."
echo "== build (release)"
cargo build --release --bin activeflow --example stop_latency

work=$(mktemp -d /tmp/stop-latency.XXXXXX)
engine_pid=""
cleanup() {
    if [[ -n "$engine_pid" ]] && kill -0 "$engine_pid" 2>/dev/null; then
        kill -TERM "$engine_pid" 2>/dev/null || true
        wait "$engine_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/flows"
cat > "$work/flows/hold.json" <<'JSON'
{
  "name": "hold",
  "detail": "Answers and holds the call for 600 s (stop-latency benchmark).",
  "actions": [
    {"type": "answer"},
    {"type": "sleep", "option": {"duration": 600000}},
    {"type": "hangup", "option": {"reason": "normal"}}
  ]
}
JSON
# The default config with every route sent to `hold`; the rest comes from ACTIVEFLOW_* below.
sed -e 's/^flow = "demo"/flow = "hold"/' config/default.toml > "$work/config.toml"
grep -q '^flow = "hold"' "$work/config.toml" || { echo "could not route to hold" >&2; exit 1; }

# Each call holds an RTP socket: raise the fd limit as far as allowed.
ulimit -n "$(ulimit -Hn)" || true
echo "== engine (fd limit $(ulimit -n))"
RUST_LOG=warn \
ACTIVEFLOW_FLOWS_DIR="$work/flows" \
ACTIVEFLOW_SIP_LISTEN="127.0.0.1:$SIP_PORT" \
ACTIVEFLOW_API_LISTEN="127.0.0.1:$API_PORT" \
ACTIVEFLOW_METRICS_LISTEN="127.0.0.1:$METRICS_PORT" \
ACTIVEFLOW_MEDIA_RTP_PORTS=20000-45000 \
ACTIVEFLOW_ENGINE_SHUTDOWN_GRACE_SECONDS=1 \
    "$TARGET_DIR/release/activeflow" serve --config "$work/config.toml" \
    2> "$work/engine.log" &
engine_pid=$!
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$API_PORT/readyz" >/dev/null 2>&1 && break
    kill -0 "$engine_pid" 2>/dev/null || { cat "$work/engine.log" >&2; exit 1; }
    sleep 0.1
done
curl -sf "http://127.0.0.1:$API_PORT/readyz" >/dev/null || { echo "engine not ready" >&2; exit 1; }

echo "== stop_latency: $CALLS calls at $RATE/s, $STOPS stops"
"$TARGET_DIR/release/examples/stop_latency" \
    --sip "127.0.0.1:$SIP_PORT" --api "127.0.0.1:$API_PORT" \
    --calls "$CALLS" --rate "$RATE" --stops "$STOPS" --number 200
echo "engine RSS: $(ps -o rss= -p "$engine_pid" | awk '{printf "%.0f MiB", $1/1024}')"

echo "== stop engine (SIGTERM)"
kill -TERM "$engine_pid"
wait "$engine_pid" || echo "engine exited with $?"
engine_pid=""
if grep -qiE 'error|panick' "$work/engine.log"; then
    echo "engine log (errors):"; grep -iE 'error|panick' "$work/engine.log" | head -20
fi

echo "== machine"
echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  commit: $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (dirty)')"
echo "nproc: $(nproc)  kernel: $(uname -r)"
free -g

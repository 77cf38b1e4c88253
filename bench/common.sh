# Shared helpers for the load scripts in bench/ (sourced, not run). Starts the release engine on
# fixed local ports with a flow that answers and holds the call, and samples its memory.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENGINE_SIP=127.0.0.1:5070
ENGINE_API=127.0.0.1:8070
ENGINE_METRICS=127.0.0.1:9470
WORK="$(mktemp -d /tmp/activeflow-bench.XXXXXX)"
ENGINE_PID=""

need() { command -v "$1" >/dev/null || { echo "missing $1 (apt-get install $2)" >&2; exit 1; }; }
need sipp sip-tester
need curl curl

build() { (cd "$ROOT" && cargo build --release --quiet); }

# write_hold_flow [ringing]: $WORK/flows/hold.json — answer, sleep 10 min, hang up; with
# `ringing` the sleep comes first, so the call is held before the answer.
write_hold_flow() {
  local answer='{"type": "answer"}' sleep='{"type": "sleep", "option": {"duration": 600000}}'
  mkdir -p "$WORK/flows"
  if [ "${1:-}" = ringing ]; then
    printf '{"name": "hold", "actions": [\n  %s,\n  %s,\n  {"type": "hangup"}]}\n' "$sleep" "$answer"
  else
    printf '{"name": "hold", "actions": [\n  %s,\n  %s,\n  {"type": "hangup"}]}\n' "$answer" "$sleep"
  fi > "$WORK/flows/hold.json"
}

# start_engine [max_activeflows]: engine on $ENGINE_SIP with flow hold (answer, sleep 10 min).
start_engine() {
  write_hold_flow
  launch_engine hold "${1:-100000}"
}

# launch_engine FLOW [max_activeflows]: the release engine with every number routed to FLOW (a
# flow in $WORK/flows); prompts from $WORK/prompts, recordings, caches and the database under
# $WORK. STORAGE_PATH= (set and empty) runs without persistence, for comparison. SIPp's built-in
# uac sends no RTP, so the held calls would be hung up by media.rtp_timeout_seconds (default 60):
# the scripts turn it off (RTP_TIMEOUT=N turns it back on).
launch_engine() {
  sed -e "s/^flow = \"demo\".*/flow = \"$1\"/" "$ROOT/config/default.toml" > "$WORK/config.toml"
  ulimit -n "$(ulimit -Hn)" || true
  ACTIVEFLOW_SIP_LISTEN=$ENGINE_SIP ACTIVEFLOW_API_LISTEN=$ENGINE_API \
  ACTIVEFLOW_METRICS_LISTEN=$ENGINE_METRICS ACTIVEFLOW_FLOWS_DIR="$WORK/flows" \
  ACTIVEFLOW_MEDIA_RTP_PORTS=${RTP_PORTS:-20000-59999} ACTIVEFLOW_MEDIA_PROMPTS_DIR="$WORK/prompts" \
  ACTIVEFLOW_MEDIA_RECORDINGS_DIR="$WORK/recordings" ACTIVEFLOW_MEDIA_CACHE_DIR="$WORK/cache" \
  ACTIVEFLOW_STORAGE_PATH="${STORAGE_PATH-$WORK/activeflow.db}" \
  ACTIVEFLOW_ENGINE_MAX_ACTIVEFLOWS=${2:-100000} ACTIVEFLOW_MEDIA_RTP_TIMEOUT_SECONDS=${RTP_TIMEOUT:-0} \
  RUST_LOG=warn \
    "${CARGO_TARGET_DIR:-$ROOT/target}/release/activeflow" serve --config "$WORK/config.toml" 2>"$WORK/engine.log" &
  ENGINE_PID=$!
  for _ in $(seq 100); do
    curl -sf "http://$ENGINE_API/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "engine did not start:" >&2; cat "$WORK/engine.log" >&2; exit 1
}

stop_engine() {
  [ -n "$ENGINE_PID" ] && kill -TERM "$ENGINE_PID" 2>/dev/null && wait "$ENGINE_PID" 2>/dev/null || true
  ENGINE_PID=""
}

cleanup() { stop_engine; pkill -f "sipp.*-p 5081" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
peak_rss_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }

# metric NAME: one sample from the engine's /metrics.
metric() { curl -s "http://$ENGINE_METRICS/metrics" | awk -v m="$1" '$1 == m {print $2}'; }

# sipp_stat FILE FIELD: the cumulative value of a line of SIPp's final statistics screen.
sipp_stat() { grep -E "^ +$2 " "$1" | tail -1 | awk -F'|' '{gsub(/ /, "", $3); print $3}'; }

machine() { echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; $(date -u +%FT%TZ); $(sipp -v 2>/dev/null | grep -o 'SIPp v[^ ]*')"; }

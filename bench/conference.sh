#!/usr/bin/env bash
# Conference mixing under load: ROOMS rooms x PER_ROOM participants (default 100 x 10 = 1,000
# legs) over raw SIP/UDP from examples/conference_load.rs; every leg talks (a tone every 20 ms:
# no leg idle, the mixer's worst case) and counts what it gets back. Reports the p50/p99 of the
# engine's mixing-tick lateness (activeflow_conference_mix_tick_lateness_seconds, the window's delta, to the
# histogram's bucket bound), packets and mixed (non-silent) frames per leg, the engine's CPU per
# leg, and activeflow_conference_frames_dropped_total at each of its four drop points.
#
# The reference, in the same run: the plain media benchmark (bench/media.sh's media_load, the
# `play` flow) at the same leg count, on a fresh engine: its CPU per call is what a leg costs
# without a conference.
#   bench/conference.sh [rooms (100)] [per room (10)] [set-up rate/s (200)] [seconds measured (10)]
source "$(dirname "$0")/common.sh"

ROOMS=${1:-100}
PER_ROOM=${2:-10}
RATE=${3:-200}
MEASURED=${4:-10}
LEGS=$(( ROOMS * PER_ROOM ))
export PROMPT_SECONDS=$(( LEGS / RATE + MEASURED + 15 ))

header "$@"
build --example media_load --example conference_load
ulimit -n "$(ulimit -Hn)" || true

echo "== reference: $LEGS calls playing a prompt (bench/media.sh's media_load, $(variant))"
launch_engine play $(( LEGS + LEGS / 10 ))
"$TARGET_DIR/release/examples/media_load" "$ENGINE_SIP" "$LEGS" "$RATE" play "$MEASURED" "$ENGINE_PID" \
  | sed 's/^engine:/reference (play):/' \
  | awk -v n="$LEGS" '{ print } /engine CPU/ { if (match($0, /engine CPU [0-9.]+/)) {
      c = substr($0, RSTART + 11, RLENGTH - 11); printf "reference CPU per leg: %.3f ms CPU per leg-second\n", c / 100 / n * 1000 } }'
stop_engine
sleep 2

echo "== engine: $ROOMS rooms x $PER_ROOM participants, every leg talking ($(variant))"
# The room is the dialled number: conference_join joins ${call.destination.target}.
write_flow play
printf '{"name": "conference", "actions": [{"type": "conference_join", "option": {"conference_id": "${call.destination.target}"}}, {"type": "hangup"}]}\n' \
  > "$WORK/flows/conference.json"
sed -e 's/^flow = "demo".*/flow = "conference"/' "$ROOT/config/default.toml" > "$WORK/config.toml"
rm -f "$WORK"/activeflow.db*
ACTIVEFLOW_SIP_LISTEN=$ENGINE_SIP ACTIVEFLOW_API_LISTEN=$ENGINE_API \
ACTIVEFLOW_METRICS_LISTEN=$ENGINE_METRICS ACTIVEFLOW_FLOWS_DIR="$WORK/flows" \
ACTIVEFLOW_MEDIA_RTP_PORTS=${RTP_PORTS:-20000-59999} ACTIVEFLOW_MEDIA_PROMPTS_DIR="$WORK/prompts" \
ACTIVEFLOW_MEDIA_RECORDINGS_DIR="$WORK/recordings" ACTIVEFLOW_MEDIA_CACHE_DIR="$WORK/cache" \
ACTIVEFLOW_STORAGE_PATH="${STORAGE_PATH-$WORK/activeflow.db}" \
ACTIVEFLOW_ENGINE_MAX_ACTIVEFLOWS=$(( LEGS + LEGS / 10 )) ACTIVEFLOW_MEDIA_RTP_TIMEOUT_SECONDS=0 \
ACTIVEFLOW_ENGINE_SHUTDOWN_GRACE_SECONDS=1 RUST_LOG=${LOG:-warn} \
  "$BIN" serve --config "$WORK/config.toml" 2>"$WORK/engine.log" &
ENGINE_PID=$!
for _ in $(seq 100); do curl -sf "http://$ENGINE_API/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
"$TARGET_DIR/release/examples/conference_load" "$ENGINE_SIP" "$LEGS" "$ROOMS" "$RATE" room- \
  "$MEASURED" "$ENGINE_PID" "$ENGINE_METRICS"
dropped() { curl -s "http://$ENGINE_METRICS/metrics" | awk -v w="$1" '$1 == "activeflow_conference_frames_dropped_total{where=\"" w "\"}" { print $2; f = 1 } END { if (!f) print "?" }'; }
echo "frames dropped: to_room $(dropped to_room) room_jitter $(dropped room_jitter) to_session $(dropped to_session) session_jitter $(dropped session_jitter); late RTP ticks skipped $(metric activeflow_rtp_late_ticks_total); peak RSS $(( $(peak_rss_kib "$ENGINE_PID") / 1024 )) MiB"

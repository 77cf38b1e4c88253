#!/usr/bin/env bash
# Media pacing under load (examples/media_load.rs): N concurrent calls, each answered by a flow
# that plays a 60 s prompt; measures the deviation of every RTP inter-packet interval from 20 ms
# (p50/p99/max) over a window, packets per call, and the engine's CPU. In the same run, the same
# receiver measures N senders paced by tokio timers (the reference: what the machine and the
# receiver add by themselves). Usage: bench/media.sh [calls (1000)] [rate/s (200)] [seconds (10)]
set -euo pipefail
source "$(dirname "$0")/common.sh"

CALLS=${1:-1000}
RATE=${2:-200}
SECONDS_MEASURED=${3:-10}

echo "== build (release)"
(cd "$ROOT" && cargo build --release --quiet --bin activeflow --example media_load)
machine

mkdir -p "$WORK/flows" "$WORK/prompts"
# A 60 s prompt: 8 kHz mono 16-bit, a 440 Hz tone.
python3 - "$WORK/prompts/prompt.wav" <<'PY'
import math, struct, sys, wave
with wave.open(sys.argv[1], "wb") as w:
    w.setnchannels(1); w.setsampwidth(2); w.setframerate(8000)
    w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / 8000))) for i in range(8000 * 60)))
PY
cat > "$WORK/flows/play.json" <<'JSON'
{"name": "play", "actions": [
  {"type": "answer"},
  {"type": "play", "option": {"stream_urls": ["prompt.wav"]}},
  {"type": "hangup"}]}
JSON
launch_engine play

echo "== reference: $CALLS senders paced by tokio timers, same receiver"
"$ROOT/target/release/examples/media_load" --reference "$CALLS" "$SECONDS_MEASURED"
echo "== engine: $CALLS calls playing a prompt"
"$ROOT/target/release/examples/media_load" "$ENGINE_SIP" "$CALLS" "$RATE" play "$SECONDS_MEASURED" "$ENGINE_PID"
echo "engine late ticks skipped: $(metric rtp_late_ticks_total); peak RSS $(( $(peak_rss_kib "$ENGINE_PID") / 1024 )) MiB"

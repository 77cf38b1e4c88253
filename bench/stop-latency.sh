#!/usr/bin/env bash
# Operator stop → BYE latency with N calls up (examples/stop_latency.rs, a raw-UDP caller): the
# engine (default config, RUST_LOG=warn; route * → answer + sleep 10 min) gets N calls at RATE/s,
# then STOPS activeflows are stopped one at a time over POST /v1/activeflows/{id}/stop; the tool
# times each stop → the BYE read by its receive thread and prints p50/p90/p99/max. Next to it
# the engine's own counters over the run: activeflows ended by operator_stop (one per stop),
# ended normally by the caller's BYE (reason hangup: the tool's clean-up), ack_timeout, 503s
# sent, and calls left up after the clean-up.
#
# Reference in the same run: the same tool, the same N calls, against SIPp as the callee
# (bench/sipp/uas_bye_on_info.xml), triggered by an in-dialog INFO instead of the HTTP stop; SIPp
# sends its BYE on the INFO. Timed by `stop_latency --trigger info` when the tool has it (the same
# receive thread as the engine's figure), otherwise by bench/bye_reference.py (a Python caller in
# its own process doing the same steps: INFO sent → BYE read); each line names which.
#   bench/stop-latency.sh [calls (10000)] [rate (2000)] [stops (1000)]
source "$(dirname "$0")/common.sh"

CALLS=${1:-10000}
RATE=${2:-2000}
STOPS=${3:-1000}
header "$@"
build --example stop_latency
TOOL="$TARGET_DIR/release/examples/stop_latency"
ulimit -n "$(ulimit -Hn)" || true

echo "== reference: $CALLS calls to SIPp's uas, $STOPS BYEs triggered by INFO, one at a time"
start_sipp_bg -sf "$BENCH/sipp/uas_bye_on_info.xml" -mp 17000 -i 127.0.0.1 -p "${REF_SIP##*:}" \
  -buff_size 4194304
uas_pid=$!
sleep 0.5
if "$TOOL" --help 2>/dev/null | grep -q -- '--trigger'; then
  # The same tool as the engine's figure, triggering with INFO instead of the HTTP stop.
  "$TOOL" --sip "$REF_SIP" --trigger info --calls "$CALLS" --rate "$RATE" --stops "$STOPS" --number 200 \
    | sed 's/^/reference (sipp, stop_latency --trigger info): /'
else
  # stop_latency cannot trigger with INFO yet: the Python caller in bench/ does the same steps.
  python3 "$BENCH/bye_reference.py" "$REF_SIP" "$CALLS" "$RATE" "$STOPS" \
    | sed 's/^/reference (sipp, bench\/bye_reference.py): /'
fi
stop_sipp "$uas_pid"
sleep 2

echo "== engine: $CALLS calls, $STOPS operator stops, one at a time ($(variant))"
launch_engine hold $(( CALLS + CALLS / 10 ))
before=$(counters)
stops0=$(metric 'activeflow_ended_total{reason="operator_stop"}')
"$TOOL" --sip "$ENGINE_SIP" --api "$ENGINE_API" --calls "$CALLS" --rate "$RATE" --stops "$STOPS" --number 200 \
  | sed 's/^/engine: /'
left=$(wait_idle 5)
stops1=$(metric 'activeflow_ended_total{reason="operator_stop"}')
counters_delta "$before" "$(counters)" | awk -v s=$(( stops1 - stops0 )) -v left="$left" \
    -v rss="$(rss_kib "$ENGINE_PID")" '{
  printf "engine counters: ended operator_stop %d, ended hangup (caller BYE) %d, ack_timeout %d, error %d, 503s sent %d | calls left up %d (5 s after the clean-up) | RSS %d MiB\n",
    s, $4, $2, $6, $1, left, rss / 1024 }'
stop_engine
if grep -qiE 'error|panick' "$WORK/engine.log"; then
  echo "engine log (errors):"; grep -iE 'error|panick' "$WORK/engine.log" | head -20
fi

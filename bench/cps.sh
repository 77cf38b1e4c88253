#!/usr/bin/env bash
# Calls per second, as achieved: SIPp offers RATE calls/s for SECONDS against the engine and, in
# the same run just before, against SIPp's own uas (the reference). The achieved rate of each side
# is completed calls ÷ SIPp's own elapsed time (its -trace_stat file: last row, CurrentTime −
# StartTime, SuccessfulCall(C)); the ratio is engine ÷ reference. Every run starts a fresh engine
# after the reference has exited, so what one run leaves behind does not count in the next.
#
# An engine run PASSes only if every offered call completed (SuccessfulCall == -m), none failed,
# the engine sent no 503 (Δ sip_responses_sent_total{code="503"}), no activeflow ended with
# ack_timeout or rtp_timeout (Δ activeflow_ended_total{reason=...}), and calls_active is back to 0
# within 5 s. Each run's line says PASS or FAIL and why; each rate is run REPEATS times (default 3)
# and summarised (min/median achieved for both sides, ratio of medians, pass count).
#
#   bench/cps.sh [--flow hold|media] RATE [SECONDS (30)]
#   bench/cps.sh [--flow hold|media] --search [SECONDS (30)]
#        the highest rate where every repeat passes: STEPS (default 3000 6000 ... 18000), then
#        bisects to 500/s; a rate stops at its first failing repeat
#
# Flows: hold (default) = SIPp's built-in uac (hangs up right after its ACK) against route * →
# answer + sleep 10 min, reference SIPp's built-in uas. media = bench/sipp/uac_media.xml
# (INVITE with SDP, ACK, RTP from a pcap, answers BYE) against answer → play a 1 s prompt →
# hangup (the engine's BYE), with media.rtp_timeout_seconds back at 60 (RTP_TIMEOUT overrides);
# reference bench/sipp/uas_media.xml (answers, sends RTP, BYE after 1 s). A media call lasts about
# 1 s, so its achieved rate (calls ÷ elapsed, which includes the last calls' length) is below
# the offered rate on both sides.
#
# Config: the default (config/default.toml: storage on) with RUST_LOG=warn is the headline;
# STORAGE_PATH= (storage off) and LOG=info are variants, named in every line.
source "$(dirname "$0")/common.sh"

ARGS=("$@")
flow=hold search="" secs=30 rate=""
while [ $# -gt 0 ]; do
  case $1 in
    --flow) flow=$2; shift 2 ;;
    --search) search=1; shift ;;
    -h|--help) sed -n '2,/^source/p' "$0" | sed '$d'; exit 0 ;;
    *) if [ -z "$search" ] && [ -z "$rate" ]; then rate=$1; else secs=$1; fi; shift ;;
  esac
done
case $flow in hold|media) ;; *) echo "--flow hold|media" >&2; exit 2 ;; esac
[ -n "$search" ] || [ -n "$rate" ] || { echo "usage: bench/cps.sh [--flow hold|media] RATE|--search [SECONDS]" >&2; exit 2; }
header "${ARGS[@]}"
REPEATS=${REPEATS:-3}
if [ "$flow" = media ]; then export RTP_TIMEOUT=${RTP_TIMEOUT:-60}; fi
build
if [ -n "$search" ]; then
  good=0 bad=0
  for r in ${STEPS:-3000 6000 9000 12000 15000 18000}; do
    if cps_rate "$flow" "$r" "$secs" "$REPEATS" first; then good=$r; else bad=$r; break; fi
    sleep 5
  done
  while [ "$bad" -gt 0 ] && [ $(( bad - good )) -gt 500 ]; do
    mid=$(( (good + bad) / 2 / 250 * 250 )); sleep 5
    if cps_rate "$flow" "$mid" "$secs" "$REPEATS" first; then good=$mid; else bad=$mid; fi
  done
  echo "SEARCH $(variant) | flow $flow | highest rate where $REPEATS of $REPEATS runs of ${secs}s passed: ${good}/s (first failing: $([ "$bad" -gt 0 ] && echo "${bad}/s" || echo none))"
else
  cps_rate "$flow" "$rate" "$secs" "$REPEATS" || true
fi

#!/usr/bin/env bash
# Calls per second: SIPp's built-in `uac` against the engine (route * → answer + long sleep; the
# caller hangs up at once) and, in the same run, against SIPp's built-in `uas` as the reference.
# Prints successful calls/s for both, their ratio, failed calls and the engine's peak RSS.
#   bench/cps.sh RATE [SECONDS]     one rate (default 30 s)
#   bench/cps.sh --search [SECONDS] the highest rate with zero failed calls (steps, then bisects)
source "$(dirname "$0")/common.sh"

DURATION=30
run_sipp() { # target rate seconds out
  timeout $(( $3 + 90 )) sipp -sn uac "$1" -r "$2" -m $(( $2 * $3 )) -buff_size 4194304 \
    -i 127.0.0.1 -p 5081 -nostdin -timeout $(( $3 + 60 ))s >"$4" 2>&1 || true
}

# one RATE SECONDS → prints a result line; returns 0 when the engine had no failed call
one() {
  local rate=$1 secs=$2
  sipp -sn uas -i 127.0.0.1 -p 5090 -buff_size 4194304 -nostdin -bg >/dev/null 2>&1 || true  # -bg exits 99
  run_sipp 127.0.0.1:5090 "$rate" "$secs" "$WORK/ref.txt"
  pkill -f "sipp -sn uas -i 127.0.0.1 -p 5090" || true
  # The reference's exit (it frees every call it held) must not share the cores with the
  # engine's run: wait until it is gone, then let the machine settle.
  while pgrep -f "sipp -sn uas -i 127.0.0.1 -p 5090" >/dev/null; do sleep 0.1; done
  sleep 2
  run_sipp "$ENGINE_SIP" "$rate" "$secs" "$WORK/eng.txt"
  local ref_ok ref_fail eng_ok eng_fail
  ref_ok=$(sipp_stat "$WORK/ref.txt" "Successful call"); ref_fail=$(sipp_stat "$WORK/ref.txt" "Failed call")
  eng_ok=$(sipp_stat "$WORK/eng.txt" "Successful call"); eng_fail=$(sipp_stat "$WORK/eng.txt" "Failed call")
  awk -v r="$rate" -v s="$secs" -v ro="${ref_ok:-0}" -v rf="${ref_fail:-0}" -v eo="${eng_ok:-0}" \
      -v ef="${eng_fail:-0}" -v rss="$(peak_rss_kib "$ENGINE_PID")" 'BEGIN {
    printf "rate %6d/s %3ds | sipp-uas %8.1f calls/s (%d failed) | engine %8.1f calls/s (%d failed) | ratio %.3f | engine peak RSS %d MiB\n",
      r, s, ro / s, rf, eo / s, ef, (ro > 0 ? eo / ro : 0), rss / 1024 }'
  [ "${eng_fail:-1}" = 0 ] && [ "${eng_ok:-0}" -gt 0 ]
}

build
start_engine
machine
if [ "${1:-}" = "--search" ]; then
  secs=${2:-$DURATION}; good=0; bad=0
  for rate in 3000 6000 9000 12000 15000 18000; do
    if one "$rate" "$secs"; then good=$rate; else bad=$rate; break; fi
    sleep 5
  done
  while [ "$bad" -gt 0 ] && [ $(( bad - good )) -gt 1000 ]; do
    mid=$(( (good + bad) / 2 / 500 * 500 )); sleep 5
    if one "$mid" "$secs"; then good=$mid; else bad=$mid; fi
  done
  echo "highest rate sustained for ${secs}s with 0 failed calls: ${good}/s (first failing: ${bad:-none}/s)"
else
  one "${1:-3000}" "${2:-$DURATION}"
fi

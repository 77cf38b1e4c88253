#!/usr/bin/env bash
# Concurrent calls: N calls held by activeflows, opened by SIPp's built-in `uac` at SETUP_RATE/s
# (default 4000; lower it if the overload guard refuses set-ups on a busy machine), on the
# default config (storage on, RUST_LOG=warn). Prints the engine's RSS idle and with the calls up
# (read 5 s after the last is up), per call, and SIPp's own RSS per call holding the same calls
# (the reference of the same run; its baseline is the same SIPp command with one call in progress).
#   bench/concurrency.sh [N ...]             answered calls (answer + sleep 10 min). Default:
#                                            10000 and as many as the open-file limit allows
#   bench/concurrency.sh --ringing [N ...]   calls held before the answer (sleep 10 min, then
#                                            answer); default 10000 50000 100000
# Each answered call holds one RTP socket, so answered calls are capped by the open-file limit:
# the engine's RTP socket budget is the limit less a reserve (a quarter, at most 512), and
# INVITEs beyond it are refused with 503. The default answered N is that budget, measured. A
# call not yet answered holds no socket, so --ringing is not capped by it: the 100,000 figure is
# a ringing figure. With two or more answered sizes, an EXTRAPOLATION line (not a measurement)
# estimates 100,000 answered calls from the marginal cost between the last two sizes, and says so.
source "$(dirname "$0")/common.sh"

ARGS=("$@")
mode=answered
if [ "${1:-}" = "--ringing" ]; then mode=ringing; shift; fi
ulimit -n "$(ulimit -Hn)" || true
limit=$(ulimit -n)
budget=$(( limit - (limit / 4 < 512 ? limit / 4 : 512) ))
if [ "$mode" = ringing ]; then sizes=${*:-10000 50000 100000}; else sizes=${*:-10000 $budget}; fi

header "${ARGS[@]}"
build
echo "mode: $mode; open-file limit: soft $(ulimit -Sn), hard $(ulimit -Hn); engine RTP socket budget $budget"
measured=""
for n in $sizes; do
  if [ "$mode" = ringing ]; then launch_engine ringing $(( n + n / 10 )); else launch_engine hold $(( n + n / 10 )); fi
  # SIPp's own baseline: the same command with one call in progress, before the N calls start.
  start_sipp_bg -sn uac "$REF_SIP" -r 1 -m 1 -l 1 -d 600000 -buff_size 4194304 -i 127.0.0.1 -p "$CALLER_PORT"
  sipp_pid=$!
  sleep 1
  sipp_base=$(rss_kib "$sipp_pid")
  stop_sipp "$sipp_pid"
  base=$(rss_kib "$ENGINE_PID")
  before=$(counters)
  # A ringing call is held by SIPp waiting for its 200 (it stops retransmitting at the 100);
  # an answered one by the pause after the ACK.
  start_sipp_bg -sn uac "$ENGINE_SIP" -r "${SETUP_RATE:-4000}" -m "$n" -l "$n" -d 600000 -buff_size 4194304 \
    -i 127.0.0.1 -p "$CALLER_PORT"
  sipp_pid=$!
  # Wait until N are up, or the count stops growing for 3 s (refused with 503 beyond the budget).
  up=0; prev=-1; still=0
  for _ in $(seq 600); do
    if [ "$mode" = ringing ]; then up=$(metric calls_active); else up=$(metric activeflow_running); fi
    up=${up%.*}
    [ "$up" -ge "$n" ] && break
    if [ "$up" = "$prev" ]; then still=$((still + 1)); [ "$still" -ge 6 ] && break; else still=0; fi
    prev=$up; sleep 0.5
  done
  sleep 5  # the last INVITEs' transactions settle; SIPp's retransmissions stop
  rss=$(rss_kib "$ENGINE_PID")
  sipp_rss=$(rss_kib "$sipp_pid")
  flows=$(metric activeflow_running); active=$(metric calls_active)
  refused=$(counters_delta "$before" "$(counters)" | awk '{print $1}')
  awk -v mode="$mode" -v var="$(variant)" -v n="$n" -v up="$up" -v f="${flows%.*}" -v a="${active%.*}" \
      -v b="$base" -v r="$rss" -v sb="$sipp_base" -v sr="$sipp_rss" -v x="$refused" \
      -v fds="$(ls "/proc/$ENGINE_PID/fd" | wc -l)" 'BEGIN {
    e = (up > 0 ? (r - b) / up : 0); s = (up > 0 ? (sr - sb) / up : 0)
    printf "CONCURRENCY %s | %s | N=%6d requested, %6d up (calls_active %d, activeflows running %d), %d 503s | engine RSS idle %d MiB, with calls %d MiB: %.2f KiB per call | sipp %.2f KiB per call | ratio %.2f | engine open fds %d\n",
      mode, var, n, up, a, f, x, b / 1024, r / 1024, e, s, (s > 0 ? e / s : 0), fds }'
  measured+="$up $rss "
  stop_sipp "$sipp_pid"
  stop_engine
  sleep 2
done
if [ "$mode" = answered ]; then
  # shellcheck disable=SC2086
  set -- $measured
  if [ $# -ge 4 ]; then
    awk -v all="$measured" 'BEGIN {
      n = split(all, v, " "); n2 = v[n - 1]; r2 = v[n]; n1 = v[n - 3]; r1 = v[n - 2]  # the last two sizes
      if (n2 <= n1) { print "EXTRAPOLATION skipped: the two largest answered runs did not differ in calls up"; exit }
      k = (r2 - r1) / (n2 - n1)
      printf "EXTRAPOLATION (not measured) | 100000 answered calls ~ %d MiB = RSS at %d up (%d MiB) + (100000 - %d) x the marginal %.2f KiB per call between %d and %d up\n",
        (r2 + (100000 - n2) * k) / 1024, n2, r2 / 1024, n2, k, n1, n2 }'
  fi
fi

#!/usr/bin/env bash
# Concurrent calls: N calls held by activeflows, opened by SIPp's built-in `uac`; prints the
# engine's RSS before and with N calls up, per call, and SIPp's own RSS per call holding the same
# calls (the reference of the same run).
#   bench/concurrency.sh [N ...]             answered calls (answer + long sleep); default 10000 19000
#   bench/concurrency.sh --ringing [N ...]   calls held before the answer (long sleep, then answer);
#                                            default 10000 50000 100000
# An answered call holds one RTP socket, so answered N is capped by the process's open-file limit
# (see docs/BENCHMARKS.md): beyond `ulimit -Hn` minus a margin calls are refused with 503, and
# reported. A call that has not been answered holds no socket, so --ringing is not capped by it.
source "$(dirname "$0")/common.sh"

mode=answered
if [ "${1:-}" = "--ringing" ]; then mode=ringing; shift; fi
if [ "$mode" = ringing ]; then sizes=${*:-10000 50000 100000}; else sizes=${*:-10000 19000}; fi

build
machine
echo "mode: $mode; open-file limit: soft $(ulimit -Sn), hard $(ulimit -Hn)"
for n in $sizes; do
  if [ "$mode" = ringing ]; then write_hold_flow ringing; else write_hold_flow; fi
  launch_engine hold $(( n + n / 10 ))
  base=$(rss_kib "$ENGINE_PID")
  # A ringing call is held by SIPp waiting for its 200 (it stops retransmitting at the 100);
  # an answered one by the pause after the ACK.
  sipp -sn uac "$ENGINE_SIP" -r 4000 -m "$n" -l "$n" -d 600000 -buff_size 4194304 \
    -i 127.0.0.1 -p 5081 -nostdin -bg >/dev/null 2>&1 || true  # -bg exits 99
  sipp_pid=$(pgrep -f "sipp -sn uac $ENGINE_SIP" | head -1)
  sipp_base=$(rss_kib "$sipp_pid")
  # Wait until N are up, or the count stops growing for 3 s (refused with 503 beyond the limit).
  up=0; prev=-1; still=0
  for _ in $(seq 600); do
    if [ "$mode" = ringing ]; then up=$(metric calls_active); else up=$(metric activeflow_running); fi
    up=${up%.*}; up=${up:-0}
    [ "$up" -ge "$n" ] && break
    if [ "$up" = "$prev" ]; then still=$((still + 1)); [ "$still" -ge 6 ] && break; else still=0; fi
    prev=$up; sleep 0.5
  done
  sleep 5  # the last INVITEs' transactions settle; SIPp's retransmissions stop
  rss=$(rss_kib "$ENGINE_PID")
  sipp_rss=$(rss_kib "$sipp_pid")
  flows=$(metric activeflow_running); flows=${flows%.*}
  awk -v n="$n" -v up="$up" -v f="${flows:-0}" -v b="$base" -v r="$rss" -v sb="$sipp_base" \
      -v sr="$sipp_rss" -v fds="$(ls /proc/$ENGINE_PID/fd | wc -l)" 'BEGIN {
    e = (up > 0 ? (r - b) / up : 0); s = (up > 0 ? (sr - sb) / up : 0)
    printf "N=%6d requested, %6d calls up, %6d activeflows running | engine RSS idle %d MiB, with calls %d MiB: %.2f KiB per call | sipp %.2f KiB per call | ratio %.2f | open fds %d\n",
      n, up, f, b / 1024, r / 1024, e, s, (s > 0 ? e / s : 0), fds }'
  pkill -f "sipp -sn uac $ENGINE_SIP" || true
  stop_engine
  sleep 2
done

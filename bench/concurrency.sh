#!/usr/bin/env bash
# Concurrent calls: N calls held by activeflows (answer + long sleep), opened by SIPp's built-in
# `uac` (-d keeps each call up); prints the engine's RSS before and with N calls up, and per call.
#   bench/concurrency.sh [N ...]     default: 10000 19000
# Every call holds one RTP socket, so N is capped by the process's open-file limit (see
# docs/BENCHMARKS.md): N above `ulimit -Hn` minus a margin is refused with 503, and reported.
source "$(dirname "$0")/common.sh"

build
machine
echo "open-file limit: soft $(ulimit -Sn), hard $(ulimit -Hn)"
for n in ${@:-10000 19000}; do
  start_engine
  base=$(rss_kib "$ENGINE_PID")
  sipp -sn uac "$ENGINE_SIP" -r 2000 -m "$n" -l "$n" -d 600000 -buff_size 4194304 \
    -i 127.0.0.1 -p 5081 -nostdin -bg >/dev/null 2>&1 || true  # -bg exits 99
  # Wait until N are up, or the count stops growing for 3 s (refused with 503 beyond the limit).
  up=0; prev=-1; still=0
  for _ in $(seq 600); do
    up=$(metric activeflow_running); up=${up%.*}; up=${up:-0}
    [ "$up" -ge "$n" ] && break
    if [ "$up" = "$prev" ]; then still=$((still + 1)); [ "$still" -ge 6 ] && break; else still=0; fi
    prev=$up; sleep 0.5
  done
  sleep 2
  rss=$(rss_kib "$ENGINE_PID")
  up=${up%.*}
  awk -v n="$n" -v up="$up" -v b="$base" -v r="$rss" -v fds="$(ls /proc/$ENGINE_PID/fd | wc -l)" 'BEGIN {
    printf "N=%6d requested, %6d up | RSS idle %d MiB, with calls %d MiB | %.2f KiB per call | open fds %d\n",
      n, up, b / 1024, r / 1024, (up > 0 ? (r - b) / up : 0), fds }'
  pkill -f "sipp -sn uac $ENGINE_SIP" || true
  stop_engine
  sleep 2
done

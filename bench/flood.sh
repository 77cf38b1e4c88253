#!/usr/bin/env bash
# Overload: an INVITE flood (SIPp's built-in `uac`, the caller hangs up at once) at RATE for
# SECONDS against the engine (route * → answer + long sleep, storage off). Prints what SIPp saw
# (its per-message table), the engine's 200/503 counts, its peak RSS, and 40 s and 80 s later
# its RSS and the calls still up — the engine must stay up, refuse the excess with 503 and give
# memory back.
#   bench/flood.sh [RATE (34000)] [SECONDS (10)]
source "$(dirname "$0")/common.sh"

rate=${1:-34000}
secs=${2:-10}
export STORAGE_PATH=
build
start_engine
machine
timeout $(( secs + 200 )) sipp -sn uac "$ENGINE_SIP" -r "$rate" -m $(( rate * secs )) -buff_size 4194304 \
  -i 127.0.0.1 -p 5081 -nostdin -timeout 120s >"$WORK/flood.txt" 2>&1 || true
echo "offered $(( rate * secs )) at ${rate}/s: successful $(sipp_stat "$WORK/flood.txt" 'Successful call') failed $(sipp_stat "$WORK/flood.txt" 'Failed call')"
grep -E "^ +(INVITE|100|180|200|ACK|BYE) " "$WORK/flood.txt" || true
grep -E 'Messages +Retrans' "$WORK/flood.txt" | tail -1 || true
curl -s "http://$ENGINE_METRICS/metrics" \
  | grep -E '^(sip_responses_sent_total\{code="(200|503)"\}|calls_active|sip_malformed_total)' || true
echo "engine peak RSS $(( $(peak_rss_kib "$ENGINE_PID") / 1024 )) MiB"
for t in 40 80; do
  sleep 40
  kill -0 "$ENGINE_PID" || { echo "engine died"; exit 1; }
  echo "+${t} s: RSS $(( $(rss_kib "$ENGINE_PID") / 1024 )) MiB, calls_active $(metric calls_active)"
done
curl -s "http://$ENGINE_METRICS/metrics" | grep -E '^activeflow_ended_total' | grep -v ' 0$' || true

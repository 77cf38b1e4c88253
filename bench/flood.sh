#!/usr/bin/env bash
# Overload ("no congestion collapse"): given R, the failure-free rate of bench/cps.sh on the same
# config, SIPp's built-in uac offers 1.5×R and 2×R for SECONDS each (the caller hangs up right after
# its ACK) against the engine on the default config (storage on, RUST_LOG=warn; route * → answer +
# sleep 10 min), a fresh engine per level. The same SIPp command against SIPp's own uas, just
# before, is the reference under the same flood.
#
# Per level it prints what SIPp saw (achieved = completed ÷ SIPp's elapsed time, failures by
# cause, retransmissions) for both sides, and the engine's own counters over the flood: the
# achieved rate as a fraction of R, 503s sent, activeflows ended normally (reason hangup: the
# caller's BYE), ended by ack_timeout and by error, calls still up 5 s and SETTLE s (default 40)
# after the flood, peak RSS and RSS after SETTLE s. The engine must stay up, keep completing calls
# near R, refuse the excess with 503, leave no call up and give memory back.
#   bench/flood.sh R [SECONDS (10)]         levels 1.5×R and 2×R (LEVELS="1.5 2" to change)
source "$(dirname "$0")/common.sh"

[ $# -ge 1 ] || { echo "usage: bench/flood.sh R [SECONDS]" >&2; exit 2; }
R=$1 secs=${2:-10} settle=${SETTLE:-40}
header "$@"
build
for level in ${LEVELS:-1.5 2}; do
  rate=$(awk -v r="$R" -v l="$level" 'BEGIN { printf "%d", r * l }')
  calls=$(( rate * secs ))
  # The reference: SIPp's uas under the same flood.
  rm -f "$WORK"/ref.csv* "$WORK"/eng.csv*
  start_sipp_bg -sn uas -i 127.0.0.1 -p "${REF_SIP##*:}" -buff_size 4194304
  uas_pid=$!
  sleep 0.5
  run_uac "$REF_SIP" "$rate" "$calls" "$WORK/ref.csv"
  stop_sipp "$uas_pid"
  sleep 2
  launch_engine hold
  before=$(counters)
  run_uac "$ENGINE_SIP" "$rate" "$calls" "$WORK/eng.csv"
  kill -0 "$ENGINE_PID" 2>/dev/null || { echo "FLOOD ${level}xR: engine died"; exit 1; }
  sleep 5
  up5=$(metric calls_active); peak=$(peak_rss_kib "$ENGINE_PID")
  sleep $(( settle > 5 ? settle - 5 : 0 ))
  kill -0 "$ENGINE_PID" 2>/dev/null || { echo "FLOOD ${level}xR: engine died"; exit 1; }
  upn=$(metric calls_active); rss=$(rss_kib "$ENGINE_PID")
  delta=$(counters_delta "$before" "$(counters)")
  awk -v var="$(variant)" -v l="$level" -v R="$R" -v r="$rate" -v s="$secs" -v m="$calls" \
      -v ref="$(sipp_result "$WORK/ref.csv")" -v eng="$(sipp_result "$WORK/eng.csv")" -v d="$delta" \
      -v up5="${up5%.*}" -v upn="${upn%.*}" -v settle="$settle" -v peak="$peak" -v rss="$rss" 'BEGIN {
    split(ref, F, " "); split(eng, E, " "); split(d, D, " ")
    ra = (F[1] > 0 ? F[2] / F[1] : 0); ea = (E[1] > 0 ? E[2] / E[1] : 0)
    printf "FLOOD %s | %sxR = %d/s x %ds = %d offered (R %d/s) | sipp-uas achieved %.1f/s = %.2f R (%d completed, %d failed: %s; %d retrans) | engine achieved %.1f/s = %.2f R (%d completed, %d failed: %s; %d retrans)",
      var, l, r, s, m, R, ra, ra / R, F[2], F[3], F[5], F[4], ea, ea / R, E[2], E[3], E[5], E[4]
    printf " | engine: 503s sent %d, ended hangup %d, ack_timeout %d, error %d | calls left up %d at +5 s, %d at +%d s | peak RSS %d MiB, %d MiB at +%d s\n",
      D[1], D[4], D[2], D[6], up5, upn, settle, peak / 1024, rss / 1024, settle }'
  stop_engine
  sleep 3
done

#!/usr/bin/env bash
# Media pacing under load: N concurrent calls over raw SIP/UDP from examples/media_load.rs, each
# with its own RTP socket, answered by a flow that plays a prompt; over a window of SECONDS the
# receiver takes every packet's kernel receive timestamp (SO_TIMESTAMPNS) and reports how far each
# RTP inter-packet interval is from 20 ms (p50/p99/max), packets per call, and the sender's CPU.
#
# The reference, in the same run and with the same receiver (REF=):
#   sipp (default)  SIPp as the callee (bench/sipp/uas_rtp.xml), a separate process that shares no
#                   thread with the receiver, replaying a generated PCMU pcap per call paced by its
#                   timestamps, with the same media_load call set-up. SIPp plays with one thread
#                   per call: on 2 cores it saturates at ~1,000-2,000 calls (calls short of
#                   packets, its CPU near 200 %), so its figure is valid only below that.
#   thread          media_load --reference: N senders paced by tokio timers on a sender thread of
#                   their own (its own runtime; shares no thread with the receiver). Scales to
#                   5,000 calls; the default above 1,000 calls.
#   none            no reference
# Reference first, then the engine (default config, RUST_LOG=warn), each with the machine
# otherwise idle.
#   bench/media.sh [calls (1000)] [set-up rate/s (200)] [seconds measured (10)]
# 5,000 calls: bench/media.sh 5000 250 10 (REF=thread)
source "$(dirname "$0")/common.sh"

CALLS=${1:-1000}
RATE=${2:-200}
MEASURED=${3:-10}
# Every call must still be playing when the window ends: set-up + 1 s + window + a margin.
export PROMPT_SECONDS=$(( CALLS / RATE + MEASURED + 15 ))

header "$@"
build --example media_load
LOAD="$TARGET_DIR/release/examples/media_load"
ulimit -n "$(ulimit -Hn)" || true

if [ "$CALLS" -gt 1000 ]; then default_ref=thread; else default_ref=sipp; fi
case ${REF:-$default_ref} in
  sipp)
    echo "== reference: SIPp uas replaying RTP to $CALLS calls (separate process), same receiver"
    write_rtp_pcap "$WORK/rtp.pcap" "$PROMPT_SECONDS"
    start_sipp_bg -sf "$BENCH/sipp/uas_rtp.xml" -mp 17000 -i 127.0.0.1 -p "${REF_SIP##*:}" -buff_size 4194304
    uas_pid=$!
    sleep 0.5
    # media_load labels its lines "engine"; here the callee (and the CPU it reports) is SIPp.
    "$LOAD" "$REF_SIP" "$CALLS" "$RATE" ref "$MEASURED" "$uas_pid" | sed 's/^engine:/reference (sipp):/; s/engine CPU/sipp CPU/'
    stop_sipp "$uas_pid"
    sleep 2 ;;
  thread)
    echo "== reference: $CALLS senders paced by tokio timers on their own thread (media_load --reference)"
    "$LOAD" --reference "$CALLS" "$MEASURED" | sed 's/^reference:/reference (thread):/'
    sleep 2 ;;
  none) echo "== reference: none (REF=none)" ;;
  *) echo "REF=sipp|thread|none" >&2; exit 2 ;;
esac

echo "== engine: $CALLS calls playing a prompt ($(variant))"
launch_engine play $(( CALLS + CALLS / 10 ))
"$LOAD" "$ENGINE_SIP" "$CALLS" "$RATE" play "$MEASURED" "$ENGINE_PID"
echo "engine late ticks skipped: $(metric activeflow_rtp_late_ticks_total); peak RSS $(( $(peak_rss_kib "$ENGINE_PID") / 1024 )) MiB; 503s sent: $(counters | awk '{print $1}')"

# Shared helpers for the load scripts in bench/ (sourced, not run): the header every script
# prints, the release engine on local ports with a chosen flow, its counters from /metrics,
# SIPp's statistics file, and one measured calls/s run (engine + SIPp-uas reference).
#
# Environment every script honours:
#   STORAGE_PATH=   (set and empty) runs the engine without persistence; unset = the default
#                   config's SQLite history (under the run's temp dir)
#   LOG=info        the engine's RUST_LOG (default warn: the headline figures log at warn)
#   RTP_TIMEOUT=N   media.rtp_timeout_seconds (default 0 where the caller sends no RTP)
#   CARGO_TARGET_DIR where the release binary is (default $ROOT/target)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/bench"
# Local ports, each overridable from the environment (two runs at once need their own).
ENGINE_SIP=${ENGINE_SIP:-127.0.0.1:5070}
ENGINE_API=${ENGINE_API:-127.0.0.1:8070}
ENGINE_METRICS=${ENGINE_METRICS:-127.0.0.1:9470}
REF_SIP=${REF_SIP:-127.0.0.1:5090}    # SIPp's uas, the reference
CALLER_PORT=${CALLER_PORT:-5072}      # SIPp's uac
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET_DIR/release/activeflow"
WORK="$(mktemp -d /tmp/activeflow-bench.XXXXXX)"
ENGINE_PID=""
SIPP_PIDS=()              # SIPp processes this script started in the background

need() { command -v "$1" >/dev/null || { echo "missing $1 (apt-get install $2)" >&2; exit 1; }; }
need sipp sip-tester
need curl curl
need python3 python3

build() { (cd "$ROOT" && nice -n 10 cargo build --release --quiet --bin activeflow "$@"); }

# header ARGS...: one line naming the commit, the date (UTC), the machine and the exact command
# (with the environment that changes what is measured), so every figure can be cited; the 1-minute
# load average says whether the machine was quiet.
header() {
  local commit dirty env=""
  commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
  dirty=$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo '+dirty')
  for v in STORAGE_PATH LOG RTP_TIMEOUT REPEATS RUNS STEPS SETTLE LEVELS SETUP_RATE REF CARGO_TARGET_DIR; do
    [ -n "${!v+x}" ] && env+="$v=$(printf %q "${!v}") "
  done
  printf '# commit %s%s | %s | %s cores, %s GiB RAM, load %s, %s, open files %s | command: %s%s\n' \
    "$commit" "$dirty" "$(date -u +%FT%TZ)" "$(nproc)" "$(free -g | awk '/Mem:/ {print $2}')" \
    "$(cut -d' ' -f1 /proc/loadavg)" \
    "$(sipp -v 2>/dev/null | grep -o "SIPp v[^ ]*" | sed "s/\.$//")" \
    "$(ulimit -Hn)" "$env" "bench/$(basename "$0")${*:+ $*}"
}

# variant: the engine configuration a result line was measured on.
variant() {
  if [ -n "${STORAGE_PATH+x}" ] && [ -z "$STORAGE_PATH" ]; then printf 'storage off'; else printf 'storage on'; fi
  printf ', log %s' "${LOG:-warn}"
  if [ "${RTP_TIMEOUT:-0}" != 0 ]; then printf ', rtp_timeout %ss' "$RTP_TIMEOUT"; fi
}

# write_prompt FILE SECONDS: an 8 kHz mono 16-bit WAV (a 440 Hz tone), a format `play` accepts.
write_prompt() {
  python3 - "$1" "$2" <<'PY'
import math, struct, sys, wave
with wave.open(sys.argv[1], "wb") as w:
    w.setnchannels(1); w.setsampwidth(2); w.setframerate(8000)
    n = int(8000 * float(sys.argv[2]))
    w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / 8000))) for i in range(n)))
PY
}

# write_rtp_pcap FILE SECONDS: a pcap of one RTP stream (PCMU, 160-byte payload, one packet per
# 20 ms) that SIPp's play_pcap_audio replays paced by its timestamps.
write_rtp_pcap() {
  python3 - "$1" "$2" <<'PY'
import struct, sys
out = open(sys.argv[1], "wb")
out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))  # pcap header, Ethernet
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b)); s = (s >> 16) + (s & 0xFFFF); return ~(s + (s >> 16)) & 0xFFFF
for i in range(int(float(sys.argv[2]) * 50)):
    rtp = struct.pack("!BBHII", 0x80, 0 | (0x80 if i == 0 else 0), i & 0xFFFF, 160 * i, 0x1234ABCD) + bytes([0xFF]) * 160
    udp = struct.pack("!HHHH", 6000, 6000, 8 + len(rtp), 0) + rtp
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xFFFF, 0, 64, 17, 0, bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    frame = bytes(6) + bytes(6) + b"\x08\x00" + ip + udp
    t = i * 0.02
    out.write(struct.pack("<IIII", int(t), int(round((t - int(t)) * 1e6)), len(frame), len(frame)) + frame)
PY
}

# write_flow NAME: $WORK/flows/NAME.json.
#   hold     answer, sleep 10 min, hang up (the caller hangs up first)
#   ringing  sleep 10 min, then answer: the call is held before the answer
#   media    answer, play a 1 s prompt, hang up (the engine sends BYE)
#   play     answer, play a PROMPT_SECONDS (default 60) s prompt, hang up
write_flow() {
  local answer='{"type": "answer"}' sleep='{"type": "sleep", "option": {"duration": 600000}}'
  local play='{"type": "play", "option": {"stream_urls": ["prompt.wav"]}}'
  mkdir -p "$WORK/flows" "$WORK/prompts"
  case $1 in
    hold) printf '{"name": "hold", "actions": [%s, %s, {"type": "hangup"}]}\n' "$answer" "$sleep" ;;
    ringing) printf '{"name": "ringing", "actions": [%s, %s, {"type": "hangup"}]}\n' "$sleep" "$answer" ;;
    media) write_prompt "$WORK/prompts/prompt.wav" 1
      printf '{"name": "media", "actions": [%s, %s, {"type": "hangup"}]}\n' "$answer" "$play" ;;
    play) write_prompt "$WORK/prompts/prompt.wav" "${PROMPT_SECONDS:-60}"
      printf '{"name": "play", "actions": [%s, %s, {"type": "hangup"}]}\n' "$answer" "$play" ;;
    *) echo "unknown flow $1" >&2; exit 2 ;;
  esac > "$WORK/flows/$1.json"
}

# launch_engine FLOW [max_activeflows]: the release engine on config/default.toml with every number
# routed to FLOW (written by write_flow), ports above, prompts, recordings, caches and the
# database under $WORK. SIPp's built-in uac sends no RTP, so media.rtp_timeout_seconds is 0
# unless RTP_TIMEOUT says otherwise (the media flow's caller sends RTP and turns it back on).
launch_engine() {
  write_flow "$1"
  sed -e "s/^flow = \"demo\".*/flow = \"$1\"/" "$ROOT/config/default.toml" > "$WORK/config.toml"
  grep -q "^flow = \"$1\"" "$WORK/config.toml" || { echo "could not route to $1" >&2; exit 1; }
  ulimit -n "$(ulimit -Hn)" || true
  rm -f "$WORK"/activeflow.db*
  ACTIVEFLOW_SIP_LISTEN=$ENGINE_SIP ACTIVEFLOW_API_LISTEN=$ENGINE_API \
  ACTIVEFLOW_METRICS_LISTEN=$ENGINE_METRICS ACTIVEFLOW_FLOWS_DIR="$WORK/flows" \
  ACTIVEFLOW_MEDIA_RTP_PORTS=${RTP_PORTS:-20000-59999} ACTIVEFLOW_MEDIA_PROMPTS_DIR="$WORK/prompts" \
  ACTIVEFLOW_MEDIA_RECORDINGS_DIR="$WORK/recordings" ACTIVEFLOW_MEDIA_CACHE_DIR="$WORK/cache" \
  ACTIVEFLOW_STORAGE_PATH="${STORAGE_PATH-$WORK/activeflow.db}" \
  ACTIVEFLOW_ENGINE_MAX_ACTIVEFLOWS=${2:-100000} ACTIVEFLOW_MEDIA_RTP_TIMEOUT_SECONDS=${RTP_TIMEOUT:-0} \
  ACTIVEFLOW_ENGINE_SHUTDOWN_GRACE_SECONDS=1 RUST_LOG=${LOG:-warn} \
    "$BIN" serve --config "$WORK/config.toml" 2>"$WORK/engine.log" &
  ENGINE_PID=$!
  for _ in $(seq 100); do
    curl -sf "http://$ENGINE_API/readyz" >/dev/null 2>&1 && return 0
    kill -0 "$ENGINE_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "engine did not start:" >&2; tail -20 "$WORK/engine.log" >&2; exit 1
}

stop_engine() {
  if [ -n "$ENGINE_PID" ]; then
    kill -TERM "$ENGINE_PID" 2>/dev/null || true
    wait "$ENGINE_PID" 2>/dev/null || true
  fi
  ENGINE_PID=""
}

# start_sipp_bg ARGS...: a SIPp in the background (its pid in SIPP_PIDS and $!), run in $WORK.
start_sipp_bg() {
  (cd "$WORK" && exec sipp "$@" -nostdin >>"$WORK/sipp-bg.log" 2>&1) &
  SIPP_PIDS+=("$!")
}

# stop_sipp PID: ends one background SIPp and waits until it is gone (its exit frees every call it
# held and must not overlap what is measured next). SIPp may wait on SIGTERM for calls still up
# (a uas whose caller's BYE was lost): SIGKILL after 5 s.
stop_sipp() {
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

cleanup() {
  local p
  stop_engine
  for p in "${SIPP_PIDS[@]}"; do kill -0 "$p" 2>/dev/null && stop_sipp "$p"; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
peak_rss_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
# cpu_ticks PID: user + system clock ticks (1/100 s) the process has used.
cpu_ticks() { awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$1/stat"; }

# metric NAME: one sample from the engine's /metrics (NAME with its labels, as printed there), 0
# when absent.
metric() {
  curl -s "http://$ENGINE_METRICS/metrics" | awk -v m="$1" '$1 == m {v = $2} END {print v + 0}'
}

# counters: the engine's counters a run is judged by, as "503s ack_timeout rtp_timeout hangup
# completed error rtp_in rtp_out" (503s sent; activeflows ended by those reasons; RTP packets
# received and sent).
counters() {
  curl -s "http://$ENGINE_METRICS/metrics" | awk '
    $1 == "sip_responses_sent_total{code=\"503\"}" { c[1] = $2 }
    $1 == "activeflow_ended_total{reason=\"ack_timeout\"}" { c[2] = $2 }
    $1 == "activeflow_ended_total{reason=\"rtp_timeout\"}" { c[3] = $2 }
    $1 == "activeflow_ended_total{reason=\"hangup\"}" { c[4] = $2 }
    $1 == "activeflow_ended_total{reason=\"completed\"}" { c[5] = $2 }
    $1 == "activeflow_ended_total{reason=\"error\"}" { c[6] = $2 }
    $1 == "activeflow_rtp_packets_received_total" { c[7] = $2 }
    $1 == "activeflow_rtp_packets_sent_total" { c[8] = $2 }
    END { printf "%d %d %d %d %d %d %d %d\n", c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8] }'
}

# counters_delta BEFORE AFTER: AFTER − BEFORE, field by field.
counters_delta() { awk -v a="$1" -v b="$2" 'BEGIN { n = split(a, x); split(b, y); for (i = 1; i <= n; i++) printf "%d%s", y[i] - x[i], (i < n ? " " : "\n") }'; }

# wait_idle SECONDS: polls calls_active until 0 or SECONDS pass; prints the last value.
wait_idle() {
  local active=0 i
  for i in $(seq $(( $1 * 10 ))); do
    active=$(metric calls_active); active=${active%.*}
    [ "$active" = 0 ] && break
    sleep 0.1
  done
  echo "$active"
}

# sipp_result FILE: from SIPp's -trace_stat file (';'-separated, a header row, one row per -fd
# period and a last one at exit) the last row as "elapsed successful failed retransmissions
# causes". elapsed = CurrentTime − StartTime in seconds (µs resolution; SIPp's ElapsedTime(C)
# column has whole seconds only); causes = the non-zero Failed*(C) columns, or "-".
sipp_result() {
  [ -s "$1" ] || { echo "0 0 0 0 no-stat-file"; return; }
  awk -F';' 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next } { last = $0 } END {
    split(last, f, ";"); split(f[col["StartTime"]], s, "\t"); split(f[col["CurrentTime"]], c, "\t")
    causes = ""
    for (k in col)
      if (k ~ /^Failed.+\(C\)$/ && k != "FailedCall(C)" && f[col[k]] + 0 > 0)
        causes = causes (causes == "" ? "" : ",") substr(k, 7, length(k) - 9) "=" f[col[k]]
    printf "%.3f %d %d %d %s\n", c[3] - s[3], f[col["SuccessfulCall(C)"]], f[col["FailedCall(C)"]],
      f[col["Retransmissions(C)"]], (causes == "" ? "-" : causes) }' "$1"
}

# run_uac TARGET RATE CALLS STATFILE [SIPP ARGS...]: SIPp's uac (built-in, or -sf SCENARIO among
# the extra args) offering CALLS at RATE/s, until every call ended or timed out.
run_uac() {
  local target=$1 rate=$2 calls=$3 stat=$4 secs; shift 4
  secs=$(( calls / rate + 1 ))
  [ $# -gt 0 ] || set -- -sn uac
  (cd "$WORK" && timeout $(( secs + 120 )) sipp "$@" "$target" -r "$rate" -m "$calls" \
    -buff_size 4194304 -i 127.0.0.1 -p "$CALLER_PORT" -nostdin -timeout $(( secs + 90 ))s \
    -trace_stat -stf "$stat" -fd 1 >"$stat.out" 2>&1) || true
}

# median_min VALUES...: "min median" of numbers.
median_min() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
  m = (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2); printf "%.3f %.3f\n", v[1], m }'; }

# cps_run FLOW RATE SECONDS: one measured run of RATE·SECONDS calls: SIPp against SIPp's uas (the
# reference), then, once that has exited, a fresh engine (so nothing a run leaves behind —
# calls still up, lingering transactions, database rows — counts in the next) and after 2 s the
# same SIPp command against it. Prints one line (PASS/FAIL and why) and sets RUN_REF, RUN_ENG
# (achieved calls/s) and RUN_PASS (1/0). FLOW hold: SIPp's built-in uac/uas (the caller hangs up
# after its ACK). FLOW media: bench/sipp/uac_media.xml (RTP from the caller, the engine's BYE)
# against bench/sipp/uas_media.xml (answers, sends RTP, BYE after 1 s). Also sets RUN_CPU: the
# engine's CPU seconds (user + system, all threads) per 10,000 completed calls.
cps_run() {
  local flow=$1 rate=$2 secs=$3 calls ref eng before after delta ticks0 ticks1 active
  local -a uac uas
  calls=$(( rate * secs ))
  if [ "$flow" = media ]; then
    uac=(-sf "$BENCH/sipp/uac_media.xml" -mp 16000); uas=(-sf "$BENCH/sipp/uas_media.xml" -mp 17000)
  else
    uac=(-sn uac); uas=(-sn uas)
  fi
  rm -f "$WORK"/ref.csv* "$WORK"/eng.csv*
  start_sipp_bg "${uas[@]}" -i 127.0.0.1 -p "${REF_SIP##*:}" -buff_size 4194304
  local uas_pid=$!
  sleep 0.5
  run_uac "$REF_SIP" "$rate" "$calls" "$WORK/ref.csv" "${uac[@]}"
  stop_sipp "$uas_pid"
  launch_engine "$flow"
  sleep 2
  before=$(counters); ticks0=$(cpu_ticks "$ENGINE_PID")
  run_uac "$ENGINE_SIP" "$rate" "$calls" "$WORK/eng.csv" "${uac[@]}"
  ticks1=$(cpu_ticks "$ENGINE_PID")
  active=$(wait_idle 5)
  after=$(counters); delta=$(counters_delta "$before" "$after")
  ref=$(sipp_result "$WORK/ref.csv"); eng=$(sipp_result "$WORK/eng.csv")
  local line
  line=$(awk -v flow="$flow" -v var="$(variant)" -v r="$rate" -v s="$secs" -v m="$calls" -v ref="$ref" \
      -v eng="$eng" -v d="$delta" -v act="$active" -v cpu=$(( ticks1 - ticks0 )) \
      -v rss="$(peak_rss_kib "$ENGINE_PID")" 'BEGIN {
    split(ref, R, " "); split(eng, E, " "); split(d, D, " ")
    ra = (R[1] > 0 ? R[2] / R[1] : 0); ea = (E[1] > 0 ? E[2] / E[1] : 0)
    why = ""
    if (E[2] != m) why = why sprintf("; %d of %d completed", E[2], m)
    if (E[3] > 0) why = why sprintf("; %d failed (%s)", E[3], E[5])
    if (D[1] > 0) why = why sprintf("; %d 503s sent", D[1])
    if (D[2] > 0) why = why sprintf("; %d ack_timeout", D[2])
    if (D[3] > 0) why = why sprintf("; %d rtp_timeout", D[3])
    if (act != 0) why = why sprintf("; calls_active %d 5 s after", act)
    refok = (R[2] == m && R[3] == 0 ? "all completed" : sprintf("INCOMPLETE %d of %d, %d failed (%s)", R[2], m, R[3], R[5]))
    rtp = (flow == "media" ? sprintf(" | engine RTP per call in %.1f, out %.1f packets", D[7] / m, D[8] / m) : "")
    printf "%s | %s | flow %s | offered %d/s x %ds = %d | sipp-uas %.1f/s (%d in %.3fs; %s) | engine %.1f/s (%d in %.3fs, %d failed, %d retrans) | ratio %.3f | 503s %d, ack_timeout %d, rtp_timeout %d%s | engine CPU %.2f s per 10k calls, peak RSS %d MiB\n",
      (why == "" ? "PASS" : "FAIL" why), var, flow, r, s, m, ra, R[2], R[1], refok, ea, E[2], E[1], E[3], E[4],
      (ra > 0 ? ea / ra : 0), D[1], D[2], D[3], rtp, (E[2] > 0 ? cpu / 100 / E[2] * 10000 : 0), rss / 1024
    exit (why == "" ? 0 : 1) }') && RUN_PASS=1 || RUN_PASS=0
  echo "$line"
  RUN_REF=$(awk -v x="$ref" 'BEGIN { split(x, R, " "); printf "%.1f", (R[1] > 0 ? R[2] / R[1] : 0) }')
  RUN_ENG=$(awk -v x="$eng" 'BEGIN { split(x, E, " "); printf "%.1f", (E[1] > 0 ? E[2] / E[1] : 0) }')
  RUN_CPU=$(awk -v x="$eng" -v t=$(( ticks1 - ticks0 )) 'BEGIN { split(x, E, " "); printf "%.3f", (E[2] > 0 ? t / 100 / E[2] * 10000 : 0) }')
  stop_engine
}

# cps_rate FLOW RATE SECONDS REPEATS [stop-at-first-failure]: REPEATS runs of cps_run, then a summary
# line: min/median achieved for both sides, the ratio of the medians, pass count. Returns 0 when
# every run passed.
cps_rate() {
  local flow=$1 rate=$2 secs=$3 n=$4 first=${5:-} i pass=0 done=0
  local -a refs=() engs=()
  for i in $(seq "$n"); do
    [ "$i" -gt 1 ] && sleep 3
    printf 'run %d/%d: ' "$i" "$n"
    cps_run "$flow" "$rate" "$secs"
    refs+=("$RUN_REF"); engs+=("$RUN_ENG"); done=$(( done + 1 )); pass=$(( pass + RUN_PASS ))
    [ -n "$first" ] && [ "$RUN_PASS" = 0 ] && break
  done
  read -r rmin rmed <<<"$(median_min "${refs[@]}")"
  read -r emin emed <<<"$(median_min "${engs[@]}")"
  awk -v var="$(variant)" -v f="$flow" -v r="$rate" -v s="$secs" -v rmin="$rmin" -v rmed="$rmed" \
      -v emin="$emin" -v emed="$emed" -v p="$pass" -v d="$done" -v n="$n" 'BEGIN {
    printf "SUMMARY %s | flow %s | offered %d/s x %ds | sipp-uas achieved min %.1f median %.1f/s | engine achieved min %.1f median %.1f/s | ratio of medians %.3f | passed %d of %d%s\n",
      var, f, r, s, rmin, rmed, emin, emed, (rmed > 0 ? emed / rmed : 0), p, d, (d < n ? sprintf(" (stopped at the first failure; %d planned)", n) : "") }'
  [ "$pass" = "$n" ]
}

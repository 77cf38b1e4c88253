#!/usr/bin/env bash
# What persistence costs: the calls/s run of bench/cps.sh (flow hold, SIPp's uac, the SIPp-uas
# reference in the same run, the same PASS/FAIL criteria, a fresh engine per run) at one RATE,
# alternating an engine with storage (the default config: SQLite under the run's temp dir) and one without
# (STORAGE_PATH=), RUNS times each (default 3). Prints every run, then per side the min/median
# achieved rate, pass count and the engine's CPU seconds per 10,000 calls (median), and the
# relative cost of storage: 1 − achieved(with) ÷ achieved(without) and CPU(with) ÷ CPU(without) − 1.
# At a rate both sides pass, the achieved rates are equal and the CPU figure is the cost; near
# the limit the achieved rate shows it.
#   bench/persistence.sh RATE [SECONDS (30)]
source "$(dirname "$0")/common.sh"

[ $# -ge 1 ] || { echo "usage: bench/persistence.sh RATE [SECONDS]" >&2; exit 2; }
rate=$1 secs=${2:-30} runs=${RUNS:-3}
unset STORAGE_PATH
header "$@"
build
declare -A ach cpu pass
for side in with without; do ach[$side]=""; cpu[$side]=""; pass[$side]=0; done
for i in $(seq "$runs"); do
  for side in with without; do
    if [ "$side" = without ]; then export STORAGE_PATH=; else unset STORAGE_PATH; fi
    printf 'run %d/%d storage %s: ' "$i" "$runs" "$side"
    cps_run hold "$rate" "$secs"
    ach[$side]+="$RUN_ENG "; cpu[$side]+="$RUN_CPU "; pass[$side]=$(( pass[$side] + RUN_PASS ))
    sleep 3
  done
done
unset STORAGE_PATH
for side in with without; do
  read -r amin amed <<<"$(median_min ${ach[$side]})"
  read -r _ cmed <<<"$(median_min ${cpu[$side]})"
  eval "med_$side=$amed cpu_$side=$cmed"
  printf 'PERSISTENCE storage %-7s | offered %d/s x %ds | engine achieved min %.1f median %.1f/s | passed %d of %d | CPU per 10k calls median %.3f s (runs: %s)\n' \
    "$side" "$rate" "$secs" "$amin" "$amed" "${pass[$side]}" "$runs" "$cmed" "${cpu[$side]% }"
done
# shellcheck disable=SC2154 # set by the eval above
awk -v aw="$med_with" -v ao="$med_without" -v cw="$cpu_with" -v co="$cpu_without" 'BEGIN {
  printf "PERSISTENCE cost | achieved rate %.1f%% lower with storage (medians %.1f vs %.1f/s) | CPU per call %+.1f%% with storage (medians %.3f vs %.3f s per 10k calls)\n",
    (ao > 0 ? (1 - aw / ao) * 100 : 0), aw, ao, (co > 0 ? (cw / co - 1) * 100 : 0), cw, co }'

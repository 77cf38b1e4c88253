#!/usr/bin/env bash
# Runs every check and test: installs the real peers the tests need (SIPp from Debian's
# sip-tester; Prometheus and promtool from Debian's prometheus; espeak-ng for the TTS tests;
# Kamailio as the record-routing proxy and baresip as the softphone of tests/kamailio.rs and
# tests/baresip.rs; dnsmasq as the DNS server of tests/trunk_dns.rs; PostgreSQL and NATS, see
# scripts/services.sh), then rustfmt, clippy and
# the whole cargo test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v sipp >/dev/null 2>&1 || missing+=(sip-tester)
{ command -v prometheus && command -v promtool; } >/dev/null 2>&1 || missing+=(prometheus)
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
# Kamailio lives in /usr/sbin, which a non-root PATH may lack.
{ command -v kamailio || [ -x /usr/sbin/kamailio ]; } >/dev/null 2>&1 || missing+=(kamailio)
command -v baresip >/dev/null 2>&1 || missing+=(baresip)
# tests/baresip.rs runs baresip under stdbuf for line-buffered output.
command -v stdbuf >/dev/null 2>&1 || missing+=(coreutils)
# tests/cdr.rs fetches the CSV export with curl and parses it with python3's csv module;
# tests/webhook_signing.rs checks signatures with openssl and the README's python3 snippet.
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v socat >/dev/null 2>&1 || missing+=(socat)  # TLS in front of SIPp (its Debian build has no TLS): tests/sip_tls.rs
# tests/trunk_dns.rs runs a private dnsmasq (NAPTR/SRV/A records for RFC 3263); /usr/sbin too.
{ command -v dnsmasq || [ -x /usr/sbin/dnsmasq ]; } >/dev/null 2>&1 || missing+=(dnsmasq-base)
# tests/config_cli.rs checks deploy/activeflow.service with `systemd-analyze verify`.
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
# tests/console_browser.rs drives headless Chromium through chromedriver (WebDriver).
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

for component in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^${component}"; then
    rustup component add "$component"
  fi
done

# PostgreSQL and NATS for the cluster tests: the standard local instances, or private ones
# (installed and started here, stopped on exit); exports AF_TEST_PG_URL / _NATS_URL.
source scripts/services.sh
trap services_stop EXIT
services_start

cargo fmt --check
cargo clippy --all-targets -- -D warnings
# Benches run once each in test mode (a smoke test; numbers come from `cargo bench`).
cargo test --benches
# Every test binary runs even when one fails (--no-fail-fast), including tests/fuzz_corpus.rs,
# which replays the fuzz seeds on stable. The status is cargo's own (PIPESTATUS), not tee's.
log="$(mktemp)"
trap 'rm -f "$log"; services_stop' EXIT
set +e
cargo test --no-fail-fast --lib --bins --tests --examples 2>&1 | tee "$log"
cargo_status=${PIPESTATUS[0]}
set -e
# One line per test binary and a grand total. A binary that started but printed no result line
# (it crashed, or was killed) counts as a failure too.
summary_status=0
awk '
  /^[[:space:]]+Running / {
    name = ($2 == "unittests") ? $3 : $2
    order[++n] = name; result[name] = 0
  }
  /^[[:space:]]+Doc-tests / { name = "doc:" $2; order[++n] = name; result[name] = 0 }
  /^test result:/ {
    passed[name] += $4; failed[name] += $6; ignored[name] += $8; result[name] = 1
  }
  END {
    print ""
    printf "%-36s %8s %8s %8s\n", "test binary", "passed", "failed", "ignored"
    bad = 0
    for (i = 1; i <= n; i++) {
      b = order[i]
      if (!result[b]) {
        printf "%-36s %8s\n", b, "NO RESULT (crashed?)"; bad = 1; continue
      }
      printf "%-36s %8d %8d %8d\n", b, passed[b], failed[b], ignored[b]
      p += passed[b]; f += failed[b]; g += ignored[b]
      if (failed[b] > 0) bad = 1
    }
    printf "%-36s %8d %8d %8d   (%d binaries)\n", "TOTAL", p, f, g, n
    if (n == 0) { print "no test binary ran"; bad = 1 }
    exit bad
  }' "$log" || summary_status=$?
if [ "$cargo_status" -ne 0 ] || [ "$summary_status" -ne 0 ]; then
  echo "FAILED: cargo test exited $cargo_status; summary check exited $summary_status" >&2
  exit 1
fi
echo "all tests passed"

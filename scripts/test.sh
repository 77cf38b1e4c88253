#!/usr/bin/env bash
# Runs every check and test: installs the real peers the tests need (SIPp from Debian's
# sip-tester; Prometheus and promtool from Debian's prometheus; espeak-ng for the TTS tests;
# Kamailio as the record-routing proxy and baresip as the softphone of tests/kamailio.rs and
# tests/baresip.rs), then rustfmt, clippy and the whole cargo test suite.
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

cargo fmt --check
cargo clippy --all-targets -- -D warnings
# Benches run once each in test mode (a smoke test; numbers come from `cargo bench`).
cargo test --benches
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test --lib --bins --tests --examples 2>&1 | tee "$log"
# One closing line for the whole suite.
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"

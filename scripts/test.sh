#!/usr/bin/env bash
# The whole test suite: unit, property and integration tests of gatehouse and voiceflow
# (the integration tests spawn both real binaries on loopback ports the OS picks, and a
# headless Chromium for the browser test).
# Ends with one summary line over every test binary ("N passed, N failed").
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-build-deps.sh
source scripts/ensure-test-deps.sh
log=$(mktemp); trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"

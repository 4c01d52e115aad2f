#!/usr/bin/env bash
# Soak and abuse runs by hand (not in CI): release builds of gatehouse and voiceflow, a raised
# file-descriptor limit, then benches/soak.rs. Loopback only; every run is bounded.
#   benches/soak.sh soak [SOCKETS=2000] [SECONDS=60]
#   benches/soak.sh slowloris [CONNS=1000]
#   benches/soak.sh upload [MIB=1024]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-build-deps.sh
cargo build --release -p voiceflow -p gatehouse --bins 2>&1 | tail -1
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
exec cargo bench --bench soak -- "$@"

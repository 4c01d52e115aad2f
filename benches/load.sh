#!/usr/bin/env bash
# Gatehouse beside nginx, haproxy and caddy in one run of ../shared/bench/anchor-bench.sh, over
# the same tiny upstream, one worker each, and the ratio of proxy CPU per request against nginx.
# Needs: apt-get install -y nginx haproxy caddy wrk. Usage: benches/load.sh [DURATION_S] [CONNS]
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-8}; conns=${2:-50}
bench=${ANCHOR_BENCH:-../shared/bench/anchor-bench.sh}
source scripts/ensure-build-deps.sh
cargo build --release --bin gatehouse
work=$(mktemp -d); trap 'kill $gh 2>/dev/null || true; rm -rf "$work"' EXIT
port=18199; up=${UP:-18181}
cat >"$work/bench.yaml" <<Y
version: 1
server:
  listen: [{ addr: "127.0.0.1:$port" }]
upstream: { addr: "127.0.0.1:$up" }
routes:
  - name: all
    match: { prefix: / }
    auth: none
Y
target/release/gatehouse run -c "$work/bench.yaml" --threads 1 --log-format json 2>/dev/null >/dev/null & gh=$!
sleep 1
out=$(UP=$up bash "$bench" "$dur" "$conns" gatehouse=$port | tee /dev/stderr)
awk '$1=="nginx"{n=$5} $1=="gatehouse"{g=$5} END{ if (n>0) printf "gatehouse/nginx CPU per request: %.2fx (%s vs %s us)\n", g/n, g, n }' <<<"$out"

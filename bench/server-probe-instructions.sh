#!/usr/bin/env bash
# Instructions per /health/live request on the server process alone, counted by callgrind: the
# figure that repeats on a shared VM where requests/s swing 2x between runs. The load comes from
# autocannon in another process; collection is on only for the measured requests.
#   bench/server-probe-instructions.sh [bulwark|bare] [requests]     (HEADERS=1 for bare + headers)
set -euo pipefail
cd "$(dirname "$0")/.."
which=${1:-bulwark}
requests=${2:-2000}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
SERVER=$which valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out/cg.out" \
  node --conditions=@bulwark/source --import tsx bench/server-probe-target.ts >"$out/url" 2>"$out/valgrind.log" &
pid=$!
for _ in $(seq 600); do [ -s "$out/url" ] && break; sleep 0.5; done
url=$(cat "$out/url")
node_modules/.bin/autocannon -c 10 -a 3000 "$url/health/live" >/dev/null 2>&1   # warm-up (JIT)
callgrind_control -i on "$pid" >/dev/null 2>&1
node_modules/.bin/autocannon -c 10 -a "$requests" "$url/health/live" >/dev/null 2>&1
callgrind_control -i off "$pid" >/dev/null 2>&1
callgrind_control -d "$pid" >/dev/null 2>&1
kill -TERM "$pid"
wait "$pid" || true
total=$(grep -h '^totals:' "$out"/cg.out* | awk '{ s += $2 } END { print s }')
echo "$which: $((total / requests)) instructions per request ($requests requests)"

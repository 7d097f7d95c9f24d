#!/usr/bin/env bash
# Read throughput with the audit trail on and off (README, Audit): several servers side by side
# on loopback, each on its own SQLite database, measured one after the other with the order
# rotated every round, so that a machine whose speed drifts favours none of them.
#
#   bench/audit-ratio.sh [ROUNDS] [LABEL=BIN_DIR:on|off ...]
#
# Without servers named: this checkout's release build, audited (`on`) and `--audit=false`
# (`off`). BIN_DIR holds `curanet` and `curanet-bench` (cargo build --release -p curanet-http
# -p curanet-bench). Each round reads one Patient by id with a backend-services token
# (`system/*.cruds`) from 16 connections for 10 s after a 2 s warm-up. Prints each round, then
# the median per server.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-6}
shift || true
specs=("$@")
if [ ${#specs[@]} -eq 0 ]; then
  specs=(on=target/release:on off=target/release:off)
fi
work=$(mktemp -d -t curanet-audit-ratio.XXXXXX)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
first=${specs[0]#*=}
bench="${first%:*}/curanet-bench"
"$bench" keygen --dir "$work/key" >/dev/null
labels=(); ports=(); port=18300
for spec in "${specs[@]}"; do
  label=${spec%%=*}; rest=${spec#*=}; bin=${rest%:*}; mode=${rest##*:}
  extra=(); [ "$mode" = off ] && extra=(--audit=false)
  db="sqlite:$work/$label.db"
  "$bin/curanet" client add --database-url "$db" --client-id bench --name bench \
    --jwks-file "$work/key/jwks.json" --scope "system/*.cruds" >/dev/null
  "$bin/curanet" serve --listen "127.0.0.1:$port" --database-url "$db" "${extra[@]}" \
    >"$work/$label.log" 2>&1 &
  pids+=($!); labels+=("$label"); ports+=("$port")
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  port=$((port + 1))
done
n=${#labels[@]}
for r in $(seq "$ROUNDS"); do
  line="round $r:"
  for k in $(seq 0 $((n - 1))); do
    i=$(((k + r) % n)); base="http://127.0.0.1:${ports[$i]}/fhir"
    # A fresh token each time: tokens are short-lived.
    token=$("$bench" token --base-url "$base" --client-id bench --key-file "$work/key/key.pem" \
      --scope "system/*.cruds" --print --assertions 1)
    rps=$(CURANET_BENCH_TOKEN=$token "$bench" read --base-url "$base" -c 16 -d 10 -w 2 --json \
      | python3 -c 'import json,sys; print(round(json.loads(sys.stdin.read().splitlines()[-1])["throughput"]))')
    echo "${labels[$i]} $rps" >>"$work/results"
    line="$line ${labels[$i]}=$rps"
  done
  echo "$line"
done
python3 - "$work/results" <<'PY'
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    label, rps = line.split()
    runs[label].append(int(rps))
for label, v in runs.items():
    print(f"{label}: median {statistics.median(v):.0f} req/s, rounds {v}")
PY

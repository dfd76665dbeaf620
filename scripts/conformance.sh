#!/usr/bin/env bash
# Run Autobahn|Testsuite against examples/echo.py, with permessage-deflate off and on, and
# write the summaries to docs/conformance/.
#
# usage: scripts/conformance.sh [quick|full]
#   quick  groups 1-7 and 10, deflate off (about 10 s after the one-time install)
#   full   deflate off: every group but 12/13 (9.* with a 64 MiB message limit);
#          deflate on: every group (12.* and 13.* take about 20 minutes on 2 cores)
# env: CONFORMANCE_DIR (default: ../shared/conformance beside the repository)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNNER_DIR=${CONFORMANCE_DIR:-$ROOT/../shared/conformance}
MODE=${1:-quick}
OUT=$ROOT/docs/conformance
[ -x "$RUNNER_DIR/run.sh" ] || [ -f "$RUNNER_DIR/run.sh" ] || {
  echo "no Autobahn runner at $RUNNER_DIR (set CONFORMANCE_DIR)" >&2; exit 2; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

PIDS=()
cleanup() { for pid in "${PIDS[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

# start_echo PORT [extra args...]: serve examples/echo.py and wait until it listens
start_echo() {
  local port=$1; shift
  python3 "$ROOT/examples/echo.py" --port "$port" --max-message-size 67108864 "$@" \
    >"${TMPDIR:-/tmp}/spikard-echo-$port.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 100); do
    python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 1).close()" \
      2>/dev/null && return 0
    sleep 0.1
  done
  echo "echo server on port $port did not start" >&2; exit 2
}

run() {  # run NAME PORT [run.sh options...]
  local name=$1 port=$2; shift 2
  local report; report=$(mktemp -d)
  bash "$RUNNER_DIR/run.sh" -o "$report" "$@" "ws://127.0.0.1:$port/" || status=$?
  mkdir -p "$OUT"
  cp "$report/summary.md" "$OUT/$name.md"
  cp "$report/summary.json" "$OUT/$name.json"
  echo "summary written to docs/conformance/$name.md"
}

status=0
PLAIN=$(free_port); start_echo "$PLAIN"
if [ "$MODE" = quick ]; then
  run deflate-off-quick "$PLAIN" -q
else
  run deflate-off-full "$PLAIN" -x '12.*,13.*'
  DEFLATE=$(free_port); start_echo "$DEFLATE" --permessage-deflate
  run deflate-on-full "$DEFLATE"
fi
exit $status

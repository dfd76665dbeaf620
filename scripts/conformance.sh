#!/usr/bin/env bash
# Run Autobahn|Testsuite against examples/echo.py on asyncio and trio, with permessage-deflate
# off and on, and over TLS; write the summaries to docs/conformance/.
#
# usage: scripts/conformance.sh [quick|full]
#   quick  groups 1-7 and 10, deflate off, about 10-20 s per run after the one-time install:
#            asyncio-deflate-off-quick   asyncio (uvloop when installed, the app.run() default)
#            trio-deflate-off-quick      trio
#            tls-deflate-off-quick       asyncio over wss:// (TLS takes the portable anyio path)
#   full   each backend twice, then TLS, one run after the other:
#            {asyncio,trio}-deflate-off-full  every group but 12/13 (9.* with a 64 MiB limit)
#            {asyncio,trio}-deflate-on-full   every group (12.*/13.* take about 20 minutes
#                                             per backend on 2 cores)
#            tls-deflate-off-full             asyncio over wss://, every group but 12/13
#          about 50 minutes in all.
# TLS uses a throwaway self-signed certificate for 127.0.0.1 (trustme, else openssl) in a
# temporary folder; the suite accepts it without verification.
# Every report folder (index.html per case) and server log stays in ${TMPDIR:-/tmp}; their
# paths are printed. Exit 0 when every run completed with none FAILED.
# env: CONFORMANCE_DIR (default: ../shared/conformance beside the repository),
#      PYTHON (default python3): the interpreter that runs examples/echo.py
#      ONLY: a regular expression; run only the suites whose name matches (ONLY=deflate-off)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNNER_DIR=${CONFORMANCE_DIR:-$ROOT/../shared/conformance}
PYTHON=${PYTHON:-python3}
MODE=${1:-quick}
OUT=$ROOT/docs/conformance
case $MODE in
  quick | full) ;;
  *) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 64 ;;
esac
[ -f "$RUNNER_DIR/run.sh" ] || {
  echo "no Autobahn runner at $RUNNER_DIR (set CONFORMANCE_DIR)" >&2; exit 2; }

free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

ECHO_PID=""
TLS_DIR=""
cleanup() {
  [ -n "$ECHO_PID" ] && kill "$ECHO_PID" 2>/dev/null || true
  [ -n "$TLS_DIR" ] && rm -rf "$TLS_DIR" || true
}
trap cleanup EXIT

# start_echo PORT plain|tls [extra echo.py args...]: serve examples/echo.py, wait until it
# listens (over TLS, until a handshake completes, so the probe logs no handshake error)
start_echo() {
  local port=$1 tls=$2; shift 2
  ECHO_LOG="${TMPDIR:-/tmp}/spikard-echo-$port.log"
  "$PYTHON" "$ROOT/examples/echo.py" --port "$port" --max-message-size 67108864 "$@" \
    >"$ECHO_LOG" 2>&1 &
  ECHO_PID=$!
  for _ in $(seq 1 150); do
    "$PYTHON" - "$port" "$tls" 2>/dev/null <<'PY' && return 0
import socket, ssl, sys
sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)
if sys.argv[2] == "tls":
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    sock = context.wrap_socket(sock)
sock.close()
PY
    kill -0 "$ECHO_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "echo server on port $port ($*) did not start; log $ECHO_LOG:" >&2
  tail -n 20 "$ECHO_LOG" >&2
  exit 2
}

stop_echo() {
  [ -n "$ECHO_PID" ] || return 0
  kill "$ECHO_PID" 2>/dev/null || true
  wait "$ECHO_PID" 2>/dev/null || true
  ECHO_PID=""
}

# make_cert: a self-signed certificate and key for 127.0.0.1 in $TLS_DIR
make_cert() {
  TLS_DIR=$(mktemp -d)
  if "$PYTHON" - "$TLS_DIR" 2>/dev/null <<'PY'
import sys, trustme
ca = trustme.CA()
cert = ca.issue_cert("127.0.0.1", "localhost")
cert.cert_chain_pems[0].write_to_path(sys.argv[1] + "/cert.pem")
for extra in cert.cert_chain_pems[1:]:
    extra.write_to_path(sys.argv[1] + "/cert.pem", append=True)
cert.private_key_pem.write_to_path(sys.argv[1] + "/key.pem")
PY
  then
    return 0
  fi
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 \
    -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
    -keyout "$TLS_DIR/key.pem" -out "$TLS_DIR/cert.pem" 2>/dev/null
}

status=0
# suite NAME BACKEND DEFLATE(on|off) TLS(tls|plain) [run.sh options...]
suite() {
  local name=$1 backend=$2 deflate=$3 tls=$4; shift 4
  [[ -z "${ONLY:-}" || "$name" =~ $ONLY ]] || return 0
  local port scheme=ws report args=(--backend "$backend")
  port=$(free_port)
  [ "$deflate" = on ] && args+=(--permessage-deflate)
  if [ "$tls" = tls ]; then
    [ -n "$TLS_DIR" ] || make_cert || {
      echo "cannot make a self-signed certificate (needs trustme or openssl)" >&2; exit 2; }
    args+=(--ssl-certfile "$TLS_DIR/cert.pem" --ssl-keyfile "$TLS_DIR/key.pem")
    scheme=wss
  fi
  echo "== $name: $backend, permessage-deflate $deflate$([ "$tls" = tls ] && echo ', TLS')"
  start_echo "$port" "$tls" "${args[@]}"
  report=$(mktemp -d "${TMPDIR:-/tmp}/spikard-autobahn-$name.XXXXXX")
  local rc=0
  bash "$RUNNER_DIR/run.sh" -o "$report" "$@" "$scheme://127.0.0.1:$port/" || rc=$?
  stop_echo
  if [ -s "$report/summary.json" ] && [ -s "$report/summary.md" ]; then
    mkdir -p "$OUT"
    cp "$report/summary.md" "$OUT/$name.md"
    cp "$report/summary.json" "$OUT/$name.json"
    echo "summary written to docs/conformance/$name.md (report $report, server log $ECHO_LOG)"
  else
    echo "no summary for $name (runner exit $rc; report $report, server log $ECHO_LOG)" >&2
    [ $rc -ne 0 ] || rc=2
  fi
  [ $rc -eq 0 ] || status=$rc
}

if [ "$MODE" = quick ]; then
  for backend in asyncio trio; do
    suite "$backend-deflate-off-quick" "$backend" off plain -q
  done
  suite tls-deflate-off-quick asyncio off tls -q
else
  for backend in asyncio trio; do
    suite "$backend-deflate-off-full" "$backend" off plain -x '12.*,13.*'
    suite "$backend-deflate-on-full" "$backend" on plain
  done
  suite tls-deflate-off-full asyncio off tls -x '12.*,13.*'
fi
exit $status

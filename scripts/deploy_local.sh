#!/usr/bin/env bash
# From a fresh clone to a finished `prefect deployment run render-then-train/local --watch`:
# start a Prefect server on 127.0.0.1 (project-local PREFECT_HOME), serve the deployment, run it, stop both.
#
#   scripts/deploy_local.sh                                   # the default parameters (~15 min on 2 cores)
#   PARAMS='{"render": {"n": 40}, "train": {"steps": 20}}' scripts/deploy_local.sh
#   PORT=4300 KEEP=1 scripts/deploy_local.sh                  # leave server + deployment running afterwards
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=setup.sh
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
PORT="${PORT:-$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
PARAMS="${PARAMS:-{\}}"
export PREFECT_API_URL="http://127.0.0.1:$PORT/api"
export PREFECT_LOGGING_LEVEL=INFO
mkdir -p "$PREFECT_HOME"
log="$PREFECT_HOME/serve-$PORT.log"

serve_pid=""
cleanup() {
  if [ "${KEEP:-0}" = 1 ]; then echo "deploy: server and deployment left running (API $PREFECT_API_URL)"; return; fi
  [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null || true
  prefect server stop >/dev/null 2>&1 || true
  echo "deploy: stopped the server and the deployment"
}
trap cleanup EXIT

echo "deploy: starting Prefect server on 127.0.0.1:$PORT (PREFECT_HOME=$PREFECT_HOME)"
prefect server start --host 127.0.0.1 --port "$PORT" --background >/dev/null
for _ in $(seq 120); do
  python -c "import urllib.request; urllib.request.urlopen('$PREFECT_API_URL/health', timeout=2)" 2>/dev/null && break
  sleep 1
done

echo "deploy: serving render-then-train/local (log: $log)"
python -m flows.serve --name local >"$log" 2>&1 &
serve_pid=$!
for _ in $(seq 120); do
  prefect deployment inspect 'render-then-train/local' >/dev/null 2>&1 && break
  kill -0 "$serve_pid" 2>/dev/null || { echo "deploy: serving failed, see $log" >&2; exit 1; }
  sleep 1
done

echo "deploy: prefect deployment run 'render-then-train/local' --param params='$PARAMS' --watch"
prefect deployment run 'render-then-train/local' --param params="$PARAMS" --watch

#!/usr/bin/env bash
# From a fresh clone to a finished `prefect deployment run render-then-train/local --watch`:
# start a Prefect server on 127.0.0.1:4200 (project-local PREFECT_HOME), serve the deployment, run it, say
# how it ended (the report path and headline metrics, or the failure reason), stop both.
#
#   scripts/deploy_local.sh                                   # the default parameters (~15 min on 2 cores)
#   PARAMS='{"render": {"n": 40}, "train": {"steps": 20}}' scripts/deploy_local.sh
#   KEEP=1 scripts/deploy_local.sh     # leave server + deployment running: the UI stays at http://127.0.0.1:4200
#   PORT=4300 scripts/deploy_local.sh  # another port (a server already answering on PORT is used, not stopped)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=setup.sh
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
PORT="${PORT:-4200}"
PARAMS="${PARAMS:-{\}}"
DEPLOYMENT='render-then-train/local'
export PREFECT_API_URL="http://127.0.0.1:$PORT/api"
export PREFECT_LOGGING_LEVEL=INFO
mkdir -p "$PREFECT_HOME"
log="$PREFECT_HOME/serve-$PORT.log"

healthy() { python -c "import urllib.request; urllib.request.urlopen('$PREFECT_API_URL/health', timeout=2)" 2>/dev/null; }

serve_pid=""
own_server=0
cleanup() {
  if [ "${KEEP:-0}" = 1 ]; then
    echo "deploy: left running: UI http://127.0.0.1:$PORT, API $PREFECT_API_URL, deployment $DEPLOYMENT (serve PID $serve_pid, log $log)"
    echo "deploy: stop them with: kill $serve_pid; PREFECT_HOME=$PREFECT_HOME prefect server stop"
    return
  fi
  if [ -n "$serve_pid" ]; then kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null || true; fi
  if [ "$own_server" = 1 ]; then prefect server stop >/dev/null 2>&1 || true; fi
  echo "deploy: stopped the deployment$([ "$own_server" = 1 ] && echo ' and the server')"
}
trap cleanup EXIT

if healthy; then
  echo "deploy: using the Prefect server already answering on 127.0.0.1:$PORT"
else
  echo "deploy: starting Prefect server on 127.0.0.1:$PORT (PREFECT_HOME=$PREFECT_HOME)"
  if ! prefect server start --host 127.0.0.1 --port "$PORT" --background >"$PREFECT_HOME/server-$PORT.log" 2>&1; then
    echo "deploy: the server did not start: $(tail -n 1 "$PREFECT_HOME/server-$PORT.log")" >&2
    echo "deploy: another program on port $PORT? try PORT=4300 $0" >&2
    exit 1
  fi
  own_server=1
fi

echo "deploy: serving $DEPLOYMENT (log: $log)"
python -m flows.serve --name local >"$log" 2>&1 &
serve_pid=$!
if ! python -m flows.deployment wait "$DEPLOYMENT" --timeout 240; then
  echo "deploy: serving failed: $(tail -n 3 "$log")" >&2
  exit 1
fi

echo "deploy: prefect deployment run '$DEPLOYMENT' --param params='$PARAMS' --watch"
echo "deploy: follow it in the UI at http://127.0.0.1:$PORT/runs"
rc=0
prefect deployment run "$DEPLOYMENT" --param params="$PARAMS" --watch || rc=$?
echo
python -m flows.deployment outcome "$DEPLOYMENT" || rc=1
if [ "$rc" != 0 ]; then echo "deploy: the serving process's log: $log" >&2; fi
exit "$rc"

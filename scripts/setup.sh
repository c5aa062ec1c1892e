#!/usr/bin/env bash
# Idempotent environment set-up: system libraries (EGL for pyrender, X11 client libs for bpy), a Python 3.11
# virtualenv in .venv, and the package with its extras. Re-running is cheap: pip runs again only when
# pyproject.toml changed. Source-able: sets PATH and the runtime environment variables.
# Sourcing it leaves the caller's shell options alone: the install steps run in a subshell with
# `set -euo pipefail` of their own.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

_simreal_install() (
  set -euo pipefail
  cd "$1"

  APT_PACKAGES=(libegl1 libegl-mesa0 libgl1 libgl1-mesa-dri libglu1-mesa libxrender1 libxi6 libxkbcommon0 libsm6 libxxf86vm1 libxfixes3 libx11-6 libxext6)

  missing=()
  if command -v dpkg-query >/dev/null 2>&1; then
    for p in "${APT_PACKAGES[@]}"; do
      dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "setup: installing system libraries: ${missing[*]}"
      DEBIAN_FRONTEND=noninteractive apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
      echo "setup: missing system libraries, run as root: apt-get install -y ${missing[*]}" >&2
      exit 1
    fi
  fi

  PY="${PYTHON:-}"
  if [ -z "$PY" ]; then
    for c in python3.11 python3; do
      if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then PY="$c"; break; fi
    done
  fi
  if [ -z "$PY" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && apt-cache show python3.11-venv >/dev/null 2>&1; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3.11 python3.11-venv >/dev/null
      PY=python3.11
    else
      echo "setup: Python 3.11 is required (bpy 5.0 wheels exist only for 3.11); install it or set PYTHON=/path/to/python3.11" >&2
      exit 1
    fi
  fi

  if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $("$PY" --version)"
    "$PY" -m venv .venv
  fi
  stamp=.venv/.simreal-installed
  want="$(sha256sum pyproject.toml | cut -c1-16)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "setup: installing simreal and its dependencies into .venv (first time: a few minutes, ~7 GB)"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[dev,scale]'
    echo "$want" > "$stamp"
  fi
)

# not inside `if`/`||`: bash would switch `set -e` off in the subshell
_simreal_install "$ROOT"
_simreal_rc=$?
unset -f _simreal_install
if [ "$_simreal_rc" != 0 ]; then
  unset _simreal_rc
  return 1 2>/dev/null || exit 1
fi
unset _simreal_rc

export PATH="$ROOT/.venv/bin:$PATH"
export PYOPENGL_PLATFORM="${PYOPENGL_PLATFORM:-egl}"
export MPLBACKEND="${MPLBACKEND:-Agg}"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"  # spinning OpenMP threads starve other processes
export PREFECT_HOME="${PREFECT_HOME:-$ROOT/.prefect}"
export PREFECT_SERVER_ANALYTICS_ENABLED=false
export PREFECT_LOGGING_LEVEL="${PREFECT_LOGGING_LEVEL:-WARNING}"
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="${PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS:-180}"

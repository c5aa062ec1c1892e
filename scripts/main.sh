#!/usr/bin/env bash
# The README's first command: set everything up, then run the main job on the embedded default:
# the default catalog, then render -> train -> evaluate -> report through the Prefect flow render-then-train.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=setup.sh
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
simreal sku generate --retail 30 --industrial 12 --seed 0
simreal run "$@"   # ends with "report: <path>" (runs/default/train/report.html unless kept apart)

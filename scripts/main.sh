#!/usr/bin/env bash
# The README's first command: set everything up, then run the main job on the embedded default.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=setup.sh
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
simreal sku generate --retail 30 --industrial 12 --seed 0
simreal sku list
echo "main: catalog in assets/catalog (thumbnails: assets/catalog/*/thumbnail.png)"

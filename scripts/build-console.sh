#!/usr/bin/env bash
# Builds the duty console (alerts/console/web, Vite) into alerts/console/static, which the API serves at /.
# Packages come from the npm registry at build time, pinned by package-lock.json; nothing from a CDN at run time.
set -euo pipefail
cd "$(dirname "$0")/../alerts/console/web"
echo "setup: building the duty console"
npm ci --no-audit --no-fund --loglevel=error
npm run --silent build

#!/usr/bin/env bash
# Builds the web client into web/dist (installs its npm packages first). Used by run.sh and
# test.sh; `mapline serve` serves web/dist at /.
set -euo pipefail
cd "$(dirname "$0")/../web"
npm ci --no-audit --no-fund --loglevel=error
npm run --silent build

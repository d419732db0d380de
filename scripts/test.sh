#!/usr/bin/env bash
# Sets up and runs every test: Rust unit and store tests, then the black-box suite that starts the
# real binary and talks to it with real Yjs clients (tests/js).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> cargo build (the binary the black-box tests start)"
cargo build --locked -p mapline

echo "==> cargo test"
cargo test --locked --workspace

echo "==> npm ci (tests/js: yjs, y-websocket, ws)"
npm ci --prefix tests/js --no-audit --no-fund --loglevel=error

echo "==> black-box tests"
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

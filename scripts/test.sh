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
node --test --test-force-exit --test-concurrency=1 --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination=../../target/blackbox.tap ./*.test.js
# Print the plain closing line from the TAP summary.
pass=$(grep -E '^# pass ' ../../target/blackbox.tap | awk '{print $3}')
fail=$(grep -E '^# fail ' ../../target/blackbox.tap | awk '{print $3}')
echo "blackbox: ${pass} passed, ${fail} failed"
[ "${fail}" = "0" ]

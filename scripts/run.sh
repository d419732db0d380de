#!/usr/bin/env bash
# Sets up and runs the server on the embedded default: a redb file under ./data, the demo plan,
# its links printed, and the web client built and served at /. Extra arguments go to
# `mapline serve` (see `mapline serve --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/web.sh
cargo build --release --locked -p mapline
exec ./target/release/mapline serve --demo "$@"

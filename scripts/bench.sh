#!/usr/bin/env bash
# Load benchmark (issue 14): builds the release server and the Rust load generator, then runs
# every scenario against Mapline and, in the same invocation, against @y/websocket-server (in
# memory; needs tests/js/node_modules: npm ci --prefix tests/js). Prints a Markdown table for
# BENCHMARKS.md. Arguments go to mapline-load (e.g. --fanout-only, --only mapline, --plans 100).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p mapline -p mapline-load
exec ./target/release/mapline-load "$@"

#!/usr/bin/env bash
# Bounded fuzzing run: each cargo-fuzz target (fuzz/fuzz_targets) for MAPLINE_FUZZ_SECONDS
# (default 60) from the committed corpus (fuzz/corpus, copied so the run never edits it).
# A crash fails the run; its input is left in fuzz/artifacts/<target>/ — copy it to
# fuzz/regressions/<target>/<what it found> to make it a regression test.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${MAPLINE_FUZZ_SECONDS:-60}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz"
  cargo install cargo-fuzz --locked --quiet
fi
# cargo-fuzz needs nightly flags (sanitizers); this machine's one toolchain is stable.
export RUSTC_BOOTSTRAP=1
# Huge reservations that the allocator cannot serve fail (as in production), instead of
# counting as crashes; memory actually used is still capped by -rss_limit_mb.
export ASAN_OPTIONS="allocator_may_return_null=1"
cargo fuzz build -O
for target in $(cargo fuzz list); do
  work="target/corpus-run/${target}"
  rm -rf "${work}" && mkdir -p "${work}"
  cp -r "corpus/${target}/." "${work}/"
  echo "==> fuzzing ${target} for ${seconds}s"
  status=0
  cargo fuzz run -O "${target}" "${work}" -- \
    -max_total_time="${seconds}" -rss_limit_mb=2048 -malloc_limit_mb=1000000 -print_final_stats=1 \
    >"target/${target}.log" 2>&1 || status=$?
  grep -E '^(#[0-9]+ +DONE|Done|stat::number_of_executed_units)' "target/${target}.log" || true
  if [ "${status}" -ne 0 ]; then
    grep -E -A20 '(==[0-9]+== ERROR|thread .* panicked|SUMMARY)' "target/${target}.log" | head -40 >&2 || true
    echo "fuzzing ${target} found a crash: see fuzz/artifacts/${target}/ and fuzz/target/${target}.log" >&2
    exit 1
  fi
done

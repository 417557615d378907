#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60) from its committed corpus
# (tests/fuzz/seeds/<target>/), keeping what it finds in tests/fuzz/corpus/<target>/. With
# MERGE=1 the finds are merged into the committed corpus afterwards (libFuzzer's -merge keeps
# only inputs that add coverage). Needs a nightly toolchain and cargo-fuzz.
#
#   tests/fuzz/run.sh            # CI's smoke run: 60 s each
#   SECONDS_EACH=1800 MERGE=1 tests/fuzz/run.sh sip_wire digest
set -euo pipefail
cd "$(dirname "$0")/../.."
each=${SECONDS_EACH:-60}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(sip_wire rtp_dtmf sdp digest flow_toml config_toml calls_query)
fi
cargo +nightly fuzz build --fuzz-dir tests/fuzz
for t in "${targets[@]}"; do
  mkdir -p "tests/fuzz/corpus/$t"
  echo "== $t: $each s"
  cargo +nightly fuzz run --fuzz-dir tests/fuzz "$t" "tests/fuzz/corpus/$t" "tests/fuzz/seeds/$t" -- \
    -max_total_time="$each" -max_len=65536 -print_final_stats=1 2>&1 \
    | grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb|INFO: Loaded)|cov:|ERROR|panicked|SUMMARY" | tail -6
  if [ "${MERGE:-0}" = 1 ]; then
    merged=$(mktemp -d)
    cargo +nightly fuzz run --fuzz-dir tests/fuzz "$t" -- -merge=1 "$merged" "tests/fuzz/seeds/$t" "tests/fuzz/corpus/$t" >/dev/null 2>&1
    rm -rf "tests/fuzz/seeds/$t" && mv "$merged" "tests/fuzz/seeds/$t"
    echo "   corpus: $(ls "tests/fuzz/seeds/$t" | wc -l) inputs"
  fi
done

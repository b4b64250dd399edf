#!/usr/bin/env bash
# Runs one fuzz target with libFuzzer on the stable toolchain, then minimizes its corpus.
#
#   fuzz/run.sh TARGET SECONDS [JOBS]
#
# TARGET is one of fuzz/fuzz_targets/*.rs (frame_decode, open_directory, restore_mutated,
# store_ops, stateio_read, transaction, ...). The corpus is fuzz/corpus/TARGET: new inputs libFuzzer finds are
# added to it, and `cargo fuzz cmin` then keeps the smallest set with the same coverage, ready to commit.
# A crash is saved by libFuzzer under fuzz/artifacts/TARGET/; copy it into the corpus and add
# a regression test in tests/fuzz_corpus.rs before fixing it (fuzz/README.md).
# cargo-fuzz is installed if missing. RUSTC_BOOTSTRAP=1 lets the stable toolchain build with
# the sanitizer flags cargo-fuzz passes (it would otherwise need nightly).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${1:?usage: fuzz/run.sh TARGET SECONDS [JOBS]}"
seconds="${2:?usage: fuzz/run.sh TARGET SECONDS [JOBS]}"
jobs="${3:-1}"
if [ ! -f "fuzz/fuzz_targets/$target.rs" ]; then
    echo "no fuzz target $target; the targets: $(ls fuzz/fuzz_targets | sed 's/\.rs$//' | tr '\n' ' ')" >&2
    exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
corpus="fuzz/corpus/$target"
mkdir -p "$corpus" "fuzz/artifacts/$target"
before=$(ls "$corpus" | wc -l)
# -max_total_time bounds the run; the summary lines (executions, coverage, corpus) are the
# figures RELIABILITY.md records. The allocation and time limits are those tests/fuzz_corpus.rs
# applies to every corpus file (one allocation over 256 MiB, an input over a minute). Leak
# detection is off: LeakSanitizer reports the standard library's per-thread channel context of
# the image compressor's scoped threads (112 bytes, freed by thread-exit destructors it runs
# after), which stopped a run of open_directory after 12 minutes.
parallel=()
if [ "$jobs" -gt 1 ]; then
    # Several processes share the corpus; each writes its log to fuzz-N.log.
    parallel=(-jobs="$jobs" -workers="$jobs")
fi
cargo fuzz run "$target" --fuzz-dir fuzz "$corpus" -- \
    -max_total_time="$seconds" "${parallel[@]}" \
    -artifact_prefix="fuzz/artifacts/$target/" -print_final_stats=1 \
    -malloc_limit_mb=256 -timeout=60 -detect_leaks=0
cargo fuzz cmin "$target" --fuzz-dir fuzz "$corpus"
# cmin keeps one input per set of features: the checked-in seeds and the regression inputs that
# tests/fuzz_corpus.rs names stay.
git ls-files -d -z "$corpus" | xargs -0 -r git checkout --
after=$(ls "$corpus" | wc -l)
echo "corpus $corpus: $before files before, $after after minimizing"
# The coverage the minimized corpus reaches, in a short replay (no new inputs).
cargo fuzz run "$target" --fuzz-dir fuzz "$corpus" -- -runs=0 2>&1 | grep -E "INITED|DONE" || true

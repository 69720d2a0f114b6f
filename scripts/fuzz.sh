#!/usr/bin/env bash
# The cargo-fuzz targets of fuzz/ (needs a nightly toolchain and cargo-fuzz:
# `rustup toolchain install nightly`, `cargo install cargo-fuzz`).
#
#   scripts/fuzz.sh list                 the targets
#   scripts/fuzz.sh smoke [SECS]         every target for SECS seconds each (default 10)
#   scripts/fuzz.sh run TARGET SECS      one target for SECS seconds; new inputs go to
#                                        fuzz/corpus/TARGET, crashes to fuzz/artifacts/TARGET
#   scripts/fuzz.sh repro TARGET FILE    run one input (a crash, or a file saved by the
#                                        stable smoke test tests/tests/fuzz_smoke.rs)
#   scripts/fuzz.sh cmin TARGET          minimize fuzz/corpus/TARGET in place
#
# Runs at nice 19 with one build job: fuzzing shares the machine. FUZZ_BUILD_FLAGS
# (default "-O -a") are cargo-fuzz's build flags. The build goes to
# $CARGO_TARGET_DIR if set, else fuzz/target. Without nightly or cargo-fuzz, `smoke`
# says so and exits 0 (CI runs the stable smoke test instead); the other commands fail.
set -euo pipefail
self=$(realpath "$0")
# A file to replay is named from where the caller stands.
if [ "${1:-}" = repro ] && [ -n "${3:-}" ]; then
    file=$(realpath "$3")
fi
cd "$(dirname "$0")/../fuzz"

targets() { sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^rgrpc-fuzz$'; }

have_tools() {
    cargo +nightly --version >/dev/null 2>&1 && cargo +nightly fuzz --version >/dev/null 2>&1
}

export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}"
# Build flags: optimized (-O), with debug assertions and overflow checks (-a), under
# AddressSanitizer (cargo-fuzz's default). FUZZ_BUILD_FLAGS overrides them.
read -r -a build_flags <<<"${FUZZ_BUILD_FLAGS:--O -a}"
fuzz() {
    local command=$1
    shift
    nice -n 19 cargo +nightly fuzz "$command" "${build_flags[@]}" "$@"
}

run() {
    local target=$1 secs=$2
    mkdir -p "corpus/$target"
    # -max_len: the seeds are under 5 KiB; -timeout: one input taking 10 s is a hang.
    fuzz run "$target" "corpus/$target" -- \
        -max_total_time="$secs" -max_len=8192 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
}

case "${1:-}" in
list) targets ;;
smoke)
    if ! have_tools; then
        echo "fuzz.sh smoke: skipped, no nightly toolchain with cargo-fuzz (the stable smoke test is tests/tests/fuzz_smoke.rs)"
        exit 0
    fi
    secs=${2:-10}
    fuzz build
    for target in $(targets); do
        echo "== $target (${secs}s)"
        run "$target" "$secs"
    done
    ;;
run) run "${2:?target}" "${3:?seconds}" ;;
repro) fuzz run "${2:?target}" "${file:?usage: repro TARGET FILE}" ;;
cmin) fuzz cmin "${2:?target}" "corpus/$2" -- -max_len=8192 -timeout=10 ;;
*)
    sed -n '2,16p' "$self" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac

#!/usr/bin/env bash
# h2-protections-off.sh: the hostile-peer tests whose protection lives inside h2
# (CONTINUATION floods, empty DATA floods, window checks, header-list accounting) fail
# when that protection is switched off. Our own protections are switched off through
# our own settings; these cannot be, so this script builds the tests against a copy of
# the locked h2 with scripts/h2-protections-off.patch applied: each check in it is
# skipped when RGRPC_H2_OFF names it. Every test is run twice, with the check on (must
# pass) and off (must fail). Not part of CI: it needs its own build (a few minutes).
#
#   scripts/h2-protections-off.sh          (CARGO_TARGET_DIR defaults to target/h2-off)
#
# Cargo.lock is restored afterwards (the patch makes cargo rewrite h2's entry).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
version=$(sed -n '/^name = "h2"$/{n;s/^version = "\(.*\)"$/\1/p;}' Cargo.lock)
cargo fetch --locked -q
src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"h2-$version" | head -n 1)
work=$(mktemp -d)
cp Cargo.lock "$work/Cargo.lock"
trap 'cp "$work/Cargo.lock" Cargo.lock; rm -rf "$work"' EXIT
cp -r "$src" "$work/h2"
patch -s -d "$work/h2" -p1 <scripts/h2-protections-off.patch
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target/h2-off}
patched=(--config "patch.crates-io.h2.path=\"$work/h2\"")
cargo test "${patched[@]}" -q -p rgrpc-tests --test hostile --no-run

# The switch(es) in the patch, and the test that relies on them.
cases=(
    "cont_count,cont_size continuation_flood_is_cut_off_with_bounded_memory"
    "cont_count empty_continuation_frames_are_cut_off"
    "data_frames an_empty_data_flood_is_cut_off"
    "window_overflow window_update_overflow_is_a_flow_control_error"
    "zero_increment zero_increment_window_update_is_a_protocol_error"
    "header_list oversized_header_lists_and_hpack_reference_bombs_are_refused"
)
run() {
    RGRPC_H2_OFF=$1 timeout 300 cargo test "${patched[@]}" -q -p rgrpc-tests --test hostile \
        -- --exact "$2" >"$work/out" 2>&1
}
bad=0
for case in "${cases[@]}"; do
    read -r off test <<<"$case"
    on_result=fail off_result=fail
    run "" "$test" && on_result=pass
    run "$off" "$test" && off_result=pass
    verdict=ok
    if [ "$on_result" != pass ] || [ "$off_result" != fail ]; then
        verdict=WRONG
        bad=1
    fi
    printf '%-70s on: %s  off (%s): %s  %s\n' "$test" "$on_result" "$off" "$off_result" "$verdict"
done
exit "$bad"

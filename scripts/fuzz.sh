#!/usr/bin/env bash
# Builds the fuzz targets of fuzz/ once and runs each for SECONDS (default 10), failing as soon
# as one finds a crash, a panic (a broken property) or a timeout. The CI calls it with a few
# seconds; see fuzz/README.md for the long run.
#
# Stable Rust only: cargo-fuzz needs nightly flags, which RUSTC_BOOTSTRAP=1 unlocks.
# Sanitizer `none`: every crate of ours forbids `unsafe`, so AddressSanitizer would mostly
# watch dependencies, at the price of a slower build and about half the executions per second;
# coverage guidance is the same without it. Debug assertions stay on (`-a`): integer overflow
# panics instead of wrapping.
set -euo pipefail

seconds="${1:-10}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/fuzz"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

build_flags=(--sanitizer none --debug-assertions)
# A short run (the CI's) is mostly its build: unoptimised, it builds from scratch in about 2
# minutes here instead of 5, and a few seconds of executions find what they find either way.
# Longer runs are optimised.
if [ "$seconds" -le 10 ]; then
    build_flags+=(--dev)
fi
cargo fuzz build "${build_flags[@]}"

mapfile -t targets < <(cargo fuzz list)
failed=()
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    echo "fuzz.sh: $target for ${seconds}s" >&2
    # New inputs go to a scratch directory: a short run must not grow the committed corpus.
    scratch="$(mktemp -d)"
    if ! cargo fuzz run "${build_flags[@]}" "$target" "$scratch" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1; then
        failed+=("$target")
    fi
    rm -rf "$scratch"
done

if ((${#failed[@]})); then
    echo "fuzz.sh: findings in: ${failed[*]} (inputs under fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz.sh: ${#targets[@]} targets ran ${seconds}s each, nothing found" >&2

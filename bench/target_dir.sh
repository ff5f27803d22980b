#!/usr/bin/env bash
# bench/target_dir.sh: prints the directory cargo builds this workspace into, so the benchmark
# scripts and `make install` find target/release/... wherever it really is. Cargo itself is asked
# (`cargo metadata`, which honours CARGO_TARGET_DIR, CARGO_BUILD_TARGET_DIR and build.target-dir in
# a cargo config file, resolved from the current directory as `make` and `cargo build` resolve
# them); without a usable cargo, CARGO_TARGET_DIR or else ./target of the repository.
#
# Usage: bash bench/target_dir.sh        (CARGO=/path/to/cargo to use another cargo)
# Depends on: bash, grep; cargo (optional).

set -u
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if meta=$("${CARGO:-cargo}" metadata --format-version 1 --no-deps --offline \
    --manifest-path "$root/Cargo.toml" 2>/dev/null); then
    # The one "target_directory" key of the workspace (cargo writes JSON on one line; a path with
    # a quote or a backslash in it would be escaped, so take it only if it has neither).
    dir=$(printf '%s' "$meta" | grep -o '"target_directory":"[^"\\]*"' | head -n 1)
    dir=${dir#\"target_directory\":\"}
    dir=${dir%\"}
    if [[ -n $dir ]]; then
        printf '%s\n' "$dir"
        exit 0
    fi
fi
dir=${CARGO_TARGET_DIR:-$root/target}
[[ $dir == /* ]] || dir=$PWD/$dir
printf '%s\n' "$dir"

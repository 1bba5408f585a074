#!/usr/bin/env bash
# test.sh: the project's test command (what CI runs, via .ci/run).
#
#   sudo scripts/test.sh
#
# Runs, in order, and fails on the first failure:
#   scripts/setup.sh                 (as root: installs missing packages; a no-op when all
#                                     are there, so this command works on a fresh machine)
#   cargo fmt --check
#   cargo clippy --all-targets -- -D warnings
#   cargo test -- --test-threads=N   (unit, integration, doc tests; N from XLB_TEST_THREADS,
#                                     default 2: the netns lab tests are heavy)
# Root is needed for the lab and end-to-end tests (network namespaces, XDP); without it
# those tests print SKIPPED and pass, so say it loudly here.
# Extra arguments go to `cargo test` before `--`, e.g. `scripts/test.sh --test lab`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v cargo >/dev/null 2>&1 && [[ -r ${HOME:-/root}/.cargo/env ]]; then
    # shellcheck source=/dev/null
    . "${HOME:-/root}/.cargo/env"
fi
command -v cargo >/dev/null 2>&1 || {
    echo "test.sh: cargo not found; install Rust with rustup and run scripts/setup.sh" >&2
    exit 1
}
if ((EUID != 0)); then
    echo "test.sh: WARNING: not root: the lab and end-to-end tests will be SKIPPED (run: sudo $0)" >&2
fi

if ((EUID == 0)); then
    scripts/setup.sh
fi

threads=${XLB_TEST_THREADS:-2}
step() { echo "==> $*"; }

step cargo fmt --check
cargo fmt --check
step cargo clippy --all-targets -- -D warnings
cargo clippy --all-targets -- -D warnings
step cargo test "$@" -- --test-threads="$threads"
cargo test "$@" -- --test-threads="$threads"
step "all tests passed"

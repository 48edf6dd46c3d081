#!/usr/bin/env bash
# Tessera's whole test suite: doctests, the examples run for real, then the
# unit, property, differential, interop and sqllogictest suites (one
# integration binary) — last, so the run closes on their summary.
# Installs what a fresh machine lacks before it starts.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo is required: install Rust 1.95 with rustup" >&2
    exit 1
fi

# The interoperability test reads Tessera's sketches with the Apache DataSketches Python library;
# the S3 test starts moto's S3-compatible server on 127.0.0.1 itself.
if ! python3 -c "import datasketches, pyarrow, moto.server, boto3" >/dev/null 2>&1; then
    echo "installing the Python packages the tests need: datasketches pyarrow moto[server]" >&2
    python3 -m pip install --quiet --disable-pip-version-check datasketches pyarrow "moto[server]"
fi

cargo test --workspace --doc
cargo run --quiet --example training_set > /dev/null
echo "examples ran: training_set"

if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast
else
    echo "cargo-nextest not found; running the suites with cargo test" >&2
    cargo test --workspace --no-fail-fast --lib --bins --tests
fi

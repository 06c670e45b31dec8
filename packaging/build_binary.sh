#!/usr/bin/env bash
# Build the single-file quantization_cmd executable into dist/ (needs the [build] extra:
# pip install ".[build]"). Usage: bash packaging/build_binary.sh [dist folder]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dist="${1:-$root/dist}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python -m PyInstaller --noconfirm --clean --log-level WARN \
    --distpath "$dist" --workpath "$work" "$root/packaging/quantization_cmd.spec"
echo "built $dist/quantization_cmd"

#!/usr/bin/env bash
# Build the quantization_cmd executable into dist/ (needs the [build] extra: pip install ".[build]").
# Usage: bash packaging/build_binary.sh [--onedir] [dist folder]
# Default: one self-contained file (it unpacks itself at each start, about 0.5 s); --onedir: a
# folder dist/quantization_cmd/ with the executable beside its libraries (starts in 0.15 s).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ "${1:-}" = "--onedir" ]; then
    export QUANTIZATION_CMD_ONEDIR=1
    shift
fi
dist="${1:-$root/dist}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python -m PyInstaller --noconfirm --clean --log-level WARN \
    --distpath "$dist" --workpath "$work" "$root/packaging/quantization_cmd.spec"
echo "built $dist/quantization_cmd"

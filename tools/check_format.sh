#!/usr/bin/env bash
# Fails when any C++/CUDA source differs from clang-format's output.
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(git ls-files '*.cpp' '*.h' '*.cu' '*.cuh')
[ -z "$files" ] && exit 0
# shellcheck disable=SC2086
clang-format --dry-run --Werror $files
echo "formatting: ok ($(echo "$files" | wc -l) files)"

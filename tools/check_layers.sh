#!/usr/bin/env bash
# Fails when a folder includes a folder it may not depend on (DESIGN.md section 1):
# core <- io, distributed <- models <- launch.
set -euo pipefail
cd "$(dirname "$0")/.."
declare -A allowed=(
  [core]="core"
  [io]="core io"
  [distributed]="core distributed"
  [models]="core distributed models"
  [launch]="core io distributed models launch"
)
bad=0
for dir in "${!allowed[@]}"; do
  while IFS= read -r line; do
    target=$(sed -E 's/.*#include "([a-z_]+)\/.*/\1/' <<<"$line")
    case " ${allowed[$dir]} " in
      *" $target "*) ;;
      *) echo "layering violation: $line ($dir may include only: ${allowed[$dir]})"; bad=1 ;;
    esac
  done < <(grep -rnE '#include "(core|io|distributed|models|launch)/' "$dir" \
             --include='*.h' --include='*.cpp' --include='*.cu' --include='*.cuh' || true)
done
[ $bad -eq 0 ] && echo "layering: ok"
exit $bad

#!/usr/bin/env bash
# CI check of the C++ style (.clang-format, docs/development.md "Style"): fails naming every file that
# clang-format would change. Fix with: clang-format -i <files>.
#   check_format.sh <source dir>
set -euo pipefail
cd "$1"
command -v clang-format >/dev/null || { echo "clang-format is not installed (./setup.sh installs it)"; exit 1; }
mapfile -t files < <(git ls-files --cached --others --exclude-standard '*.cpp' '*.hpp' | grep -v '^tests/data/')
((${#files[@]})) || { echo "no C++ files found (is this a git checkout git can read?)"; exit 1; }
bad=()
for f in "${files[@]}"; do
  clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if ((${#bad[@]})); then
  printf 'not clang-formatted: %s\n' "${bad[@]}"
  echo "${#bad[@]} of ${#files[@]} C++ files need: clang-format -i <file>"
  exit 1
fi
echo "check_format: ${#files[@]} C++ files formatted ($(clang-format --version | head -1))"

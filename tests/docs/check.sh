#!/usr/bin/env bash
# The API reference (docs/Doxyfile): doxygen over the public headers, into
# OUT. Its warnings, without their line numbers, must be those listed in
# docs/undocumented.txt, the symbols not documented yet: a new undocumented
# symbol or a broken comment fails, and so does a listed one that has been
# documented since (take it off the list). With --update, the list is
# written again from what doxygen says.
set -uo pipefail
src_dir=$1
out=$2
update=${3:-}
command -v doxygen >/dev/null || { echo "doxygen is missing: run scripts/install-deps.sh" >&2; exit 1; }
mkdir -p "$out"
cd "$src_dir" || exit 1
CTOWER_DOCS_OUT="$out" doxygen docs/Doxyfile >"$out/doxygen.log" 2>&1
status=$?
[ -f "$out/html/index.html" ] || { cat "$out/doxygen.log" >&2; echo "no reference was written" >&2; exit 1; }
sed -E "s|^$src_dir/||; s|:[0-9]+: (error\|warning): |: |" "$out/warnings.txt" | sort -u >"$out/warnings.now"
if [ "$update" = --update ]; then
  cp "$out/warnings.now" docs/undocumented.txt
  echo "docs/undocumented.txt: $(wc -l <docs/undocumented.txt) symbols not documented yet"
  exit 0
fi
new=$(comm -13 docs/undocumented.txt "$out/warnings.now")
done_since=$(comm -23 docs/undocumented.txt "$out/warnings.now")
if [ -n "$new" ]; then
  echo "doxygen's warnings not in docs/undocumented.txt (document these):" >&2
  echo "$new" >&2
  exit 1
fi
if [ -n "$done_since" ]; then
  echo "documented since, take them off docs/undocumented.txt:" >&2
  echo "$done_since" >&2
  exit 1
fi
[ "$status" -eq 0 ] || [ -s "$out/warnings.now" ] || { cat "$out/doxygen.log" >&2; exit 1; }
echo "API reference: $out/html/index.html ($(wc -l <docs/undocumented.txt) symbols still undocumented, listed)"

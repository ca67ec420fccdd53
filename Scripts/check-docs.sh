#!/usr/bin/env bash
# Analyzes the DocC catalog of the RefinerSegment module; a broken symbol link or a warning fails.
# The symbol graph comes from `swift package dump-symbol-graph`, which extracts it from the built module
# whether or not the build had anything to do (a compiler flag emits one only when the module compiles).
set -euo pipefail
cd "$(dirname "$0")/.."
graphs=.build/symbol-graphs
rm -rf "$graphs" && mkdir -p "$graphs"
output=$(swift package dump-symbol-graph --minimum-access-level public 2>&1) || {
    printf '%s\n' "$output" >&2
    exit 1
}
written=$(printf '%s\n' "$output" | sed -n 's/^Files written to //p' | tail -1)
[ -n "$written" ] && [ -f "$written/RefinerSegment.symbols.json" ] || {
    printf '%s\nno symbol graph of RefinerSegment\n' "$output" >&2
    exit 1
}
cp "$written"/RefinerSegment.symbols.json "$graphs/"
for extension in "$written"/RefinerSegment@*.symbols.json; do
    [ -e "$extension" ] && cp "$extension" "$graphs/"
done
docc convert Sources/RefinerSegment/RefinerSegment.docc \
    --additional-symbol-graph-dir "$graphs" \
    --fallback-display-name RefinerSegment --fallback-bundle-identifier io.github.refiner-segment \
    --analyze --warnings-as-errors \
    --output-path .build/docc

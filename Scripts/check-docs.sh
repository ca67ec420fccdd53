#!/usr/bin/env bash
# Analyzes the DocC catalog of the RefinerSegment module; a broken symbol link or a warning fails.
set -euo pipefail
cd "$(dirname "$0")/.."
graphs=.build/symbol-graphs
rm -rf "$graphs" && mkdir -p "$graphs/all" "$graphs/core"
swift build --target RefinerSegment \
    -Xswiftc -emit-symbol-graph -Xswiftc -emit-symbol-graph-dir -Xswiftc "$graphs/all"
cp "$graphs"/all/RefinerSegment*.symbols.json "$graphs/core/"
docc convert Sources/RefinerSegment/RefinerSegment.docc \
    --additional-symbol-graph-dir "$graphs/core" \
    --fallback-display-name RefinerSegment --fallback-bundle-identifier io.github.refiner-segment \
    --analyze --warnings-as-errors \
    --output-path .build/docc

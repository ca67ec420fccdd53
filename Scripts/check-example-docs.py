#!/usr/bin/env python3
"""Checks that the code the guides show from Integrations/ is the code that CI compiles.

In Docs/*.md, a line `<!-- compiled: PATH -->` right before a ```swift block says that the block is
PATH (relative to the repository), whole or a run of its lines, character for character. PATH must be
under Integrations/ (the package CI builds and tests after the library), so a guide never quotes a file that
is not compiled. The check fails when it is not, so an excerpt cannot drift from the code it copies, and
when no block is checked at all (a guide that lost its markers). Run from anywhere:
`python3 Scripts/check-example-docs.py`.
"""
import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parent.parent
marker = re.compile(r"^<!-- compiled: (\S+) -->$")
failures = []
checked = 0
for doc in sorted((root / "Docs").glob("*.md")):
    lines = doc.read_text(encoding="utf-8").split("\n")
    for number, line in enumerate(lines):
        match = marker.match(line)
        if not match:
            continue
        where = f"{doc.relative_to(root)}:{number + 1}"
        source = root / match.group(1)
        if not match.group(1).startswith("Integrations/"):
            failures.append(f"{where}: {match.group(1)} is not under Integrations/, which CI compiles")
            continue
        if number + 1 >= len(lines) or lines[number + 1] != "```swift":
            failures.append(f"{where}: the marker is not followed by a ```swift block")
            continue
        try:
            end = lines.index("```", number + 2)
        except ValueError:
            failures.append(f"{where}: the block is not closed")
            continue
        block = lines[number + 2:end]
        if not source.is_file():
            failures.append(f"{where}: {match.group(1)} does not exist")
            continue
        code = source.read_text(encoding="utf-8").split("\n")
        if not block or not any(code[i:i + len(block)] == block for i in range(len(code) - len(block) + 1)):
            failures.append(f"{where}: the block is not a run of lines of {match.group(1)}; copy it again")
            continue
        checked += 1
if checked == 0 and not failures:
    failures.append("no compiled code block found in Docs/: the guides lost their markers")
for failure in failures:
    print(failure, file=sys.stderr)
if failures:
    sys.exit(1)
print(f"{checked} code blocks in Docs/ match the compiled code in Integrations/")

#!/usr/bin/env python3
"""Code lines of Rust sources: blanks, comments (//, ///, //!, /* */) and #[cfg(test)] blocks
excluded. Usage: scripts/loc.py DIR... (prints per file and per directory; last line: total).
Used for the bindings' size budget (issue 13: ffi/src + python/src at most 3,000)."""
import glob
import sys


def count(path: str) -> int:
    lines = open(path, encoding="utf-8").read().split("\n")
    n, i, in_comment = 0, 0, False
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith("#[cfg(test)]"):
            depth, started, j = 0, False, i + 1
            while j < len(lines):
                depth += lines[j].count("{") - lines[j].count("}")
                started |= "{" in lines[j]
                j += 1
                if started and depth <= 0:
                    break
            i = j
            continue
        if in_comment:
            in_comment = "*/" not in line
        elif line.startswith("/*"):
            in_comment = "*/" not in line
        elif line and not line.startswith("//"):
            n += 1
        i += 1
    return n


total = 0
for d in sys.argv[1:]:
    s = 0
    for f in sorted(glob.glob(d + "/**/*.rs", recursive=True)):
        c = count(f)
        s += c
        print(f"{c:6} {f}")
    print(f"{s:6} TOTAL {d}")
    total += s
print(total)

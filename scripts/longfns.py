#!/usr/bin/env python3
"""Lists Rust functions longer than a limit (default 80 lines, signature to closing brace,
blank and comment lines included). Usage: scripts/longfns.py [--check] [--max N] DIR...
Prints `lines path:line name`, longest first; exit status 0, or 1 with --check when any is
found (make test runs it so over core/, ffi/ and python/). A brace counter, not a parser: strings or chars
holding braces can skew it, which is fine for a size report (issue 13: no function over ~80)."""
import glob
import re
import sys

FN = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?(extern\s+\"C\"\s+)?fn\s+(\w+)")


def strip(line: str) -> str:
    line = re.sub(r'"(\\.|[^"\\])*"', '""', line)
    line = re.sub(r"'(\\.|[^'\\])'", "''", line)
    return line.split("//", 1)[0]


def scan(path: str):
    lines = open(path, encoding="utf-8").read().split("\n")
    out = []
    for i, raw in enumerate(lines):
        m = FN.match(raw)
        if not m:
            continue
        depth, opened, j = 0, False, i
        while j < len(lines):
            s = strip(lines[j])
            if not opened and ";" in s and "{" not in s:
                break  # a declaration without a body (trait method, extern)
            depth += s.count("{") - s.count("}")
            opened |= "{" in s
            if opened and depth <= 0:
                out.append((j - i + 1, f"{path}:{i + 1}", m.group(7)))
                break
            j += 1
    return out


args = sys.argv[1:]
check = args[:1] == ["--check"]
if check:
    args = args[1:]
limit = 80
if args[:1] == ["--max"]:
    limit, args = int(args[1]), args[2:]
found = []
for d in args:
    for f in sorted(glob.glob(d + "/**/*.rs", recursive=True)):
        found += [x for x in scan(f) if x[0] > limit]
for n, where, name in sorted(found, reverse=True):
    print(f"{n:5} {where} {name}")
print(f"{len(found)} functions over {limit} lines")
sys.exit(1 if check and found else 0)

#!/usr/bin/env python3
"""Doxygen's input filter for ctower's headers: they are written with plain
C comments, as libuv's are, and this makes doxygen read them as the
documentation they are, without changing the headers:

- a comment on lines of its own, before a declaration, becomes /** ... */;
- a comment after a declaration on the same line (a member's, an
  enumerator's) becomes /**< ... */;
- the file's first comment, before its include guard, is the file's (@file).

Lines keep their numbers, so doxygen's warnings point at the headers."""
import os
import re
import sys

def main(path):
    out = []
    seen_first = False
    depth = 0
    private_at = None  # the brace depth of a struct whose private part is hidden
    in_comment = False
    with open(path, encoding="utf-8") as f:
        for line in f:
            stripped = line.lstrip()
            code = re.sub(r"/\*.*?\*/", "", line)
            closes = depth + code.count("{") - code.count("}")
            # "/* private */" (or "/* private; ... */") in a struct: what follows
            # in it is not the API, and is left out of the reference
            if private_at is None and depth > 0 and re.match(r"\s*/\*\s*private\b", line):
                private_at = depth
                indent = line[: len(line) - len(stripped)]
                out.append(indent + "/** @cond PRIVATE */" + (
                    "\n" if stripped.rstrip().endswith("*/") else " /*" + stripped[2:]))
                continue
            if private_at is not None and closes < private_at:
                line = "/** @endcond */ " + line
                private_at = None
            depth = closes
            if stripped.startswith("/*") and not stripped.startswith(("/**", "/*!")):
                indent = line[: len(line) - len(stripped)]
                if not seen_first and not out_has_code(out):
                    # (@file takes the file's name first; the text follows)
                    line = indent + "/** @file " + os.path.basename(path) + " " + \
                        stripped[2:].lstrip()
                else:
                    line = indent + "/**" + stripped[2:]
                seen_first = True
            else:
                # code, then a comment on the same line: the code's
                m = re.match(r"^(\s*[^/\s].*?[;,{])(\s*)/\*(?![*!<])(.*)$", line.rstrip("\n")) or \
                    re.match(r"^(\s*#define\s+\S+\s+\S.*?)(\s+)/\*(?![*!<])(.*)$", line.rstrip("\n"))
                if m and (not m.group(1).lstrip().startswith(("*", "#")) or
                          m.group(1).lstrip().startswith("#define")):
                    line = m.group(1) + m.group(2) + "/**<" + m.group(3) + "\n"
            # a backslash in a comment ("\\r\\n" in a line codec's) is text,
            # not a doxygen command
            if in_comment or "/*" in line:
                head, sep, tail = line.partition("/*")
                line = head + sep + tail.replace("\\", "\\\\") if sep else \
                    line.replace("\\", "\\\\")
            in_comment = (in_comment or "/*" in line) and "*/" not in line.rsplit("/*", 1)[-1]
            out.append(line)
    sys.stdout.write("".join(group_runs(out)))

def out_has_code(out):
    return any(l.strip() and not l.lstrip().startswith(("/*", "*")) for l in out)

def group_runs(lines):
    """A comment on lines of its own over several declarations in a row
    (free_msg and free_ctx; three functions of one kind) speaks of them
    all: they become a member group, whose documentation
    doxygen gives to each (DISTRIBUTE_GROUP_DOC)."""
    i, n = 0, len(lines)
    while i < n:
        s = lines[i].strip()
        if s.startswith("/**") and not s.startswith("/**<") and "@file" not in s and \
                "@cond" not in s and "@endcond" not in s:
            j = i
            while j < n and "*/" not in lines[j]:
                j += 1
            start = j + 1
            end = start
            items = 0
            while end < n:
                t = lines[end].strip()
                # (not macros: a marker on a #define line would break it)
                if not t or t.startswith(("/*", "*", "}", "#")) or "@cond" in t or "{" in t:
                    break
                if t.endswith(";"):
                    items += 1
                end += 1
            if items >= 2 and "{" not in (lines[end] if end < n else ""):
                lines[start] = "/**@{*/ " + lines[start]
                lines[end - 1] = lines[end - 1].rstrip("\n") + " /**@}*/\n"
            i = max(end, i + 1)
        else:
            i += 1
    return lines

if __name__ == "__main__":
    main(sys.argv[1])

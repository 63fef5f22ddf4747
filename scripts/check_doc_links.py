#!/usr/bin/env python3
"""Check the relative links of the documentation.

Every inline markdown link [text](path#anchor) (and image ![alt](path)) in README.md and
docs/**/*.md whose target is relative (not http:, https:, mailto:) must resolve to an existing
file or directory, relative to the linking file; when the target is a .md file (or the link is
only '#anchor', the same file) and carries an anchor, the anchor must be one of the target's
headings, slugged as GitHub does (lowercase, punctuation dropped, spaces to '-', '-1', '-2' ...
for repeated headings). Links inside fenced code blocks and inline code are ignored.

Usage: python3 scripts/check_doc_links.py [REPO_ROOT]
Exit 0 when every link resolves, 1 otherwise (one line per broken link: file:line: link: why).
Python 3 standard library only.
"""

import os
import re
import sys
import urllib.parse

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
INLINE_CODE = re.compile(r"(`+)(.*?)\1")
# [text](target) or ![alt](target); target without spaces, optional "title"
LINK = re.compile(r"!?\[((?:[^\[\]]|\[[^\]]*\])*)\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def markdown_files(root):
    files = []
    readme = os.path.join(root, "README.md")
    if os.path.isfile(readme):
        files.append(readme)
    for base, dirs, names in os.walk(os.path.join(root, "docs")):
        dirs.sort()
        for name in sorted(names):
            if name.endswith(".md"):
                files.append(os.path.join(base, name))
    return files


def text_lines(path):
    """(line number, text) of the lines outside fenced code blocks."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    out = []
    fence = None
    for number, line in enumerate(lines, 1):
        m = FENCE.match(line)
        if m:
            if fence is None:
                fence = m.group(1)
            elif m.group(1) == fence:
                fence = None
            continue
        if fence is None:
            out.append((number, line))
    return out


def slug(heading):
    """GitHub's anchor for a heading's text."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links -> their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML tags
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)  # keep letters, digits, '_', '-', ' '
    return text.replace(" ", "-")


_anchor_cache = {}


def anchors(path):
    if path not in _anchor_cache:
        seen = {}
        result = set()
        for _, line in text_lines(path):
            m = HEADING.match(line)
            if not m:
                continue
            base = slug(m.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            result.add(base if count == 0 else "%s-%d" % (base, count))
        # explicit HTML anchors: <a name="x"></a> or id="x"
        with open(path, encoding="utf-8") as f:
            for m in re.finditer(r"<a\s+(?:name|id)=\"([^\"]+)\"", f.read()):
                result.add(m.group(1))
        _anchor_cache[path] = result
    return _anchor_cache[path]


def check(root):
    errors = []
    checked = 0
    for path in markdown_files(root):
        rel = os.path.relpath(path, root)
        for number, line in text_lines(path):
            stripped = INLINE_CODE.sub("", line)
            for m in LINK.finditer(stripped):
                target = m.group(2)
                if EXTERNAL.match(target):
                    continue
                checked += 1
                file_part, _, anchor = target.partition("#")
                file_part = urllib.parse.unquote(file_part)
                if file_part:
                    dest = os.path.normpath(os.path.join(os.path.dirname(path), file_part))
                else:
                    dest = path
                if not os.path.exists(dest):
                    errors.append("%s:%d: %s: no such file %s"
                                  % (rel, number, target, os.path.relpath(dest, root)))
                    continue
                if anchor and dest.endswith(".md") and os.path.isfile(dest):
                    if urllib.parse.unquote(anchor).lower() not in anchors(dest):
                        errors.append("%s:%d: %s: no heading '#%s' in %s"
                                      % (rel, number, target, anchor, os.path.relpath(dest, root)))
    return checked, errors


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.dirname(here)
    checked, errors = check(root)
    for e in errors:
        print(e)
    print("check_doc_links: %d relative links checked, %d broken" % (checked, len(errors)))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

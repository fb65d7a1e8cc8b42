"""The documentation's links stay inside the repository and resolve.

Every link in README.md and docs/*.md (inline ``[text](path)``, ``[text](path#anchor)``, images,
reference definitions, autolinks and bare URLs) must be relative, stay inside the repository
root, name an existing file or directory and, for an ``#anchor`` into a Markdown file, a heading
of that file (GitHub's slugs) or an explicit ``<a id=...>``. Code blocks and inline code are not
links and are skipped.
"""

import pathlib
import posixpath
import re
import urllib.parse

REPO = pathlib.Path(__file__).resolve().parents[1]

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
# [text](dest "title") and ![alt](dest): one level of nested brackets in the text, balanced
# parentheses in the destination.
_INLINE_LINK = re.compile(
    r"!?\[(?:[^\[\]\n]|\[[^\[\]\n]*\])*\]"
    r"\(\s*(<[^>\n]*>|[^\s()<>]*(?:\([^\s()]*\)[^\s()<>]*)*)"
    r"(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)"
)
_REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
_AUTOLINK = re.compile(r"<([a-zA-Z][a-zA-Z0-9+.-]*:[^\s<>]*)>")
_BARE_URL = re.compile(r"(?<![\w(<])(?:https?://|www\.)[^\s<>()]+", re.IGNORECASE)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
_ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_HTML_ANCHOR = re.compile(r"<a\s[^>]*\b(?:id|name)\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)


def markdown_files(root: pathlib.Path) -> list[pathlib.Path]:
    """README.md and every Markdown file under docs/ (the pages this test covers)."""
    files = [root / "README.md"] if (root / "README.md").is_file() else []
    return files + sorted((root / "docs").rglob("*.md"))


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks, with inline code blanked out."""
    lines, fence = [], None
    for number, line in enumerate(text.splitlines(), start=1):
        match = _FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)
            continue
        if fence is not None:
            if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence):
                fence = None
            continue
        lines.append((number, _CODE_SPAN.sub(lambda m: "x" * len(m.group(0)), line)))
    return lines


def _heading_text(raw: str) -> str:
    """The text GitHub renders for a heading's Markdown: code, links and emphasis unwrapped."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", raw)
    text = re.sub(r"<[^>]+>", "", text)
    return text.replace("`", "").replace("*", "").strip()


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = _heading_text(heading).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor a Markdown file defines: heading slugs (duplicates get -1, -2, ...) and <a id>."""
    found: set[str] = set()
    counts: dict[str, int] = {}
    previous = None
    for _, line in _prose_lines_with_code(text):
        heading = None
        atx = _ATX_HEADING.match(line)
        if atx:
            heading = atx.group(2) or ""
        elif previous and previous.strip() and _SETEXT_UNDERLINE.match(line) and not previous.startswith(" " * 4):
            heading = previous.strip()
        if heading is not None:
            slug = github_slug(heading)
            seen = counts.get(slug, 0)
            counts[slug] = seen + 1
            found.add(slug if seen == 0 else f"{slug}-{seen}")
        found.update(_HTML_ANCHOR.findall(line))
        previous = None if atx else line
    return found


def _prose_lines_with_code(text: str) -> list[tuple[int, str]]:
    """Like prose_lines, but inline code is kept (a heading's slug includes its code)."""
    keep = {number for number, _ in prose_lines(text)}
    return [(number, line) for number, line in enumerate(text.splitlines(), start=1) if number in keep]


def link_targets(text: str) -> list[tuple[int, str]]:
    """(line number, destination) of every link in a Markdown text, code excluded."""
    targets = []
    for number, line in prose_lines(text):
        for match in _INLINE_LINK.finditer(line):
            targets.append((number, match.group(1).strip("<>")))
        without_links = _INLINE_LINK.sub("", line)
        definition = _REFERENCE_DEFINITION.match(without_links)
        if definition:
            targets.append((number, definition.group(1).strip("<>")))
            without_links = without_links[definition.end() :]
        targets.extend((number, match.group(1)) for match in _AUTOLINK.finditer(without_links))
        targets.extend((number, match.group(0)) for match in _BARE_URL.finditer(_AUTOLINK.sub("", without_links)))
    return targets


def check_links(root: pathlib.Path, files: list[pathlib.Path] | None = None) -> list[str]:
    """Problems with the links of `files` (default: markdown_files(root)), one line each."""
    root = root.resolve()
    problems = []
    anchor_cache: dict[pathlib.Path, set[str]] = {}

    def anchors_of(path: pathlib.Path) -> set[str]:
        if path not in anchor_cache:
            anchor_cache[path] = anchors(path.read_text(encoding="utf-8"))
        return anchor_cache[path]

    for path in markdown_files(root) if files is None else files:
        path = path.resolve()
        relative_file = path.relative_to(root).as_posix()
        for number, target in link_targets(path.read_text(encoding="utf-8")):
            where = f"{relative_file}:{number}: {target}"
            if _SCHEME.match(target) or target.startswith("//") or target.lower().startswith("www."):
                problems.append(f"{where}: leaves the repository (no external links; name the project instead)")
                continue
            link_path, _, fragment = target.partition("#")
            link_path = urllib.parse.unquote(link_path)
            if link_path.startswith("/"):
                problems.append(f"{where}: absolute path (use a path relative to the file)")
                continue
            if link_path:
                joined = posixpath.normpath(posixpath.join(posixpath.dirname(relative_file), link_path))
                if joined == ".." or joined.startswith("../"):
                    problems.append(f"{where}: points outside the repository")
                    continue
                resolved = root / joined
                if not resolved.exists():
                    problems.append(f"{where}: no such file or directory")
                    continue
            else:
                resolved = path
            if fragment and resolved.is_file() and resolved.suffix == ".md":
                if urllib.parse.unquote(fragment).lower() not in anchors_of(resolved):
                    problems.append(f"{where}: no heading with anchor #{fragment} in {resolved.relative_to(root)}")
    return problems


def test_docs_links_resolve_inside_the_repository():
    problems = check_links(REPO)
    assert not problems, "broken or external links:\n" + "\n".join(problems)


def test_github_slugs():
    assert github_slug("One SST-2 epoch (`sst2_epoch.md`)") == "one-sst-2-epoch-sst2_epochmd"
    assert github_slug("Performance and batching tuning") == "performance-and-batching-tuning"
    assert github_slug("`llm_prepare`: raw data to records") == "llm_prepare-raw-data-to-records"
    assert github_slug("Set-up: two commands") == "set-up-two-commands"
    assert github_slug("1b. A [keras-hub](x.md) preset") == "1b-a-keras-hub-preset"


def _tree(root: pathlib.Path, files: dict[str, str]) -> pathlib.Path:
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(content, encoding="utf-8")
    return root


def test_checker_accepts_good_links(tmp_path):
    root = _tree(
        tmp_path / "repo",
        {
            "README.md": (
                "# Title\n\nSee [guide](docs/guide.md), [its part](docs/guide.md#part-two-b), "
                "[again](docs/guide.md#part-two-b-1), [setext](docs/guide.md#other-title), "
                "[anchor](docs/guide.md#custom), [here](#title), [dir](docs/) and "
                '![img](docs/a%20b.png "title").\n\n[ref]: docs/guide.md#part-two-b\n'
            ),
            "docs/guide.md": (
                "# Guide\n\n## Part two (`b`)\n\n## Part two: b\n\nOther title\n---\n\n"
                '<a id="custom"></a>\n\nBack to the [README](../README.md#title).\n'
                "```bash\n# not a heading: [x](https://example.com) [y](missing.md)\n```\n"
                "Inline code is not a link: `[x](missing.md)`, `curl http://localhost:8501`.\n"
            ),
            "docs/a b.png": "",
        },
    )
    assert check_links(root) == []


def test_checker_reports_every_kind_of_bad_link(tmp_path):
    (tmp_path / "outside.md").write_text("# Outside\n", encoding="utf-8")
    root = _tree(
        tmp_path / "repo",
        {
            "README.md": (
                "# Title\n\n[gone](docs/missing.md) [bad anchor](docs/guide.md#nope) "
                "[self](#nowhere) [web](https://example.com/page) [plain](http://example.com)\n"
                "[up](../outside.md) [sneaky](docs/../../repo/README.md) [abs](/README.md) "
                "[mail](mailto:a@b.c)\n<https://example.org> and www.example.net\n\n"
                "[def]: https://example.com/ref\n"
            ),
            "docs/guide.md": "# Guide\n\n[shared data](../../shared/data/sst2/train.tsv)\n",
        },
    )
    problems = check_links(root)
    expected = [
        ("README.md:3: docs/missing.md", "no such file"),
        ("README.md:3: docs/guide.md#nope", "no heading"),
        ("README.md:3: #nowhere", "no heading"),
        ("README.md:3: https://example.com/page", "leaves the repository"),
        ("README.md:3: http://example.com", "leaves the repository"),
        ("README.md:4: ../outside.md", "outside the repository"),
        ("README.md:4: docs/../../repo/README.md", "outside the repository"),
        ("README.md:4: /README.md", "absolute path"),
        ("README.md:4: mailto:a@b.c", "leaves the repository"),
        ("README.md:5: https://example.org", "leaves the repository"),
        ("README.md:5: www.example.net", "leaves the repository"),
        ("README.md:7: https://example.com/ref", "leaves the repository"),
        ("docs/guide.md:3: ../../shared/data/sst2/train.tsv", "outside the repository"),
    ]
    for prefix, reason in expected:
        assert any(p.startswith(prefix + ":") and reason in p for p in problems), (prefix, problems)
    assert len(problems) == len(expected), problems

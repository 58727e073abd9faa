"""The documentation holds together: every link resolves, and the README's Python example runs.

Links are checked in README.md, CHANGELOG.md and docs/*.md: relative links and links into this
project's own GitHub repository (which the README uses, since the napari hub and PyPI do not
resolve relative links) must name an existing file, and an anchor (``#...``) must name a heading of
that file as GitHub spells it. Other web addresses are not fetched.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from builders import write_image
from napari_octanet.core.synthetic import synthetic_octa

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", REPO / "CHANGELOG.md", *sorted((REPO / "docs").glob("*.md"))]
#: Web addresses that stand for files of this repository, and where the path starts after them.
OWN_URLS = re.compile(
    r"^https://(?:github\.com/napari-octanet/napari-octanet/(?:blob|tree)/main|"
    r"raw\.githubusercontent\.com/napari-octanet/napari-octanet/main)(?P<path>/[^#?]*)?(?:#(?P<anchor>.*))?$"
)
FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
INLINE_LINK = re.compile(r"!?\[[^\[\]]*\]\(\s*(?P<target>[^()\s]+)\s*\)")
REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(?P<target>\S+)", re.MULTILINE)
README_LINE_LIMIT = 300


def _prose(text: str) -> str:
    """The text without fenced code blocks and inline code, whose brackets are not links."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def _links(doc: Path) -> list[str]:
    prose = _prose(doc.read_text(encoding="utf-8"))
    return [m["target"] for m in INLINE_LINK.finditer(prose)] + [
        m["target"] for m in REFERENCE_DEFINITION.finditer(prose)
    ]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text without markup, lower case, punctuation dropped, spaces as '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text stays
    text = re.sub(r"[`*_]|<[^>]+>", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(doc: Path) -> set[str]:
    """Every heading's anchor in a markdown file; a repeated heading gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for match in re.finditer(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", FENCE.sub("", doc.read_text(encoding="utf-8")), re.M):
        slug = _slug(match[1])
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def broken(doc: Path, target: str) -> str | None:
    """Why a link in ``doc`` does not resolve, or None when it does (or is a web address we do not check)."""
    own = OWN_URLS.match(target)
    if own:
        path, anchor = REPO / (own["path"] or "/").lstrip("/"), own["anchor"]
    elif re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):
        return None
    else:
        file_part, _, anchor = target.partition("#")
        path = (doc.parent / unquote(file_part)) if file_part else doc
        anchor = anchor or None
    if not path.exists():
        return f"{path.relative_to(REPO) if path.is_relative_to(REPO) else path} does not exist"
    if anchor and path.suffix == ".md" and unquote(anchor) not in anchors(path):
        return f"{path.relative_to(REPO)} has no heading #{anchor}"
    return None


def test_the_docs_are_there() -> None:
    names = {doc.name for doc in DOCS}
    assert {"README.md", "CHANGELOG.md", "benchmarks.md", "training.md", "behaviour.md"} <= names


@pytest.mark.parametrize("doc", DOCS, ids=lambda doc: str(doc.relative_to(REPO)))
def test_every_link_resolves(doc: Path) -> None:
    links = _links(doc)
    problems = [f"{target}: {why}" for target in links if (why := broken(doc, target))]
    assert not problems, f"{doc.name}: " + "; ".join(problems)


def test_the_link_checker_catches_a_missing_file_and_a_missing_heading() -> None:
    readme = REPO / "README.md"
    assert broken(readme, "docs/no-such-page.md") == "docs/no-such-page.md does not exist"
    assert broken(readme, "CHANGELOG.md#no-such-heading") == "CHANGELOG.md has no heading #no-such-heading"
    own = "https://github.com/napari-octanet/napari-octanet/blob/main/docs/no-such-page.md"
    assert broken(readme, own) == "docs/no-such-page.md does not exist"
    assert broken(readme, "#python-api") is None and broken(readme, "https://napari.org") is None


def test_headings_get_githubs_anchors(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# A `code` title, with: punctuation\n## Notes\n## Notes\n```\n# not a heading\n```\n")
    assert anchors(page) == {"a-code-title-with-punctuation", "notes", "notes-1"}


def test_the_readme_is_a_short_guide() -> None:
    lines = (REPO / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= README_LINE_LIMIT, f"README.md has {lines} lines; move detail to docs/"


def readme_python_example() -> str:
    """The one ```python block of the README's "## Python API" section."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = re.search(r"^## Python API\n(.*?)(?=^## |\Z)", readme, re.M | re.S)
    assert section, 'the README has no "## Python API" section'
    blocks = re.findall(r"^```python\n(.*?)^```", section[1], re.M | re.S)
    assert len(blocks) == 1, f'"## Python API" should hold one python block, not {len(blocks)}'
    return blocks[0]


def test_the_readme_python_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "scans").mkdir()
    write_image(tmp_path / "scans" / "scan.png", synthetic_octa(96, seed=0)[0])
    exec(compile(readme_python_example(), "README.md (Python API)", "exec"), {"__name__": "readme_example"})
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 2 and all(printed), printed

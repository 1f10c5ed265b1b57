"""The project stands alone: no file cites a document outside the repository, and every cited design
fact ("docs/architecture.md fact N") is one that docs/architecture.md defines."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.support.paths import ROOT

ARCHITECTURE = ROOT / "docs" / "architecture.md"
# Built from parts so that this file does not match its own patterns.
OUTSIDE = re.compile(r"(?<![\w.-])" + "shared" + r"/|(?<![\w/.-])(?:" + "CONTRACT|ARCHITECTURE" + r")\.md")
CITATION = re.compile(r"(?:ARCHITECTURE|architecture\.md)\s+facts?\s+(\d+)")
LOCAL_CITATION = re.compile(r"\bfacts?\s+(\d+)")  # inside docs/architecture.md itself


def project_texts() -> dict[str, str]:
    """Every file git tracks or would track (new files included), as text; binary files are left out."""
    names = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode("utf-8").split("\0")
    out = {}
    for name in filter(None, names):
        path = ROOT / name
        if not path.is_file():
            continue  # deleted in the working tree
        try:
            out[name] = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
    return out


def defined_facts(text: str) -> set[int]:
    section = text.split("## Facts the design rests on", 1)[1].split("\n## ", 1)[0]
    return {int(n) for n in re.findall(r"^(\d+)\. ", section, flags=re.MULTILINE)}


def cited_facts(name: str, text: str) -> set[int]:
    found = {int(n) for n in CITATION.findall(text)}
    if name == "docs/architecture.md":
        found |= {int(n) for n in LOCAL_CITATION.findall(text)}
    return found


@pytest.mark.unit
def test_architecture_defines_its_facts_in_order() -> None:
    facts = defined_facts(ARCHITECTURE.read_text(encoding="utf-8"))
    assert facts and facts == set(range(1, max(facts) + 1))


def test_no_file_cites_a_document_outside_the_repository() -> None:
    hits = [f"{name}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}"
            for name, text in project_texts().items() for m in OUTSIDE.finditer(text)]
    assert not hits, "cites a file outside the repository:\n" + "\n".join(hits)


def test_every_cited_fact_is_defined() -> None:
    facts = defined_facts(ARCHITECTURE.read_text(encoding="utf-8"))
    texts = project_texts()
    assert sum(bool(cited_facts(n, t)) for n, t in texts.items()) >= 10  # the scan sees the citations
    bad = [f"{name}: fact {n}" for name, text in texts.items() for n in sorted(cited_facts(name, text) - facts)]
    assert not bad, "cites a fact docs/architecture.md does not define:\n" + "\n".join(bad)


@pytest.mark.unit
def test_the_checks_catch_what_they_are_for() -> None:
    assert OUTSIDE.search("see " + "shared" + "/ARCHITECTURE.md") and OUTSIDE.search("`CONTRACT" + ".md` section 5")
    assert not OUTSIDE.search("docs/contract.md and unshared/ data")
    assert cited_facts("x.py", "(docs/architecture.md\n  fact 14)") == {14}
    assert cited_facts("docs/architecture.md", "destructive (fact 3)") == {3}
    assert defined_facts("## Facts the design rests on\n\n1. **a**\n2. **b**\n   3. no\n## Next\n4. x") == {1, 2}


def test_citations_name_the_document_they_cite() -> None:
    """A bare "ARCHITECTURE fact N" names no file a reader of this repository can open."""
    bare = re.compile("ARCHITECTURE" + r"\s+facts?\s+\d+")
    hits = [f"{name}: {m.group(0)}" for name, text in project_texts().items() for m in bare.finditer(text)]
    assert not hits, "cite facts as 'docs/architecture.md fact N':\n" + "\n".join(hits)

"""reports/items.html: every paired item in one self-contained page, all text escaped, and its filters,
sorting and links driven for real in headless Chromium over the DevTools protocol (tools/cdp.py)."""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import re
import shutil
import struct
from pathlib import Path

import pytest

from scoring.items_html import SCRIPT
from scoring.report import write_report
from tests.support.paths import ROOT

FIXTURE_RUN = ROOT / "tests" / "fixtures" / "report" / "run_demo"
HOSTILE = '</td></tr><script>window.pwned=1</script><img src=x onerror="window.pwned=2"><b>bold</b>'
HOSTILE_ITEM = ("triviaqa", "tr004", "treatment", "0.7")
no_chromium = pytest.mark.skipif(shutil.which("chromium") is None and shutil.which("chromium-browser") is None,
                                 reason="chromium not installed (Debian: apt-get install chromium)")
VISIBLE = "[...document.querySelectorAll('#items tbody tr')].filter(r => r.getClientRects().length > 0)"


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """items.html of the report fixture's trial, with one hostile model answer."""
    run = tmp_path_factory.mktemp("items") / "run_demo"
    shutil.copytree(FIXTURE_RUN, run)
    results = run / "demo-default" / "results"
    pred = results / "predictions.csv"
    with pred.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    hit = [r for r in rows if (r["dataset"], r["item_id"], r["condition"], r["temp"]) == HOSTILE_ITEM]
    assert len(hit) == 1
    hit[0]["response_text"] = HOSTILE
    with pred.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    out = write_report(results, None, figures=False)
    assert out["items_html"] is not None
    return out["items_html"]


def _sig(page: Path) -> dict:
    return json.loads((page.parent.parent / "results" / "significance.json").read_text(encoding="utf-8"))


def _total(sig: dict, cell: str, dataset: str | None = None) -> int:
    """Sum of McNemar ``cell`` (b or c) over the blocks, or over one dataset's subgroups."""
    total = 0
    for per_type in sig["results"].values():
        for block in per_type.values():
            if dataset is None:
                total += block["mcnemar"][cell]
            elif dataset in block["subgroups"]["dataset"]:
                total += block["subgroups"]["dataset"][dataset]["mcnemar"][cell]
    return total


@pytest.mark.unit
def test_page_is_self_contained_and_escaped(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    assert text.lower().count("<script") == 1  # the page's own script, nothing from the data
    assert "&lt;/td&gt;&lt;/tr&gt;&lt;script&gt;window.pwned=1&lt;/script&gt;&lt;img src=x onerror=&quot;" in text
    assert "Is &lt;img src=x onerror=alert(1)&gt; a capital &amp; a city?" in text  # questions too
    assert not re.search(r"https?://", text) and "<link" not in text.lower() and "@import" not in text
    assert not re.search(r"""<[^>]*\s(?:src|href)\s*=""", text, flags=re.IGNORECASE)  # no tag fetches anything
    digest = base64.b64encode(hashlib.sha256(SCRIPT.encode("utf-8")).digest()).decode("ascii")
    assert f"script-src 'sha256-{digest}'" in text and "default-src 'none'" in text  # only that script may run
    assert text.count('<tr data-temp="') == 400  # every paired item x temperature, not only the changed ones


def _set(browser, element_id: str, value: str) -> None:
    """Choose a filter value as a user would, firing the select's change event."""
    browser.eval(f"(() => {{ const s = document.getElementById({json.dumps(element_id)}); s.value = {json.dumps(value)}; "
                 "s.dispatchEvent(new Event('change')); })()")


def _type(browser, text: str) -> None:
    """Type into the search box as a user would (focus, then key input through the protocol)."""
    browser.eval("(() => { const q = document.getElementById('q'); q.value = ''; q.focus(); })()")
    browser.call("Input.insertText", text=text)


@no_chromium
def test_filters_narrow_the_rows_in_chromium(page: Path) -> None:
    from tools.cdp import Chromium

    sig = _sig(page)
    with Chromium(width=1400, height=1000) as browser:
        browser.open(page)
        assert browser.eval(f"{VISIBLE}.length") == 400
        assert browser.eval("window.pwned") is None  # the hostile answer is text, not markup
        cell = browser.eval(f"{VISIBLE}.find(r => r.cells[2].textContent === 'triviaqa' && "
                            "r.cells[3].textContent === 'tr004' && r.dataset.temp === '0.7').cells[7].textContent")
        assert HOSTILE in cell
        _type(browser, "sq003")
        assert browser.eval(f"{VISIBLE}.map(r => r.cells[3].textContent)") == ["sq003", "sq003"]  # two temps
        assert browser.eval("document.getElementById('shown').textContent") == "2"
        _type(browser, "onerror=alert(1)")  # the questions that hold markup, found by their text
        found = browser.eval(f"{VISIBLE}.map(r => r.cells[3].textContent)")
        assert sorted(found) == ["nq003", "nq003", "sq003", "sq003", "tr003", "tr003"]
        _type(browser, "SQ003   0.7")  # words in any order and case, all of them
        assert browser.eval(f"{VISIBLE}.map(r => r.dataset.temp + ' ' + r.cells[3].textContent)") == ["0.7 sq003"]
        _type(browser, "")
        _set(browser, "change", "fixed")
        assert browser.eval(f"{VISIBLE}.length") == _total(sig, "b") == 123
        _set(browser, "change", "broke")
        assert browser.eval(f"{VISIBLE}.length") == _total(sig, "c")
        _set(browser, "dataset", "triviaqa")
        assert browser.eval(f"{VISIBLE}.length") == _total(sig, "c", "triviaqa")
        _set(browser, "change", "")
        _set(browser, "dataset", "")
        _set(browser, "control", "right")
        _set(browser, "treatment", "wrong")  # the McNemar c cell, whatever the change filter says
        assert browser.eval(f"{VISIBLE}.length") == _total(sig, "c")
        _set(browser, "treatment", "")
        _set(browser, "control", "")
        _set(browser, "change", "now_abstains")
        shown = browser.eval(f"{VISIBLE}.map(r => r.cells[8].textContent)")
        assert shown and all(s == "fixed, now abstains" for s in shown)


@no_chromium
def test_sorting_and_deep_links_in_chromium(page: Path, tmp_path: Path) -> None:
    from tools.cdp import Chromium

    sig = _sig(page)
    with Chromium(width=1400, height=1000) as browser:
        browser.open(page, "temp=0.7&type=closed&change=broke")  # the report's "all N in items.html" link
        m = sig["results"]["0.7"]["closed"]["mcnemar"]
        assert browser.eval(f"{VISIBLE}.length") == m["c"]
        ids = browser.eval(f"{VISIBLE}.map(r => r.cells[3].textContent)")
        browser.eval("document.querySelectorAll('#items thead button')[3].click()")  # sort by item
        assert browser.eval(f"{VISIBLE}.map(r => r.cells[3].textContent)") == sorted(ids)
        browser.eval("document.querySelectorAll('#items thead button')[3].click()")
        assert browser.eval(f"{VISIBLE}.map(r => r.cells[3].textContent)") == sorted(ids, reverse=True)
        assert browser.eval("document.querySelectorAll('#items thead th')[3].getAttribute('aria-sort')") == "descending"
        shot = browser.screenshot(tmp_path / "items.png")
    head = shot.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", head[16:24]) == (1400, 1000)
    assert shot.stat().st_size > 40_000  # a blank page compresses to a few KB

"""``reports/items.html``: every paired item of a trial, control and treatment answers side by side.

Why a page of its own: report.html shows the first 25 items of each changed list; a researcher then
wants all of them, and the unchanged ones, filtered and sorted. The page is one self-contained file
(inline CSS and a small inline script, no network, works from ``file://``). Every text is HTML-escaped
on the server side (model output is untrusted); the script only shows, hides and reorders rows, and a
Content-Security-Policy lets no other script run, even if one slipped through.
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Iterable
from pathlib import Path

from config.atomic import write_text_atomic
from scoring.changed_items import PairedItem
from scoring.stats import is_right

ITEMS_HTML = "items.html"
CHANGE_TEXT = {"fixed": "fixed", "broke": "broke", "now_abstains": "now abstains", "now_answers": "now answers"}
GOLD_SHOWN = 5

CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;color:#1d1d1f;background:#fafafa;font-size:14px}
header{padding:14px 20px 4px;background:#fff}h1{font-size:1.35em;margin:0 0 6px}
p.note{color:#555;margin:4px 0;max-width:1100px}
#bar{position:sticky;top:0;z-index:2;background:#fff;border-bottom:1px solid #ddd;padding:8px 20px;display:flex;flex-wrap:wrap;gap:8px 14px;align-items:center}
#bar label{font-size:.9em;color:#333}#bar input[type=search]{width:260px;padding:3px 6px}
#bar select{padding:2px}#shown{font-weight:600}
table{border-collapse:collapse;margin:8px 20px 40px;width:calc(100% - 40px);table-layout:fixed;background:#fff}
th,td{border:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top;overflow-wrap:anywhere}
th{background:#f2f2f2}thead{position:sticky;top:0;z-index:1}
th button{all:unset;cursor:pointer;font-weight:600}th[aria-sort=ascending] button::after{content:" \\25B2"}
th[aria-sort=descending] button::after{content:" \\25BC"}
td.resp{font-family:Consolas,"DejaVu Sans Mono",monospace;font-size:.88em;white-space:pre-wrap}
.v{font-family:-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;font-size:.85em;font-weight:600;display:block;white-space:normal}
.right{color:#1a7f37}.wrong{color:#b30000}.contains{color:#9a6700}.muted{color:#888;font-style:italic}
.chg{font-weight:600}.chg.fixed,.chg.now_abstains{color:#1a7f37}.chg.broke,.chg.now_answers{color:#b30000}
details summary{cursor:pointer}
"""

SCRIPT = """
(function(){
var tbody=document.querySelector('#items tbody'),rows=[].slice.call(tbody.rows);
rows.forEach(function(r){r._t=r.textContent.toLowerCase();});
var ids=['q','temp','type','dataset','change','control','treatment'],f={};
ids.forEach(function(id){f[id]=document.getElementById(id);});
var shown=document.getElementById('shown');
function has(list,v){return (' '+list+' ').indexOf(' '+v+' ')>=0;}
function keep(r,words){
 var d=r.dataset,c=f.change.value;
 if(f.temp.value&&d.temp!==f.temp.value)return false;
 if(f.type.value&&d.type!==f.type.value)return false;
 if(f.dataset.value&&d.dataset!==f.dataset.value)return false;
 if(f.control.value&&d.control!==f.control.value)return false;
 if(f.treatment.value&&d.treatment!==f.treatment.value)return false;
 if(c==='any'&&!d.change)return false;
 if(c==='none'&&d.change)return false;
 if(c&&c!=='any'&&c!=='none'&&!has(d.change,c))return false;
 for(var i=0;i<words.length;i++){if(r._t.indexOf(words[i])<0)return false;}
 return true;}
function apply(){
 var words=f.q.value.toLowerCase().split(/\\s+/).filter(Boolean),n=0;
 rows.forEach(function(r){var ok=keep(r,words);r.hidden=!ok;if(ok)n++;});
 shown.textContent=String(n);}
ids.forEach(function(id){f[id].addEventListener(id==='q'?'input':'change',apply);});
var ths=[].slice.call(document.querySelectorAll('#items thead th')),bar=document.getElementById('bar');
function pin(){document.querySelector('#items thead').style.top=(bar.offsetHeight-4)+'px';}
requestAnimationFrame(pin);window.addEventListener('resize',pin);
ths.forEach(function(th,col){var b=th.querySelector('button');if(!b)return;
 b.addEventListener('click',function(){
  var dir=th.getAttribute('aria-sort')==='ascending'?-1:1;
  ths.forEach(function(o){o.removeAttribute('aria-sort');});
  th.setAttribute('aria-sort',dir>0?'ascending':'descending');
  function key(r){var c=r.cells[col],s=c.getAttribute('data-sort');
   return s!==null?[0,parseFloat(s)]:[1,c.textContent.toLowerCase()];}
  var keyed=rows.map(function(r,i){return [key(r),i,r];});
  keyed.sort(function(a,b){var x=a[0],y=b[0];
   if(x[0]!==y[0])return x[0]-y[0];
   if(x[1]<y[1])return -dir;if(x[1]>y[1])return dir;return a[1]-b[1];});
  rows=keyed.map(function(k){return k[2];});
  var frag=document.createDocumentFragment();rows.forEach(function(r){frag.appendChild(r);});
  tbody.appendChild(frag);});});
location.hash.replace(/^#/,'').split('&').forEach(function(p){
 var kv=p.split('='),k=decodeURIComponent(kv[0]||''),v=decodeURIComponent(kv[1]||'');
 if(f[k]){f[k].value=v;}});
apply();
})();
"""


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _options(values: Iterable[str], all_label: str, labels: dict[str, str] | None = None) -> str:
    opts = [f'<option value="">{_esc(all_label)}</option>']
    opts += [f'<option value="{_esc(v)}">{_esc((labels or {}).get(v, v))}</option>' for v in values]
    return "".join(opts)


def _gold(pair: PairedItem) -> str:
    if pair.question is None:
        return '<span class="muted">not available</span>'
    if pair.unanswerable:
        return '<span class="muted">unanswerable (abstaining is right)</span>'
    shown = "; ".join(_esc(a) for a in pair.answers[:GOLD_SHOWN])
    rest = pair.answers[GOLD_SHOWN:]
    if not rest:
        return shown
    return f"<details><summary>{shown}; +{len(rest)} more</summary>{'; '.join(_esc(a) for a in rest)}</details>"


def state(pair: PairedItem, cond: str) -> str:
    """'right', 'contains' (not an exact match, but a gold answer is in the reply: issue 29) or 'wrong'.
    Contains uses the same majority rule as right (mean over the samples at least 0.5)."""
    if getattr(pair, f"{cond}_right"):
        return "right"
    contains = getattr(pair, f"{cond}_contains")
    return "contains" if contains is not None and is_right(contains) else "wrong"


STATE_TEXT = {"right": "right", "contains": "contains answer", "wrong": "wrong"}


def verdict(right: bool | str, em: float, k: int) -> str:
    """'right' / 'contains answer' / 'wrong', with the share of right samples when there were several."""
    key = right if isinstance(right, str) else ("right" if right else "wrong")
    word = STATE_TEXT[key]
    return f"{word} (EM {round(em * k)}/{k})" if k > 1 else word


def _answer(pair: PairedItem, cond: str) -> str:
    em, kind = getattr(pair, f"{cond}_em"), state(pair, cond)
    text, k, sample = (getattr(pair, f"{cond}_{n}") for n in ("response", "samples", "sample"))
    head = f'<span class="v {kind}">{_esc(verdict(kind, em, k))}'
    head += f", sample {sample}</span>" if k > 1 and sample is not None else "</span>"
    body = '<span class="muted">no response</span>' if text is None else _esc(text)
    return f'<td class="resp" data-sort="{em:.6g}">{head}{body}</td>'


def _row(pair: PairedItem) -> str:
    changes = " ".join(pair.changes)
    label = ", ".join(CHANGE_TEXT[c] for c in pair.changes) or "unchanged"
    question = '<span class="muted">not available</span>' if pair.question is None else _esc(pair.question)
    return (f'<tr data-temp="{_esc(pair.temp)}" data-type="{_esc(pair.type)}" data-dataset="{_esc(pair.dataset)}" '
            f'data-change="{_esc(changes)}" data-control="{state(pair, "control")}" '
            f'data-treatment="{state(pair, "treatment")}">'
            f'<td data-sort="{_esc(pair.temp)}">{_esc(pair.temp)}</td><td>{_esc(pair.type)}</td>'
            f"<td>{_esc(pair.dataset)}</td><td>{_esc(pair.item_id)}</td><td>{question}</td><td>{_gold(pair)}</td>"
            f"{_answer(pair, 'control')}{_answer(pair, 'treatment')}"
            f'<td class="chg {_esc(pair.changes[0] if pair.changes else "")}">{_esc(label)}</td></tr>')


COLUMNS = (("temp", "5%"), ("type", "5%"), ("dataset", "7%"), ("item", "8%"), ("question", "17%"),
           ("gold answers", "12%"), ("control answer", "19%"), ("treatment answer", "19%"), ("change", "8%"))


def items_page(pairs: list[PairedItem], title: str) -> str:
    """The whole page as one string; ``pairs`` in the order they are listed first."""
    temps = sorted({p.temp for p in pairs}, key=float)
    types = [t for t in ("open", "closed") if any(p.type == t for p in pairs)]
    datasets = sorted({p.dataset for p in pairs})
    changes = {"any": "any change", "none": "unchanged", **CHANGE_TEXT}
    right = STATE_TEXT
    bar = (f'<label>Search <input type="search" id="q" placeholder="question, answer, item id"></label>'
           f'<label>Temperature <select id="temp">{_options(temps, "all")}</select></label>'
           f'<label>Type <select id="type">{_options(types, "all")}</select></label>'
           f'<label>Dataset <select id="dataset">{_options(datasets, "all")}</select></label>'
           f'<label>Change <select id="change">{_options(changes, "all", changes)}</select></label>'
           f'<label>Control <select id="control">{_options(right, "any", right)}</select></label>'
           f'<label>Treatment <select id="treatment">{_options(right, "any", right)}</select></label>'
           f'<span><span id="shown">{len(pairs)}</span> of {len(pairs)} rows</span>')
    cols = "".join(f'<col style="width:{w}">' for _, w in COLUMNS)
    head = "".join(f'<th scope="col"><button type="button">{_esc(name)}</button></th>' for name, _ in COLUMNS)
    body = "\n".join(_row(p) for p in pairs)
    script_hash = base64.b64encode(hashlib.sha256(SCRIPT.encode("utf-8")).digest()).decode("ascii")
    csp = f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{script_hash}'"
    note = ("One row per paired item, temperature and type (both conditions scored). An item is right when its "
            "mean EM over the samples is at least 0.5, as in the McNemar test of report.html; \"fixed\" = control "
            "wrong, treatment right; \"broke\" = the reverse; on unanswerable questions abstaining is right, and "
            "\"now abstains\" / \"now answers\" say which condition declined to answer. \"contains answer\" (amber): "
            "not an exact match, but a gold answer stands in the reply (\"The capital is Canberra.\"), the lenient "
            "contains-answer metric of report.html. With several samples per "
            "item the answer shown is the first sample that agrees with the condition's verdict. Click a column "
            "heading to sort.")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{csp}\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_esc(title)}</title><style>{CSS}</style></head><body>\n"
            f"<header><h1>{_esc(title)}</h1><p class=\"note\">{_esc(note)}</p></header>\n"
            f"<div id=\"bar\">{bar}</div>\n"
            f"<table id=\"items\"><colgroup>{cols}</colgroup><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>\n"
            f"<script>{SCRIPT}</script></body></html>\n")


def write_items_html(reports_dir: Path, pairs: list[PairedItem], title: str) -> Path:
    """Write ``reports_dir/items.html`` atomically; returns its path."""
    return write_text_atomic(Path(reports_dir) / ITEMS_HTML, items_page(pairs, title))

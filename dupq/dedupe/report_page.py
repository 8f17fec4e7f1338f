# ruff: noqa: E501  (minified CSS/JS of the page: its lines are the page's, not Python's)
"""The page of the dedupe report (:mod:`dupq.dedupe.report`): inline CSS and JS, no network.

A Python string rather than a package data file, so that an installed dupq always has it. The JS reads
the JSON block ``#dupq-data`` and draws the summary, the what-if table, the groups (search, pages) and
the borderline pairs; marks live in ``localStorage`` (per input and threshold) and export as the CSV that
``dupq dedupe --decisions`` and ``dupq train --extra-pairs`` read (``qid1,qid2,question1,question2,
label,score``; label 1 = duplicate).
"""

PAGE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;background:#f6f7f9}
header{background:#1f2937;color:#fff;padding:12px 24px}header h1{font-size:18px;margin:0}
main{max-width:1200px;margin:0 auto;padding:8px 24px 40px}
section{background:#fff;border:1px solid #e3e6ea;border-radius:8px;padding:12px 16px;margin:14px 0}
h2{font-size:16px;margin:4px 0 10px}table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eee;vertical-align:top}
th{background:#fafbfc;font-weight:600}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
tr.current td{background:#fff7d6;font-weight:600}.kv{display:grid;grid-template-columns:repeat(4,1fr);gap:6px 18px}
.kv div{display:flex;justify-content:space-between;border-bottom:1px dotted #ddd}.kv b{font-variant-numeric:tabular-nums}
.group{border:1px solid #e3e6ea;border-radius:6px;margin:8px 0;padding:6px 10px}
.group .head{display:flex;gap:16px;font-weight:600}.kept{color:#0a6b2d}.muted{color:#777}
input[type=search]{width:320px;padding:5px 8px}button{cursor:pointer;border:1px solid #bbb;background:#f3f4f6;
border-radius:4px;padding:2px 8px;margin:1px;white-space:nowrap}button.on-dup{background:#c8f0d4;border-color:#3a9b5c}
button.on-not{background:#f8d0d0;border-color:#c44}.pager{display:flex;gap:8px;align-items:center;margin:6px 0}
td.t{white-space:pre-wrap}.above{color:#0a6b2d}.below{color:#a33}.scroll{max-height:440px;overflow:auto}#marks{position:sticky;top:0;z-index:2}
</style></head>
<body><header><h1>__TITLE__</h1></header><main>
<section id="summary"><h2>Run</h2><div class="kv" id="kv"></div></section>
<section id="hist"><h2>Candidate pairs by cosine</h2>__HISTOGRAM__
<p class="muted" id="histnote"></p></section>
<section id="whatif"><h2>What if the threshold were…</h2><table id="whatif-table"></table>
<p class="muted" id="cutnote"></p><p class="muted">Re-grouped from the pairs this run already found (no re-encoding); re-run with
<code>dupq dedupe … --workdir W --threshold X</code> to apply one.</p></section>
<section id="marks"><b id="markcount">0 marks</b> <button id="export">Export marks CSV</button>
<button id="clear">Clear marks</button> <span class="muted">use with <code>dupq dedupe --decisions marks.csv</code>
or <code>dupq train --extra-pairs marks.csv</code></span></section>
<section id="borderline"><h2>Borderline pairs: nearest the threshold first (green: above it, red: below)</h2><div class="scroll"><table id="border-table"></table></div></section>
<section id="groups"><h2>Groups, largest first</h2>
<div class="pager"><input type="search" id="q" placeholder="search text or id…">
<button id="prev">◀</button><span id="page"></span><button id="next">▶</button></div>
<div id="group-list"></div><p class="muted" id="rest"></p></section>
</main>
<script type="application/json" id="dupq-data">__DATA__</script>
<script>
(function(){
"use strict";
const D=JSON.parse(document.getElementById("dupq-data").textContent);
const S=D.summary, fmt=n=>typeof n==="number"?n.toLocaleString("en-US"):String(n);
function el(tag,attrs,...kids){const e=document.createElement(tag);
  for(const [k,v] of Object.entries(attrs||{})){if(k==="class")e.className=v;else e.setAttribute(k,v);}
  for(const k of kids){if(k!==null&&k!==undefined)e.append(k instanceof Node?k:String(k));}return e;}
const kv=document.getElementById("kv");
[["rows",S.rows],["unique texts",S.unique_texts],["groups",S.groups],["groups with 2+ rows",S.duplicate_groups],
 ["rows marked duplicate",S.rows_marked_duplicate],["similar pairs",S.similar_pairs],
 ["threshold",D.threshold.toFixed(3)],["threshold from",S.threshold_source],["keep",S.keep],["cluster",S.cluster],
 ["model",(S.model||"").split("/").slice(-2).join("/")],["seconds",S.total_seconds]
].forEach(([k,v])=>kv.append(el("div",{},el("span",{},k),el("b",{"data-key":k},fmt(v)))));
document.getElementById("histnote").textContent="Pairs searched down to cosine "+D.floor.toFixed(3)+
  "; pairs below that were not looked for.";
// what-if ladder
const wt=document.getElementById("whatif-table");
const hasV=D.whatif.length&&("overturned" in D.whatif[0]);
const hasCut=D.whatif.some(r=>r.texts_cut_at_k>0);
wt.append(el("tr",{},el("th",{class:"num"},"threshold"),el("th",{class:"num"},"pairs"),el("th",{class:"num"},"groups (2+ rows)"),
  el("th",{class:"num"},"rows merged"),el("th",{class:"num"},"largest group"),hasV?el("th",{class:"num"},"pairs overturned by the verifier"):null,
  hasCut?el("th",{class:"num"},"texts cut at k *"):null));
for(const r of D.whatif){const lb=r.texts_cut_at_k>0?"≈ ":"";wt.append(el("tr",{class:r.current?"current":""},el("td",{class:"num"},r.threshold.toFixed(3)+(r.current?" (used)":"")),
  el("td",{class:"num"},(lb?"≥ ":"")+fmt(r.pairs)),el("td",{class:"num"},lb+fmt(r.groups)),el("td",{class:"num"},lb+fmt(r.rows_merged)),
  el("td",{class:"num"},fmt(r.largest_group)),hasV?el("td",{class:"num"},fmt(r.overturned)):null,
  hasCut?el("td",{class:"num"},fmt(r.texts_cut_at_k)):null));}
if(hasCut)document.getElementById("cutnote").textContent="* Below the threshold used, only each text's "+S.k+
  " nearest neighbours were kept: where some texts have more above a rung, its pairs are a lower bound and its groups "+
  "an estimate (a re-run there searches again, from the stored vectors).";
// marks
const KEY="dupq-marks:"+S.input+":"+D.threshold;
let marks={};try{marks=JSON.parse(localStorage.getItem(KEY)||"{}");}catch(e){marks={};}
const save=()=>{try{localStorage.setItem(KEY,JSON.stringify(marks));}catch(e){}
  document.getElementById("markcount").textContent=Object.keys(marks).length+" marks";};
function markButtons(a,b,ta,tb,score){const k=JSON.stringify([a,b]);
  const dup=el("button",{title:"mark: duplicate"},"duplicate"),not=el("button",{title:"mark: not a duplicate"},"not a duplicate");
  const paint=()=>{const m=marks[k];dup.className=m&&m.label===1?"on-dup":"";not.className=m&&m.label===0?"on-not":"";};
  const set=lab=>{if(marks[k]&&marks[k].label===lab)delete marks[k];else marks[k]={a:a,b:b,ta:ta,tb:tb,label:lab,score:score};paint();save();};
  dup.onclick=()=>set(1);not.onclick=()=>set(0);paint();return el("span",{},dup,not);}
const csvq=v=>{v=String(v);return /[",\n\r]/.test(v)?'"'+v.replace(/"/g,'""')+'"':v;};
document.getElementById("export").onclick=()=>{const lines=["qid1,qid2,question1,question2,label,score"];
  for(const m of Object.values(marks))lines.push([m.a,m.b,m.ta,m.tb,m.label,m.score].map(csvq).join(","));
  const url=URL.createObjectURL(new Blob([lines.join("\n")+"\n"],{type:"text/csv"}));
  const a=el("a",{href:url,download:"marks.csv"});document.body.append(a);a.click();a.remove();};
document.getElementById("clear").onclick=()=>{marks={};save();render();drawBorder();};
save();
// borderline pairs
const bt=document.getElementById("border-table");
const copies=n=>n?" · and "+fmt(n)+" exact "+(n===1?"copy":"copies")+" (same key; a mark covers "+(n===1?"it":"them")+")":"";
function drawBorder(){bt.textContent="";
  bt.append(el("tr",{},el("th",{class:"num"},"cosine"),el("th",{},"question A"),el("th",{},"question B"),el("th",{},"this run"),el("th",{},"your mark")));
  for(const p of D.borderline){bt.append(el("tr",{},el("td",{class:"num "+(p.above?"above":"below")},(!p.above&&Number(p.score.toFixed(5))>=D.threshold?"< ":"")+p.score.toFixed(5)),
    el("td",{class:"t"},p.text_a,el("div",{class:"muted"},"id "+p.id_a+copies(p.copies_a))),el("td",{class:"t"},p.text_b,el("div",{class:"muted"},"id "+p.id_b+copies(p.copies_b))),
    el("td",{},p.same_group?"same group":(p.above?"above, other groups":"not merged")),
    el("td",{},markButtons(p.id_a,p.id_b,p.text_a,p.text_b,p.score))));}}
drawBorder();
// groups: search + pages
const PER=20;let page=0,shown=D.groups;
const list=document.getElementById("group-list"),q=document.getElementById("q");
function render(){list.textContent="";const pages=Math.max(1,Math.ceil(shown.length/PER));page=Math.min(page,pages-1);
  document.getElementById("page").textContent="page "+(page+1)+" / "+pages+" ("+fmt(shown.length)+" groups)";
  for(const g of shown.slice(page*PER,page*PER+PER)){const t=el("table",{});
    t.append(el("tr",{},el("th",{},"id"),el("th",{},"text"),el("th",{class:"num"},"score to kept"),el("th",{},"")));
    if(g.kept)t.append(el("tr",{class:"kept"},el("td",{},g.kept.id),el("td",{class:"t"},g.kept.text),el("td",{class:"num"},"kept"),el("td",{})));
    for(const m of g.members){const exact=m[4]!==null&&m[4]!==undefined;t.append(el("tr",{},el("td",{},m[0]),
      el("td",{class:"t"},m[1],exact?el("div",{class:"muted"},"exact: same key as row "+m[4]):null),el("td",{class:"num"},m[2].toFixed(4)),
      el("td",{},!g.kept?el("span",{class:"muted"},"dup of "+m[3]):exact&&m[4]===g.kept.id?el("span",{class:"muted",title:"rows with one exact-duplicate key are one text to dedupe: a mark cannot part them"},"same key: no mark"):
        markButtons(g.kept.id,m[0],g.kept.text,m[1],m[2]))));}
    if(g.more)t.append(el("tr",{},el("td",{colspan:4,class:"muted"},"… and "+fmt(g.more)+" more rows")));
    list.append(el("div",{class:"group","data-group":g.group_id},el("div",{class:"head"},el("span",{},"group "+g.group_id),
      el("span",{},fmt(g.rows)+" rows")),t));}}
q.oninput=()=>{const s=q.value.trim().toLowerCase();page=0;
  shown=!s?D.groups:D.groups.filter(g=>(g.kept&&(String(g.kept.id).toLowerCase().includes(s)||g.kept.text.toLowerCase().includes(s)))||
    g.members.some(m=>String(m[0]).toLowerCase().includes(s)||m[1].toLowerCase().includes(s)));render();};
document.getElementById("prev").onclick=()=>{page=Math.max(0,page-1);render();};
document.getElementById("next").onclick=()=>{page=page+1;render();};
render();
const R=D.groups_not_inline;document.getElementById("rest").textContent=R.groups?
  fmt(R.groups)+" smaller groups ("+fmt(R.rows)+" rows) are not listed here, to keep this file small; they are in the output table.":
  "Every group with 2+ rows is listed.";
window.dupqReady=true;
})();
</script></body></html>
"""

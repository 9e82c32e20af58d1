/** The status page's one stylesheet, served at /-/page.css (the page's CSP allows no inline style). */
export const PAGE_CSS = `
:root { color-scheme: light dark; --fg: #1b1f24; --muted: #5b6570; --line: #d5dae0; --bg: #fff;
  --card: #f5f7f9; --accent: #0b63c5; --hit: #2e8b57; --miss: #d08a1e; --stale: #c0392b; --reval: #6a5acd; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6e9ed; --muted: #9aa5b1; --line: #36404a;
  --bg: #14181c; --card: #1d2329; --accent: #5aa2ff; } }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; flex-wrap: wrap; align-items: baseline; gap: .4rem 1.2rem; padding: .8rem 1rem; border-bottom: 1px solid var(--line); }
header h1 { font-size: 1.15rem; margin: 0; }
header .node { color: var(--muted); font-size: .85rem; }
nav { display: flex; flex-wrap: wrap; gap: .3rem; }
nav a { padding: .25rem .6rem; border-radius: .4rem; color: var(--accent); text-decoration: none; }
nav a[aria-current="page"] { background: var(--card); color: var(--fg); font-weight: 600; }
main { padding: 1rem; max-width: 72rem; margin: 0 auto; }
h2 { font-size: 1.05rem; margin: 1.4rem 0 .5rem; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(10.5rem, 1fr)); gap: .6rem; }
.card { background: var(--card); border-radius: .5rem; padding: .6rem .8rem; }
.card .label { color: var(--muted); font-size: .8rem; }
.card .value { font-size: 1.35rem; font-weight: 600; font-variant-numeric: tabular-nums; }
.card .sub { color: var(--muted); font-size: .8rem; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid var(--line); white-space: nowrap; }
th { color: var(--muted); font-weight: 600; font-size: .85rem; }
td.num, th.num { text-align: right; }
td.digest { white-space: normal; word-break: break-all; min-width: 14rem; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .85rem; }
pre { background: var(--card); padding: .7rem .9rem; border-radius: .5rem; overflow-x: auto; }
.result { display: inline-block; padding: 0 .4rem; border-radius: .3rem; font-size: .8rem; color: #fff; }
.result.hit { background: var(--hit); } .result.miss { background: var(--miss); }
.result.stale { background: var(--stale); } .result.revalidated { background: var(--reval); }
.state-healthy { color: var(--hit); } .state-open { color: var(--stale); font-weight: 600; } .state-half { color: var(--miss); }
.stale-ref { color: var(--stale); }
svg.chart { width: 100%; height: auto; max-height: 14rem; }
svg.bar { width: 100%; height: .6rem; margin-top: .6rem; }
svg.bar .hit { fill: var(--accent); }
svg.chart .hit { fill: var(--hit); } svg.chart .miss { fill: var(--miss); }
svg.chart .stale { fill: var(--stale); } svg.chart .revalidated { fill: var(--reval); }
svg.chart text { fill: var(--muted); font-size: 11px; }
.legend span { margin-right: 1rem; font-size: .85rem; }
form.search { display: flex; gap: .4rem; margin: .5rem 0; flex-wrap: wrap; }
form.search input { flex: 1 1 14rem; padding: .35rem .5rem; border: 1px solid var(--line); border-radius: .35rem; background: var(--bg); color: var(--fg); }
form.search button { padding: .35rem .8rem; border: 0; border-radius: .35rem; background: var(--accent); color: #fff; }
.muted { color: var(--muted); }
.pager a { margin-right: 1rem; }
`

"""``report.html``: one self-contained page per run (no network: CSS inline, images as data URIs).

Every stage that ran has a section; a stage that did not run says so and gives the command
that runs it. A section whose files are odd (older/newer format, missing key, corrupt JSON)
says what was wrong there and the rest of the page is still written.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Callable

from edgeclf import __version__
from edgeclf.fsutil import write_text
from edgeclf.run import RunPaths

from . import sections_deploy, sections_eval, sections_run
from .context import Context, Section, load_context
from .markup import Raw, e, join, problem

log = logging.getLogger(__name__)

__all__ = ["write_report", "refresh_report", "render_report", "SECTIONS"]

#: (id, title, builder) in page order.
SECTIONS: list[tuple[str, str, Callable[[Context], Section]]] = [
    ("overview", "Run", sections_run.overview),
    ("dataset", "Dataset", sections_run.dataset),
    ("training", "Training", sections_run.training),
    ("evaluation", "Test metrics", sections_eval.evaluation),
    ("export", "Export", sections_deploy.export),
    ("parity", "Parity", sections_deploy.parity),
    ("bench", "Latency", sections_deploy.bench),
]

STATUS_LABEL = {"done": "done", "partial": "partial", "not-run": "not run yet",
                "problem": "problem"}

CSS = """
:root { --fg:#1d2330; --muted:#667085; --line:#e4e7ec; --bg:#f7f8fa; --ok:#1a7f37;
        --bad:#c4320a; --warn:#9a6700; --accent:#2f5bd3; }
* { box-sizing: border-box; }
body { margin:0; color:var(--fg); background:var(--bg);
       font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif; }
header { background:#fff; border-bottom:1px solid var(--line); padding:18px 32px; }
header h1 { margin:0 0 4px; font-size:22px; }
header .sub { color:var(--muted); }
nav { display:flex; flex-wrap:wrap; gap:8px; margin-top:12px; }
nav a { text-decoration:none; color:var(--fg); border:1px solid var(--line); border-radius:14px;
        padding:2px 10px; background:#fff; font-size:13px; }
nav a .st { font-size:11px; margin-left:6px; color:var(--muted); }
nav a.sec-done .st { color:var(--ok); } nav a.sec-problem .st { color:var(--bad); }
nav a.sec-partial .st { color:var(--warn); }
main { max-width:1180px; margin:0 auto; padding:16px 32px 48px; }
section { background:#fff; border:1px solid var(--line); border-radius:8px; margin:16px 0;
          padding:14px 20px 18px; overflow-x:auto; }
section h2 { margin:0 0 10px; font-size:18px; }
section h2 .st { font-size:12px; font-weight:normal; color:var(--muted); margin-left:8px; }
section.sec-not-run { background:#fbfbfc; }
section.sec-problem h2 .st { color:var(--bad); }
h3 { font-size:15px; margin:16px 0 6px; }
table { border-collapse:collapse; margin:6px 0 10px; font-size:13px; }
th, td { border-bottom:1px solid var(--line); padding:4px 10px; text-align:left; vertical-align:top; }
thead th { background:var(--bg); font-weight:600; }
table.kv th { color:var(--muted); font-weight:normal; padding-right:18px; white-space:nowrap; }
table.counts td:last-child { width:320px; }
.bar { display:inline-block; height:10px; background:var(--accent); border-radius:2px; }
code { background:#eef1f6; padding:2px 6px; border-radius:4px; font-size:13px; }
p.notrun { color:var(--muted); }
p.problem { color:var(--bad); }
p.note { color:var(--muted); }
ul.warnings li { color:var(--warn); }
.badge { font-size:12px; padding:1px 8px; border-radius:10px; color:#fff; }
.badge.ok { background:var(--ok); } .badge.bad { background:var(--bad); }
.badge.unknown { background:var(--muted); }
img.plot { max-width:100%; height:auto; display:block; margin:6px 0; }
img.cm { max-width:min(100%, 760px); height:auto; display:block; margin:6px 0; }
img.thumb { width:72px; height:72px; object-fit:cover; border-radius:4px; margin:0 4px 4px 0;
            border:1px solid var(--line); }
.gallery { display:flex; flex-wrap:wrap; gap:10px; margin:6px 0; }
figure { margin:0; width:128px; font-size:12px; }
figure img.thumb { width:120px; height:120px; }
figcaption .file { color:var(--muted); word-break:break-all; }
details { margin:6px 0; } summary { cursor:pointer; color:var(--accent); }
footer { color:var(--muted); font-size:12px; text-align:center; padding:12px; }
"""


def _build(ctx: Context, section_id: str, title: str,
           builder: Callable[[Context], Section]) -> Section:
    try:
        return builder(ctx)
    except Exception as exc:  # one odd file must never stop the report
        log.warning("report section %r: %s: %s", section_id, type(exc).__name__, exc)
        return Section(section_id, title, "problem",
                       problem(f"this section could not be drawn: {exc}"
                               if getattr(exc, "__module__", "").startswith("edgeclf")
                               else f"this section could not be drawn "
                                    f"({type(exc).__name__}: {exc})"))


def render_report(run_dir: str | Path) -> str:
    """The report page of ``run_dir`` as an HTML string."""
    paths = RunPaths(Path(run_dir)).require()
    ctx = load_context(paths, str(run_dir))
    sections = [_build(ctx, sid, title, fn) for sid, title, fn in SECTIONS]
    nav = join(Raw(f'<a class="sec-{e(s.status)}" href="#{e(s.id)}">{e(s.title)}'
                   f'<span class="st">{e(STATUS_LABEL.get(s.status, s.status))}</span></a>')
               for s in sections)
    body = join(Raw(f'<section id="{e(s.id)}" class="sec-{e(s.status)}"><h2>{e(s.title)}'
                    f'<span class="st">{e(STATUS_LABEL.get(s.status, s.status))}</span></h2>'
                    f"{s.body}</section>") for s in sections)
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sub = " · ".join(str(x) for x in (ctx.run.get("backbone"), f"{len(ctx.classes)} classes",
                                      str(paths.root)) if x)
    return ("<!DOCTYPE html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>edgeclf report: {e(ctx.name)}</title><style>{CSS}</style></head><body>"
            f"<header><h1>edgeclf run {e(ctx.name)}</h1><div class=\"sub\">{e(sub)}</div>"
            f"<nav>{nav}</nav></header><main>{body}</main>"
            f"<footer>written by edgeclf {e(__version__)} on {e(now)} · "
            "self-contained: no network needed</footer></body></html>\n")


def write_report(run_dir: str | Path) -> Path:
    """Write ``RUN/report.html`` (atomically) and return its path.

    Raises :class:`edgeclf.errors.RunError` when ``run_dir`` is not a run directory;
    problems inside the run's files are shown in the page instead of raised.
    """
    paths = RunPaths(Path(run_dir))
    html_text = render_report(run_dir)
    write_text(paths.report_html, html_text)
    log.info("report written: %s", paths.report_html)
    return paths.report_html


def refresh_report(run_dir: str | Path) -> Path | None:
    """Rewrite the report after a stage finished; never raises (logs a warning instead).

    A folder that is not a run (e.g. ``bench``'s output for a bare model file) is skipped
    quietly, so every stage can call this unconditionally."""
    try:
        if not RunPaths(Path(run_dir)).run_json.is_file():
            log.debug("no report for %s: not an edgeclf run (no run.json)", run_dir)
            return None
        return write_report(run_dir)
    except Exception as exc:  # a report must never fail the stage that just succeeded
        log.warning("could not refresh %s/report.html: %s", run_dir, exc)
        return None

"""Tiny HTML building blocks for the report. Everything that is not :class:`Raw` is escaped."""

from __future__ import annotations

import html
import shlex
from typing import Any, Iterable


class Raw(str):
    """HTML that was built here and must not be escaped again."""


def e(value: Any) -> Raw:
    """Escape any value (file names, class names and messages come from users)."""
    if isinstance(value, Raw):
        return value
    return Raw(html.escape("" if value is None else str(value), quote=True))


def tag(name: str, body: Any = "", **attrs: Any) -> Raw:
    parts = "".join(f' {k.rstrip("_").replace("_", "-")}="{e(v)}"'
                    for k, v in attrs.items() if v is not None)
    return Raw(f"<{name}{parts}>{e(body)}</{name}>")


def join(items: Iterable[Any], sep: str = "") -> Raw:
    return Raw(sep.join(e(i) for i in items))


def table(headers: list[str], rows: Iterable[Iterable[Any]], *, cls: str = "") -> Raw:
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return Raw(f'<table class="{e(cls)}"><thead><tr>{head}</tr></thead>'
               f"<tbody>{body}</tbody></table>")


def kv_table(pairs: Iterable[tuple[str, Any]]) -> Raw:
    rows = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in pairs)
    return Raw(f'<table class="kv"><tbody>{rows}</tbody></table>')


def command(*argv: Any) -> Raw:
    """A shell command a user can paste, shown as code."""
    return tag("code", " ".join(shlex.quote(str(a)) for a in argv))


def not_run(*argv: Any, what: str = "not run yet") -> Raw:
    return Raw(f'<p class="notrun">{e(what)}: {command(*argv)}</p>')


def problem(message: Any) -> Raw:
    return Raw(f'<p class="problem">&#9888; {e(message)}</p>')


def note(message: Any) -> Raw:
    return Raw(f'<p class="note">{e(message)}</p>')


def details(summary: str, body: Any, *, open_: bool = False) -> Raw:
    return Raw(f"<details{' open' if open_ else ''}><summary>{e(summary)}</summary>"
               f"{e(body)}</details>")


def img(uri: str, alt: str, *, cls: str = "plot", title: str | None = None) -> Raw:
    if not uri.startswith("data:"):
        raise ValueError("report images must be inlined as data: URIs")
    return Raw(f'<img class="{e(cls)}" src="{e(uri)}" alt="{e(alt)}"'
               + (f' title="{e(title)}"' if title else "") + ">")


def badge(ok: bool | None, text: str | None = None) -> Raw:
    cls = {True: "ok", False: "bad", None: "unknown"}[ok]
    label = text or {True: "passed", False: "FAILED", None: "unknown"}[ok]
    return Raw(f'<span class="badge {cls}">{e(label)}</span>')

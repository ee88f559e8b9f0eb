"""Run an exported web folder in headless Chromium and collect what the page computed.

A loopback HTTP server serves the folder, a harness page (``/__harness.html``: it imports
the folder's ``edgeclf.mjs``), the images under ``/__img/N/NAME`` and takes the harness's
JSON report on ``POST /__report``. The harness classifies every image with the module's
``Classifier`` (probabilities and batch-1 timings), then loads ``index.html`` in an iframe
per page case (a query string, files to drop on it) and reads back what the page shows.
Used by tests/e2e/test_web_chromium.py and benchmarks/web_latency.py.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")

HARNESS = """<!doctype html><meta charset="utf-8"><body><script type="module">
import { Classifier } from './edgeclf.mjs';
const cfg = await (await fetch('/__config.json')).json();
const report = { results: [], pages: [] };
const wait = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(check, ms) {
  for (const t0 = performance.now(); performance.now() - t0 < ms; await wait(50)) {
    const v = check(); if (v) return v;
  }
  return null;
}
try {
  const t0 = performance.now();
  const c = await Classifier.load('model.onnx');
  report.load_ms = performance.now() - t0;
  report.labels = c.labels;
  for (let rep = 0; rep < cfg.repeats; rep++) {
    for (const url of cfg.images) {
      const blob = await (await fetch(url)).blob();
      try {
        const r = await c.classify(blob, 1);
        if (rep === cfg.repeats - 1) report.results.push({ url, probs: r.probs, ms: r.ms });
        else report.warmup = (report.warmup || 0) + 1;
      } catch (e) { report.results.push({ url, error: e.message }); }
    }
  }
  for (const page of cfg.pages) {
    const frame = document.createElement('iframe');
    frame.src = 'index.html' + page.query;
    document.body.append(frame);
    const doc = await until(() => {
      const d = frame.contentDocument;
      return d && d.getElementById('error') && d.body.dataset.state !== 'loading' && d;
    }, 60000);
    const out = { query: page.query, state: doc ? doc.body.dataset.state : 'timeout' };
    if (doc && out.state === 'ready' && page.files.length) {
      const dt = new frame.contentWindow.DataTransfer();
      for (const f of page.files) {
        const blob = await (await fetch(f.url)).blob();
        dt.items.add(new frame.contentWindow.File([blob], f.name, { type: f.type }));
      }
      const drop = doc.getElementById('drop');
      drop.dispatchEvent(new frame.contentWindow.DragEvent('drop',
        { dataTransfer: dt, bubbles: true, cancelable: true }));
      await until(() => doc.querySelectorAll('.row').length === page.files.length &&
        !doc.querySelector('.row[data-state="pending"]'), 60000);
    }
    if (doc) {
      out.error = doc.getElementById('error').textContent;
      out.state = doc.body.dataset.state;
      out.rows = [...doc.querySelectorAll('.row')].map((r) => ({ name: r.dataset.name,
        state: r.dataset.state, label: r.dataset.label || null,
        text: r.querySelector('.result').textContent }));
    }
    report.pages.push(out);
    frame.remove();
  }
} catch (e) { report.fatal = String(e && e.stack || e); }
await fetch('/__report', { method: 'POST', body: JSON.stringify(report) });
</script>"""


def find_chromium() -> str | None:
    env = os.environ.get("EDGECLF_CHROMIUM")
    if env:
        return env if shutil.which(env) or Path(env).is_file() else None
    return next((p for p in map(shutil.which, CANDIDATES) if p), None)


@dataclass
class PageCase:
    """``index.html`` + ``query``; ``files`` (path, name, type) are dropped on it."""

    query: str = ""
    files: list[tuple[Path, str, str]] = field(default_factory=list)


class _Handler(SimpleHTTPRequestHandler):
    routes: dict[str, tuple[bytes, str]] = {}
    sink: dict = {}
    done: threading.Event

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        path = self.path.split("?")[0]
        if path in self.routes:
            body, ctype = self.routes[path]
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length", 0))
        self.sink["report"] = json.loads(self.rfile.read(length) or b"{}")
        self.send_response(204)
        self.end_headers()
        self.done.set()


def run_page(folder: Path, images: list[Path], *, pages: list[PageCase] = (),
             repeats: int = 1, timeout: float = 300.0, chromium: str | None = None) -> dict:
    """Serve ``folder``, run the harness in headless Chromium, return its report."""
    binary = chromium or find_chromium()
    if binary is None:
        raise RuntimeError("no Chromium (apt-get install chromium, or set EDGECLF_CHROMIUM)")
    routes: dict[str, tuple[bytes, str]] = {"/__harness.html": (HARNESS.encode(), "text/html")}
    urls = []
    for i, img in enumerate(images):
        urls.append(f"/__img/{i}/{img.name}")
        routes[urls[-1]] = (img.read_bytes(), "application/octet-stream")
    page_cfg = []
    for j, page in enumerate(pages):
        files = []
        for k, (path, name, ctype) in enumerate(page.files):
            url = f"/__drop/{j}/{k}"
            routes[url] = (Path(path).read_bytes(), "application/octet-stream")
            files.append({"url": url, "name": name, "type": ctype})
        page_cfg.append({"query": page.query, "files": files})
    config = {"images": urls, "repeats": repeats, "pages": page_cfg}
    routes["/__config.json"] = (json.dumps(config).encode(), "application/json")
    handler = type("Handler", (_Handler,), {"routes": routes, "sink": {},
                                            "done": threading.Event()})
    server = ThreadingHTTPServer(("127.0.0.1", 0),
                                 partial(handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/__harness.html"
    with tempfile.TemporaryDirectory(prefix="edgeclf-chromium-") as profile:
        cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
               f"--user-data-dir={profile}", url]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                cwd=profile, start_new_session=True)
        try:
            finished = handler.done.wait(timeout)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                _, err = proc.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                _, err = proc.communicate()
            server.shutdown()
            server.server_close()
    if not finished:
        raise RuntimeError(f"the page reported nothing in {timeout:.0f} s; chromium said: "
                           f"{err.decode(errors='replace')[-2000:]}")
    return handler.sink["report"]

"""A tiny image-classification HTTP endpoint: the standard library + edgeclf.runtime only.

    python examples/serve_http.py models/flowers --port 8000
    curl --data-binary @rose.jpg "http://127.0.0.1:8000/predict?top_k=3"
    curl http://127.0.0.1:8000/health

POST /predict takes the raw image bytes as the body and answers
``{"top": [{"label", "class", "score"}, ...]}``; an unusable image is a 400 with
``{"error": ...}``, a body over --max-bytes a 413. One Predictor serves every request (it is
thread-safe); requests run in threads.
"""

from __future__ import annotations

import argparse
import json
import logging
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from edgeclf.runtime import EdgeclfError, ImageError, Predictor

log = logging.getLogger("edgeclf.serve")
MAX_BYTES = 20 * 1024 * 1024


def make_server(predictor: Predictor, host: str = "127.0.0.1", port: int = 8000, *,
                max_bytes: int = MAX_BYTES) -> ThreadingHTTPServer:
    """A server answering /predict and /health with ``predictor`` (``port=0``: any free)."""

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if urlparse(self.path).path != "/health":
                return self._reply(404, {"error": "GET /health or POST /predict"})
            self._reply(200, {"model": str(predictor.path), "format": predictor.format,
                              "provider": predictor.provider, "classes": predictor.labels,
                              "input": list(predictor.contract.size)})

        def do_POST(self) -> None:  # noqa: N802
            url = urlparse(self.path)
            if url.path != "/predict":
                return self._reply(404, {"error": "POST /predict with the image as the body"})
            try:
                size = int(self.headers.get("Content-Length") or 0)
                top_k = int(parse_qs(url.query).get("top_k", ["5"])[0])
            except ValueError:
                return self._reply(400, {"error": "bad Content-Length or top_k"})
            if size > max_bytes:
                return self._reply(413, {"error": f"image over {max_bytes} bytes"})
            if size <= 0 or top_k < 1:
                return self._reply(400, {"error": "send the image bytes; top_k >= 1"})
            body = self.rfile.read(size)
            try:
                pred = predictor.predict(body, top_k=top_k)[0]
            except ImageError as e:
                return self._reply(400, {"error": str(e)})
            except EdgeclfError as e:
                log.exception("prediction failed")
                return self._reply(500, {"error": str(e)})
            self._reply(200, {"top": pred.to_dict()["top"]})

        def log_message(self, fmt: str, *args: object) -> None:
            log.info("%s " + fmt, self.address_string(), *args)

    return ThreadingHTTPServer((host, port), Handler)


def main() -> None:
    ap = argparse.ArgumentParser(description="Serve an edgeclf model over HTTP.")
    ap.add_argument("model", help=".onnx/.tflite file, export directory or run directory")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--labels", default=None, help="labels file, for a model without metadata")
    ap.add_argument("--device", default="cpu", choices=["cpu", "gpu", "auto"])
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    predictor = Predictor.from_path(args.model, device=args.device, labels=args.labels)
    server = make_server(predictor, args.host, args.port)
    log.info("serving %r on http://%s:%d (POST /predict, GET /health)", predictor,
             *server.server_address[:2])
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()

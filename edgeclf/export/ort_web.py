"""The onnxruntime-web files a web export copies in (no CDN at run time).

Only the WebAssembly CPU build is needed: ``ort.wasm.min.mjs`` (50 KB), its loader
``ort-wasm-simd-threaded.mjs`` (24 KB) and ``ort-wasm-simd-threaded.wasm`` (14.2 MB; 3.7 MB
gzipped). They are not vendored in edgeclf: 14 MB in every checkout and every wheel for a
feature most users never run, and a copy that would age with its security fixes. Instead
the pinned npm package is found, in this order:

1. ``--ort-web PATH`` / ``$EDGECLF_ORT_WEB``: the package tarball (``npm pack
   onnxruntime-web@VERSION`` on any machine with npm, copied over), an unpacked package
   folder, or its ``dist/`` folder: the way for a machine without npm or offline;
2. the cache (``$EDGECLF_CACHE_DIR``, else ``~/.cache/edgeclf``) ``/onnxruntime-web/VERSION``;
3. ``npm pack`` from the npm registry into that cache (what a user with npm gets by default).

A tarball is checked against the pinned sha512 (the registry's ``integrity``); a folder is
checked for the pinned version in its ``package.json``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from edgeclf.errors import ExportError

log = logging.getLogger(__name__)

ORT_WEB_VERSION = "1.30.0"
ORT_WEB_INTEGRITY = ("sha512-q0y+JrrtukXSzsBWEMccVfqX25LRmosXHF+CaRJmg8pZClzcV7svNc4rKY3jL02V"
                     "b7QmRMDs1SigqR4CXAfKYQ==")
ORT_WEB_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs",
                 "ort-wasm-simd-threaded.wasm")
ENV_VAR = "EDGECLF_ORT_WEB"
NPM_TIMEOUT_S = 300

HINT = (f"on a machine with npm run `npm pack onnxruntime-web@{ORT_WEB_VERSION}` and pass "
        f"the .tgz with --ort-web (or set ${ENV_VAR})")


def cache_dir() -> Path:
    from edgeclf.data.cache import cache_root

    return cache_root() / "onnxruntime-web" / ORT_WEB_VERSION


def integrity(path: Path) -> str:
    h = hashlib.sha512()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return "sha512-" + base64.b64encode(h.digest()).decode()


def _complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in ORT_WEB_FILES)


def _check_tarball(tgz: Path) -> None:
    if integrity(tgz) != ORT_WEB_INTEGRITY:
        raise ExportError(f"{tgz} is not onnxruntime-web {ORT_WEB_VERSION} as published (its "
                          f"sha512 differs from the pinned one); {HINT}")


def _from_tarball(tgz: Path, dest: Path) -> Path:
    _check_tarball(tgz)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".partial-", dir=dest.parent))
    try:
        with tarfile.open(tgz) as tar:
            for name in ORT_WEB_FILES:
                member = tar.extractfile(f"package/dist/{name}")
                if member is None:
                    raise ExportError(f"{tgz} has no dist/{name}")
                (tmp / name).write_bytes(member.read())
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _from_folder(folder: Path) -> Path:
    dist = folder / "dist" if (folder / "dist").is_dir() else folder
    package = dist.parent / "package.json"
    if package.is_file():
        version = json.loads(package.read_text()).get("version")
        if version != ORT_WEB_VERSION:
            raise ExportError(f"{folder} holds onnxruntime-web {version}; this edgeclf pins "
                              f"{ORT_WEB_VERSION}; {HINT}")
    if not _complete(dist):
        missing = [n for n in ORT_WEB_FILES if not (dist / n).is_file()]
        raise ExportError(f"{folder} lacks onnxruntime-web's {', '.join(missing)}; {HINT}")
    return dist


def _npm_pack(dest: Path) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        raise ExportError(f"the web export needs onnxruntime-web {ORT_WEB_VERSION} and npm "
                          f"was not found to fetch it; {HINT}")
    with tempfile.TemporaryDirectory(prefix="edgeclf-ort-web-") as tmp:
        cmd = [npm, "pack", f"onnxruntime-web@{ORT_WEB_VERSION}", "--silent",
               "--pack-destination", tmp]
        log.info("fetching onnxruntime-web %s with npm pack", ORT_WEB_VERSION)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=NPM_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise ExportError(f"`npm pack onnxruntime-web@{ORT_WEB_VERSION}` took over "
                              f"{NPM_TIMEOUT_S} s (offline?); {HINT}") from None
        tarballs = list(Path(tmp).glob("onnxruntime-web-*.tgz"))
        if proc.returncode != 0 or not tarballs:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise ExportError(f"`npm pack onnxruntime-web@{ORT_WEB_VERSION}` failed (offline? "
                              f"{' / '.join(tail) or 'no output'}); {HINT}")
        return _from_tarball(tarballs[0], dest)


def find_ort_web(source: str | Path | None = None) -> Path:
    """A folder holding :data:`ORT_WEB_FILES` of the pinned version (see the module doc)."""
    source = source or os.environ.get(ENV_VAR) or None
    cached = cache_dir()
    if source is not None:
        path = Path(source).expanduser()
        if not path.exists():
            raise ExportError(f"onnxruntime-web source {path} does not exist; {HINT}")
        if path.is_file():
            _check_tarball(path)
            return cached if _complete(cached) else _from_tarball(path, cached)
        return _from_folder(path)
    if _complete(cached):
        return cached
    return _npm_pack(cached)

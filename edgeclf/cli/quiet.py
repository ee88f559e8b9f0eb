"""Quiet third-party output: TensorFlow's, absl's, the TFLite converter's and onnxruntime's
C++ log lines, their Python loggers and warnings are silenced unless ``--verbose``.

Runs from the CLI's root callback, before any command imports TensorFlow: the environment
variables only take effect if they are set before the libraries load. Some C++ logging
(absl's "before absl::InitializeLog()" lines, the TFLite converter's ``I0000 ...
reader.cc:83] Reading SavedModel``) ignores them, so in a real process stderr's file
descriptor is also routed through a small filter process that drops such lines and passes
everything else through; Python's own ``sys.stderr`` keeps the original stream (progress
bars still see the terminal).
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import signal
import sys
import time
import warnings

#: One C++ log line of TensorFlow/absl/XLA/TFLite (``I0000 00:00:... file.cc:83] ...``, or
#: TensorFlow's older ``2026-... : W tensorflow/...``), the continuation line of its CPU
#: feature note, absl's pre-init warning, LiteRT's delegate note, onnxruntime's log lines and
#: the TFLite quantizer's unprefixed settings line (written straight to stderr).
#: Fatal lines (``F...``) are kept: they explain a crash.
NATIVE_LOG = re.compile(
    rb"^(?:[IWE]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^\]\n]+\] "
    rb"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWE] "
    rb"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \[[VIW]:onnxruntime:"
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    rb"|To enable the following instructions: .*rebuild TensorFlow"
    rb"|INFO: Created TensorFlow Lite XNNPACK delegate for CPU"
    rb"|fully_quantize: \d+, inference_type: \d+, input_inference_type: )")

#: What TensorFlow, absl, gRPC and onnxruntime read at load time.
QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "GRPC_VERBOSITY": "ERROR", "GLOG_minloglevel": "2",
             "ORT_LOG_LEVEL": "3"}
LOUD_ENV = {"TF_CPP_MIN_LOG_LEVEL": "0"}
THIRD_PARTY_LOGGERS = ("tensorflow", "absl", "tf2onnx", "keras", "jax", "h5py", "onnx",
                       "onnxruntime", "matplotlib", "PIL", "ai_edge_litert")

_filter_pid: int | None = None


def configure(verbose: bool) -> None:
    """Silence (or, with ``verbose``, show) third-party logging for this process and the
    processes it starts. A variable the user set is left as it is."""
    for key, value in (LOUD_ENV if verbose else QUIET_ENV).items():
        os.environ.setdefault(key, value)
    if verbose:
        return
    warnings.filterwarnings("ignore")
    warnings.filterwarnings("default", module=r"edgeclf(\.|$)")
    for name in THIRD_PARTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    # libraries that log on the root logger (onnxruntime's quantizer: "Quantized bias ...
    # exceeds the range of a int32") and loggers not named above inherit this level;
    # edgeclf's own logger has its level set by the CLI
    logging.getLogger().setLevel(logging.ERROR)
    filter_native_stderr()


def drop_native_logs(data: bytes) -> bytes:
    """``data`` (whole lines) without the native log lines :data:`NATIVE_LOG` matches."""
    return b"".join(ln for ln in data.splitlines(keepends=True) if not NATIVE_LOG.match(ln))


def filter_native_stderr() -> bool:
    """Route file descriptor 2 through a filter process (POSIX, real stderr only: not under
    a test runner's captured streams). Returns whether the filter is in place."""
    global _filter_pid
    if _filter_pid is not None or not hasattr(os, "fork"):
        return _filter_pid is not None
    try:
        if sys.stderr is None or sys.stderr.fileno() != 2:
            return False
        sys.stderr.flush()
    except (AttributeError, OSError, ValueError):
        return False
    original = os.dup(2)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:                                   # the filter: pipe -> original stderr
        signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C: drain until the parent ends
        os.close(write_end)
        for fd in (0, 1, 2):     # hold none of the parent's streams open (a reader of its
            os.close(fd)         # stdout must see EOF when the parent exits)
        _pump(read_end, original)
        os._exit(0)
    os.close(read_end)
    os.dup2(write_end, 2)
    os.close(write_end)
    os.set_inheritable(2, True)
    sys.stderr = os.fdopen(original, "w", buffering=1, encoding=sys.stderr.encoding,
                           errors="backslashreplace")
    _filter_pid = pid
    atexit.register(_close_filter, original)
    return True


def _pump(src: int, dst: int) -> None:
    pending = b""
    while True:
        try:
            chunk = os.read(src, 65536)
        except InterruptedError:
            continue
        if not chunk:
            break
        *lines, pending = (pending + chunk).split(b"\n")
        out = drop_native_logs(b"".join(ln + b"\n" for ln in lines))
        if out:
            os.write(dst, out)
    if pending and not NATIVE_LOG.match(pending):
        os.write(dst, pending)


def _close_filter(original: int, timeout: float = 2.0) -> None:
    """At exit: give fd 2 back and let the filter drain the pipe. A process this one started
    may still hold the pipe (multiprocessing's fork server lives until this process ends),
    so the wait is bounded; the filter then finishes on its own."""
    global _filter_pid
    if _filter_pid is None:
        return
    try:
        sys.stderr.flush()
        os.dup2(original, 2)
        deadline = time.monotonic() + timeout
        while os.waitpid(_filter_pid, os.WNOHANG) == (0, 0) and time.monotonic() < deadline:
            time.sleep(0.01)
    except OSError:
        pass
    _filter_pid = None

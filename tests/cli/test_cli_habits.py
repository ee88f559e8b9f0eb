"""CLI habits shared by every command (issues 16 and 18): --json declared once, one exit-code
rule, native log lines filtered, comma lists parsed once. Cheap: no model, no TensorFlow."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from edgeclf.cli import app
from edgeclf.cli.common import EXIT_USAGE, JsonOption, comma_list, parse_ints
from edgeclf.cli.quiet import drop_native_logs
from edgeclf.errors import ConfigError
from tests.conftest import ROOT

runner = CliRunner()


def _commands(group=None, prefix=()):
    group = group or typer.main.get_command(app)
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, prefix + (name,))
        else:
            yield prefix + (name,), cmd


def test_every_command_has_the_one_json_option_and_exits_2_on_bad_usage():
    shared_help = JsonOption.__metadata__[0].help
    for name, cmd in _commands():
        options = {o for p in cmd.params for o in getattr(p, "opts", [])}
        assert "--json" in options, f"edgeclf {' '.join(name)} has no --json"
        (param,) = [p for p in cmd.params if "--json" in p.opts]
        assert param.help == shared_help, name
        result = runner.invoke(app, [*name, "--no-such-option"])
        assert result.exit_code == EXIT_USAGE, (name, result.output)


NOISE = [b"WARNING: All log messages before absl::InitializeLog() is called are written to "
         b"STDERR\n",
         b"I0000 00:00:1796168947.645637    7660 reader.cc:83] Reading SavedModel from: x\n",
         b"W0000 00:00:1796168947.1    7660 tf_tfl_flatbuffer_helpers.cc:365] Ignored "
         b"output_format.\n",
         b"To enable the following instructions: AVX2 FMA, in other operations, rebuild "
         b"TensorFlow with the appropriate compiler flags.\n",
         b"2026-12-01 23:58:12.123456: I tensorflow/core/util/port.cc:153] oneDNN on.\n",
         b"fully_quantize: 0, inference_type: 6, input_inference_type: FLOAT32, "
         b"output_inference_type: FLOAT32\n"]
KEPT = [b"Error: model.onnx failed\n", b"F0000 00:00:1.0 1 x.cc:1] Check failed: fatal\n",
        b"I0000 is a file name, not a log line\n"]


def test_drop_native_logs_keeps_everything_else():
    assert drop_native_logs(b"".join(NOISE + KEPT)) == b"".join(KEPT)


def test_native_lines_of_this_process_and_its_children_are_filtered():
    script = (
        "import os, sys\n"
        "from edgeclf.cli.quiet import filter_native_stderr\n"
        "assert filter_native_stderr()\n"
        f"os.write(2, {b''.join(NOISE + KEPT)!r})\n"
        "print('python stderr', file=sys.stderr)\n"
        "os.system('echo \"W0000 00:00:1.0 9 child.cc:1] noise\" >&2; echo child-kept >&2')\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, cwd=ROOT,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr
    for line in KEPT + [b"python stderr\n", b"child-kept\n"]:
        assert line in err
    assert not any(n.strip() in err for n in NOISE) and b"child.cc" not in err


def test_third_party_python_logging_is_quiet_unless_verbose():
    script = ("import logging, sys\n"
              "from edgeclf.cli.quiet import configure\n"
              "configure(verbose=sys.argv[1] == 'loud')\n"
              "logging.warning('root logger noise')\n"             # onnxruntime's quantizer
              "logging.getLogger('some.library').warning('library noise')\n"
              "logging.getLogger('some.library').error('library error')\n")
    quiet, loud = (subprocess.run([sys.executable, "-c", script, mode], capture_output=True,
                                  text=True, cwd=ROOT, timeout=60) for mode in ("quiet", "loud"))
    assert quiet.returncode == loud.returncode == 0, quiet.stderr + loud.stderr
    assert "noise" not in quiet.stderr and "library error" in quiet.stderr
    assert "root logger noise" in loud.stderr and "library noise" in loud.stderr


def test_comma_lists_and_integer_lists():
    assert comma_list(["onnx,TFLite", " savedmodel "], lower=True) == ("onnx", "tflite",
                                                                       "savedmodel")
    assert comma_list(None) is None and comma_list(",") is None
    assert parse_ints("1, 8,32", "--batch-sizes") == (1, 8, 32)
    with pytest.raises(ConfigError, match="--threads takes comma-separated integers"):
        parse_ints("two", "--threads")

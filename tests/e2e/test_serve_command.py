"""The README's path, as a new user takes it: `pipelinejobs serve` in one terminal, `pipelinejobs demo`
in another with the lines serve printed, then Ctrl-C. Real processes, real signals, real sockets."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).with_name("pipelinejobs")


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PIPELINEJOBS_", "POWERTOOLS_"))}
    return {**env, "COLUMNS": "120", "NO_COLOR": "1"}


def _read_banner(process: subprocess.Popen[str], timeout: float) -> list[str]:
    """serve's lines up to "Ctrl-C stops", which it prints once everything is up."""
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if "Ctrl-C stops" in line:
            return lines
    raise AssertionError("serve did not come up:\n" + "\n".join(lines))


def test_serve_then_demo_in_another_shell_then_ctrl_c(tmp_path: Path) -> None:
    assert SCRIPT.exists(), f"{SCRIPT} is missing: install the project (`make install`) first"
    # given `pipelinejobs serve` started as a user starts it (any free ports)
    serve = subprocess.Popen(  # noqa: S603 (our own script)
        [str(SCRIPT), "serve", "--port", "0", "--data-dir", str(tmp_path / "data")],
        # with SIGINT ignored, as a script's background job (`pipelinejobs serve &`) inherits it: Ctrl-C
        # (SIGINT) must stop serve all the same
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        cwd=ROOT,
        env=_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        banner = "\n".join(_read_banner(serve, timeout=60))
        # when the exports it printed are pasted into another shell, and the demo runs there
        exports = dict(re.findall(r"\b((?:PIPELINEJOBS|AWS)_[A-Z_]+)=(\S+)", banner))
        assert {"PIPELINEJOBS_URL", "PIPELINEJOBS_TOKEN", "AWS_ENDPOINT_URL"} <= set(exports), banner
        # the deadline sweeper runs on the template's schedule, and the banner says so
        assert re.search(r"SweeperFunction every 60 s", banner), banner
        demo = subprocess.run(  # noqa: S603
            [str(SCRIPT), "demo"],
            cwd=tmp_path,
            env={**_environment(), **exports},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        # then the demo went through every step against the running stack
        assert demo.returncode == 0, demo.stdout + demo.stderr
        for step in ("finishes", "calls back", "archive", "reset", "delete"):
            assert step in demo.stdout.lower(), demo.stdout
        assert re.search(r"0 object versions left", demo.stdout), demo.stdout
        assert "Done. Job" in demo.stdout
    finally:
        # when Ctrl-C is pressed
        serve.send_signal(signal.SIGINT)
        try:
            rest, _ = serve.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            serve.kill()
            raise
    # then serve stopped cleanly, after logging the demo's events, and nothing secret was printed
    assert serve.returncode == 0, rest
    assert "Stopped." in rest
    assert re.search(r"applied\s+run", rest)
    assert exports["PIPELINEJOBS_TOKEN"] not in rest
    assert "pjt_" not in rest and "pjc_" not in rest

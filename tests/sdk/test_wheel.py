"""The distribution as a user installs it: `pip install pipelinejobs` is the SDK and nothing else.

The wheel is built from this checkout with the pinned uv that `make install` puts in .tools, installed
into a clean venv (no seed packages, so anything pulled in shows), and its `Client` drives a job on the
local stack from that venv. The console script there says which extra the command line needs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def _uv() -> str:
    found = shutil.which("uv") or str(ROOT / ".tools" / "bin" / "uv")
    assert Path(found).exists(), "uv is missing: `make install` puts the pinned uv in .tools/bin"
    return found


def _run(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "UV_PROJECT"))}
    env["UV_PYTHON_DOWNLOADS"] = "never"
    return subprocess.run(args, capture_output=True, text=True, timeout=180, env=env, check=False, **kwargs)  # noqa: S603


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    built = _run(_uv(), "build", "--wheel", "--out-dir", str(out), str(ROOT))
    assert built.returncode == 0, built.stderr
    (built_wheel,) = out.glob("pipelinejobs-*.whl")
    return built_wheel


@pytest.fixture(scope="module")
def sdk_venv(wheel: Path) -> Path:
    venv = wheel.parent / "venv"
    made = _run(_uv(), "venv", "--quiet", "--python", sys.executable, str(venv))
    assert made.returncode == 0, made.stderr
    installed = _run(_uv(), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), str(wheel))
    assert installed.returncode == 0, installed.stderr
    return venv


def test_the_wheel_holds_every_module_of_the_sdk_cli_local_stack_and_core(wheel: Path):
    # given: every module in the source tree (a package left out of pyproject's list would be missing)
    sources = {
        f"pipelinejobs/{path.relative_to(ROOT / 'pipelinejobs')}"
        for path in (ROOT / "pipelinejobs").rglob("*.py")
    }
    core = ROOT / "layers" / "core" / "jobcore"
    sources |= {f"jobcore/{path.relative_to(core)}" for path in core.rglob("*.py")}
    # when
    with zipfile.ZipFile(wheel) as archive:
        packed = {name for name in archive.namelist() if name.endswith(".py")}
    # then
    assert "pipelinejobs/cli/__init__.py" in sources
    assert sorted(sources - packed) == []


def test_the_wheel_installs_the_sdk_and_nothing_else(sdk_venv: Path):
    # when
    listed = _run(_uv(), "pip", "freeze", "--python", str(sdk_venv / "bin" / "python"))
    # then
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[0].split("==")[0] for line in listed.stdout.splitlines()] == ["pipelinejobs"]


def test_the_sdk_from_the_wheel_drives_a_job_on_the_local_stack(sdk_venv: Path, local_stack: Any):
    # given: a script a reactor would run, with only the wheel installed
    script = textwrap.dedent(
        """
        import sys, uuid
        from pipelinejobs import Client
        client = Client(sys.argv[1], admin_key=sys.argv[2], timeout=10)
        job = client.create_job("pipe-wheel", {"sample": uuid.uuid4().hex})
        job.run({"host": "wheel"}).finish({"outputs": 1})
        job.wait_for("FINISHED", timeout=20)
        print(job.state)
        """
    )
    # when
    ran = _run(str(sdk_venv / "bin" / "python"), "-c", script, local_stack.api_url, local_stack.admin_key)
    # then
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "FINISHED"


def test_the_console_script_without_its_extra_says_what_to_install(sdk_venv: Path):
    # when
    ran = _run(str(sdk_venv / "bin" / "pipelinejobs"), "--help")
    # then
    assert ran.returncode == 1
    assert "pip install 'pipelinejobs[cli]'" in ran.stderr
    assert "Traceback" not in ran.stderr

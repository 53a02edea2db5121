"""Check what `sam build` produced, as Lambda would load it (`make check-build`, run by CI).

    python tests/build/check_artifacts.py --sam .tools/sam/bin/sam

1. Builds the template as deployed (arm64) and prints each function's unzipped size with the layer's
   (Lambda's limit: 250 MB for a function and its layers together).
2. The layer holds exactly the versions pinned in layers/core/requirements.txt (exported from uv.lock),
   each distribution once: nothing resolved anew at build time, boto3 and botocore the locked pair.
3. Every module in the layer ships bytecode compiled by Python 3.12 (Lambda's /opt is read-only).
4. Builds the same template for x86_64 (this machine's CPU: the arm64 wheels' compiled parts cannot load
   here) and imports every handler from its built function folder and the layer ALONE, in a clean
   interpreter (-I -S: no site-packages, no PYTHONPATH, no bytecode written), as /var/task and /opt
   are on Lambda's path; every module it loads comes from those folders or the standard library, and
   every module from the layer was loaded from its shipped bytecode.

Exit 0 when everything holds; 1 with what failed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIMIT_MB = 250
HANDLERS = {
    "WorkerFunction": "worker_handler",
    "ApiFunction": "api_handler",
    "NotifierFunction": "notifier_handler",
    "AdminKeyFunction": "admin_key_handler",
    "SweeperFunction": "sweeper_handler",
}
# The environment the template gives the functions, with placeholder values: importing a handler
# must not need AWS itself (clients are made, not called).
ENVIRONMENT = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "build-check",
    "AWS_SECRET_ACCESS_KEY": "build-check",
    "TABLE_NAME": "jobs",
    "QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/events.fifo",
    "ARCHIVE_BUCKET": "archive-bucket",
    "ARCHIVE_PREFIX": "archive",
    "EVENT_BUS_NAME": "jobs",
    "ADMIN_KEY_PARAMETER": "/pipelinejobs/admin-key",
    "POWERTOOLS_SERVICE_NAME": "pipelinejobs",
    "PYTHONDONTWRITEBYTECODE": "1",
}
# Run inside the clean interpreter: import the handler, then list where every loaded module came from.
PROBE = """
import importlib, json, os, sys
sys.path[:0] = sys.argv[2:]
importlib.import_module(sys.argv[1])
seen = []
for name, module in sorted(sys.modules.items()):
    path = getattr(module, "__file__", None)
    if path:
        cached = getattr(module, "__cached__", None)
        seen.append([name, path, bool(cached) and os.path.exists(cached)])
print(json.dumps({"stdlib": sys.base_prefix, "modules": seen}))
"""


def _sam_build(sam: str, build_dir: Path, template: Path, env: dict[str, str]) -> None:
    print(f"==> sam build -t {template.relative_to(ROOT)} -b {build_dir.relative_to(ROOT)}", flush=True)
    ran = subprocess.run(  # noqa: S603 - our own tools, our own arguments
        [
            sam,
            "build",
            "--template-file",
            str(template),
            "--build-dir",
            str(build_dir),
            "--base-dir",
            str(ROOT),
        ],
        cwd=ROOT,
        env=env,
        check=False,
        capture_output=True,
        text=True,
    )
    if ran.returncode != 0:
        print(ran.stdout[-4000:], ran.stderr[-4000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"sam build failed (exit {ran.returncode})")


def _size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def _pins(requirements: Path) -> dict[str, str]:
    pins = {}
    for line in requirements.read_text().splitlines():
        found = re.match(r"^([A-Za-z0-9._-]+)==([^ ;\\]+)", line)
        if found:
            pins[_normal(found[1])] = found[2]
    return pins


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _shipped(layer: Path) -> dict[str, list[str]]:
    shipped: dict[str, list[str]] = {}
    for info in layer.glob("*.dist-info"):
        name, version = info.name.removesuffix(".dist-info").rsplit("-", 1)
        shipped.setdefault(_normal(name), []).append(version)
    return shipped


def check_sizes(build: Path, problems: list[str]) -> None:
    layer_mb = _size_mb(build / "CoreLayer")
    print(f"{'function':<20} {'code MB':>8} {'+ layer MB':>11} {'limit':>6}")
    for function in HANDLERS:
        code_mb = _size_mb(build / function)
        total = code_mb + layer_mb
        print(f"{function:<20} {code_mb:>8.2f} {total:>11.1f} {LIMIT_MB:>6}")
        if total >= LIMIT_MB:
            problems.append(f"{function} with its layer is {total:.1f} MB unzipped (limit {LIMIT_MB} MB)")


def check_versions(layer: Path, problems: list[str]) -> None:
    pins = _pins(ROOT / "layers" / "core" / "requirements.txt")
    shipped = _shipped(layer)
    for name, versions in sorted(shipped.items()):
        if len(versions) > 1:
            problems.append(f"the layer holds {name} more than once: {versions}")
        elif pins.get(name) != versions[0]:
            problems.append(
                f"the layer holds {name} {versions[0]}, the lock pins {pins.get(name, 'nothing')}"
            )
    for name in sorted(set(pins) - set(shipped)):
        problems.append(f"the lock pins {name} {pins[name]}, the layer does not hold it")
    if {"boto3", "botocore"} & set(shipped) and not {"boto3", "botocore"} <= set(shipped):
        problems.append("the layer holds one of boto3 and botocore without the other")
    print(f"layer: {len(shipped)} distributions, each the version uv.lock pins")


def check_bytecode(layer: Path, problems: list[str]) -> None:
    sources = [p for p in layer.rglob("*.py") if "__pycache__" not in p.parts and ".dist-info" not in str(p)]
    missing = [p for p in sources if not (p.parent / "__pycache__" / f"{p.stem}.cpython-312.pyc").exists()]
    print(f"layer: {len(sources) - len(missing)} of {len(sources)} modules ship Python 3.12 bytecode")
    if missing:
        problems.append(
            f"{len(missing)} modules in the layer have no bytecode, e.g. {missing[0].relative_to(layer)}"
        )


def check_imports(python: str, build: Path, problems: list[str]) -> None:
    layer = build / "CoreLayer" / "python"
    for function, module in HANDLERS.items():
        folders = [str(build / function), str(layer)]
        ran = subprocess.run(  # noqa: S603 - our own interpreter and probe
            [python, "-I", "-S", "-c", PROBE, module, *folders],
            env=ENVIRONMENT,
            capture_output=True,
            text=True,
            check=False,
        )
        if ran.returncode != 0:
            problems.append(
                f"{function}: importing {module} from its artifacts failed:\n{ran.stderr[-2000:]}"
            )
            continue
        report = json.loads(ran.stdout)
        allowed = (*folders, report["stdlib"])
        outside = [name for name, path, _ in report["modules"] if not path.startswith(allowed)]
        uncompiled = [
            name
            for name, path, cached in report["modules"]
            if path.startswith(str(layer)) and path.endswith(".py") and not cached
        ]
        loaded = sum(1 for _, path, _ in report["modules"] if path.startswith(str(layer)))
        print(f"{function}: {module} imports from its artifacts alone ({loaded} modules from the layer)")
        if outside:
            problems.append(f"{function} loaded modules from outside its artifacts: {outside[:5]}")
        if uncompiled:
            problems.append(f"{function} loaded layer modules without bytecode: {uncompiled[:5]}")


def check_dashboard(build: Path, problems: list[str]) -> None:
    """The API function serves the dashboard from its own folder: every file of it must be built in."""
    source = ROOT / "functions" / "api" / "dashboard"
    built = build / "ApiFunction" / "dashboard"
    files = sorted(p.name for p in source.iterdir() if p.is_file())
    missing = [
        name
        for name in files
        if not (built / name).is_file() or (built / name).read_bytes() != (source / name).read_bytes()
    ]
    print(f"ApiFunction: the dashboard's {len(files) - len(missing)} of {len(files)} files built in")
    if missing:
        problems.append(f"ApiFunction lacks the dashboard's {', '.join(missing)} (or ships them changed)")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sam", default=shutil.which("sam") or "sam", help="the AWS SAM CLI")
    parser.add_argument("--python", default=shutil.which("python3.12") or "python3.12", help="Python 3.12")
    args = parser.parse_args()
    env = dict(os.environ, SAM_CLI_TELEMETRY="0")
    env["PATH"] = f"{Path(args.python).parent}{os.pathsep}{env.get('PATH', '')}"
    problems: list[str] = []

    arm = ROOT / ".aws-sam" / "build"
    _sam_build(args.sam, arm, ROOT / "template.yaml", env)
    check_sizes(arm, problems)
    check_versions(arm / "CoreLayer" / "python", problems)
    check_bytecode(arm / "CoreLayer" / "python", problems)
    check_dashboard(arm, problems)

    x86_template = ROOT / ".aws-sam" / "template-x86_64.yaml"
    x86_template.write_text((ROOT / "template.yaml").read_text().replace("arm64", "x86_64"))
    x86 = ROOT / ".aws-sam" / "build-x86_64"
    _sam_build(args.sam, x86, x86_template, dict(env, LAYER_PLATFORM="manylinux2014_x86_64"))
    check_imports(args.python, x86, problems)

    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    print("built artifacts: " + ("FAIL" if problems else "PASS"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

"""The `pipelinejobs` console script. `pip install pipelinejobs` is the SDK alone; the command line needs
its extra, and says so instead of printing a traceback when it is missing."""

from __future__ import annotations

import sys

_CLI_PACKAGES = frozenset({"typer", "click", "rich", "boto3", "botocore"})


def main() -> None:
    try:
        from pipelinejobs.cli import main as cli_main
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in _CLI_PACKAGES:
            raise
        print(
            f"pipelinejobs: the command line needs its extra (missing: {exc.name}); "
            "install it with: pip install 'pipelinejobs[cli]'  (the local stack: 'pipelinejobs[local]')",
            file=sys.stderr,
        )
        raise SystemExit(1) from None
    cli_main()

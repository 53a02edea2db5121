"""The `pipelinejobs` command line: admin tokens, producer keys, jobs (list, show, history, events, bulk
reset/delete), the dead-letter queue, and (registered by pipelinejobs.local.commands) `serve` and `demo`.

It acts as one principal: the admin (`--token` / `--admin-key`) or a producer key (`--api-key`, or
PIPELINEJOBS_KEY), as the SDK's Client does. Options given on the command line beat the environment;
both kinds on the command line are refused; both in the environment, the key wins (a shell that
exported a key acts as that producer, with no more than the key allows) and a note on stderr says so.

Human output is rich tables on stdout; `--json` prints plain JSON for scripts instead. Messages,
prompts and progress bars go to stderr, so `--json` output can always be piped. Failures print what
went wrong and what to do next, never a traceback, and exit non-zero:

    1 any other failure    3 credential refused (401/403)    4 not found
    5 conflict (not allowed in this state, rejected, failed)   6 API or AWS unreachable, timeout
"""

from __future__ import annotations

# The modules follow the command groups; importing them registers their commands on `app`.
from pipelinejobs.cli import admin_token, dlq, jobs, jobs_bulk, keys  # noqa: F401
from pipelinejobs.cli._app import app
from pipelinejobs.cli._config import _root  # noqa: F401  (the root options)

__all__ = ["app", "main"]

try:
    from pipelinejobs.local.commands import register as _register_local_commands
except ImportError:  # the local stack's commands (serve, demo) are optional
    pass
else:
    _register_local_commands(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()

"""The local stack: the whole of pipelinejobs on one machine, built from template.yaml (SPEC section 9).

    with LocalStack(port=0, aws_port=0, quiet=True) as stack:
        client = Client(stack.api_url, admin_key=stack.admin_key)
        ...
        stack.drain()          # every queued event applied, every notification sent

What runs, all in this process:

| piece | how |
|---|---|
| AWS | moto's server (its WSGI app on werkzeug, in a child process: persistence.run_emulator) on 127.0.0.1:<aws_port>, reachable from any process through `AWS_ENDPOINT_URL` |
| data | with `data_dir`: the services' data snapshotted there and restored at start, the admin key and the ports kept (persistence.py); without: in memory, gone at stop |
| resources | `create_stack_resources` from template.yaml (table with its stream, FIFO queue + dead-letter queue, bucket, bus, admin key in SSM) |
| HTTP API | the API function behind `HttpBridge` on 127.0.0.1:<port> (API Gateway HTTP API, payload 2.0) |
| worker | the worker function fed by `SqsEventSource` (batch size, partial batch failures, visibility timeout, redrive to the dead-letter queue) |
| notifier | the notifier function fed by `StreamEventSource` from the table's stream, with the mapping's filter |

The functions get the template's environment (StackResources.environment()), plus `AWS_ENDPOINT_URL`,
dummy credentials and region us-east-1; two variables differ from AWS so that the terminal shows one
readable line per event instead of JSON: `POWERTOOLS_LOG_LEVEL=WARNING` and
`POWERTOOLS_METRICS_DISABLED=true`. The environment is process-wide: it is set at start() and restored
at stop().

With `aws=True` nothing is emulated: the deployed stack's outputs (CloudFormation DescribeStacks on
`stack_name`) name the resources, and the HTTP bridge serves the API function locally against them
(the deployed API is at `deployed_api_url`). No local worker or notifier runs: the deployed ones consume
the queue and the stream.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from pipelinejobs.local.event_source import (
    EventLog,
    SqsEventSource,
    StreamEventSource,
    observe_record_handler,
    retry_line,
    worker_line,
)
from pipelinejobs.local.functions import (
    DEFAULT_REGION,
    FunctionInstance,
    FunctionPool,
    FunctionSpec,
    LocalFunctionError,
    Schedule,
    apply_environment,
    environment_lock,
    event_source_mappings,
    read_functions,
    restore_environment,
    scheduled_event,
    schedules,
)
from pipelinejobs.local.http_bridge import HttpBridge
from pipelinejobs.local.persistence import DEFAULT_SNAPSHOT_SECONDS, DataFolder
from pipelinejobs.local.resources import (
    DEFAULT_TEMPLATE,
    LocalStackError,
    StackResources,
    create_stack_resources,
    read_admin_key,
)
from pipelinejobs.local.template import load_template

__all__ = ["DEFAULT_PORT", "DEFAULT_STACK_NAME", "LocalStack", "LocalStackError", "MotoServerProcess"]

DEFAULT_PORT = 8765
DEFAULT_STACK_NAME = "pipelinejobs-local"
API_CONCURRENCY = 4  # API function instances serving requests at once
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}

_STYLES = {
    "applied": "green",
    "rejected": "red",
    "ignored": "yellow",
    "duplicate": "dim",
    "unrecorded": "magenta",
    "retry": "yellow",
    "error": "bold red",
    "notified": "cyan",
    "http": "dim",
}


def _console_log() -> EventLog:
    from rich.console import Console
    from rich.text import Text

    console = Console(highlight=False, soft_wrap=True)
    lock = threading.Lock()

    def log(text: str, kind: str) -> None:
        with lock:
            console.print(Text(text, style=_STYLES.get(kind, "")))

    return log


def _quiet_log(text: str, kind: str) -> None:
    return None


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# Runs moto's server in a child process. Its own process, not a thread of this one: moto keeps its state
# in module globals, which `moto.mock_aws()` in the same process resets (the test suites use it), and its
# request handling would compete with the functions for this process's GIL. The child exits when its
# stdin closes, that is when this process stops it or dies; with a data folder it saves a last snapshot
# first (persistence.run_emulator).
_MOTO_RUNNER = r"""
import sys
from pipelinejobs.local.persistence import run_emulator
run_emulator(int(sys.argv[1]), sys.argv[2] or None, float(sys.argv[3]), int(sys.argv[4]))
"""


class MotoServerProcess:
    """moto in server mode on 127.0.0.1:<port> (0: a free one), in a child process; with `data_dir`, its
    data saved there (snapshots, see persistence.py) and put back by `restore()`."""

    def __init__(
        self,
        port: int = 0,
        *,
        data_dir: str | Path | None = None,
        snapshot_seconds: float = DEFAULT_SNAPSHOT_SECONDS,
        pass_fds: tuple[int, ...] = (),
    ) -> None:
        self.requested_port = port
        self.port = 0
        self.data_dir = data_dir
        self.snapshot_seconds = snapshot_seconds
        self.pass_fds = pass_fds
        self._process: subprocess.Popen[str] | None = None
        self._stderr: Any = None

    @property
    def pid(self) -> int:
        return self._process.pid if self._process is not None else 0

    def start(self, timeout: float = 30) -> MotoServerProcess:
        """Raises LocalStackError when the server does not come up (port taken, moto missing)."""
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in stop()
        # A snapshot that fails (a full disk) is said where this process prints its errors.
        warnings = os.dup(2) if self.data_dir else -1
        try:
            self._spawn(warnings)
        finally:
            if warnings >= 0:
                os.close(warnings)
        line = self._read_line(timeout)
        if not line.isdigit():
            detail = self._last_error() or "no output"
            self.stop()
            raise LocalStackError(f"moto's server did not start on 127.0.0.1:{self.requested_port}: {detail}")
        self.port = int(line)
        return self

    def _spawn(self, warnings: int) -> None:
        self._process = subprocess.Popen(  # noqa: S603 - this interpreter, a fixed script
            [
                sys.executable,
                "-c",
                _MOTO_RUNNER,
                str(self.requested_port),
                str(self.data_dir or ""),
                str(self.snapshot_seconds),
                str(warnings),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            # Its own session: Ctrl-C in the terminal reaches this process only, which stops the
            # functions first and the emulator last.
            start_new_session=True,
            # The data folder's lock, shared: held until both this process and the emulator are gone.
            pass_fds=self.pass_fds + ((warnings,) if warnings >= 0 else ()),
        )

    def _read_line(self, timeout: float) -> str:
        assert self._process is not None and self._process.stdout is not None
        ready, _, _ = select.select([self._process.stdout], [], [], timeout)
        return self._process.stdout.readline().strip() if ready else ""

    def _last_error(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        lines = self._stderr.read().strip().splitlines()
        return lines[-1] if lines else ""

    def _command(self, command: str, timeout: float) -> dict[str, int]:
        if self._process is None or self._process.stdin is None:
            raise LocalStackError("the emulator is not running")
        try:
            self._process.stdin.write(command + "\n")
            self._process.stdin.flush()
        except OSError:
            raise LocalStackError(f"the emulator stopped: {self._last_error() or 'no output'}") from None
        line = self._read_line(timeout)
        word, _, rest = line.partition(" ")
        if word in ("restored", "saved", "checked"):
            counts: dict[str, int] = json.loads(rest)
            return counts
        if word == "error":
            raise LocalStackError(rest)
        raise LocalStackError(
            f"the emulator did not answer {command!r} within {timeout:g} s: {self._last_error() or 'no output'}"
        )

    def restore(self, timeout: float = 600) -> dict[str, int]:
        """Put the data folder's last snapshot into the emulator (its resources made already); returns
        what came back (jobs, items, messages, objects). Snapshots start then. LocalStackError when the
        folder's state cannot be read: nothing is restored, and nothing will be written to it."""
        return self._command("restore", timeout)

    def snapshot(self, timeout: float = 600) -> dict[str, int]:
        """Save a snapshot now (after `restore()`); returns what it holds."""
        return self._command("snapshot", timeout)

    def check(self, timeout: float = 600) -> dict[str, int]:
        """Compare the table items the snapshots keep up to date key by key with a full read of the
        tables: `{"items": n, "differ": n}` (tests: differ must be 0)."""
        return self._command("check", timeout)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, timeout: float = 10) -> None:
        """Close its input: it saves a last snapshot (with a data folder) and exits; killed if it takes
        longer than `timeout` (plus a minute with a data folder, for that snapshot)."""
        process, self._process = self._process, None
        if process is not None:
            with contextlib.suppress(OSError):
                if process.stdin is not None:
                    process.stdin.close()
            try:
                process.wait(timeout + (60 if self.data_dir else 0))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
            if process.stdout is not None:
                process.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None


class LocalStack:
    """pipelinejobs on one machine (moto + the functions in-process), or a local API against a deployed stack."""

    resources: StackResources  # set by start()

    def __init__(
        self,
        *,
        port: int = DEFAULT_PORT,
        aws_port: int | None = None,
        admin_key: str | None = None,
        template: str | Path = "template.yaml",
        overrides: dict[str, Any] | None = None,
        quiet: bool = False,
        aws: bool = False,
        stack_name: str | None = None,
        log: EventLog | None = None,
        worker_concurrency: int = 1,
        schedule_seconds: float | None = None,
        data_dir: str | Path | None = None,
        fresh: bool = False,
        snapshot_seconds: float = DEFAULT_SNAPSHOT_SECONDS,
    ) -> None:
        """port / aws_port: 0 (or None for aws_port) picks a free port. admin_key: stored in SSM and used
        (generated when None). overrides: per logical id, template properties to change, e.g.
        `{"EventsQueue": {"VisibilityTimeout": 2}}`. quiet: print nothing. log: where event lines go
        (default: the terminal, unless quiet). aws / stack_name: see the module doc. worker_concurrency:
        batches the worker works on at once (Lambda works several message groups of a FIFO queue at
        once; each group stays in order). schedule_seconds: run the template's scheduled functions (the
        deadline sweeper) this often instead of at their `rate(...)` (tests); 0: never on their own
        (`run_schedules()` runs them).

        data_dir: the data folder (persistence.py) whose jobs, history, archive, producer keys, queued
        messages and admin key the stack keeps across restarts; None (the default): everything lives in
        memory and is gone at stop(). fresh: delete what the folder holds first. snapshot_seconds: the
        longest time between a change and its snapshot (what a crash of the emulator can lose). With a
        folder and aws_port None, the emulator comes back on the port of the last run when it is free."""
        self.worker_concurrency = max(1, int(worker_concurrency))
        self.schedule_seconds = schedule_seconds
        self.port = port
        self.aws_port = aws_port or 0
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.fresh = fresh
        self.snapshot_seconds = snapshot_seconds
        self.data_folder: DataFolder | None = None
        # What the data folder gave back at start (jobs, items, messages, objects); None: nothing (new).
        self.restored: dict[str, int] | None = None
        self.aws_port_note = ""  # why the emulator is not on the port of the last run, if it is not
        self._aws_port_given = aws_port is not None
        self._given_admin_key = admin_key
        self.template_path = self._find_template(template)
        self.overrides = overrides or {}
        self.aws = aws
        self.stack_name = stack_name or (None if aws else DEFAULT_STACK_NAME)
        self.log: EventLog = log or (_quiet_log if quiet else _console_log())
        self.quiet = quiet

        self.api_url = ""
        self.aws_endpoint = ""
        self.deployed_api_url = ""
        self.admin_key = ""
        self.admin_key_source = ""
        self.worker: FunctionPool | None = None
        self.api: FunctionPool | None = None
        self.notifier: FunctionPool | None = None
        # The scheduled functions (the deadline sweeper), by logical id, and their schedules.
        self.scheduled: dict[str, FunctionPool] = {}
        self._schedules: list[Schedule] = []
        self._scheduler: threading.Thread | None = None
        self._scheduler_stop = threading.Event()
        # What the functions did, newest last (for tests and the demo): worker results, notifications.
        self.results: collections.deque[Any] = collections.deque(maxlen=10_000)
        self.notifications: collections.deque[dict[str, Any]] = collections.deque(maxlen=10_000)

        self._moto: MotoServerProcess | None = None
        self._bridge: HttpBridge | None = None
        self._sqs_source: SqsEventSource | None = None
        self._stream_source: StreamEventSource | None = None
        self._saved_environment: dict[str, str | None] | None = None
        self._logging: _LoggingState | None = None
        self._session: Any = None
        self._started = False

    @staticmethod
    def _find_template(template: str | Path) -> Path:
        path = Path(template)
        if not path.exists() and not path.is_absolute() and str(template) == "template.yaml":
            path = DEFAULT_TEMPLATE  # run from elsewhere than the project folder
        if not path.exists():
            raise LocalStackError(f"no template at {path}")
        return path.resolve()

    # -- context manager ----------------------------------------------------------------------------

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- starting -----------------------------------------------------------------------------------

    def start(self) -> LocalStack:
        """Start everything; raises LocalStackError (port taken, template not runnable, no such stack)."""
        if self._started:
            return self
        self._started = True
        self._logging = _LoggingState.capture()
        try:
            if self.aws:
                self._start_against_aws()
            else:
                self._start_emulated()
        except BaseException:
            self.stop()
            raise
        return self

    def _bind_bridge(self) -> HttpBridge:
        try:
            return HttpBridge(port=self.port, log=self.log)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise LocalStackError(
                    f"127.0.0.1:{self.port} is in use (another `pipelinejobs serve`?); "
                    "choose another --port, or 0 for a free one"
                ) from None
            raise

    def _start_emulated(self) -> None:
        # Fail on a taken port before spending a second on the emulator and the resources.
        self._bridge = self._bind_bridge()
        if self.aws_port and not _port_free(self.aws_port):
            raise LocalStackError(f"127.0.0.1:{self.aws_port} is in use; choose another --aws-port, or 0")
        admin_key = self._given_admin_key
        pass_fds: tuple[int, ...] = ()
        if self.data_dir is not None:
            self.data_folder = DataFolder(self.data_dir).open(fresh=self.fresh)
            assert self.data_folder.lock_fd is not None
            pass_fds = (self.data_folder.lock_fd,)
            admin_key = admin_key or self.data_folder.read_admin_key()
            last_port = self.data_folder.aws_port
            if not self._aws_port_given and last_port:
                if _port_free(last_port):
                    self.aws_port = last_port
                else:
                    self.aws_port_note = f"127.0.0.1:{last_port}, the port of the last run, is in use"

        self._moto = MotoServerProcess(
            self.aws_port,
            data_dir=self.data_folder.path if self.data_folder else None,
            snapshot_seconds=self.snapshot_seconds,
            pass_fds=pass_fds,
        ).start()
        if self.data_folder is not None:
            self.data_folder.note_emulator(self._moto.pid)
        self.aws_port = self._moto.port
        self.aws_endpoint = self._moto.endpoint

        # Clients of this object, and the functions' (through the environment), reach the emulator.
        self._saved_environment = apply_environment(
            {
                **DUMMY_CREDENTIALS,
                "AWS_SESSION_TOKEN": None,
                "AWS_PROFILE": None,
                "AWS_REGION": DEFAULT_REGION,
                "AWS_DEFAULT_REGION": DEFAULT_REGION,
                "AWS_ENDPOINT_URL": self.aws_endpoint,
            }
        )
        import boto3

        self._session = boto3.session.Session(
            aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=DEFAULT_REGION,
        )
        assert self.stack_name is not None
        self.resources = create_stack_resources(
            self.template_path,
            stack_name=self.stack_name,
            admin_key=admin_key,
            client_factory=self.client,
            overrides=self.overrides,
        )
        self.admin_key = read_admin_key(self.resources.admin_key_parameter, client_factory=self.client)
        if self.data_folder is not None:
            self._restore_data_folder()
        elif self._given_admin_key:
            self.admin_key_source = f"given, stored in SSM parameter {self.resources.admin_key_parameter}"
        else:
            self.admin_key_source = (
                f"generated at start, stored in SSM parameter {self.resources.admin_key_parameter}"
            )

        template = load_template(self.template_path)
        specs = read_functions(template, self.template_path.parent)
        mappings = event_source_mappings(template)
        queue_id, table_id = self._source_ids(template)
        worker_mapping = next((m for m in mappings if m.kind == "sqs" and m.source_id == queue_id), None)
        stream_mapping = next((m for m in mappings if m.kind == "dynamodb" and m.source_id == table_id), None)
        api_spec = next((spec for spec in specs.values() if spec.routes), None)
        if worker_mapping is None or worker_mapping.function_id not in specs:
            raise LocalStackError(
                f"no function of {self.template_path.name} with local code consumes {queue_id}"
            )
        if api_spec is None:
            raise LocalStackError(f"no function of {self.template_path.name} has HttpApi routes")
        worker_spec = specs[worker_mapping.function_id]
        notifier_spec = specs.get(stream_mapping.function_id) if stream_mapping else None
        try:
            self._schedules = [s for s in schedules(template) if s.function_id in specs]
        except LocalFunctionError as error:
            raise LocalStackError(str(error)) from None

        self._load_functions(
            worker_spec, api_spec, notifier_spec, [specs[s.function_id] for s in self._schedules]
        )
        assert self.worker is not None and self.api is not None

        sqs = self.client("sqs")
        queue_arn = sqs.get_queue_attributes(QueueUrl=self.resources.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        self._sqs_source = SqsEventSource(
            sqs=sqs,
            queue_url=self.resources.queue_url,
            queue_arn=queue_arn,
            function=self.worker,
            batch_size=self.resources.worker_batch_size,
            report_batch_item_failures=self.resources.worker_report_batch_item_failures,
            region=DEFAULT_REGION,
            log=self.log,
            concurrency=self.worker_concurrency,
        ).start()
        if self.notifier is not None and stream_mapping is not None and self.resources.table_stream_arn:
            self._stream_source = StreamEventSource(
                streams=self.client("dynamodbstreams"),
                stream_arn=self.resources.table_stream_arn,
                function=self.notifier,
                batch_size=int(stream_mapping.get("BatchSize", 100)),
                starting_position=str(stream_mapping.get("StartingPosition", "TRIM_HORIZON")),
                filters=(stream_mapping.get("FilterCriteria") or {}).get("Filters") or [],
                report_batch_item_failures="ReportBatchItemFailures"
                in (stream_mapping.get("FunctionResponseTypes") or []),
                maximum_retry_attempts=int(stream_mapping.get("MaximumRetryAttempts", -1)),
                log=self.log,
            ).start()

        if self._schedules and self.schedule_seconds != 0:
            self._scheduler = threading.Thread(target=self._run_scheduler, name="schedules", daemon=True)
            self._scheduler.start()

        assert self._bridge is not None
        self._bridge.function = self.api
        self._bridge.start()
        self.api_url = self._bridge.url
        self.port = self._bridge.port

    # -- schedules (EventBridge's part: the deadline sweeper) ---------------------------------------

    def _run_scheduler(self) -> None:
        """Invoke each scheduled function at its rate (or every `schedule_seconds`), as EventBridge
        does: the first time one period after the start, then every period, never two at once."""
        due = {s.function_id: time.monotonic() + self._period(s) for s in self._schedules}
        while not self._scheduler_stop.is_set():
            now = time.monotonic()
            for schedule in self._schedules:
                if due[schedule.function_id] <= now:
                    self._invoke_scheduled(schedule)
                    due[schedule.function_id] = time.monotonic() + self._period(schedule)
            self._scheduler_stop.wait(max(0.01, min(due.values()) - time.monotonic()))

    def _period(self, schedule: Schedule) -> float:
        return self.schedule_seconds if self.schedule_seconds else schedule.seconds

    def _invoke_scheduled(self, schedule: Schedule) -> Any:
        pool = self.scheduled[schedule.function_id]
        invocation = pool.invoke(scheduled_event(f"{self.stack_name}-{schedule.function_id}"))
        stamp = time.strftime("%H:%M:%S")
        if invocation.error is not None:
            error = invocation.error
            self.log(
                f"{stamp} {'retry':<9} {schedule.function_id} failed: {type(error).__name__}: {error}",
                "retry",
            )
        elif isinstance(invocation.response, Mapping) and invocation.response.get("overdue"):
            self.log(
                f"{stamp} {'deadline':<9} {invocation.response['overdue']} overdue jobs sent to be failed "
                f"(heartbeat {invocation.response.get('heartbeat', 0)}, "
                f"timeout {invocation.response.get('timeout', 0)})",
                "retry",
            )
        return invocation.response

    def schedule_periods(self) -> dict[str, tuple[float, str]]:
        """Each scheduled function here: (seconds between runs, the template's expression)."""
        return {s.function_id: (self._period(s), s.expression) for s in self._schedules if self.scheduled}

    def run_schedules(self) -> dict[str, Any]:
        """Run every scheduled function once, now (the deadline sweeper: what it queued); for tests and
        for an operator who does not want to wait for the next minute. Not against AWS."""
        if not self.scheduled:
            raise LocalStackError("no scheduled function runs here (only on the emulated stack)")
        return {s.function_id: self._invoke_scheduled(s) for s in self._schedules}

    def _source_ids(self, template: Mapping[str, Any]) -> tuple[str, str]:
        """Logical ids of the events queue and the jobs table: what QUEUE_URL and TABLE_NAME name."""
        variables = ((template.get("Globals") or {}).get("Function") or {}).get("Environment") or {}
        variables = variables.get("Variables") or {}

        def ref(name: str) -> str:
            value = variables.get(name)
            if isinstance(value, Mapping) and isinstance(value.get("Ref"), str):
                return str(value["Ref"])
            raise LocalStackError(
                f"Globals.Function.Environment.Variables.{name} must be a !Ref to the resource"
            )

        return ref("QUEUE_URL"), ref("TABLE_NAME")

    def _function_environment(self, specs: list[FunctionSpec]) -> dict[str, str | None]:
        variables: dict[str, str | None] = dict(self.resources.environment())
        for spec in specs:
            for name, value in spec.environment.items():
                if variables.get(name, value) != value:
                    raise LocalStackError(
                        f"{spec.logical_id} sets {name} differently from another function; the local "
                        "stack runs every function in one process, with one environment"
                    )
                variables[name] = value
        variables["POWERTOOLS_LOG_LEVEL"] = "WARNING"
        variables["POWERTOOLS_METRICS_DISABLED"] = "true"
        if self.aws_endpoint:
            variables["AWS_ENDPOINT_URL"] = self.aws_endpoint
        return variables

    def _load_functions(
        self,
        worker_spec: FunctionSpec | None,
        api_spec: FunctionSpec,
        notifier_spec: FunctionSpec | None,
        scheduled_specs: list[FunctionSpec] | None = None,
    ) -> None:
        scheduled_specs = scheduled_specs or []
        specs = [spec for spec in (worker_spec, api_spec, notifier_spec) if spec is not None]
        specs += scheduled_specs
        environment = self._function_environment(specs)
        assert self.stack_name is not None
        with environment_lock():
            saved = apply_environment(environment)
            if self._saved_environment is None:
                self._saved_environment = saved
            else:
                for name, value in saved.items():
                    self._saved_environment.setdefault(name, value)

            def first(spec: FunctionSpec) -> FunctionInstance:
                instance = FunctionInstance(spec, stack_name=self.stack_name or "", region=DEFAULT_REGION)
                instance.warm_up()
                return instance

            self.api = FunctionPool(
                api_spec, stack_name=self.stack_name, size=API_CONCURRENCY, first=first(api_spec)
            )
            if worker_spec is not None:
                worker = first(worker_spec)
                self._observe_worker(worker)
                self.worker = FunctionPool(
                    worker_spec,
                    stack_name=self.stack_name,
                    size=self.worker_concurrency,
                    first=worker,
                    on_new_instance=self._observe_worker,
                )
            if notifier_spec is not None:
                notifier = first(notifier_spec)
                observe_record_handler(notifier.module, self._on_notification, self._on_notifier_error)
                self.notifier = FunctionPool(
                    notifier_spec, stack_name=self.stack_name, size=1, first=notifier
                )
            for spec in scheduled_specs:
                self.scheduled[spec.logical_id] = FunctionPool(
                    spec, stack_name=self.stack_name, size=1, first=first(spec)
                )

    # -- what the functions did ---------------------------------------------------------------------

    def _observe_worker(self, instance: FunctionInstance) -> None:
        observe_record_handler(instance.module, self._on_worker_result, self._on_worker_error)

    def _on_worker_result(self, record: Any, result: Any) -> None:
        self.results.append(result)
        text, kind = worker_line(result)
        self.log(text, kind)

    def _on_worker_error(self, record: Any, error: BaseException) -> None:
        self.log(retry_line(record, error), "retry")

    def _on_notification(self, record: Any, detail: Any) -> None:
        if not isinstance(detail, Mapping):
            return
        self.notifications.append(dict(detail))
        uuid = str(detail.get("uuid") or "-")
        short = uuid[:8] + "…" if len(uuid) > 9 else uuid
        self.log(
            f"{time.strftime('%H:%M:%S')} {'notified':<9} {detail.get('event')!s:<9} {short:<10} "
            f"{detail.get('from_state')}→{detail.get('to_state') or '(deleted)'}",
            "notified",
        )

    def _on_notifier_error(self, record: Any, error: BaseException) -> None:
        self.log(
            f"{time.strftime('%H:%M:%S')} {'retry':<9} notification failed: {type(error).__name__}: {error}",
            "retry",
        )

    # -- against a deployed stack -------------------------------------------------------------------

    def _restore_data_folder(self) -> None:
        """The folder's data back into the emulator's new resources, before any function runs; then the
        folder gets this run's admin key and ports. Nothing is written to it when its data cannot be read."""
        assert self.data_folder is not None and self._moto is not None and self._bridge is not None
        folder = self.data_folder
        had_data = folder.restored
        had_key = folder.read_admin_key()
        try:
            counts = self._moto.restore()
        except LocalStackError as error:
            raise LocalStackError(
                f"cannot restore the data folder {folder.path}: {error}. Its files are left as they were; "
                f"move them away, or start afresh with `pipelinejobs serve --fresh --data-dir {folder.path}` "
                "(deletes them)"
            ) from None
        self.restored = counts if had_data else None
        if had_key != self.admin_key:
            folder.write_admin_key(self.admin_key)
        folder.write_manifest(aws_port=self.aws_port, api_port=self._bridge.port)
        where = folder.path / "admin-key"
        if self._given_admin_key and had_key and had_key != self._given_admin_key:
            self.admin_key_source = (
                f"given (replaces the one kept in {where}; tokens of the old key stop working)"
            )
        elif self._given_admin_key:
            self.admin_key_source = f"given, kept in {where}"
        elif had_key:
            self.admin_key_source = f"kept in {where} (tokens computed from it still work)"
        else:
            self.admin_key_source = f"generated, kept in {where}"

    def snapshot(self) -> dict[str, int]:
        """Save the emulated services' data in the data folder now (what a crash of the emulator would
        keep); returns what the snapshot holds. Snapshots are also taken on their own after changes."""
        if self._moto is None or self.data_folder is None:
            raise LocalStackError("the stack has no data folder (LocalStack(data_dir=...))")
        return self._moto.snapshot()

    def check_data(self) -> dict[str, int]:
        """Compare the table items the snapshots keep up to date (key by key, from the writes' requests)
        with a full read of the tables now: `{"items": n, "differ": n}`; for tests (differ is 0)."""
        if self._moto is None or self.data_folder is None:
            raise LocalStackError("the stack has no data folder (LocalStack(data_dir=...))")
        return self._moto.check()

    @property
    def emulator_pid(self) -> int:
        return self._moto.pid if self._moto is not None else 0

    def _start_against_aws(self) -> None:
        if not self.stack_name:
            raise LocalStackError("--aws needs the deployed stack's name (--stack-name)")
        self._bridge = self._bind_bridge()
        # Real AWS: an emulator endpoint left in the environment must not divert the calls.
        self._saved_environment = apply_environment({"AWS_ENDPOINT_URL": None})
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError

        self._session = boto3.session.Session()
        region = self._session.region_name or DEFAULT_REGION
        try:
            stack = self.client("cloudformation").describe_stacks(StackName=self.stack_name)["Stacks"][0]
        except (ClientError, BotoCoreError) as error:
            raise LocalStackError(f"cannot read the stack {self.stack_name}: {error}") from None
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs") or []}
        parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters") or []}
        needed = (
            "TableName",
            "QueueUrl",
            "DeadLetterQueueUrl",
            "ArchiveBucketName",
            "EventBusName",
            "AdminKeyParameterName",
        )
        missing = [name for name in needed if not outputs.get(name)]
        if missing:
            raise LocalStackError(f"the stack {self.stack_name} lacks the output(s) {', '.join(missing)}")
        self.deployed_api_url = outputs.get("ApiUrl", "")

        template = load_template(self.template_path)
        self.resources = self._deployed_resources(template, outputs, parameters)
        if self._given_admin_key:
            self.admin_key = self._given_admin_key
            self.admin_key_source = "given (it must be the one in the stack's SSM parameter)"
        else:
            try:
                self.admin_key = read_admin_key(
                    self.resources.admin_key_parameter, client_factory=self.client
                )
            except (ClientError, BotoCoreError) as error:
                raise LocalStackError(
                    f"cannot read the admin key {self.resources.admin_key_parameter}: {error}; "
                    "give --admin-key, or use credentials allowed ssm:GetParameter on it"
                ) from None
            self.admin_key_source = (
                f"SSM parameter {self.resources.admin_key_parameter} of stack {self.stack_name}"
            )

        specs = read_functions(template, self.template_path.parent)
        api_spec = next((spec for spec in specs.values() if spec.routes), None)
        if api_spec is None:
            raise LocalStackError(f"no function of {self.template_path.name} has HttpApi routes")
        environment = self._function_environment([api_spec])
        environment["AWS_ENDPOINT_URL"] = None
        with environment_lock():
            saved = apply_environment(environment)
            for name, value in saved.items():
                self._saved_environment.setdefault(name, value)
            instance = FunctionInstance(api_spec, stack_name=self.stack_name, region=region)
            instance.warm_up()
        self.api = FunctionPool(
            api_spec, stack_name=self.stack_name, size=API_CONCURRENCY, region=region, first=instance
        )
        self._bridge.function = self.api
        self._bridge.start()
        self.api_url = self._bridge.url
        self.port = self._bridge.port

    def _deployed_resources(
        self, template: Mapping[str, Any], outputs: Mapping[str, str], parameters: Mapping[str, str]
    ) -> StackResources:
        """StackResources of a deployed stack: names from its outputs, settings from its parameters."""
        by_output = {
            "TABLE_NAME": outputs["TableName"],
            "QUEUE_URL": outputs["QueueUrl"],
            "ARCHIVE_BUCKET": outputs["ArchiveBucketName"],
            "EVENT_BUS_NAME": outputs["EventBusName"],
            "ADMIN_KEY_PARAMETER": outputs["AdminKeyParameterName"],
        }
        declared = template.get("Parameters") or {}
        values = {name: str(d.get("Default", "")) for name, d in declared.items()}
        values.update(parameters)
        variables: dict[str, str] = {}
        function_globals = (template.get("Globals") or {}).get("Function") or {}
        for name, value in ((function_globals.get("Environment") or {}).get("Variables") or {}).items():
            if name in by_output:
                variables[name] = by_output[name]
            elif isinstance(value, Mapping) and isinstance(value.get("Ref"), str) and value["Ref"] in values:
                variables[name] = values[value["Ref"]]
            elif isinstance(value, str | int | float | bool):
                variables[name] = str(value)
        variables.setdefault(
            "ARCHIVE_PREFIX", outputs.get("ArchivePrefix") or values.get("ArchivePrefix", "archive")
        )

        visibility, max_receive = 30, 0
        with contextlib.suppress(Exception):
            attributes = self.client("sqs").get_queue_attributes(
                QueueUrl=outputs["QueueUrl"], AttributeNames=["VisibilityTimeout", "RedrivePolicy"]
            )["Attributes"]
            visibility = int(attributes.get("VisibilityTimeout", visibility))
            import json

            max_receive = int(json.loads(attributes.get("RedrivePolicy") or "{}").get("maxReceiveCount", 0))
        resource_variables = {
            "TABLE_NAME",
            "QUEUE_URL",
            "ARCHIVE_BUCKET",
            "ARCHIVE_PREFIX",
            "EVENT_BUS_NAME",
            "ADMIN_KEY_PARAMETER",
        }
        return StackResources(
            table_name=variables["TABLE_NAME"],
            queue_url=variables["QUEUE_URL"],
            dead_letter_queue_url=outputs["DeadLetterQueueUrl"],
            bucket=variables["ARCHIVE_BUCKET"],
            archive_prefix=variables["ARCHIVE_PREFIX"],
            event_bus_name=variables["EVENT_BUS_NAME"],
            admin_key_parameter=variables["ADMIN_KEY_PARAMETER"],
            visibility_timeout=visibility,
            max_receive_count=max_receive,
            worker_batch_size=0,
            worker_report_batch_item_failures=False,
            worker_timeout=0,
            settings_environment=tuple(
                sorted((k, v) for k, v in variables.items() if k not in resource_variables)
            ),
        )

    # -- using it -----------------------------------------------------------------------------------

    def client(self, service_name: str) -> Any:
        """A boto3 client of the stack's AWS (the emulator, or the deployed stack's account)."""
        from botocore.config import Config

        if self._session is None:
            raise LocalStackError("the stack is not started")
        if not self.aws_endpoint:
            return self._session.client(service_name)
        # moto routes only the regional DynamoDB Streams endpoint, not botocore's account-based one.
        config = Config(account_id_endpoint_mode="disabled", retries={"mode": "standard"})
        return self._session.client(service_name, endpoint_url=self.aws_endpoint, config=config)

    def admin_token(self) -> str:
        """An admin token for now (valid for this window and the next, SPEC section 4)."""
        from jobcore.tokens import admin_token

        if not self.admin_key:
            raise LocalStackError("the stack is not started")
        return admin_token(self.admin_key, time.time(), self.admin_token_lifetime)

    @property
    def admin_token_lifetime(self) -> int:
        resources: StackResources | None = getattr(self, "resources", None)
        if resources is None:
            return 3600
        return int(resources.environment().get("ADMIN_TOKEN_LIFETIME") or 3600)

    @contextlib.contextmanager
    def worker_held(self) -> Iterator[None]:
        """The worker receives nothing while the block runs (a batch it is working on is finished first):
        events accepted meanwhile wait on the queue, as behind a slow or throttled worker. Not against AWS."""
        if self._sqs_source is None:
            raise LocalStackError("the worker runs here only on the emulated stack")
        with self._sqs_source.held():
            yield

    def drain(self, timeout: float = 30) -> None:
        """Wait until the queue is empty with nothing in flight, and the stream's notifications are sent.

        A message that keeps failing keeps the queue busy until it reaches the dead-letter queue.
        Raises TimeoutError after `timeout` seconds.
        """
        if self._sqs_source is None:
            return  # against AWS: nothing runs here
        sqs = self.client("sqs")
        deadline = time.monotonic() + timeout
        names = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]

        def queue_settled() -> bool:
            if self._sqs_source is not None and self._sqs_source.busy:
                return False
            attributes = sqs.get_queue_attributes(QueueUrl=self.resources.queue_url, AttributeNames=names)
            return all(int(attributes["Attributes"].get(name, 0)) == 0 for name in names) and not (
                self._sqs_source is not None and self._sqs_source.busy
            )

        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"the local stack did not drain within {timeout} s")
            if queue_settled():
                stream_done = self._stream_source is None or self._stream_source.wait_caught_up(
                    min(remaining, 5.0)
                )
                # The notifier adds nothing to the queue; be sure all the same.
                if stream_done and queue_settled():
                    return
                continue
            time.sleep(0.05)

    # -- stopping -----------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the HTTP API, the event sources (letting a running batch finish), then the emulator;
        restore the environment. Safe to call twice."""
        if self._bridge is not None:
            self._bridge.stop()
            self._bridge = None
        if self._scheduler is not None:
            self._scheduler_stop.set()
            self._scheduler.join(timeout=65)
            self._scheduler = None
        if self._sqs_source is not None:
            resources: StackResources | None = getattr(self, "resources", None)
            self._sqs_source.stop(timeout=(resources.worker_timeout if resources else 60) + 5)
            self._sqs_source = None
        if self._stream_source is not None:
            if self.data_folder is not None:
                # The stream starts empty at the next start: send the notifications of what was applied.
                with contextlib.suppress(Exception):
                    self._stream_source.wait_caught_up(10)
            self._stream_source.stop(timeout=35)
            self._stream_source = None
        if self._moto is not None:
            with contextlib.suppress(Exception):
                self._moto.stop()  # with a data folder: after its last snapshot
            self._moto = None
        if self.data_folder is not None:
            self.data_folder.close()
            self.data_folder = None
        for pool in (self.api, self.worker, self.notifier, *self.scheduled.values()):
            if pool is not None:
                pool.unload()
        self.scheduled = {}
        if self._saved_environment is not None:
            restore_environment(self._saved_environment)
            self._saved_environment = None
        if self._logging is not None:
            self._logging.restore()
            self._logging = None
        self._started = False

    def __repr__(self) -> str:
        where = f"aws stack {self.stack_name}" if self.aws else f"moto at {self.aws_endpoint or '-'}"
        return f"LocalStack(api={self.api_url or '-'}, {where})"


class _LoggingState:
    """The process's loggers as they were before the stack started, to put back when it stops.

    The functions' Powertools Loggers configure the process-wide logger of their service (its level
    from POWERTOOLS_LOG_LEVEL, a handler bound to the stdout of the moment), and a later Logger of the
    same service keeps whatever configuration it finds. So, both ways:

    - at start, a service logger some earlier code of the process configured (a handler imported by a
      test, say: INFO, printing to the stdout of its time) is set aside, so that the stack's functions
      configure their own from the stack's environment;
    - at stop, the loggers the stack's functions configured are forgotten, the ones set aside come back,
      and every other logger gets its level back: code that runs after the stack in the same process
      does not inherit its quiet WARNING level.
    """

    def __init__(self, levels: dict[str, int], set_aside: dict[str, Any]) -> None:
        self.levels = levels
        self.set_aside = set_aside

    @staticmethod
    def _configured_by_powertools(item: Any) -> bool:
        import logging

        return isinstance(item, logging.Logger) and bool(getattr(item, "init", False))

    @classmethod
    def capture(cls) -> _LoggingState:
        import logging

        loggers = logging.Logger.manager.loggerDict
        levels = {
            name: item.level for name, item in list(loggers.items()) if isinstance(item, logging.Logger)
        }
        set_aside = {
            name: item for name, item in list(loggers.items()) if cls._configured_by_powertools(item)
        }
        for name in set_aside:
            loggers.pop(name, None)
        return cls(levels, set_aside)

    def restore(self) -> None:
        import logging

        loggers = logging.Logger.manager.loggerDict
        for name, item in list(loggers.items()):
            if not isinstance(item, logging.Logger):
                continue
            if self._configured_by_powertools(item):  # by a function of the stack: forgotten
                for handler in list(item.handlers):
                    item.removeHandler(handler)
                loggers.pop(name, None)
            elif name in self.levels:
                item.setLevel(self.levels[name])
        loggers.update(self.set_aside)


def wait_for_port(url: str, timeout: float = 0.5) -> bool:
    """Whether something accepts connections at an http://host:port URL."""
    from urllib.parse import urlsplit

    split = urlsplit(url)
    try:
        with socket.create_connection((split.hostname or "127.0.0.1", split.port or 80), timeout=timeout):
            return True
    except OSError:
        return False

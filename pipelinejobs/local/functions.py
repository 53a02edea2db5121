"""The Lambda functions of template.yaml, loaded and invoked in-process the way Lambda runs them.

A function is found by its template properties only: `CodeUri` + `Handler` (`module.function`, the
module imported by file path, as Lambda imports it from /var/task), `Timeout` and `MemorySize`
(function, else `Globals.Function`, else Lambda's defaults). What triggers it comes from the template
too: `AWS::Lambda::EventSourceMapping` resources (or SAM `SQS` / `DynamoDB` events) for the queue and
stream consumers, SAM `HttpApi` events for the routes of the HTTP API.

A `FunctionInstance` is one Lambda execution environment ("container"): its own copy of the module,
so its module-level caches (clients, the settings, the resolver's current event) are its own, and one
invocation at a time. A `FunctionPool` is a function's concurrency: up to `size` instances, created on
demand, each serving one invocation at a time, as Lambda scales out.

The layer (`layers/core`, package `jobcore`) is importable because the project is installed (or on
pytest's pythonpath); the function's code folder is put on `sys.path` like /var/task, for sibling
modules. The environment is process-wide: `apply_environment` sets it before the first import, and
`warm_up` builds each instance's cached dependencies while it is in place (a cold start at start-up).
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import os
import queue
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = [
    "DEFAULT_ACCOUNT",
    "DEFAULT_REGION",
    "EventSourceMapping",
    "FunctionInstance",
    "FunctionPool",
    "FunctionSpec",
    "HttpRoute",
    "LambdaContext",
    "LocalFunctionError",
    "Schedule",
    "apply_environment",
    "event_source_mappings",
    "http_api_functions",
    "isolate_powertools_routers",
    "read_functions",
    "restore_environment",
    "scheduled_event",
    "schedules",
]

DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT = "123456789012"  # moto's account

# Lambda's defaults where a template leaves a property out.
_DEFAULT_TIMEOUT = 3
_DEFAULT_MEMORY_SIZE = 128

# Cached dependency builders a handler module may define (STYLE: a cached `_deps()` built on first
# use). `warm_up` calls them while the instance's environment is in place.
WARM_UP_HOOKS = ("_deps", "_notifier")

_ENVIRONMENT_LOCK = threading.RLock()
_INSTANCE_NUMBERS = itertools.count(1)


class LocalFunctionError(RuntimeError):
    """A function of the template cannot be run locally (no code folder, no handler, ...)."""


# ------------------------------------------------------------------------------------------------
# What the template says
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpRoute:
    """One route of an HTTP API: `GET /jobs/{uuid}`, `ANY /{proxy+}` or `$default`."""

    method: str
    path: str

    @property
    def route_key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"

    @property
    def _specificity(self) -> tuple[int, int, int]:
        # API Gateway prefers literal paths over parameters, parameters over greedy ones, and a
        # route's own method over ANY; $default comes last.
        if self.path == "$default":
            return (2, 0, 0)
        greedy = self.path.count("+}")
        parameters = self.path.count("{")
        return (1 if greedy else 0, parameters, 1 if self.method == "ANY" else 0)

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """Path parameters when this route takes the request, else None."""
        if self.path == "$default":
            return {}
        if self.method not in ("ANY", method.upper()):
            return None
        names: list[str] = []
        pattern = ""
        for literal, name in re.findall(r"([^{]*)(?:\{([^}]+)\})?", self.path):
            pattern += re.escape(literal)
            if name:
                greedy = name.endswith("+")
                names.append(name.rstrip("+"))
                pattern += "(.+)" if greedy else "([^/]+)"
        found = re.fullmatch(pattern, path)
        if found is None:
            return None
        return dict(zip(names, found.groups(), strict=True))


def match_route(
    routes: tuple[HttpRoute, ...], method: str, path: str
) -> tuple[HttpRoute, dict[str, str]] | None:
    """The route API Gateway would pick for a request, with its path parameters; None means 404."""
    for route in sorted(routes, key=lambda r: r._specificity):
        parameters = route.match(method, path)
        if parameters is not None:
            return route, parameters
    return None


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    code_uri: Path
    handler: str
    timeout: int
    memory_size: int
    # Literal variables of the function's own Environment (Globals come from StackResources).
    environment: Mapping[str, str] = field(default_factory=dict)
    routes: tuple[HttpRoute, ...] = ()

    @property
    def module_name(self) -> str:
        return self.handler.rsplit(".", 1)[0]

    @property
    def function_name(self) -> str:
        return self.handler.rsplit(".", 1)[1]

    def module_file(self) -> Path:
        relative = Path(*self.module_name.split("."))
        for candidate in (
            self.code_uri / relative.with_suffix(".py"),
            self.code_uri / relative / "__init__.py",
        ):
            if candidate.is_file():
                return candidate
        raise LocalFunctionError(
            f"{self.logical_id}: handler {self.handler} names module {self.module_name}, "
            f"which is not in {self.code_uri}"
        )


@dataclass(frozen=True)
class EventSourceMapping:
    """A function fed by a queue (`kind` "sqs") or a table's stream (`kind` "dynamodb")."""

    function_id: str
    source_id: str
    kind: str
    properties: Mapping[str, Any]

    def get(self, name: str, default: Any = None) -> Any:
        return self.properties.get(name, default)


def _target(value: Any) -> tuple[str, str] | None:
    """(logical id, attribute) of a `Ref` / `GetAtt` / `Sub "${X.Y}"`; attribute "" for a Ref."""
    if isinstance(value, Mapping) and len(value) == 1:
        (key, argument), *_ = value.items()
        if key == "Ref" and isinstance(argument, str):
            return argument, ""
        if key == "Fn::GetAtt":
            if isinstance(argument, str):
                resource, _, attribute = argument.partition(".")
                return resource, attribute
            if isinstance(argument, list) and len(argument) == 2:
                return str(argument[0]), str(argument[1])
        if key == "Fn::Sub" and isinstance(argument, str):
            found = re.fullmatch(r"\$\{([^}.!]+)(?:\.([^}]+))?\}", argument)
            if found:
                return found.group(1), found.group(2) or ""
    return None


def _literal(logical_id: str, name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise LocalFunctionError(
        f"{logical_id}: the local stack runs functions with literal environment values only; "
        f"{name} is {value!r} (move it to Globals, which the local stack resolves)"
    )


def read_functions(template: Mapping[str, Any], base_dir: str | Path) -> dict[str, FunctionSpec]:
    """Every SAM function of the template with local code, by logical id."""
    base = Path(base_dir)
    function_globals = (template.get("Globals") or {}).get("Function") or {}
    specs: dict[str, FunctionSpec] = {}
    for logical_id, resource in (template.get("Resources") or {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        properties = resource.get("Properties") or {}

        def setting(name: str, default: Any, properties: Mapping[str, Any] = properties) -> Any:
            return properties.get(name, function_globals.get(name, default))

        code_uri = setting("CodeUri", None)
        handler = setting("Handler", None)
        if not isinstance(code_uri, str) or not isinstance(handler, str) or "." not in handler:
            continue  # code elsewhere (S3, inline, an image): not runnable here
        variables = ((properties.get("Environment") or {}).get("Variables")) or {}
        specs[logical_id] = FunctionSpec(
            logical_id=logical_id,
            code_uri=(base / code_uri).resolve(),
            handler=handler,
            timeout=int(setting("Timeout", _DEFAULT_TIMEOUT)),
            memory_size=int(setting("MemorySize", _DEFAULT_MEMORY_SIZE)),
            environment={name: _literal(logical_id, name, value) for name, value in variables.items()},
            routes=_http_routes(properties),
        )
    return specs


def _http_routes(properties: Mapping[str, Any]) -> tuple[HttpRoute, ...]:
    routes = []
    for event in (properties.get("Events") or {}).values():
        if event.get("Type") != "HttpApi":
            continue
        event_properties = event.get("Properties") or {}
        method = str(event_properties.get("Method", "ANY")).upper()
        path = str(event_properties.get("Path", "$default"))
        if method == "X-AMAZON-APIGATEWAY-ANY-METHOD":
            method = "ANY"
        routes.append(HttpRoute(method=method, path=path))
    return tuple(routes)


def http_api_functions(template: Mapping[str, Any], base_dir: str | Path) -> list[FunctionSpec]:
    """Functions behind the template's HTTP API routes."""
    return [spec for spec in read_functions(template, base_dir).values() if spec.routes]


def event_source_mappings(template: Mapping[str, Any]) -> list[EventSourceMapping]:
    """Queue and stream consumers: EventSourceMapping resources and SAM SQS / DynamoDB events."""
    resources = template.get("Resources") or {}

    def kind_of(source: Any) -> tuple[str, str] | None:
        target = _target(source)
        if target is None or target[0] not in resources:
            return None
        resource_type = resources[target[0]].get("Type")
        if resource_type == "AWS::SQS::Queue" and target[1] in ("Arn", ""):
            return target[0], "sqs"
        if resource_type == "AWS::DynamoDB::Table" and target[1] == "StreamArn":
            return target[0], "dynamodb"
        return None

    mappings = []
    for logical_id, resource in resources.items():
        properties = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::Lambda::EventSourceMapping":
            function = _target(properties.get("FunctionName"))
            source = kind_of(properties.get("EventSourceArn"))
            if function and source and function[0] in resources and _truthy(properties.get("Enabled", True)):
                mappings.append(EventSourceMapping(function[0], source[0], source[1], dict(properties)))
        elif resource.get("Type") == "AWS::Serverless::Function":
            for event in (properties.get("Events") or {}).values():
                event_properties = event.get("Properties") or {}
                if event.get("Type") == "SQS":
                    source = kind_of(event_properties.get("Queue"))
                elif event.get("Type") == "DynamoDB":
                    source = kind_of(event_properties.get("Stream"))
                else:
                    continue
                if source and _truthy(event_properties.get("Enabled", True)):
                    mappings.append(
                        EventSourceMapping(logical_id, source[0], source[1], dict(event_properties))
                    )
    return mappings


@dataclass(frozen=True)
class Schedule:
    """A function invoked on a schedule (a SAM `Schedule` / `ScheduleV2` event): every `seconds`."""

    function_id: str
    seconds: float
    expression: str


_RATE = re.compile(r"rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def schedules(template: Mapping[str, Any]) -> list[Schedule]:
    """Scheduled functions, their `rate(...)` expression resolved (a `Ref` to a parameter takes its
    default). Raises LocalFunctionError for an expression the local stack cannot run (a cron one)."""
    resources = template.get("Resources") or {}
    parameters = template.get("Parameters") or {}
    found = []
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        for event in ((resource.get("Properties") or {}).get("Events") or {}).values():
            if event.get("Type") not in ("Schedule", "ScheduleV2"):
                continue
            event_properties = event.get("Properties") or {}
            expression = event_properties.get("Schedule") or event_properties.get("ScheduleExpression")
            target = _target(expression)
            if target is not None and not target[1] and target[0] in parameters:
                expression = (parameters[target[0]] or {}).get("Default")
            match = _RATE.fullmatch(str(expression).strip())
            if match is None:
                raise LocalFunctionError(
                    f"{logical_id}: the local stack runs `rate(N minutes|hours|days)` schedules only, "
                    f"not {expression!r}"
                )
            if not _truthy(event_properties.get("Enabled", True)):
                continue
            seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2).rstrip("s")]
            found.append(Schedule(logical_id, float(seconds), str(expression)))
    return found


def scheduled_event(
    rule: str, region: str = DEFAULT_REGION, account: str = DEFAULT_ACCOUNT
) -> dict[str, Any]:
    """The event EventBridge hands a function on its schedule."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "region": region,
        "resources": [f"arn:aws:events:{region}:{account}:rule/{rule}"],
        "detail": {},
    }


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


# ------------------------------------------------------------------------------------------------
# The environment (process-wide)
# ------------------------------------------------------------------------------------------------


def apply_environment(variables: Mapping[str, str | None]) -> dict[str, str | None]:
    """Set (or, for None, remove) variables in os.environ; returns what to restore."""
    with _ENVIRONMENT_LOCK:
        previous = {name: os.environ.get(name) for name in variables}
        for name, value in variables.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        return previous


def restore_environment(previous: Mapping[str, str | None]) -> None:
    apply_environment(previous)


@contextlib.contextmanager
def environment_lock() -> Iterator[None]:
    """Held while an environment is applied and instances warmed up with it."""
    with _ENVIRONMENT_LOCK:
        yield


# ------------------------------------------------------------------------------------------------
# The context and the execution environment
# ------------------------------------------------------------------------------------------------


class LambdaContext:
    """What Lambda's Python runtime passes as `context` (the attributes Powertools reads, and more)."""

    def __init__(
        self,
        *,
        function_name: str,
        memory_limit_in_mb: int,
        timeout: float,
        region: str = DEFAULT_REGION,
        account: str = DEFAULT_ACCOUNT,
    ) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{region}:{account}:function:{function_name}"
        # The runtime reads it from AWS_LAMBDA_FUNCTION_MEMORY_SIZE: a string, as here.
        self.memory_limit_in_mb = str(memory_limit_in_mb)
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = time.strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass(frozen=True)
class Invocation:
    """What one call did: the handler's return value or exception, and whether it overran Timeout."""

    response: Any
    error: BaseException | None
    duration: float
    timed_out: bool


class _PerThread:
    """A value each thread sees on its own: a thread here is one invocation of one execution environment."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._local = threading.local()

    def get(self) -> Any:
        try:
            return self._local.value
        except AttributeError:
            raise AttributeError(self.name) from None

    def set(self, value: Any) -> None:
        self._local.value = value

    # as a descriptor on the class: what its instances read and write
    def __get__(self, instance: Any, owner: Any = None) -> Any:
        return self.get()

    def __set__(self, instance: Any, value: Any) -> None:
        self.set(value)


_ROUTER_STATE = ("current_event", "lambda_context")
_ROUTER_LOCK = threading.Lock()


def isolate_powertools_routers() -> bool:
    """Give each thread its own request in Powertools' event handlers. Returns False if Powertools is not
    there or not laid out as expected (nothing changed).

    Powertools keeps the request being resolved on its router *class* (`BaseRouter.current_event`,
    `.lambda_context`), for all resolvers of the process: in Lambda a process serves one request at a
    time. Here the API function's instances serve requests at once, in threads of one process, so one
    request read another's headers, path and body (its token among them). Both names become per thread:
    on the class (where Powertools assigns them, through a metaclass property) and on its instances.
    """
    try:
        from aws_lambda_powertools.event_handler.api_gateway import BaseRouter
    except ImportError:
        return False
    with _ROUTER_LOCK:
        meta = type(BaseRouter)
        if getattr(meta, "_pipelinejobs_per_thread", False):
            return True
        if any(isinstance(BaseRouter.__dict__.get(name), property) for name in _ROUTER_STATE):
            return False
        values = {name: _PerThread(name) for name in _ROUTER_STATE}
        for name, value in values.items():
            if name in BaseRouter.__dict__:
                value.set(BaseRouter.__dict__[name])
            setattr(BaseRouter, name, value)  # what instances read, before the metaclass takes over
        namespace: dict[str, Any] = {"_pipelinejobs_per_thread": True}
        for name, value in values.items():
            namespace[name] = property(_class_getter(value), _class_setter(value))
        BaseRouter.__class__ = type("PerThreadRouterMeta", (meta,), namespace)  # type: ignore[method-assign]
        return True


def _class_getter(value: _PerThread) -> Callable[[Any], Any]:
    return lambda cls: value.get()


def _class_setter(value: _PerThread) -> Callable[[Any, Any], None]:
    return lambda cls, new: value.set(new)


def _powertools_metrics(module: ModuleType) -> list[Any]:
    """The Powertools `Metrics` objects a function module made."""
    try:
        from aws_lambda_powertools import Metrics
    except ImportError:
        return []
    return [value for value in vars(module).values() if isinstance(value, Metrics)]


def _drop_unpublished_metrics(metrics: list[Any]) -> None:
    """With POWERTOOLS_METRICS_DISABLED (as the local stack runs), Powertools' flush neither prints nor
    clears the invocation's metrics: they pile up in its process-wide metric set, and once one metric
    holds 100 values it prints them all to stdout regardless. Dropped after each call, as a flush does."""
    if not metrics:
        return
    from aws_lambda_powertools.metrics.functions import is_metrics_disabled

    if is_metrics_disabled():
        for item in metrics:
            item.clear_metrics()


class FunctionInstance:
    """One execution environment of a function: its own module, one invocation at a time."""

    def __init__(
        self,
        spec: FunctionSpec,
        *,
        stack_name: str,
        region: str = DEFAULT_REGION,
        account: str = DEFAULT_ACCOUNT,
    ) -> None:
        self.spec = spec
        self.function_name = f"{stack_name}-{spec.logical_id}"[:64]
        self.region = region
        self.account = account
        self._lock = threading.Lock()
        isolate_powertools_routers()  # instances of one process serve requests at once (threads)
        self.module = self._import(stack_name)
        handler = getattr(self.module, spec.function_name, None)
        if not callable(handler):
            raise LocalFunctionError(f"{spec.logical_id}: {spec.handler} is not a function")
        self.handler: Callable[[Any, LambdaContext], Any] = handler
        self._metrics = _powertools_metrics(self.module)

    def _import(self, stack_name: str) -> ModuleType:
        path = self.spec.module_file()
        code_dir = str(self.spec.code_uri)
        if code_dir not in sys.path:
            sys.path.append(code_dir)  # /var/task: sibling modules of the handler import as in Lambda
        slug = re.sub(r"\W", "_", f"{stack_name}_{self.spec.logical_id}_{next(_INSTANCE_NUMBERS)}")
        name = f"_pipelinejobs_local.{slug}.{self.spec.module_name}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None or module_spec.loader is None:
            raise LocalFunctionError(f"{self.spec.logical_id}: cannot import {path}")
        module = importlib.util.module_from_spec(module_spec)
        # Registered while it lives, so pydantic and dataclasses can resolve its annotations.
        sys.modules[name] = module
        try:
            module_spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        return module

    def warm_up(self) -> None:
        """Build the module's cached dependencies now, with the environment in place."""
        for hook in WARM_UP_HOOKS:
            builder = getattr(self.module, hook, None)
            if callable(builder) and hasattr(builder, "cache_info"):
                builder()

    def context(self) -> LambdaContext:
        return LambdaContext(
            function_name=self.function_name,
            memory_limit_in_mb=self.spec.memory_size,
            timeout=self.spec.timeout,
            region=self.region,
            account=self.account,
        )

    def invoke(self, event: Any) -> Invocation:
        """Call the handler with a fresh context. Lambda would stop a call at Timeout; a thread cannot
        be stopped, so an overrun is reported (`timed_out`) for the caller to treat as a failure."""
        with self._lock:
            context = self.context()
            started = time.monotonic()
            try:
                response, error = self.handler(event, context), None
            except Exception as exc:
                response, error = None, exc
            duration = time.monotonic() - started
            _drop_unpublished_metrics(self._metrics)
        return Invocation(response, error, duration, duration > self.spec.timeout)

    def unload(self) -> None:
        sys.modules.pop(self.module.__name__, None)


class FunctionPool:
    """A function's concurrency: up to `size` instances, made on demand, one invocation each at a time."""

    def __init__(
        self,
        spec: FunctionSpec,
        *,
        stack_name: str,
        size: int = 1,
        region: str = DEFAULT_REGION,
        account: str = DEFAULT_ACCOUNT,
        first: FunctionInstance | None = None,
        on_new_instance: Callable[[FunctionInstance], None] | None = None,
    ) -> None:
        """on_new_instance: called with each instance made on demand (after `first`), before it serves."""
        self.spec = spec
        self._on_new_instance = on_new_instance
        self.size = max(1, size)
        self._stack_name = stack_name
        self._region = region
        self._account = account
        self._idle: queue.LifoQueue[FunctionInstance] = queue.LifoQueue()
        self._instances: list[FunctionInstance] = []
        self._slots = 0  # instances made or being made
        self._lock = threading.Lock()
        if first is not None:
            self._instances.append(first)
            self._slots = 1
            self._idle.put(first)

    @property
    def instances(self) -> list[FunctionInstance]:
        with self._lock:
            return list(self._instances)

    def _new_instance(self) -> FunctionInstance:
        # A cold start after start-up: warmed under the environment lock like the first ones.
        with environment_lock():
            instance = FunctionInstance(
                self.spec, stack_name=self._stack_name, region=self._region, account=self._account
            )
            instance.warm_up()
        if self._on_new_instance is not None:
            self._on_new_instance(instance)
        with self._lock:
            self._instances.append(instance)
        return instance

    @contextlib.contextmanager
    def instance(self, timeout: float | None = None) -> Iterator[FunctionInstance]:
        """An idle instance for one invocation (a new one while fewer than `size` exist), else the
        next one to become idle. Raises queue.Empty after `timeout` seconds of waiting."""
        try:
            chosen = self._idle.get_nowait()
        except queue.Empty:
            with self._lock:
                grow = self._slots < self.size
                if grow:
                    self._slots += 1
            if grow:
                try:
                    chosen = self._new_instance()
                except BaseException:
                    with self._lock:
                        self._slots -= 1
                    raise
            else:
                chosen = self._idle.get(timeout=timeout)
        try:
            yield chosen
        finally:
            self._idle.put(chosen)

    def invoke(self, event: Any, timeout: float | None = None) -> Invocation:
        with self.instance(timeout) as chosen:
            return chosen.invoke(event)

    def unload(self) -> None:
        for instance in self.instances:
            instance.unload()

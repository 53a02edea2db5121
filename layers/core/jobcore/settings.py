"""Every environment variable of pipelinejobs, in one place, read once and typed.

| variable | used by | default | meaning |
|---|---|---|---|
| `TABLE_NAME` | all | (required) | the DynamoDB table of jobs, their data and their history |
| `QUEUE_URL` | api, worker | (required) | the FIFO queue of lifecycle events |
| `DEAD_LETTER_QUEUE_URL` | api | (none) | the events queue's dead-letter queue, for the dashboard's look and redrive (`GET /dlq`, `POST /dlq/redrive`); unset: those routes answer 404 |
| `ARCHIVE_BUCKET` | all | (required) | the S3 bucket holding job archives |
| `ARCHIVE_PREFIX` | all | `archive` | key prefix of every archive path in the bucket |
| `EVENT_BUS_NAME` | notifier | `default` | EventBridge bus for `Job State Changed` notifications |
| `ADMIN_KEY_PARAMETER` | api, worker | (required) | SSM SecureString holding the admin key |
| `ADMIN_TOKEN_LIFETIME` | api, worker | `3600` | seconds per admin-token window |
| `TOKEN_ROTATE_USES` | api | `50` | job token rotates after this many uses |
| `TOKEN_ROTATE_SECONDS` | api | `3600` | ... or at this age |
| `TOKEN_GRACE_SECONDS` | api, worker | `600` | a rotated-out token stays valid this long |
| `MAX_DATA_BYTES` | api, worker | `65536` | limit of a job's or an event's serialized `data` |
| `ERASE_BATCH_SECONDS` | worker | `20` | time one erasure or indexer step may take before it hands over to the next message |
| `ORDER_WAIT_SECONDS` | worker | `60` | how long an accepted event that arrives before the one accepted ahead of it waits for it (then that one is given up as lost) |
| `PIPELINE_DEADLINES` | api | (none) | default deadlines per pipeline (SPEC section 3a), JSON: `{"<pipeline_uuid>" or "*": {"heartbeat_seconds": n, "timeout_seconds": n}}`; a pipeline's entry replaces `*`'s; a job's own values (or null) win; set by the template parameter `PipelineDeadlines` |
| `TIMEOUT_INDEX` | sweeper | `true` | `false` while a stack created before deadlines is upgraded in two deploys (its `by_timeout` index not built yet): timeouts are then not swept; set by the template parameter `TimeoutIndex` |
| `PUBLIC_API_URL` | api | (from the request) | base URL put into callback URLs, when a proxy hides it |
| `AWS_ENDPOINT_URL` | all | (AWS) | endpoint of an emulator (moto) instead of AWS; set by the local stack |
| `POWERTOOLS_SERVICE_NAME`, `POWERTOOLS_LOG_LEVEL`, `POWERTOOLS_METRICS_NAMESPACE` | all | | logging and metrics (Powertools) |
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from jobcore.records import MAX_DEADLINE_SECONDS
from jobcore.tokens import RotationPolicy

_REQUIRED = ("TABLE_NAME", "QUEUE_URL", "ARCHIVE_BUCKET", "ADMIN_KEY_PARAMETER")


class SettingsError(RuntimeError):
    """The environment is incomplete or invalid; the message names every problem."""


@dataclass(frozen=True, slots=True)
class Settings:
    table_name: str
    queue_url: str
    archive_bucket: str
    admin_key_parameter: str
    archive_prefix: str = "archive"
    event_bus_name: str = "default"
    admin_token_lifetime: int = 3600
    rotation: RotationPolicy = field(default_factory=RotationPolicy)
    max_data_bytes: int = 65536
    erase_batch_seconds: float = 20.0
    order_wait_seconds: float = 60.0
    public_api_url: str | None = None
    # pipeline uuid (or "*": every other) -> its default {"heartbeat_seconds": n, "timeout_seconds": n}
    deadlines: Mapping[str, Mapping[str, int]] = field(default_factory=lambda: MappingProxyType({}))
    timeout_index: bool = True
    dead_letter_queue_url: str | None = None

    def default_deadlines(self, pipeline_uuid: str) -> Mapping[str, int]:
        """The deadlines a job of this pipeline gets when its creation does not name them: the
        pipeline's own entry (which replaces `*`'s whole), else `*`'s."""
        if pipeline_uuid in self.deadlines:
            return self.deadlines[pipeline_uuid]
        return self.deadlines.get("*") or {}

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the environment. Raises SettingsError naming every missing or malformed variable."""
        env = os.environ if env is None else env
        problems = [f"{name} is not set" for name in _REQUIRED if not env.get(name)]

        def integer(name: str, default: int) -> int:
            raw = env.get(name)
            if raw is None or raw == "":
                return default
            try:
                value = int(raw)
            except ValueError:
                problems.append(f"{name} must be a whole number, not {raw!r}")
                return default
            if value <= 0:
                problems.append(f"{name} must be positive, not {value}")
            return value

        settings = cls(
            table_name=env.get("TABLE_NAME", ""),
            queue_url=env.get("QUEUE_URL", ""),
            archive_bucket=env.get("ARCHIVE_BUCKET", ""),
            admin_key_parameter=env.get("ADMIN_KEY_PARAMETER", ""),
            archive_prefix=env.get("ARCHIVE_PREFIX", "archive").strip("/") or "archive",
            event_bus_name=env.get("EVENT_BUS_NAME") or "default",
            admin_token_lifetime=integer("ADMIN_TOKEN_LIFETIME", 3600),
            rotation=RotationPolicy(
                rotate_uses=integer("TOKEN_ROTATE_USES", 50),
                rotate_seconds=integer("TOKEN_ROTATE_SECONDS", 3600),
                grace_seconds=integer("TOKEN_GRACE_SECONDS", 600),
            ),
            max_data_bytes=integer("MAX_DATA_BYTES", 65536),
            erase_batch_seconds=float(integer("ERASE_BATCH_SECONDS", 20)),
            order_wait_seconds=float(integer("ORDER_WAIT_SECONDS", 60)),
            public_api_url=env.get("PUBLIC_API_URL") or None,
            deadlines=_deadlines(env.get("PIPELINE_DEADLINES") or "", problems),
            timeout_index=(env.get("TIMEOUT_INDEX") or "true").strip().lower() != "false",
            dead_letter_queue_url=env.get("DEAD_LETTER_QUEUE_URL") or None,
        )
        if problems:
            raise SettingsError("invalid configuration: " + "; ".join(problems))
        return settings


_DEADLINE_FIELDS = ("heartbeat_seconds", "timeout_seconds")


def _deadlines(raw: str, problems: list[str]) -> Mapping[str, Mapping[str, int]]:
    """PIPELINE_DEADLINES, checked as strictly as a job's own deadlines (jobcore.models)."""
    if not raw.strip():
        return MappingProxyType({})
    what = 'PIPELINE_DEADLINES must be a JSON object {"<pipeline_uuid>" or "*": {"heartbeat_seconds": n, "timeout_seconds": n}}'
    try:
        value: Any = json.loads(raw)
    except ValueError:
        problems.append(f"{what}; it is not JSON")
        return MappingProxyType({})
    if not isinstance(value, dict):
        problems.append(what)
        return MappingProxyType({})
    result: dict[str, Mapping[str, int]] = {}
    for pipeline, limits in value.items():
        if not isinstance(limits, dict) or not set(limits) <= set(_DEADLINE_FIELDS):
            problems.append(f"{what}; the entry of {pipeline!r} is not")
            continue
        for name, seconds in limits.items():
            if seconds is not None and (
                not isinstance(seconds, int)
                or isinstance(seconds, bool)
                or not 1 <= seconds <= MAX_DEADLINE_SECONDS
            ):
                problems.append(
                    f"PIPELINE_DEADLINES: {pipeline}.{name} must be 1 to {MAX_DEADLINE_SECONDS} seconds or null"
                )
        result[pipeline] = MappingProxyType({k: v for k, v in limits.items() if v is not None})
    return MappingProxyType(result)

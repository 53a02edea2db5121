"""Limits of what may travel and be stored, and the checks of them that both edges (API and queue) make.

Plain Python, no pydantic: the models of jobcore.models use them, and so does whatever checks data
outside a model (the API's size check before parsing, the service's rejection records).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from jobcore.errors import InvalidRequest, PayloadTooLarge
from jobcore.ids import canonical_json

MAX_DATA_BYTES: Final = 64 * 1024
MAX_BODY_BYTES: Final = 256 * 1024  # SQS's own limit for a message
# JSON nesting allowed in data: DynamoDB's own limit for maps, and far below what would exhaust the
# recursion of the JSON codecs on the way out (a history nobody could read).
MAX_DATA_DEPTH: Final = 32


def data_size(data: Any) -> int:
    return len(canonical_json(data).encode("utf-8"))


def too_deep(value: Any, limit: int = MAX_DATA_DEPTH) -> bool:
    """Whether JSON-like `value` nests objects or arrays more than `limit` levels (without recursing)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def check_data(data: dict[str, Any]) -> dict[str, Any]:
    """`data` if it may be stored: nested at most MAX_DATA_DEPTH levels and at most MAX_DATA_BYTES
    serialized. Raises InvalidRequest or PayloadTooLarge. Both edges (API and queue) call this."""
    if too_deep(data):
        raise InvalidRequest(f"data is nested more than {MAX_DATA_DEPTH} levels deep")
    size = data_size(data)
    if size > MAX_DATA_BYTES:
        raise PayloadTooLarge(f"data is {size} bytes serialized; the limit is {MAX_DATA_BYTES}")
    return data


def event_data(event: Any) -> dict[str, Any]:
    """The event's data as a plain dict (the reset/delete data models of jobcore.models included)."""
    data = event.data
    dump = getattr(data, "model_dump", None)
    return dict(dump()) if dump is not None else dict(data)


_NOT_JSON_NUMBERS: Final = "NaN and Infinity are not JSON numbers"


def _refuse_constant(name: str) -> Any:
    raise json.JSONDecodeError(_NOT_JSON_NUMBERS, name, 0)


def strict_json_loads(text: str | bytes) -> Any:
    """`json.loads` refusing what JSON does not have (NaN, Infinity, -Infinity), which Python's json
    accepts and writes back as bare words that browsers and other parsers refuse. Raises
    json.JSONDecodeError (a ValueError)."""
    return json.loads(text, parse_constant=_refuse_constant)


def decode_json(text: str | bytes, what: str = "body") -> Any:
    if len(text) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the {what} is {len(text)} bytes; the limit is {MAX_BODY_BYTES}")
    try:
        return strict_json_loads(text)
    except (ValueError, TypeError):
        raise InvalidRequest(f"the {what} is not valid JSON") from None

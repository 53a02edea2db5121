"""`Job State Changed` notifications on EventBridge (SPEC section 7)."""

from __future__ import annotations

import json
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from jobcore.errors import TransientError

SOURCE: Final = "pipelinejobs"
DETAIL_TYPE: Final = "Job State Changed"


class EventBridgeNotifier:
    def __init__(self, events: Any, bus_name: str) -> None:
        self.events = events
        self.bus_name = bus_name

    def publish(self, details: list[dict[str, Any]]) -> None:
        """Publish up to 10 notifications per call; raises TransientError if any entry failed."""
        for start in range(0, len(details), 10):
            entries = [
                {
                    "Source": SOURCE,
                    "DetailType": DETAIL_TYPE,
                    "Detail": json.dumps(d),
                    "EventBusName": self.bus_name,
                }
                for d in details[start : start + 10]
            ]
            try:
                response = self.events.put_events(Entries=entries)
            except (ClientError, BotoCoreError) as error:
                raise TransientError(f"publishing to EventBridge failed: {type(error).__name__}") from error
            if response.get("FailedEntryCount"):
                raise TransientError(f"EventBridge refused {response['FailedEntryCount']} notifications")

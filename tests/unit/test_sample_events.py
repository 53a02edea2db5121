"""Every sample in events/ parses with the model of the event source it stands for, so none goes stale."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_lambda_powertools.utilities.parser import models

from jobcore.models import QueueMessage

EVENTS = sorted((Path(__file__).resolve().parents[2] / "events").glob("*.json"))

# File name prefix -> the Powertools model of that function's event source.
SOURCES = {
    "worker_": models.SqsModel,
    "notifier_": models.DynamoDBStreamModel,
    "api_": models.APIGatewayProxyEventV2Model,
    "sweeper_": models.EventBridgeModel,
    "admin_key_create": models.CloudFormationCustomResourceCreateModel,
    "admin_key_update": models.CloudFormationCustomResourceUpdateModel,
    "admin_key_delete": models.CloudFormationCustomResourceDeleteModel,
}


def model_for(path: Path):
    for prefix, model in SOURCES.items():
        if path.name.startswith(prefix):
            return model
    raise AssertionError(f"{path.name}: no event-source model for this sample; name it after its function")


def test_there_is_a_sample_for_every_function() -> None:
    names = {p.name for p in EVENTS}
    for prefix in ("worker_", "notifier_", "admin_key_", "sweeper_"):
        assert any(n.startswith(prefix) for n in names), prefix


@pytest.mark.parametrize("path", EVENTS, ids=lambda p: p.name)
def test_sample_event_parses_with_its_model(path: Path) -> None:
    # given a sample event file
    raw = json.loads(path.read_text())
    # when it is parsed with its event source's model
    event = model_for(path).model_validate(raw)
    # then it is valid, and a worker sample's bodies are valid queue messages (unless named malformed)
    if path.name.startswith("worker_") and "malformed" not in path.name:
        for record in event.Records:
            QueueMessage.model_validate_json(record.body)

"""CloudFormation custom resource `Custom::AdminKey`: the admin key as an SSM SecureString.

CloudFormation cannot create SecureString parameters itself, so this function does:

- Create: generate a random key and store it at `ParameterName`, unless a parameter of that name
  already exists (a re-created stack keeps its key, and every admin token computed with it).
- Update: nothing; the key survives stack updates.
- Delete: remove the parameter (already gone is fine).

It always answers CloudFormation at `ResponseURL`, with PhysicalResourceId = the parameter name and
the attribute `ParameterName`, so a failure fails the stack operation instead of hanging it. The key
never leaves SSM through this function: not in the response, not in a log line.
"""

from __future__ import annotations

import json
import logging
import secrets
import urllib.request
from functools import cache
from typing import Any

logger = logging.getLogger(__name__)
logger.setLevel(logging.INFO)

_RESPONSE_TIMEOUT_SECONDS = 30


@cache
def _ssm() -> Any:
    import boto3  # imported on first use: it is most of this function's cold start

    return boto3.client("ssm")


def _send_response(url: str, body: dict[str, Any]) -> None:
    """PUT the custom resource's result to CloudFormation's pre-signed S3 URL."""
    if not url.startswith("https://"):
        raise ValueError("ResponseURL must be an https URL")
    payload = json.dumps(body).encode("utf-8")
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        url,
        data=payload,
        method="PUT",
        # The URL is pre-signed without a content type, so none may be sent.
        headers={"Content-Type": "", "Content-Length": str(len(payload))},
    )
    with urllib.request.urlopen(request, timeout=_RESPONSE_TIMEOUT_SECONDS) as response:  # noqa: S310
        response.read()


def _create(name: str) -> None:
    try:
        _ssm().put_parameter(
            Name=name,
            Description="pipelinejobs admin key: admin tokens are HMAC-SHA256 values keyed with it",
            Value=secrets.token_urlsafe(48),
            Type="SecureString",
            Overwrite=False,
        )
    except _ssm().exceptions.ParameterAlreadyExists:
        logger.info("admin key %s exists; keeping it", name)
    else:
        logger.info("admin key %s created", name)


def _delete(name: str) -> None:
    try:
        _ssm().delete_parameter(Name=name)
    except _ssm().exceptions.ParameterNotFound:
        logger.info("admin key %s was already gone", name)
    else:
        logger.info("admin key %s deleted", name)


def handler(event: dict[str, Any], context: Any) -> None:
    request_type = event.get("RequestType")
    name = str((event.get("ResourceProperties") or {}).get("ParameterName") or "")
    # CloudFormation sends back on Update and Delete what Create answered; keep it stable.
    physical_id = event.get("PhysicalResourceId") or name or "admin-key-without-name"
    status, reason = "SUCCESS", ""
    logger.info("%s %s (parameter %s)", request_type, event.get("LogicalResourceId"), name or "?")
    try:
        if request_type == "Create":
            if not name.startswith("/"):
                raise ValueError("ParameterName must be a fully qualified name, starting with '/'")
            _create(name)
        elif request_type == "Delete":
            # Only ever the parameter this resource created: a failed Create hands back another id,
            # and a Delete must not fail over it, or the stack could never be deleted.
            if name.startswith("/") and physical_id == name:
                _delete(name)
        elif request_type != "Update":
            raise ValueError(f"unknown RequestType {request_type!r}")
    except Exception as exc:
        # Exception texts of SSM name the parameter, never its value.
        logger.exception("%s of the admin key failed", request_type)
        status = "FAILED"
        log_stream = getattr(context, "log_stream_name", "?")
        reason = f"{type(exc).__name__}: {exc} (log stream {log_stream})"[:1000]
    _send_response(
        event["ResponseURL"],
        {
            "Status": status,
            "Reason": reason or "OK",
            "PhysicalResourceId": physical_id,
            "StackId": event.get("StackId"),
            "RequestId": event.get("RequestId"),
            "LogicalResourceId": event.get("LogicalResourceId"),
            "NoEcho": False,
            "Data": {"ParameterName": name},
        },
    )

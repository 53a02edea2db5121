"""Unit tier: no AWS at all. Any AWS call a test makes by accident fails at once instead of reaching
AWS (or hanging on a metadata lookup): fake credentials, a loopback endpoint that refuses connections,
no retries, no shared config or profile. Tests that bring their own emulator (moto) override these."""

from __future__ import annotations

import pytest

# Port 9 (discard) on loopback: nothing listens there, so a connection is refused immediately.
UNROUTABLE_ENDPOINT = "http://127.0.0.1:9"


@pytest.fixture(autouse=True)
def no_aws(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    nowhere = tmp_path_factory.getbasetemp() / "no-aws-config"
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": UNROUTABLE_ENDPOINT,
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_RETRY_MODE": "standard",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(nowhere),
        "AWS_SHARED_CREDENTIALS_FILE": str(nowhere),
    }.items():
        monkeypatch.setenv(name, value)

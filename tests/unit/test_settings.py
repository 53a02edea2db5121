"""Settings.from_env: one typed object, failing fast with every problem named. Also checks that the unit
tier's environment (tests/unit/conftest.py) makes an accidental AWS call fail at once."""

from __future__ import annotations

import time

import pytest

from jobcore.settings import Settings, SettingsError
from jobcore.tokens import RotationPolicy

REQUIRED = {
    "TABLE_NAME": "jobs",
    "QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/events.fifo",
    "ARCHIVE_BUCKET": "archive-bucket",
    "ADMIN_KEY_PARAMETER": "/stack/admin-key",
}


def test_from_env_with_all_required_variables_uses_defaults() -> None:
    # given only the required variables
    # when read
    settings = Settings.from_env(REQUIRED)
    # then they are set and every optional one has its documented default
    assert settings.table_name == "jobs"
    assert settings.queue_url == REQUIRED["QUEUE_URL"]
    assert settings.archive_bucket == "archive-bucket"
    assert settings.admin_key_parameter == "/stack/admin-key"
    assert settings.archive_prefix == "archive"
    assert settings.event_bus_name == "default"
    assert settings.admin_token_lifetime == 3600
    assert settings.rotation == RotationPolicy(rotate_uses=50, rotate_seconds=3600, grace_seconds=600)
    assert settings.max_data_bytes == 65536
    assert settings.erase_batch_seconds == 20.0
    assert settings.public_api_url is None


def test_from_env_reads_every_optional_variable() -> None:
    # given every variable set
    env = {
        **REQUIRED,
        "ARCHIVE_PREFIX": "/outputs/v2/",
        "EVENT_BUS_NAME": "jobs-bus",
        "ADMIN_TOKEN_LIFETIME": "900",
        "TOKEN_ROTATE_USES": "10",
        "TOKEN_ROTATE_SECONDS": "120",
        "TOKEN_GRACE_SECONDS": "30",
        "MAX_DATA_BYTES": "1024",
        "ERASE_BATCH_SECONDS": "5",
        "PUBLIC_API_URL": "https://jobs.example.org",
    }
    # when read
    settings = Settings.from_env(env)
    # then each is typed and used (the prefix without its slashes)
    assert settings.archive_prefix == "outputs/v2"
    assert settings.event_bus_name == "jobs-bus"
    assert settings.admin_token_lifetime == 900
    assert settings.rotation == RotationPolicy(rotate_uses=10, rotate_seconds=120, grace_seconds=30)
    assert settings.max_data_bytes == 1024
    assert settings.erase_batch_seconds == 5.0
    assert settings.public_api_url == "https://jobs.example.org"


def test_from_env_empty_optional_values_fall_back_to_defaults() -> None:
    env = {
        **REQUIRED,
        "ARCHIVE_PREFIX": "/",
        "EVENT_BUS_NAME": "",
        "TOKEN_ROTATE_USES": "",
        "PUBLIC_API_URL": "",
    }
    settings = Settings.from_env(env)
    assert settings.archive_prefix == "archive"
    assert settings.event_bus_name == "default"
    assert settings.rotation.rotate_uses == 50
    assert settings.public_api_url is None


def test_from_env_missing_variables_are_all_named_in_one_error() -> None:
    # given an empty environment
    # when read
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({})
    # then one error names every missing variable
    message = str(raised.value)
    for name in REQUIRED:
        assert f"{name} is not set" in message


def test_from_env_an_empty_required_variable_counts_as_missing() -> None:
    with pytest.raises(SettingsError, match="QUEUE_URL is not set"):
        Settings.from_env({**REQUIRED, "QUEUE_URL": ""})


def test_from_env_only_the_missing_variable_is_named() -> None:
    env = {k: v for k, v in REQUIRED.items() if k != "ARCHIVE_BUCKET"}
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(env)
    message = str(raised.value)
    assert "ARCHIVE_BUCKET is not set" in message
    assert "TABLE_NAME" not in message


@pytest.mark.parametrize(
    "name",
    [
        "ADMIN_TOKEN_LIFETIME",
        "TOKEN_ROTATE_USES",
        "TOKEN_ROTATE_SECONDS",
        "TOKEN_GRACE_SECONDS",
        "MAX_DATA_BYTES",
        "ERASE_BATCH_SECONDS",
    ],
)
def test_from_env_malformed_integer_is_named(name: str) -> None:
    # given a variable that is not a whole number
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({**REQUIRED, name: "ten"})
    # then the error names it and the value
    assert f"{name} must be a whole number, not 'ten'" in str(raised.value)


@pytest.mark.parametrize("value", ["0", "-5"])
def test_from_env_non_positive_integer_is_refused(value: str) -> None:
    with pytest.raises(SettingsError, match=f"TOKEN_GRACE_SECONDS must be positive, not {value}"):
        Settings.from_env({**REQUIRED, "TOKEN_GRACE_SECONDS": value})


def test_from_env_missing_and_malformed_are_reported_together() -> None:
    # given both kinds of problem at once
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"TOKEN_ROTATE_USES": "1.5", "MAX_DATA_BYTES": "big"})
    # then a single error lists them all
    message = str(raised.value)
    for name in (*REQUIRED, "TOKEN_ROTATE_USES", "MAX_DATA_BYTES"):
        assert name in message


def test_from_env_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    # given the required variables in the process environment
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("EVENT_BUS_NAME", "from-environ")
    # when read without an explicit mapping
    settings = Settings.from_env()
    # then os.environ was used
    assert settings.table_name == "jobs"
    assert settings.event_bus_name == "from-environ"


def test_settings_are_frozen() -> None:
    settings = Settings.from_env(REQUIRED)
    with pytest.raises(AttributeError):
        settings.table_name = "other"  # type: ignore[misc]


def test_unit_tier_an_accidental_aws_call_fails_fast() -> None:
    # given the unit tier's environment (tests/unit/conftest.py)
    import boto3
    from botocore.exceptions import EndpointConnectionError

    client = boto3.client("dynamodb")
    # when a test calls AWS by mistake
    started = time.monotonic()
    with pytest.raises(EndpointConnectionError):
        client.list_tables()
    # then it fails at once against the refusing loopback endpoint, without retries
    assert time.monotonic() - started < 2.0
    assert client.meta.endpoint_url == "http://127.0.0.1:9"


# -- PIPELINE_DEADLINES (SPEC section 3a: a default per pipeline) -------------------------------------


def test_pipeline_deadlines_default_per_pipeline_and_for_every_other() -> None:
    raw = '{"*": {"heartbeat_seconds": 600}, "slow": {"timeout_seconds": 7200}, "free": {"heartbeat_seconds": null}}'
    settings = Settings.from_env({**REQUIRED, "PIPELINE_DEADLINES": raw})
    assert dict(settings.default_deadlines("anything")) == {"heartbeat_seconds": 600}
    assert dict(settings.default_deadlines("slow")) == {"timeout_seconds": 7200}  # replaces "*" whole
    assert dict(settings.default_deadlines("free")) == {}  # null: none, whatever "*" says


def test_no_pipeline_deadlines_means_no_default() -> None:
    settings = Settings.from_env({**REQUIRED, "PIPELINE_DEADLINES": ""})
    assert dict(settings.default_deadlines("p")) == {}


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("{not json", "not JSON"),
        ('["*"]', "must be a JSON object"),
        ('{"p": 600}', "the entry of 'p' is not"),
        ('{"p": {"heartbeat": 600}}', "the entry of 'p' is not"),
        ('{"p": {"heartbeat_seconds": 0}}', "p.heartbeat_seconds must be 1 to 31622400 seconds"),
        ('{"p": {"timeout_seconds": 1.5}}', "p.timeout_seconds must be"),
        ('{"p": {"timeout_seconds": true}}', "p.timeout_seconds must be"),
        ('{"p": {"timeout_seconds": "60"}}', "p.timeout_seconds must be"),
        ('{"p": {"timeout_seconds": 99999999999}}', "p.timeout_seconds must be"),
    ],
)
def test_a_malformed_pipeline_deadlines_fails_fast_saying_what(raw: str, says: str) -> None:
    with pytest.raises(SettingsError, match="PIPELINE_DEADLINES") as error:
        Settings.from_env({**REQUIRED, "PIPELINE_DEADLINES": raw})
    assert says in str(error.value)

"""A job's outputs on the local stack, as a user gets them (SPEC section 5 `GET /jobs/{uuid}/outputs`):
a pipeline writes its outputs to the archive path with boto3, the SDK lists them over HTTP and downloads
one through its presigned link from the emulated S3 (moto's server); a reset empties the listing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipelinejobs import Client

if TYPE_CHECKING:
    from pathlib import Path

    from pipelinejobs.local.stack import LocalStack


def test_the_sdk_lists_a_jobs_outputs_and_downloads_one_through_its_link(
    stack: LocalStack, s3: Any, stack_log: Any, tmp_path: Path
) -> None:
    # given a job whose pipeline wrote three outputs under its archive path, one overwritten
    admin = Client(stack.api_url, admin_key=stack.admin_key, timeout=10)
    job = admin.create_job("e2e-outputs", {"sample": "S1"})
    bucket, _, prefix = str(job.archive_path).removeprefix("s3://").partition("/")
    payload = bytes(range(256)) * 4096  # 1 MiB, every byte value
    s3.put_object(Bucket=bucket, Key=f"{prefix}results/data.bin", Body=b"old")
    s3.put_object(Bucket=bucket, Key=f"{prefix}results/data.bin", Body=payload)
    s3.put_object(Bucket=bucket, Key=f"{prefix}summary.json", Body=b'{"ok": true}')
    s3.put_object(Bucket=bucket, Key=f"{prefix}log.txt", Body=b"done\n")
    # when the job itself (its own token) lists them, two to a page, and downloads one
    own = Client(stack.api_url, timeout=10).job(job.uuid, token=job.token)
    listed = list(own.client.iter_outputs(job.uuid, token=job.token, page_size=2))
    written = own.download("results/data.bin", tmp_path / "out" / "data.bin")
    # then every output is listed once, with its size, and the file holds the current version's bytes
    assert [(o["key"], o["size"]) for o in listed] == [
        ("log.txt", 5), ("results/data.bin", len(payload)), ("summary.json", 12),
    ]  # fmt: skip
    assert written.read_bytes() == payload
    # and the link points at the emulated S3, signed by S3's scheme (no credential of ours in it)
    link = listed[1]["url"]
    assert link.startswith(stack.aws_endpoint) and "X-Amz-Signature=" in link
    assert job.token not in link and stack.admin_key not in link
    # and an admin sees the same; after a reset erased the archive, nothing is left to list
    assert [o["key"] for o in admin.outputs(job.uuid)] == [o["key"] for o in listed]
    job.reset().wait_for("CREATED", timeout=30)
    assert list(job.outputs()) == []  # (the handle acts as the admin now: the reset revoked its token)
    # and the stack logged no link
    assert "X-Amz-Signature" not in stack_log.text()

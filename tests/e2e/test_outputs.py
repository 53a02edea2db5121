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


def test_an_indexed_job_serves_its_manifest_with_levels_and_a_link_downloads_from_it(
    stack: LocalStack, s3: Any, stack_log: Any, tmp_path: Path
) -> None:
    # given a job that ran, wrote outputs under its archive path, and finished
    admin = Client(stack.api_url, admin_key=stack.admin_key, timeout=10)
    created = admin.create_job("e2e-indexer", {"sample": "S2"})
    job = Client(stack.api_url, timeout=10).job(created.uuid, token=created.token)
    job.run()
    bucket, _, prefix = str(created.archive_path).removeprefix("s3://").partition("/")
    files = {
        "raw/reads.fastq": b"@r1\nACGT\n",
        "results/calls.csv": b"pos,alt\n7,T\n",
        "report.html": b"<p>ok",
    }
    for key, body in files.items():
        s3.put_object(Bucket=bucket, Key=prefix + key, Body=body)
    job.finish()
    # when the job posts `index` with level patterns, and waits until the system has indexed it
    patterns = [{"level": "raw", "pattern": "raw/**"}, {"level": "results", "pattern": "**/*.csv"}]
    job.index(index_patterns=patterns).wait_for("FINISHED", timeout=30)
    s3.put_object(Bucket=bucket, Key=prefix + "written-after.txt", Body=b"late")
    # then the system posted `indexed` (3 objects), and the outputs are the manifest's, with levels
    last = job.history()[-1]
    assert (last["name"], last["by"], last["data"]) == ("indexed", "system", {"objects": 3})
    listed = list(job.outputs())
    assert [(o["key"], o.get("level"), o["size"]) for o in listed] == [
        ("raw/reads.fastq", "raw", 9), ("report.html", None, 5), ("results/calls.csv", "results", 12),
    ]  # fmt: skip
    # and a manifest entry's link downloads the object from the emulated S3
    written = job.download("results/calls.csv", tmp_path / "calls.csv")
    assert written.read_bytes() == files["results/calls.csv"]
    assert "X-Amz-Signature" not in stack_log.text() and created.token not in stack_log.text()

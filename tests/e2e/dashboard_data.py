"""Jobs for the dashboard to show: a few pipelines, jobs in several states, outputs in the archive, a
producer key's own job, and a job whose every free-text field is a script injection. Used by the
browser tests (tests/e2e/test_dashboard.py) and by `make screenshots` (docs/screenshots.py)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelinejobs import Client

# Each would run script if the page ever put job data into markup; window.__pwned is the proof.
HOSTILE_NAME = '<img src=x onerror="window.__pwned=1">'
HOSTILE_TEXT = "<script>window.__pwned=2</script>"
HOSTILE_DATA = {
    "note": "<img src=x onerror=window.__pwned=3>",
    "html": '</pre><script>window.__pwned=4</script><a href="javascript:window.__pwned=5">x</a>',
}
SUMMARY = b'{"reads": 48213977, "aligned": 0.962}\n'


@dataclass
class Seeded:
    created: Any
    running: Any
    finished: Any
    failed: Any
    hostile: Any
    outputs: dict[str, bytes]


def seed(admin: Client, s3: Any, *, hostile: bool = True) -> Seeded:
    """The jobs, created through the API as an admin; outputs written with boto3 as a pipeline writes.
    `hostile=False` leaves out the job made of script injections (for the README's pictures)."""
    created = admin.create_job(
        "rnaseq", {"sample": "S1", "genome": "GRCh38"}, name="rnaseq S1", tags=["lab-a", "rna"]
    )
    running = admin.create_job(
        "rnaseq", {"sample": "S2", "genome": "GRCh38"}, name="rnaseq S2", tags=["lab-a"]
    )
    running.run({"host": "node-7"}).update(progress=0.4)
    finished = admin.create_job(
        "variant-calling", {"sample": "S3", "caller": "gatk"}, name="variants S3", tags=["lab-b", "wgs"]
    )
    outputs = {
        "summary.json": SUMMARY,
        "results/variants.vcf": b"##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\nchr1\t1014\t.\tA\tG\n",
        "logs/run.log": b"started\nfinished\n",
    }
    put_outputs(s3, finished, outputs)
    finished.run({"host": "node-3"}).update(progress=0.9).finish({"exit_code": 0})
    failed = admin.create_job(
        "variant-calling", {"sample": "S4", "caller": "gatk"}, name="variants S4", tags=["lab-b"]
    )
    failed.run().fail({"reason": "out of memory on node-2"})
    waits = [(running, "RUNNING"), (finished, "FINISHED"), (failed, "FAILED")]
    injected = None
    if hostile:
        injected = admin.create_job(
            "demo-pipeline",
            HOSTILE_DATA,
            name=HOSTILE_NAME,
            session=HOSTILE_TEXT,
            agent=HOSTILE_DATA["html"],
            task=HOSTILE_DATA["note"],
            tags=["hostile"],
        )
        injected.run(HOSTILE_DATA).update({"message": HOSTILE_TEXT})
        waits.append((injected, "RUNNING"))
    for job, state in waits:
        job.wait_for(state, timeout=30)
    return Seeded(created, running, finished, failed, injected, outputs)


def put_outputs(s3: Any, job: Any, outputs: dict[str, bytes]) -> None:
    bucket, _, prefix = str(job.archive_path).removeprefix("s3://").partition("/")
    for key, body in outputs.items():
        s3.put_object(Bucket=bucket, Key=f"{prefix}{key}", Body=body)


def chromium_path() -> str:
    """Debian's chromium (`apt-get install chromium`; `make test` and .ci/run install it)."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    for candidate in (Path("/usr/bin/chromium"), Path("/usr/lib/chromium/chromium")):
        if candidate.exists():
            return str(candidate)
    raise RuntimeError(
        "no Chromium found: install Debian's (apt-get install chromium); `make test` does it as root"
    )

"""The README's pictures of the dashboard (`make screenshots`): a local stack with sample jobs, Debian's
Chromium driven by Playwright, PNGs written to docs/img/. Run it again after changing the page."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))  # the sample jobs the browser tests use

from dashboard_data import chromium_path, put_outputs, seed  # noqa: E402

from pipelinejobs import Client  # noqa: E402
from pipelinejobs.local.stack import LocalStack  # noqa: E402

IMAGES = ROOT / "docs" / "img"


def more_jobs(admin: Client, s3: object) -> None:
    """A fuller table: a few more pipelines, states and durations."""
    for n in range(5, 9):
        job = admin.create_job(
            "rnaseq", {"sample": f"S{n}", "genome": "GRCh38"}, name=f"rnaseq S{n}", tags=["lab-a"]
        )
        job.run({"host": f"node-{n}"})
        if n % 2:
            put_outputs(s3, job, {"counts.tsv": b"gene\tcount\n" * 40})
            job.finish()
    qc = admin.create_job("qc-report", {"run": "2026-12-07"}, name="QC 2026-12-07", tags=["qc"])
    qc.cancel()
    admin.keys.create(
        label="lab-a reactor", pipelines=["rnaseq"], expires_at=90 * 86400.0 + __import__("time").time()
    )
    admin.keys.create(label="variant service", pipelines=["variant-calling"])


def sign_in(page: Page, url: str, token: str) -> None:
    page.goto(url + "/")
    page.screenshot(path=IMAGES / "dashboard-sign-in.png")
    page.fill("#credential", token)
    page.click("#signin button[type=submit]")
    page.wait_for_selector("#jobs tr[data-uuid]")


def main() -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    with LocalStack(
        port=0, aws_port=0, quiet=True, stack_name=f"screenshots-{uuid.uuid4().hex[:6]}"
    ) as stack:
        admin = Client(stack.api_url, admin_key=stack.admin_key, timeout=10)
        s3 = stack.client("s3")
        seeded = seed(admin, s3, hostile=False)
        more_jobs(admin, s3)
        stack.drain()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 820})
            sign_in(page, stack.api_url, stack.admin_token())
            page.wait_for_timeout(300)
            page.screenshot(path=IMAGES / "dashboard-jobs.png", full_page=True)
            page.goto(f"{stack.api_url}/#/job/{seeded.finished.uuid}")
            page.wait_for_selector("#outputs tr[data-key]")
            page.wait_for_selector("#history li[data-event-id]")
            page.screenshot(path=IMAGES / "dashboard-job.png", full_page=True)
            page.click("#actions button[data-event=reset]")
            page.wait_for_selector("#confirm[open]")
            page.screenshot(path=IMAGES / "dashboard-reset.png")
            page.click("#confirm-cancel")
            page.goto(f"{stack.api_url}/#/keys")
            page.wait_for_selector("#keys tr[data-key-id]")
            page.screenshot(path=IMAGES / "dashboard-keys.png", full_page=True)
            browser.close()
    for image in sorted(IMAGES.glob("dashboard-*.png")):
        print(f"wrote {image.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

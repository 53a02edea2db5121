"""pending_seconds and run_seconds through the API and the worker's writes (SPEC section 2): the run's
end is recorded by the write that leaves RUNNING, so later states do not move it; a reset's new
generation starts afresh; listings show the same durations as the job."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobcore.clock import parse_iso

if TYPE_CHECKING:
    from api_fixtures import Api

pytest_plugins = ["api_fixtures"]


def seconds(body: dict, start: str, end: str) -> float:
    return round(parse_iso(body[end]) - parse_iso(body[start]), 3)


def test_durations_of_a_job_from_creation_to_reset(api: Api) -> None:
    # given a job that waits 20 s before it runs
    job = api.create()
    shown = api.get(job).body
    assert (shown["pending_seconds"], shown["run_seconds"]) == (None, None)
    api.clock.advance(20)
    api.send(job, "run")

    # when it has run for 30 s, it shows its wait and its run so far, counted to the API's clock
    api.clock.advance(30)
    running = api.get(job).body
    assert running["pending_seconds"] == seconds(running, "created_at", "run_at")
    assert 20 <= running["pending_seconds"] < 20.1
    assert 30 <= running["run_seconds"] < 30.1
    api.clock.advance(5)
    assert api.get(job).body["run_seconds"] >= running["run_seconds"] + 5

    # when it finishes, the run is fixed at run_at -> finished_at
    api.send(job, "finish")
    finished = api.get(job).body
    assert finished["run_seconds"] == seconds(finished, "run_at", "finished_at")
    assert finished["pending_seconds"] == running["pending_seconds"]

    # when it is indexed later (`indexed` brings it back to FINISHED and moves finished_at)
    api.clock.advance(100)
    api.send(job, "index")
    api.clock.advance(100)
    api.send(job, "indexed")
    indexed = api.get(job).body
    assert indexed["state"] == "FINISHED"
    assert indexed["finished_at"] > finished["finished_at"]
    # then its run is still the one it had
    assert (indexed["pending_seconds"], indexed["run_seconds"]) == (
        finished["pending_seconds"],
        finished["run_seconds"],
    )
    # and a listing shows the same
    listed = api.call("GET", "/jobs", token=api.admin()).body["jobs"]
    assert [(j["pending_seconds"], j["run_seconds"]) for j in listed] == [
        (finished["pending_seconds"], finished["run_seconds"])
    ]

    # when it is reset, its new generation has not run yet, then runs afresh
    api.event(job.uuid, api.admin(), "reset", {"keep_archive": True})
    api.work()
    reset = api.get(job).body
    assert (reset["generation"], reset["pending_seconds"], reset["run_seconds"]) == (2, None, None)
    api.clock.advance(7)
    fresh = api.call("POST", f"/jobs/{job.uuid}/token", token=api.admin()).body["token"]
    assert api.event(job.uuid, fresh, "run").status == 202
    api.work()
    rerun = api.get(job).body
    assert 7 <= rerun["pending_seconds"] < 7.1
    assert rerun["run_seconds"] < 0.1


def test_a_fail_while_running_ends_the_run(api: Api) -> None:
    # given a running job that fails after 12 s
    job = api.create()
    api.send(job, "run")
    api.clock.advance(12)
    api.send(job, "fail")
    # when time passes
    api.clock.advance(1000)
    failed = api.get(job).body
    # then its run is the 12 s it lasted
    assert failed["run_seconds"] == seconds(failed, "run_at", "failed_at")
    assert 12 <= failed["run_seconds"] < 12.1

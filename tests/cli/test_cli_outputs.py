"""`pipelinejobs jobs outputs UUID` against canned API responses: a table that fits 80 columns, --json
with the links, --limit/--all, and --download into a folder."""

from __future__ import annotations

import json

from tests.cli.test_cli_unit import U1, invoke
from tests.sdk.fake_api import FakeApi

OUTPUTS = f"/jobs/{U1}/outputs"
LONG_KEY = "results/" + "very-long-folder-name/" * 4 + "summary-of-the-whole-run.csv"


def output(fake_api: FakeApi, key: str, size: int) -> dict:
    return {
        "key": key,
        "size": size,
        "modified": "2026-05-01T12:34:56.789Z",
        "etag": "9e107d9d372bb6826bd81d3542a419d6",
        "url": f"{fake_api.url}/s3/bucket/{key}?X-Amz-Signature=sig",
    }


def test_jobs_outputs_on_an_80_column_terminal_shows_keys_sizes_and_times(runner, fake_api, monkeypatch):
    # given a terminal of 80 columns and outputs of every size, one with a long key
    monkeypatch.setenv("COLUMNS", "80")
    listed = [
        output(fake_api, "a.txt", 512),
        output(fake_api, "plots/fig.png", 1536),
        output(fake_api, LONG_KEY, 21 * 1024 * 1024),
        output(fake_api, "big.h5", 3 * 1024**3 + 1024**3 // 10),
    ]
    fake_api.route("GET", OUTPUTS, 200, {"outputs": listed, "next": None})
    # when they are listed
    result = invoke(runner, fake_api, "jobs", "outputs", U1)
    # then every line fits; sizes are readable and times whole; the long key is folded, not cut
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert lines[0].split() == ["KEY", "SIZE", "MODIFIED", "(UTC)"]
    for text in ("512 B", "1.5 KiB", "21.0 MiB", "3.1 GiB", "2026-05-01 12:34:56", "plots/fig.png"):
        assert text in result.stdout
    start = next(i for i, line in enumerate(lines) if line.startswith("results/"))
    end = next(i for i, line in enumerate(lines) if line.startswith("big.h5"))
    assert end - start > 1  # folded over several lines, within its column
    assert "".join(line.split()[0] for line in lines[start:end]) == LONG_KEY
    assert "21.0 MiB" in lines[start]  # its size and time on its first line
    assert "X-Amz" not in result.stdout  # the links are for --json
    assert "4 outputs" in result.stderr
    assert [r.query for r in fake_api.requests] == [{"limit": "100"}]  # (the largest page)


def test_jobs_outputs_json_has_the_links_and_says_when_more_exist(runner, fake_api):
    # given two pages of outputs
    pages = {
        None: {"outputs": [output(fake_api, "a", 1), output(fake_api, "b", 2)], "next": "c1"},
        "c1": {"outputs": [output(fake_api, "c", 3)], "next": None},
    }
    fake_api.route("GET", OUTPUTS, lambda request: (200, pages[request.query.get("next")]))
    # when two are asked for as JSON, then all of them
    limited = json.loads(invoke(runner, fake_api, "jobs", "outputs", U1, "--limit", "2", "--json").stdout)
    every = json.loads(invoke(runner, fake_api, "jobs", "outputs", U1, "--all", "--json").stdout)
    # then the first says there are more; the second has all three, each with its link
    assert [o["key"] for o in limited["outputs"]] == ["a", "b"] and limited["more"] is True
    assert [o["key"] for o in every["outputs"]] == ["a", "b", "c"] and every["more"] is False
    assert every["outputs"][2] == output(fake_api, "c", 3)


def test_jobs_outputs_download_writes_each_output_under_the_folder(runner, fake_api, tmp_path):
    # given two outputs whose links serve their bytes
    listed = [output(fake_api, "a.txt", 1), output(fake_api, "sub/b.txt", 2)]
    fake_api.route("GET", OUTPUTS, 200, {"outputs": listed, "next": None})
    fake_api.route("GET", "/s3/bucket/a.txt", 200, b"A")
    fake_api.route("GET", "/s3/bucket/sub/b.txt", 200, b"BB")
    # when they are downloaded into a new folder
    result = invoke(runner, fake_api, "jobs", "outputs", U1, "--download", str(tmp_path / "out"))
    # then each is there under its key, fetched without our credential
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "out" / "a.txt").read_bytes() == b"A"
    assert (tmp_path / "out" / "sub" / "b.txt").read_bytes() == b"BB"
    assert all("authorization" not in r.headers for r in fake_api.calls("GET", r"/s3/.*"))
    assert "Downloaded 2" in result.stderr


def test_jobs_outputs_of_an_empty_archive_and_of_an_unknown_job(runner, fake_api):
    fake_api.route("GET", OUTPUTS, 200, {"outputs": [], "next": None})
    empty = invoke(runner, fake_api, "jobs", "outputs", U1)
    assert empty.exit_code == 0 and "No outputs" in empty.stderr
    fake_api.route("GET", OUTPUTS, 404, {"error": {"code": "job_not_found", "message": f"no job {U1}"}})
    unknown = invoke(runner, fake_api, "jobs", "outputs", U1)
    assert unknown.exit_code == 4 and "jobs list" in unknown.stderr and "Traceback" not in unknown.output


def test_jobs_outputs_of_an_indexed_job_shows_the_levels_within_80_columns(runner, fake_api, monkeypatch):
    # given a terminal of 80 columns and a manifest whose outputs carry levels (one none, one long)
    monkeypatch.setenv("COLUMNS", "80")
    listed = [
        output(fake_api, "raw/reads.fastq", 2048) | {"level": "raw"},
        output(fake_api, LONG_KEY, 512) | {"level": "intermediate-results"},
        output(fake_api, "report.html", 10),
    ]
    fake_api.route("GET", OUTPUTS, 200, {"outputs": listed, "next": None, "source": "manifest"})
    # when they are listed
    result = invoke(runner, fake_api, "jobs", "outputs", U1)
    # then a LEVEL column shows each output's level, every line within 80 columns
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert lines[0].split() == ["KEY", "LEVEL", "SIZE", "MODIFIED", "(UTC)"]
    reads = next(line for line in lines if line.startswith("raw/reads.fastq"))
    assert reads.split()[:3] == ["raw/reads.fastq", "raw", "2.0"]
    report = next(line for line in lines if line.startswith("report.html"))
    assert report.split()[1:3] == ["10", "B"]  # no level: an empty cell
    assert "intermedia" in result.stdout  # a long level folded within its column
    # and without any level, no LEVEL column
    fake_api.route("GET", OUTPUTS, 200, {"outputs": listed[2:], "next": None, "source": "listing"})
    plain = invoke(runner, fake_api, "jobs", "outputs", U1)
    assert plain.stdout.splitlines()[0].split() == ["KEY", "SIZE", "MODIFIED", "(UTC)"]

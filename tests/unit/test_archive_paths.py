"""Archive paths (SPEC section 2): a reset erases everything under a job's path, so a caller-given path
must stay in the job's own corner of the archive bucket."""

from __future__ import annotations

import pytest

from jobcore.archive_paths import check_archive_path, default_archive_path, split_s3_url
from jobcore.errors import InvalidArchivePath, InvalidRequest
from jobcore.ids import job_uuid

BUCKET = "archive-bucket"
PREFIX = "archive"
PIPELINE = "0b8a0c4e-6f1d-4c55-9a3e-2f9a1d7b6c01"
OTHER_PIPELINE = "5d7c1e2a-8b4f-4a6d-b1c3-9e8f7a6b5c4d"
JOB = job_uuid(PIPELINE, {"x": 1})
OTHER_JOB = job_uuid(PIPELINE, {"x": 2})
ROOT = f"s3://{BUCKET}/{PREFIX}"


def check(path: str, *, pipeline_uuid: str = PIPELINE, uuid: str = JOB, prefix: str = PREFIX) -> str:
    return check_archive_path(path, bucket=BUCKET, prefix=prefix, pipeline_uuid=pipeline_uuid, uuid=uuid)


def test_default_archive_path_layout() -> None:
    # when the default path is made
    path = default_archive_path(BUCKET, PREFIX, PIPELINE, JOB)
    # then it is s3://<bucket>/<prefix>/<pipeline_uuid>/<uuid>/
    assert path == f"s3://{BUCKET}/{PREFIX}/{PIPELINE}/{JOB}/"


def test_default_archive_path_passes_the_check_unchanged() -> None:
    path = default_archive_path(BUCKET, PREFIX, PIPELINE, JOB)
    assert check(path) == path


@pytest.mark.parametrize(
    ("given", "normalized"),
    [
        (f"{ROOT}/{PIPELINE}/{JOB}/", f"{ROOT}/{PIPELINE}/{JOB}/"),
        (f"{ROOT}/{PIPELINE}/{JOB}", f"{ROOT}/{PIPELINE}/{JOB}/"),
        (f"{ROOT}/{PIPELINE}/custom/run1", f"{ROOT}/{PIPELINE}/custom/run1/"),
        (f"{ROOT}/team-a/study-7/", f"{ROOT}/team-a/study-7/"),
        (f"{ROOT}/team-a/study-7/deeper/still/", f"{ROOT}/team-a/study-7/deeper/still/"),
        (f"{ROOT}/{PIPELINE}/{JOB}/outputs/", f"{ROOT}/{PIPELINE}/{JOB}/outputs/"),
    ],
)
def test_check_archive_path_accepts_a_path_inside_bucket_and_prefix(given: str, normalized: str) -> None:
    # given a path at least two folders below the prefix, in this job's corner
    # when checked
    result = check(given)
    # then it is kept, normalized to end with '/'
    assert result == normalized
    assert result.endswith("/")


def test_check_archive_path_with_a_multi_folder_prefix() -> None:
    result = check(f"s3://{BUCKET}/data/archive/a/b", prefix="data/archive")
    assert result == f"s3://{BUCKET}/data/archive/a/b/"
    with pytest.raises(InvalidArchivePath):
        check(f"s3://{BUCKET}/data/a/b/", prefix="data/archive")


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(f"s3://other-bucket/{PREFIX}/{PIPELINE}/{JOB}/", id="other-bucket"),
        pytest.param(f"s3://{BUCKET}x/{PREFIX}/{PIPELINE}/{JOB}/", id="bucket-name-extended"),
        pytest.param(f"s3:///{PREFIX}/{PIPELINE}/{JOB}/", id="no-bucket"),
        pytest.param(f"{ROOT}/{PIPELINE}/../../secrets/x/", id="dotdot"),
        pytest.param(f"{ROOT}/a/../b/c/", id="dotdot-inside"),
        pytest.param(f"{ROOT}/{PIPELINE}/./{JOB}/", id="dot"),
        pytest.param(f"{ROOT}/{PIPELINE}//{JOB}/", id="double-slash"),
        pytest.param(f"{ROOT}//{PIPELINE}/{JOB}/", id="double-slash-after-prefix"),
        pytest.param(f"s3://{BUCKET}//{PREFIX}/{PIPELINE}/{JOB}/", id="double-slash-before-prefix"),
        pytest.param(f"{ROOT}/{PIPELINE}/%2e%2e/x/", id="percent-dotdot"),
        pytest.param(f"{ROOT}/{PIPELINE}/%2E%2E/x/", id="percent-dotdot-upper"),
        pytest.param(f"{ROOT}/a%2Fb/c/", id="percent-slash"),
        pytest.param(f"{ROOT}/a/b%2f..%2f..%2fc/", id="percent-slash-dotdot"),
        pytest.param(f"{ROOT}/a/%252e%252e/", id="double-percent-encoding"),
        pytest.param(f"{ROOT}/a/b%zz/", id="stray-percent"),
        pytest.param(f"{ROOT}/a\\..\\..\\b/c/", id="backslash"),
        pytest.param(f"{ROOT}/", id="prefix-root"),
        pytest.param(f"{ROOT}", id="prefix-root-no-slash"),
        pytest.param(f"s3://{BUCKET}/", id="bucket-root"),
        pytest.param(f"{ROOT}/{PIPELINE}/", id="one-folder-deep-own-pipeline"),
        pytest.param(f"{ROOT}/team-a", id="one-folder-deep"),
        pytest.param(f"{ROOT}/{OTHER_PIPELINE}/{JOB}/", id="other-pipeline-uuid-folder"),
        pytest.param(f"{ROOT}/{OTHER_PIPELINE}/custom/", id="other-pipeline-uuid-custom"),
        pytest.param(f"{ROOT}/{PIPELINE}/{OTHER_JOB}/", id="other-job-uuid-folder"),
        pytest.param(f"{ROOT}/{PIPELINE}/{OTHER_JOB}/sub/", id="inside-other-job-folder"),
        pytest.param(f"s3://{BUCKET}/elsewhere/a/b/", id="outside-prefix"),
        pytest.param(f"s3://{BUCKET}/archive-2/a/b/", id="prefix-lookalike"),
        pytest.param(f"s3://{BUCKET}/ARCHIVE/a/b/", id="prefix-other-case"),
        pytest.param(f"https://{BUCKET}.s3.amazonaws.com/{PREFIX}/a/b/", id="https"),
        pytest.param(f"S3://{BUCKET}/{PREFIX}/a/b/", id="scheme-uppercase"),
        pytest.param(f"{BUCKET}/{PREFIX}/a/b/", id="no-scheme"),
        pytest.param(f"{ROOT}/a/b?c/", id="query-character"),
        pytest.param(f"{ROOT}/a/caf\u00e9/", id="non-ascii"),
        pytest.param(f"{ROOT}/a/b/" + "c" * 900 + "/", id="too-long"),
    ],
)
def test_check_archive_path_refuses(path: str) -> None:
    # given a path outside this job's corner of the archive bucket
    # when checked
    # then it is refused with a reason, as a caller error
    with pytest.raises(InvalidArchivePath) as raised:
        check(path)
    assert isinstance(raised.value, InvalidRequest)
    assert raised.value.code == "invalid_archive_path"
    assert raised.value.message


def test_check_archive_path_refuses_another_jobs_folder_when_pipeline_ids_are_not_uuids() -> None:
    # given two pipelines whose ids are plain names (the SPEC types pipeline_uuid as a string) and a job
    # of pipeline "p-3", whose default archive is s3://.../archive/p-3/<its uuid>/
    neighbour = job_uuid("p-3", {"x": 1})
    neighbours_path = default_archive_path(BUCKET, PREFIX, "p-3", neighbour)
    mine = job_uuid("p-4", {"x": 1})
    # when a job of pipeline "p-4" asks for the neighbour's folder (a reset would erase its outputs)
    # then it is refused
    with pytest.raises(InvalidArchivePath, match="another job's folder"):
        check(neighbours_path, pipeline_uuid="p-4", uuid=mine)
    with pytest.raises(InvalidArchivePath):
        check(neighbours_path + "outputs/", pipeline_uuid="p-4", uuid=mine)
    # while a custom folder under a named pipeline stays acceptable
    assert check(f"{ROOT}/p-4/custom/run1", pipeline_uuid="p-4", uuid=mine) == f"{ROOT}/p-4/custom/run1/"


def test_check_archive_path_message_names_the_rule_broken() -> None:
    with pytest.raises(InvalidArchivePath, match="archive bucket"):
        check(f"s3://other-bucket/{PREFIX}/a/b/")
    with pytest.raises(InvalidArchivePath, match="two folders"):
        check(f"{ROOT}/a/")
    with pytest.raises(InvalidArchivePath, match="another pipeline"):
        check(f"{ROOT}/{OTHER_PIPELINE}/{JOB}/")
    with pytest.raises(InvalidArchivePath, match="another job"):
        check(f"{ROOT}/{PIPELINE}/{OTHER_JOB}/")
    with pytest.raises(InvalidArchivePath, match="s3://"):
        check(f"https://{BUCKET}/{PREFIX}/a/b/")


def test_split_s3_url() -> None:
    assert split_s3_url(f"s3://{BUCKET}/a/b/") == (BUCKET, "a/b/")
    assert split_s3_url(f"s3://{BUCKET}") == (BUCKET, "")
    with pytest.raises(InvalidArchivePath):
        split_s3_url(f"/{BUCKET}/a/")

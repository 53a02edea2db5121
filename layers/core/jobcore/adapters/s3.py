"""Archive erasure on S3: every object and every version under a prefix, in resumable chunks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from jobcore.archive_paths import split_s3_url
from jobcore.errors import TransientError

_PAGE: Final = 1000  # DeleteObjects takes at most 1000 keys


class S3ArchiveStore:
    """ArchiveStore on S3. Erasure lists what is left and deletes it, so a repeat after a crash or a
    timeout simply resumes: there is no cursor to lose."""

    def __init__(self, s3: Any) -> None:
        self.s3 = s3

    def erase(self, archive_path: str, deadline: Callable[[], bool]) -> tuple[int, bool]:
        bucket, prefix = split_s3_url(archive_path)
        if not prefix.endswith("/") or len(prefix) < 2:
            raise ValueError(f"refusing to erase a prefix that is not a folder: {archive_path!r}")
        deleted = 0
        try:
            while True:
                # ListObjectVersions covers unversioned buckets too (VersionId "null") and delete markers.
                page = self.s3.list_object_versions(Bucket=bucket, Prefix=prefix, MaxKeys=_PAGE)
                keys = [
                    {"Key": v["Key"], "VersionId": v["VersionId"]}
                    for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
                ]
                if not keys:
                    return deleted, True
                response = self.s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
                errors = response.get("Errors") or []
                if errors:
                    raise TransientError(
                        f"S3 refused to delete {len(errors)} objects: {errors[0].get('Code')}"
                    )
                deleted += len(keys)
                if deadline():
                    return deleted, False
        except (ClientError, BotoCoreError) as error:
            raise TransientError(f"erasing {archive_path} failed: {error}") from error

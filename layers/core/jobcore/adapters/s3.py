"""Archives on S3: erasure of every object and version under a prefix, in resumable chunks; the
listing of a job's outputs (for the API, and page by page for the indexer), and presigned links to
download them."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from jobcore.archive_paths import split_s3_url
from jobcore.errors import InvalidRequest, TransientError
from jobcore.records import OutputObject, OutputPage

_PAGE: Final = 1000  # DeleteObjects takes at most 1000 keys; ListObjectsV2 returns at most 1000
_MAX_KEY: Final = 1024  # S3's longest key, in UTF-8 bytes (StartAfter's too)
_BAD_CURSOR: Final = "the 'next' cursor is not valid; pass back the value a listing of this job returned"


class S3ArchiveStore:
    """ArchiveStore and ArchiveReader on S3. Erasure lists what is left and deletes it, so a repeat
    after a crash or a timeout simply resumes: there is no cursor to lose.

    The outputs listing is ListObjectsV2 (current versions only: a deleted object's delete marker hides
    it, as it hides it from a GET), its cursor the last key of the page (`StartAfter`), bound to the
    archive path so that another job's cursor is refused rather than followed. Links are presigned GETs,
    signed with the client's credentials: no request is made, and each link carries S3's signature,
    never one of this API's credentials."""

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

    def list_outputs(self, archive_path: str, limit: int, cursor: str | None) -> OutputPage:
        _, prefix = _folder(archive_path)
        outputs, last = self._page(archive_path, _decode_cursor(cursor, prefix), limit)
        return OutputPage(outputs, _encode_cursor(last, prefix) if last is not None else None)

    def list_objects(
        self, archive_path: str, start_after: str | None, limit: int
    ) -> tuple[list[OutputObject], str | None]:
        return self._page(archive_path, start_after, limit)

    def _page(
        self, archive_path: str, start_after: str | None, limit: int
    ) -> tuple[list[OutputObject], str | None]:
        """(the outputs of one ListObjectsV2 page after `start_after`, the relative key of its last
        object when there are more: None at the end)."""
        bucket, prefix = _folder(archive_path)
        params: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": max(1, min(limit, _PAGE))}
        if start_after is not None:
            params["StartAfter"] = prefix + start_after
        try:
            page = self.s3.list_objects_v2(**params)
        except (ClientError, BotoCoreError) as error:
            # (the error names the operation and S3's code, never a key or a URL)
            raise TransientError(f"listing the outputs failed: {error}") from error
        contents = page.get("Contents") or []
        outputs = [
            OutputObject(
                key=item["Key"][len(prefix) :],
                size=int(item.get("Size") or 0),
                modified=item["LastModified"].timestamp(),
                etag=str(item.get("ETag") or "").strip('"'),
            )
            for item in contents
            # a folder marker (a zero-byte `name/` the S3 console makes) is not an output
            if item["Key"].startswith(prefix) and not item["Key"].endswith("/")
        ]
        more = bool(page.get("IsTruncated")) and bool(contents)
        return outputs, contents[-1]["Key"][len(prefix) :] if more else None

    def download_url(self, archive_path: str, key: str, expires_in: int) -> str:
        bucket, prefix = _folder(archive_path)
        url: str = self.s3.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": prefix + key}, ExpiresIn=expires_in
        )
        return url


def _folder(archive_path: str) -> tuple[str, str]:
    """(bucket, prefix ending in '/') of an archive path: a listing of `a/b` would find `a/bc` too."""
    bucket, prefix = split_s3_url(archive_path)
    return bucket, prefix if prefix.endswith("/") else prefix + "/"


def _path_tag(prefix: str) -> str:
    return hashlib.sha256(prefix.encode("utf-8")).hexdigest()[:12]


def _encode_cursor(after: str, prefix: str) -> str:
    text = json.dumps({"a": after, "p": _path_tag(prefix)}, separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii").rstrip("=")


def _decode_cursor(cursor: str | None, prefix: str) -> str | None:
    """The relative key a cursor starts after. Raises InvalidRequest for anything but a cursor of a
    listing of this same path."""
    if not cursor:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError):
        raise InvalidRequest(_BAD_CURSOR) from None
    if (
        not isinstance(value, dict)
        or set(value) != {"a", "p"}
        or value["p"] != _path_tag(prefix)
        or not isinstance(value["a"], str)
        or len((prefix + value["a"]).encode("utf-8")) > _MAX_KEY
    ):
        raise InvalidRequest(_BAD_CURSOR)
    return value["a"]

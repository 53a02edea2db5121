"""Archive paths: where a job's outputs live, and which caller-given paths are acceptable.

A reset erases everything under a job's archive path, so a path that reaches outside the job's own
corner of the bucket would let one job erase another's outputs. A caller-given path must therefore:
lie in the archive bucket, under the archive prefix, at least two folders below it (never the prefix
itself or a whole pipeline's folder), and, where it follows the default layout
`<prefix>/<pipeline_uuid>/<job_uuid>/`, name this job's own pipeline and uuid.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from jobcore.errors import InvalidArchivePath
from jobcore.ids import is_uuid

_SEGMENT = re.compile(r"[A-Za-z0-9!_.*'()=+,@ -]+")
_MAX_KEY = 900
_INCARNATION = re.compile(r"(.+)\.i[0-9]+")


def default_archive_path(
    bucket: str, prefix: str, pipeline_uuid: str, uuid: str, incarnation: int = 1
) -> str:
    """`<prefix>/<pipeline_uuid>/<uuid>/`; a job created again after a delete gets `<uuid>.i<n>/`, beside
    (never inside) the archive its earlier incarnation left."""
    folder = uuid if incarnation == 1 else f"{uuid}.i{incarnation}"
    return f"s3://{bucket}/{prefix}/{pipeline_uuid}/{folder}/"


def split_s3_url(url: str) -> tuple[str, str]:
    """('bucket', 'key/prefix/') of an s3:// URL."""
    if not url.startswith("s3://"):
        raise InvalidArchivePath("archive_path must be an s3:// URL")
    bucket, _, key = url[len("s3://") :].partition("/")
    return bucket, key


def check_archive_path(path: str, *, bucket: str, prefix: str, pipeline_uuid: str, uuid: str) -> str:
    """The normalized path (ending in '/'), or raises InvalidArchivePath saying what is wrong."""
    given_bucket, key = split_s3_url(path)
    if given_bucket != bucket:
        raise InvalidArchivePath(f"archive_path must be in the archive bucket s3://{bucket}/")
    if unquote(key) != key or "\\" in key:
        raise InvalidArchivePath("archive_path must not contain percent-encoding or backslashes")
    segments = key.rstrip("/").split("/")
    prefix_segments = prefix.strip("/").split("/")
    if segments[: len(prefix_segments)] != prefix_segments:
        raise InvalidArchivePath(f"archive_path must be under s3://{bucket}/{prefix}/")
    own = segments[len(prefix_segments) :]
    if any(s in ("", ".", "..") or not _SEGMENT.fullmatch(s) for s in own):
        raise InvalidArchivePath(
            "archive_path folders must be non-empty, not '.' or '..', and use only letters, digits and !_.*'()=+,@ -"
        )
    if len(own) < 2:
        raise InvalidArchivePath(
            f"archive_path must be at least two folders below s3://{bucket}/{prefix}/ "
            "so that it cannot cover other jobs' archives"
        )
    if is_uuid(own[0]) and own[0] != pipeline_uuid:
        raise InvalidArchivePath("archive_path names another pipeline's folder")
    # Every job's default folder is <pipeline>/<job uuid>/ (or <job uuid>.i<n>/ for a later
    # incarnation), and pipeline ids need not be UUIDs: any second-level folder naming a UUID other
    # than this job's may be another job's, whatever the first level.
    named = _INCARNATION.fullmatch(own[1])
    folder_uuid = named.group(1) if named else own[1]
    if is_uuid(folder_uuid) and folder_uuid != uuid:
        raise InvalidArchivePath("archive_path names another job's folder")
    normalized = "/".join(segments) + "/"
    if len(normalized) > _MAX_KEY:
        raise InvalidArchivePath("archive_path is too long")
    return f"s3://{bucket}/{normalized}"

"""Where backups live, as config models, plus what one look at them returns.

A backup check asks its source one question: "what is your newest backup, the
one before it, and how many are there?" (`Inventory`). `files` answers from a
directory (and reads the newest file to its end, see `_backup_integrity`),
`s3` from a bucket listing, `restic` and `pgbackrest` from their own tools
(`_backup_tools`). A source that cannot be reached raises `SourceError` with
the status to report and a message that carries no secret.
"""

from __future__ import annotations

import asyncio
import fnmatch
import glob
import os
import time
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, SecretStr, field_validator, model_validator

from agent.core import Status
from agent.secrets import REDACTOR, InlineSecret, Secret, clip, read_secret_file, redact
from checks._backup_integrity import (
    DeadlineExceeded,
    Integrity,
    detect_format,
    is_sidecar,
    verify_archive,
    verify_checksum,
    verify_pg_dump,
)
from checks.base import Model

SOURCE_KINDS = ("files", "restic", "pgbackrest", "s3")


class SourceError(Exception):
    """Looking failed: `status` says whether that is an outage (CRITICAL) or a blind spot (UNKNOWN)."""

    def __init__(self, status: Status, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = redact(message)


@dataclass
class BackupItem:
    """One backup: a file, an object, a snapshot or a pgBackRest set."""

    name: str
    timestamp: float  # when it was completed (Unix seconds)
    size: int | None = None
    duration: float | None = None
    kind: str | None = None  # full / diff / incr for pgBackRest


@dataclass
class Inventory:
    newest: BackupItem
    previous: BackupItem | None
    count: int
    problems: list[tuple[Status, str]] = field(default_factory=list)
    observations: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


def _not_blank(v: str, what: str) -> str:
    if not v.strip():
        raise ValueError(f"{what} must not be empty")
    return v


class FilesSource(Model):
    """Dump files in a directory: the newest match is the backup."""

    kind: Literal["files"]
    path: str = Field(description="directory the pattern is matched under (or one file)")
    pattern: str | None = Field(None, description="glob relative to path, e.g. '*.dump' ('**' recurses)")
    verify: bool = Field(True, description="read the newest file to its end (gzip/bzip2/xz/tar/zip/pg_dump)")
    pg_restore: str = Field("pg_restore", description="pg_restore binary used to read pg_dump custom archives")

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        return os.path.expanduser(_not_blank(v, "path"))

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, v: str | None) -> str | None:
        if v is not None and (not v.strip() or os.path.isabs(v)):
            raise ValueError(f"pattern must be a glob relative to path, such as '*.dump', got {v!r}")
        return v


class ResticSource(Model):
    """A restic repository: snapshots via `restic snapshots --json`."""

    kind: Literal["restic"]
    repository: str = Field(description="repository location: a path, or sftp:/s3:/rest:/b2: URL")
    password_file: str | None = Field(None, description="file holding the password (passed as RESTIC_PASSWORD_FILE)")
    password: InlineSecret | None = Field(None, description="the password, e.g. ${RESTIC_PASSWORD} (passed via the environment)")
    bin: str = Field("restic", description="restic binary")
    host: str | None = Field(None, description="only snapshots of this host")
    tags: list[str] = Field(default_factory=list, description="only snapshots with these tags")
    snapshot_path: str | None = Field(None, description="only snapshots of this backed-up path")
    cache_dir: str | None = Field(None, description="RESTIC_CACHE_DIR for the agent's restic runs")
    env: dict[str, str] = Field(default_factory=dict, description="extra environment, e.g. AWS_ACCESS_KEY_ID for s3: repositories")

    @field_validator("repository")
    @classmethod
    def _repo(cls, v: str) -> str:
        return _not_blank(v, "repository")

    @model_validator(mode="after")
    def _password(self) -> ResticSource:
        if self.password_file and self.password is not None:
            raise ValueError("set either password or password_file, not both")
        if self.password_file:
            read_secret_file(self.password_file)  # fails now if missing; registers it for redaction
        elif self.password is None:
            raise ValueError("restic needs password_file (or password from ${ENV}); it is never passed on the command line")
        for value in self.env.values():
            REDACTOR.add(value)
        return self


class PgBackRestSource(Model):
    """A pgBackRest stanza: `pgbackrest info --output=json`."""

    kind: Literal["pgbackrest"]
    stanza: str = Field(description="stanza name")
    bin: str = Field("pgbackrest", description="pgbackrest binary")
    config: str | None = Field(None, description="pgbackrest.conf path (--config)")
    repo: int | None = Field(None, ge=1, le=256, description="only this repository (--repo)")
    command: list[str] | None = Field(None, description="argv that prints `info --output=json` instead of running bin")

    @field_validator("stanza")
    @classmethod
    def _stanza(cls, v: str) -> str:
        if not v.strip() or any(c.isspace() for c in v):
            raise ValueError(f"stanza must be a name without spaces, got {v!r}")
        return v

    @field_validator("command")
    @classmethod
    def _command(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and (not v or not v[0].strip()):
            raise ValueError("command must name a program, e.g. [pgbackrest, --stanza=main, info, --output=json]")
        return v


class S3Source(Model):
    """Objects under a prefix in an S3 (or compatible) bucket: the newest object is the backup."""

    kind: Literal["s3"]
    bucket: str = Field(description="bucket name")
    prefix: str = Field("", description="key prefix, e.g. 'orders/'")
    pattern: str | None = Field(None, description="glob on the key's last part, e.g. '*.dump.gz'")
    endpoint_url: str | None = Field(None, description="for MinIO, Ceph, R2...; AWS if unset")
    region: str | None = None
    access_key_id: Secret | None = Field(None, description="or access_key_id_file; the AWS default chain if unset")
    secret_access_key: Secret | None = Field(None, description="or secret_access_key_file")
    session_token: Secret | None = Field(None, description="or session_token_file")
    verify_tls: bool = True

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, v: str) -> str:
        return _not_blank(v, "bucket")

    @model_validator(mode="after")
    def _pair(self) -> S3Source:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("set both access_key_id and secret_access_key (or neither, to use the AWS default chain)")
        return self


def _known_kind(v: Any) -> Any:
    if not isinstance(v, dict):
        raise ValueError(f"source must be a mapping with a kind ({', '.join(SOURCE_KINDS)})")
    kind = v.get("kind")
    if kind is None:
        raise ValueError(f"source needs a kind; allowed kinds: {', '.join(SOURCE_KINDS)}")
    if kind not in SOURCE_KINDS:
        raise ValueError(f"unknown source kind {kind!r}; allowed kinds: {', '.join(SOURCE_KINDS)}")
    return v


BackupSource = Annotated[
    FilesSource | ResticSource | PgBackRestSource | S3Source,
    BeforeValidator(_known_kind),
    Field(discriminator="kind"),
]


# --- files ---------------------------------------------------------------------------

def list_files(path: str, pattern: str | None, skip_sidecars: bool) -> list[BackupItem]:
    """Regular files matching, newest first. Blocking."""
    if not os.path.exists(path):
        raise SourceError(Status.CRITICAL, f"backup path {path} does not exist")
    if os.path.isfile(path) and pattern is None:
        st = os.stat(path)
        return [BackupItem(path, st.st_mtime, st.st_size)]
    if not os.path.isdir(path):
        raise SourceError(Status.CRITICAL, f"backup path {path} is not a directory")
    if not os.access(path, os.R_OK | os.X_OK):
        raise SourceError(Status.UNKNOWN, f"cannot list {path}: permission denied")
    items = []
    for candidate in glob.iglob(os.path.join(glob.escape(path), pattern or "*"), recursive=True):
        if skip_sidecars and is_sidecar(candidate):
            continue
        try:
            st = os.stat(candidate)
        except OSError:
            continue  # rotated away between listing and stat
        if os.path.isfile(candidate):
            items.append(BackupItem(candidate, st.st_mtime, st.st_size))
    items.sort(key=lambda i: (i.timestamp, i.name), reverse=True)  # same second: by name
    return items


async def inspect_files(src: FilesSource, checksum: str, limit: float) -> Inventory:
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + limit
    items: list[BackupItem] = await loop.run_in_executor(None, list_files, src.path, src.pattern, checksum != "off")
    where = os.path.join(src.path, src.pattern) if src.pattern else src.path
    if not items:
        raise SourceError(Status.CRITICAL, f"no backup file matches {where}")
    newest = items[0]
    inv = Inventory(newest, items[1] if len(items) > 1 else None, len(items), details={"file": newest.name})
    checks: list[Integrity] = []
    try:
        if checksum != "off":
            result = await loop.run_in_executor(None, verify_checksum, newest.name, checksum, deadline)
            if result is not None:
                checks.append(result)
        if src.verify:
            fmt = await loop.run_in_executor(None, detect_format, newest.name)
            if fmt == "pg_dump_custom":
                checks.append(await verify_pg_dump(newest.name, src.pg_restore, max(1.0, deadline - time.monotonic())))
            elif fmt != "unknown":
                checks.append(await loop.run_in_executor(None, verify_archive, newest.name, fmt, deadline))
            inv.details["format"] = fmt
    except DeadlineExceeded:
        raise SourceError(Status.UNKNOWN, f"verifying {newest.name} did not finish in time") from None
    except OSError as exc:
        raise SourceError(Status.UNKNOWN, f"cannot read {newest.name}: {exc.strerror or exc}") from None
    for c in checks:
        inv.details[f"verify_{c.format}"] = {"ok": c.ok, "message": c.message, **c.details}
        if not c.ok:
            inv.problems.append((Status.CRITICAL, c.message))
    return inv


# --- s3 ------------------------------------------------------------------------------

def _s3_client(src: S3Source, timeout: float) -> Any:
    import boto3
    from botocore.config import Config

    def secret(s: SecretStr | None) -> str | None:
        return s.get_secret_value() if s is not None else None

    return boto3.client(
        "s3", endpoint_url=src.endpoint_url, region_name=src.region or "us-east-1", verify=src.verify_tls,
        aws_access_key_id=secret(src.access_key_id), aws_secret_access_key=secret(src.secret_access_key),
        aws_session_token=secret(src.session_token),
        config=Config(connect_timeout=min(timeout, 10), read_timeout=timeout, retries={"max_attempts": 2, "mode": "standard"}))


def _s3_error(src: S3Source, exc: Exception) -> SourceError:
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = err.get("Code", "Error")
        return SourceError(Status.CRITICAL, f"s3://{src.bucket}: {code}: {err.get('Message', '')}".rstrip(": "))
    if isinstance(exc, EndpointConnectionError):
        return SourceError(Status.CRITICAL, f"s3://{src.bucket}: cannot reach {src.endpoint_url or 'the S3 endpoint'}")
    if isinstance(exc, NoCredentialsError):
        return SourceError(Status.UNKNOWN, f"s3://{src.bucket}: no credentials (set access_key_id/secret_access_key)")
    return SourceError(Status.CRITICAL, f"s3://{src.bucket}: {type(exc).__name__}: {clip(str(exc).splitlines()[0], 200)}")


def list_s3(src: S3Source, timeout: float) -> list[BackupItem]:
    """Objects under the prefix (matching the pattern), newest first. Blocking."""
    from botocore.exceptions import BotoCoreError, ClientError

    deadline = time.monotonic() + timeout
    items = []
    try:
        client = _s3_client(src, timeout)
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=src.bucket, Prefix=src.prefix):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                if key.endswith("/") or (src.pattern and not fnmatch.fnmatchcase(key.rsplit("/", 1)[-1], src.pattern)):
                    continue
                items.append(BackupItem(key, obj["LastModified"].timestamp(), int(obj["Size"])))
            if time.monotonic() > deadline:
                raise SourceError(Status.UNKNOWN, f"listing s3://{src.bucket}/{src.prefix} did not finish in time")
    except (BotoCoreError, ClientError) as exc:
        raise _s3_error(src, exc) from None
    items.sort(key=lambda i: (i.timestamp, i.name), reverse=True)  # same second: by name
    return items


async def inspect_s3(src: S3Source, limit: float) -> Inventory:
    items: list[BackupItem] = await asyncio.get_running_loop().run_in_executor(None, list_s3, src, limit)
    if not items:
        where = f"s3://{src.bucket}/{src.prefix}" + (src.pattern or "")
        raise SourceError(Status.CRITICAL, f"no backup object under {where}")
    return Inventory(items[0], items[1] if len(items) > 1 else None, len(items),
                     details={"object": f"s3://{src.bucket}/{items[0].name}"})


def download_s3(src: S3Source, key: str, dest: str, timeout: float) -> None:
    """Fetch one object to a local file (for a restore drill). Blocking."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        _s3_client(src, timeout).download_file(src.bucket, key, dest)
    except (BotoCoreError, ClientError) as exc:
        raise _s3_error(src, exc) from None

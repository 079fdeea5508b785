"""Is a backup file readable to its end? Archives, pg_dump files and checksum sidecars.

A backup that exists, is recent and is big enough can still be useless: a job
killed mid-write leaves a truncated `.tar.gz`, a bad disk flips bytes. This
module reads the file the way a restore would: gzip/bzip2/xz streams to the
end, every tar member, every zip entry's CRC, and a pg_dump custom archive
through `pg_restore` (`--list` for its table of contents, then a full read to
/dev/null, which `--list` alone does not do: a truncated dump still lists).
The format is detected from magic bytes, not from the file name. Reading is
blocking and runs in a thread, so it checks a deadline between chunks.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import os
import tarfile
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import IO, Any

from checks._proc import ToolError, run_tool

_CHUNK = 1024 * 1024
_SIDECAR_SUFFIX = ".sha256"


class DeadlineExceeded(Exception):
    """Reading the archive to its end took longer than the check's timeout."""


@dataclass
class Integrity:
    """What reading the file found; `ok` False means it would not restore."""

    format: str
    ok: bool
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def _check_deadline(deadline: float) -> None:
    if time.monotonic() > deadline:
        raise DeadlineExceeded


def _read_to_end(stream: IO[bytes], deadline: float) -> int:
    total = 0
    while chunk := stream.read(_CHUNK):
        total += len(chunk)
        _check_deadline(deadline)
    return total


def detect_format(path: str) -> str:
    """gzip, bzip2, xz, zip, tar, pg_dump_custom or unknown (by magic bytes)."""
    with open(path, "rb") as f:
        head = f.read(512)
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh"):
        return "bzip2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith(b"PGDMP"):
        return "pg_dump_custom"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    return "unknown"


_COMPRESSED = ("gzip", "bzip2", "xz")


def _open(path: str, fmt: str) -> IO[bytes]:
    """The file's content stream: decompressed for gzip/bzip2/xz."""
    if fmt == "gzip":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    if fmt == "bzip2":
        return bz2.open(path, "rb")
    if fmt == "xz":
        return lzma.open(path, "rb")
    return open(path, "rb")


_SHORT = {"gzip": "gz", "bzip2": "bz2", "xz": "xz"}
_TAR_NAMES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


def _verify_tar(path: str, fmt: str, deadline: float) -> Integrity:
    """Every member read; a compressed stream is then read to its end so its CRC is checked too."""
    members = 0
    data = 0
    with _open(path, fmt) as stream:
        with tarfile.open(fileobj=stream, mode="r:") as tar:
            for member in tar:
                members += 1
                if member.isfile():
                    extracted = tar.extractfile(member)
                    if extracted is not None:
                        data += _read_to_end(extracted, deadline)
                _check_deadline(deadline)
        _read_to_end(stream, deadline)  # tarfile stops at the end marker, before the gzip/xz trailer
    return Integrity("tar" if fmt == "tar" else f"tar+{_SHORT[fmt]}", True, f"{members} tar members readable",
                     {"members": members, "uncompressed_bytes": data})


def verify_archive(path: str, fmt: str, deadline: float) -> Integrity:
    """Read a gzip/bzip2/xz/zip/tar file to its end. Blocking (run it in a thread)."""
    try:
        if fmt == "zip":
            with zipfile.ZipFile(path) as zf:
                bad = zf.testzip()
                entries = len(zf.infolist())
            if bad is not None:
                return Integrity("zip", False, f"zip entry {bad!r} fails its CRC check")
            return Integrity("zip", True, f"{entries} zip entries pass their CRC check", {"entries": entries})
        if fmt == "tar" or (fmt in _COMPRESSED and path.endswith(_TAR_NAMES)):
            return _verify_tar(path, fmt, deadline)
        if fmt in _COMPRESSED:
            with _open(path, fmt) as stream:
                size = _read_to_end(stream, deadline)
            return Integrity(fmt, True, f"{fmt} stream readable to the end", {"uncompressed_bytes": size})
    except DeadlineExceeded:
        raise
    except (EOFError, OSError, zlib.error, lzma.LZMAError, tarfile.TarError, zipfile.BadZipFile, ValueError) as exc:
        return Integrity(fmt, False, f"{fmt} file is corrupt or truncated: {_reason(exc)}")
    return Integrity(fmt, True, "format not verified", {"verified": False})


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


async def verify_pg_dump(path: str, pg_restore: str, limit: float) -> Integrity:
    """`pg_restore --list` (table of contents) then a full read into /dev/null."""
    started = time.monotonic()
    try:
        listing = await run_tool([pg_restore, "--list", path], limit=limit)
        if listing.returncode != 0:
            return Integrity("pg_dump_custom", False, f"pg_restore --list failed: {listing.error_line()}")
        entries = sum(1 for line in listing.stdout.splitlines() if line.strip() and not line.startswith(";"))
        remaining = max(1.0, limit - (time.monotonic() - started))
        full = await run_tool([pg_restore, "--file", os.devnull, path], limit=remaining)
    except ToolError as exc:
        return Integrity("pg_dump_custom", False, exc.message, {"timed_out": exc.timed_out})
    if full.returncode != 0:
        return Integrity("pg_dump_custom", False, f"pg_restore cannot read the whole dump: {full.error_line()}",
                         {"toc_entries": entries})
    return Integrity("pg_dump_custom", True, f"pg_dump archive readable ({entries} TOC entries)",
                     {"toc_entries": entries})


# --- checksum sidecars -------------------------------------------------------------

def sidecar_path(path: str) -> str:
    return path + _SIDECAR_SUFFIX


def is_sidecar(path: str) -> bool:
    return path.endswith(_SIDECAR_SUFFIX)


def read_sidecar(path: str) -> str:
    """The hex digest in `<file>.sha256` (`sha256sum` output or the bare digest)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read(4096).strip()
    digest = text.split()[0].lower() if text else ""
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"{os.path.basename(path)} does not hold a SHA-256 hex digest")
    return digest


def sha256_file(path: str, deadline: float) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            _check_deadline(deadline)
    return h.hexdigest()


def verify_checksum(path: str, mode: str, deadline: float) -> Integrity | None:
    """Compare the file with its sidecar. None when there is none and `mode` is `sidecar`. Blocking."""
    side = sidecar_path(path)
    if not os.path.exists(side):
        if mode == "required":
            return Integrity("sha256", False, f"checksum file {os.path.basename(side)} is missing (checksum: required)")
        return None
    try:
        expected = read_sidecar(side)
    except (OSError, ValueError) as exc:
        return Integrity("sha256", False, f"cannot read checksum: {_reason(exc)}")
    actual = sha256_file(path, deadline)
    if actual != expected:
        return Integrity("sha256", False, f"SHA-256 mismatch: {os.path.basename(side)} says {expected[:12]}…, "
                                          f"file is {actual[:12]}…", {"expected": expected, "actual": actual})
    return Integrity("sha256", True, "SHA-256 matches its sidecar", {"sha256": actual})

"""Secrets: `${ENV}` expansion, `*_file` keys, and redaction everywhere.

Every value that came from the environment or a secret file is remembered by
the process-wide `REDACTOR`; logs, check summaries, API answers and error text
pass through `redact()` before they leave the process. A password inside a URL
(`postgresql://user:secret@host/db`) is scrubbed even when written inline.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_URL_PASSWORD = re.compile(r"(?P<scheme>(?<![A-Za-z0-9+.-])[a-zA-Z][a-zA-Z0-9+.-]{0,30}://)(?P<user>[^:/@\s]{0,256}):(?P<pw>[^@/\s]{1,1024})@")
_KEYWORD_SECRETS = re.compile(r"(?i)\b(password|passwd|pwd|secret|token|api_key|apikey)=([^\s&;]+)")
MASK = "<redacted>"
MIN_SECRET_LEN = 4


class Redactor:
    """Remembers secret values and scrubs them from text. Thread-safe."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()
        self._pattern: re.Pattern[str] | None = None

    def add(self, value: str | None) -> None:
        if not value or len(value) < MIN_SECRET_LEN:
            return
        with self._lock:
            if value not in self._values:
                self._values.add(value)
                self._pattern = None

    def redact(self, text: str) -> str:
        if not text:
            return text
        text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
        text = _KEYWORD_SECRETS.sub(lambda m: f"{m.group(1)}={MASK}", text)
        pattern = self._pattern
        if pattern is None and self._values:
            with self._lock:
                alternatives = sorted(self._values, key=len, reverse=True)
                pattern = self._pattern = re.compile("|".join(re.escape(v) for v in alternatives))
        return pattern.sub(MASK, text) if pattern else text

    def redact_obj(self, obj: Any) -> Any:
        """Redact every string inside nested dicts/lists, keys included (for JSON answers)."""
        if isinstance(obj, str):
            return self.redact(obj)
        if isinstance(obj, dict):
            return {self.redact(k) if isinstance(k, str) else k: self.redact_obj(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [self.redact_obj(v) for v in obj]
        return obj


REDACTOR = Redactor()


def redact(text: str) -> str:
    return REDACTOR.redact(text)


class RedactingFilter(logging.Filter):
    """Logging filter: formats the message, then scrubs secrets from it."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        clean = REDACTOR.redact(msg)
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = REDACTOR.redact(logging.Formatter().formatException(record.exc_info))
        record.msg, record.args = clean, None
        return True


class EnvError(Exception):
    def __init__(self, path: tuple[Any, ...], message: str):
        super().__init__(message)
        self.path = path
        self.message = message


def expand_env(obj: Any, env: dict[str, str] | None = None, path: tuple[Any, ...] = ()) -> tuple[Any, list[EnvError]]:
    """Replace `${VAR}` (or `${VAR:-default}`) in every string; collect missing ones.

    `$${VAR}` escapes to a literal `${VAR}`. Expanded values are registered as
    secrets: the config decides what is sensitive, not us.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    errors: list[EnvError] = []

    def sub(text: str, here: tuple[Any, ...]) -> str:
        def one(m: re.Match[str]) -> str:
            start = m.start()
            if start > 0 and text[start - 1] == "$":
                return m.group(0)
            name, default = m.group(1), m.group(2)
            if name in environ:
                REDACTOR.add(environ[name])
                return environ[name]
            if default is not None:
                return default
            errors.append(EnvError(here, f"environment variable {name} is not set (referenced as ${{{name}}})"))
            return ""

        return _ENV_REF.sub(one, text).replace("$${", "${")

    def walk(node: Any, here: tuple[Any, ...]) -> Any:
        if isinstance(node, str):
            return sub(node, here) if "${" in node else node
        if isinstance(node, dict):
            return {k: walk(v, (*here, k)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, (*here, i)) for i, v in enumerate(node)]
        return node

    return walk(obj, path), errors


def read_secret_file(path: str | os.PathLike[str]) -> str:
    """Read a secret from a file (trailing newline stripped) and register it."""
    p = Path(path)
    try:
        value = p.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ValueError(f"secret file {str(p)!r} does not exist") from None
    except OSError as exc:
        raise ValueError(f"secret file {str(p)!r} cannot be read: {exc.strerror}") from None
    if not value:
        raise ValueError(f"secret file {str(p)!r} is empty")
    REDACTOR.add(value)
    return value


def resolve_secret(data: Any, name: str) -> Any:
    """For a model's `mode="before"` validator: `name_file: path` fills `name`.

    Setting both is an error; the file is read at load time so a missing file
    fails validation with the field's path.
    """
    if not isinstance(data, dict):
        return data
    file_key = f"{name}_file"
    if data.get(file_key) is not None:
        if data.get(name) is not None:
            raise ValueError(f"set either {name} or {file_key}, not both")
        data = dict(data)
        data[name] = read_secret_file(data[file_key])
    elif isinstance(data.get(name), str):
        REDACTOR.add(data[name])
    return data

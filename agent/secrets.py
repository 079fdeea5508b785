"""Secrets: `${ENV}` expansion, `*_file` keys, and redaction everywhere.

Every value that came from the environment or a secret file is remembered by
the process-wide `REDACTOR`; logs, check summaries, API answers and error text
pass through `redact()` before they leave the process. A password inside a URL
(`postgresql://user:secret@host/db`) is scrubbed even when written inline.
A secret also leaks in derived forms, so those are remembered with it: its
escaped reprs (`b'...\\n'`, JSON), its base64 (an HTTP basic-auth header), a
URL's password and, for an http(s) URL, its query and token-bearing path (a
webhook's token echoed in an error).

Config models declare a secret field once, as `Secret` (or `Secret | None`):
`SecretFields`, the base of every config model, accepts `<field>_file: path`
in its place, reads the file (size-capped, trailing newline stripped) and
registers the value; the `Secret` type registers inline and `${ENV}` values.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import os
import re
import threading
import typing
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    GetJsonSchemaHandler,
    SecretStr,
    ValidationInfo,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_URL_PASSWORD = re.compile(r"(?P<scheme>(?<![A-Za-z0-9+.-])[a-zA-Z][a-zA-Z0-9+.-]{0,30}://)(?P<user>[^:/@\s]{0,256}):(?P<pw>[^@/\s]{1,1024})@")
_KEYWORD_SECRETS = re.compile(r"(?i)\b(password|passwd|pwd|secret|token|api_key|apikey)=([^\s&;]+)")
_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
MASK = "<redacted>"
MIN_SECRET_LEN = 4
#: derived forms shorter than this are not remembered: they would mask ordinary words
MIN_DERIVED_LEN = 8
#: a secret URL's path is remembered when a segment is at least this long (a token, not a word)
MIN_URL_SEGMENT_LEN = 16
#: a secret file larger than this is refused (a secret is a line, not a data set)
SECRET_FILE_MAX = 64 * 1024
#: text redacted beyond a cut point, so a secret straddling the cut is still recognised
REDACT_MARGIN = 4096
_NEWLINES = "\r\n"


def _base64_fragments(raw: bytes) -> list[str]:
    """The base64 characters that depend only on `raw`, at each of the three byte alignments.

    `user:password` encodes the password at an offset that depends on the
    user's length; whatever the offset, one of these is a substring of it.
    """
    out = []
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw + b"\0\0\0").decode()
        first, last = -(-8 * offset // 6), 8 * (offset + len(raw)) // 6
        out.append(encoded[first:last])
    return out


def derived_forms(value: str) -> set[str]:
    """The ways `value` shows up in text besides itself: escaped reprs, base64, a URL's password,
    and for an http(s) URL its query and a path holding a token (a webhook's)."""
    forms = {repr(value)[1:-1], repr(value.encode("utf-8"))[2:-1], json.dumps(value)[1:-1],
             json.dumps(value, ensure_ascii=False)[1:-1]}
    forms.update(_base64_fragments(value.encode("utf-8")))
    match = _URL_SCHEME.match(value)
    if match and match[1].lower() in ("http", "https"):
        parts = urlsplit(value)
        # A webhook's token is a long path segment (Slack's is 24 characters): then the path, and
        # each long segment alone, are secret. A short path (`/prometheus`) is an ordinary word.
        tokens = [segment for segment in parts.path.split("/") if len(segment) >= MIN_URL_SEGMENT_LEN]
        if tokens:
            forms.add(parts.path.lstrip("/"))
            forms.update(tokens)
        if parts.query:
            forms.add(parts.query)
            forms.update(v for _, v in parse_qsl(parts.query))
    forms.discard(value)
    out = {f for f in forms if len(f) >= MIN_DERIVED_LEN}
    if match:
        # A database URL's password shows up alone in driver errors and environment dumps.
        try:
            password = urlsplit(value).password
        except ValueError:
            password = None
        if password and len(password) >= MIN_SECRET_LEN:
            out.add(password)
    return out


def _trie_pattern(values: Collection[str]) -> str:
    """One regex matching any of `values`, longest first, shaped as a trie.

    A flat `a|b|c...` alternation tries every value at every position: with a
    thousand secrets (and their derived forms) that made each redaction take
    milliseconds. Branching on the next character keeps it to microseconds.
    """
    root: dict[str, Any] = {}
    for value in values:
        node = root
        for ch in value:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict[str, Any]) -> str:
        parts = []
        for ch in sorted(k for k in node if k):
            run, child = [ch], node[ch]
            while len(child) == 1 and "" not in child:  # a chain without choices: one literal
                ((nxt, child),) = child.items()
                run.append(nxt)
            parts.append(re.escape("".join(run)) + emit(child))
        if not parts:
            return ""
        body = parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"
        if "" in node:  # a value ends here: a longer one is tried first (greedy ?)
            return f"(?:{body})?" if len(parts) == 1 else f"{body}?"
        return body

    return emit(root)


def _compile_values(values: Collection[str], flags: int) -> re.Pattern[str]:
    try:
        return re.compile(_trie_pattern(values), flags)
    except (RecursionError, re.error):  # pathological nesting (values that are prefixes of prefixes...)
        return re.compile("|".join(re.escape(v) for v in sorted(values, key=len, reverse=True)), flags)


#: texts up to this long are remembered with their redacted form, at most this many of them
_MEMO_TEXT, _MEMO_SIZE = 256, 20_000


class Redactor:
    """Remembers secret values (and their derived forms) and scrubs them from text. Thread-safe."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()
        self._pattern: re.Pattern[str] | None = None
        self._pattern_ci: re.Pattern[str] | None = None
        #: (text, ignore_case) -> redacted, for short texts: every result redacts the same observation
        #: names and URLs again (three regex passes each); forgotten whenever a secret is added
        self._memo: dict[tuple[str, bool], str] = {}

    def add(self, value: str | None) -> None:
        if not value:
            return
        stripped = value.rstrip(_NEWLINES)
        if len(stripped) < MIN_SECRET_LEN:
            return
        forms = {value, stripped, *derived_forms(stripped)}
        with self._lock:
            if not forms <= self._values:
                self._values |= forms
                self._pattern = self._pattern_ci = None
                self._memo = {}

    def add_basic_auth(self, username: str, password: str) -> None:
        """Remember `password` and the `Authorization: Basic` credentials built from it."""
        self.add(password)
        self.add(base64.b64encode(f"{username}:{password}".encode()).decode())

    def _compiled(self, ignore_case: bool) -> re.Pattern[str] | None:
        pattern = self._pattern_ci if ignore_case else self._pattern
        if pattern is None and self._values:
            with self._lock:
                pattern = _compile_values(self._values, re.IGNORECASE if ignore_case else 0)
                if ignore_case:
                    self._pattern_ci = pattern
                else:
                    self._pattern = pattern
        return pattern

    def redact(self, text: str, *, ignore_case: bool = False) -> str:
        """`text` without known secrets; `ignore_case` for text about to be lowercased (metric names)."""
        if not text:
            return text
        memo = self._memo
        key = (text, ignore_case)
        done = memo.get(key)
        if done is not None:
            return done
        clean = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
        clean = _KEYWORD_SECRETS.sub(lambda m: f"{m.group(1)}={MASK}", clean)
        pattern = self._compiled(ignore_case)
        if pattern:
            clean = pattern.sub(MASK, clean)
        if len(text) <= _MEMO_TEXT and memo is self._memo:  # not if a secret was added meanwhile
            if len(memo) >= _MEMO_SIZE:
                memo.clear()
            memo[key] = clean
        return clean

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


def redact(text: str, *, ignore_case: bool = False) -> str:
    return REDACTOR.redact(text, ignore_case=ignore_case)


def clip(text: str, limit: int, ellipsis: str = "...") -> str:
    """Redact, then cut to `limit` characters: cutting first could leave half a secret unrecognised.

    Redaction runs on a bounded prefix (its regexes are slow on huge text), and
    the cut never splits a mask.
    """
    clean = redact(text[: limit + REDACT_MARGIN])
    if len(clean) <= limit:
        return clean
    cut = clean[: max(0, limit - len(ellipsis))]
    mask_start = cut.rfind(MASK[:1])
    if mask_start != -1 and MASK.startswith(cut[mask_start:]) and cut[mask_start:] != MASK:
        cut = cut[:mask_start]
    return cut + ellipsis


# Header values that describe content, not credentials: never remembered as secrets, or a
# `Host: api.internal` header would mask the host name in every message.
_PLAIN_HEADERS = frozenset({
    "accept", "accept-charset", "accept-encoding", "accept-language", "cache-control", "connection",
    "content-encoding", "content-language", "content-type", "host", "origin", "pragma", "referer",
    "user-agent",
})
_AUTH_SCHEME = re.compile(r"^(?:bearer|basic|token|digest|negotiate|apikey|sso-key)\s+(?=\S)", re.IGNORECASE)


def add_header_secret(name: str, value: str) -> None:
    """Remember a configured request header's value as a secret (its credential part for `Bearer x`)."""
    if name.lower() in _PLAIN_HEADERS:
        return
    REDACTOR.add(_AUTH_SCHEME.sub("", value.strip()) or value)


def _header_secrets(headers: dict[str, str]) -> dict[str, str]:
    for name, value in headers.items():
        add_header_secret(name, value)
    return headers


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
    secrets: the config decides what is sensitive, not us. Trailing newlines
    are stripped from them, as from secret files.
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
                # A Kubernetes Secret made with --from-file ends in a newline nobody meant.
                value = environ[name].rstrip(_NEWLINES)
                REDACTOR.add(value)
                return value
            if default is not None:
                return default
            errors.append(EnvError(here, f"environment variable {name} is not set (referenced as ${{{name}}})"))
            return ""

        return _ENV_REF.sub(one, text).replace("$${", "${")

    def flat(chain: tuple[Any, ...]) -> tuple[Any, ...]:
        keys: list[Any] = []
        while chain:
            chain, key = chain
            keys.append(key)
        return (*path, *reversed(keys))

    # `chain` is (parent chain, key): a path is only spelled out for a string that has a reference.
    # A mapping or list without one is returned as it is, not copied (a large config is not held twice).
    def walk(node: Any, chain: tuple[Any, ...]) -> Any:
        if isinstance(node, str):
            return sub(node, flat(chain)) if "${" in node else node
        if isinstance(node, dict):
            items = {k: walk(v, (chain, k)) for k, v in node.items()}
            return node if all(items[k] is v for k, v in node.items()) else items
        if isinstance(node, list):
            out = [walk(v, (chain, i)) for i, v in enumerate(node)]
            return node if all(a is b for a, b in zip(out, node, strict=True)) else out
        return node

    return walk(obj, ()), errors


def read_secret_file(path: str | os.PathLike[str]) -> str:
    """Read a secret from a file (surrounding whitespace stripped, at most 64 KiB) and register it."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            raw = f.read(SECRET_FILE_MAX + 1)
    except FileNotFoundError:
        raise ValueError(f"secret file {str(p)!r} does not exist") from None
    except OSError as exc:
        raise ValueError(f"secret file {str(p)!r} cannot be read: {exc.strerror or exc}") from None
    if len(raw) > SECRET_FILE_MAX:
        raise ValueError(f"secret file {str(p)!r} is larger than {SECRET_FILE_MAX // 1024} KiB")
    try:
        value = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ValueError(f"secret file {str(p)!r} is not UTF-8 text") from None
    if not value:
        raise ValueError(f"secret file {str(p)!r} is empty")
    REDACTOR.add(value)
    return value


# --- secret config fields ---------------------------------------------------------------

@dataclass(frozen=True)
class FileSibling:
    """`Annotated` marker: the field may be given as `<key>_file: path` instead (see `SecretFields`)."""


def _registered(v: SecretStr) -> SecretStr:
    text = v.get_secret_value()
    clean = text.rstrip(_NEWLINES)
    REDACTOR.add(clean)
    return v if clean == text else SecretStr(clean)


#: A secret config value: inline, `${ENV}` or `<key>_file`; redacted everywhere, trailing newline stripped.
Secret = Annotated[SecretStr, AfterValidator(_registered), FileSibling()]
#: A secret without the `<key>_file` form (for a field whose `_file` key means something else).
InlineSecret = Annotated[SecretStr, AfterValidator(_registered)]
#: Request headers: values are credentials more often than not, so they are redacted everywhere
#: (all but content-negotiation headers such as Accept or Host).
SecretHeaders = Annotated[dict[str, str], AfterValidator(_header_secrets)]


def _has_file_sibling(tp: Any) -> bool:
    if typing.get_origin(tp) is Annotated:
        args = typing.get_args(tp)
        return any(isinstance(m, FileSibling) for m in args[1:]) or _has_file_sibling(args[0])
    return any(_has_file_sibling(a) for a in typing.get_args(tp))


@functools.cache
def secret_file_keys(model: type[BaseModel]) -> tuple[str, ...]:
    """Config keys of `model`'s `Secret` fields, each of which also accepts `<key>_file`."""
    return tuple(field.alias or name for name, field in model.model_fields.items()
                 if any(isinstance(m, FileSibling) for m in field.metadata) or _has_file_sibling(field.annotation))


def read_secret_files(model: type[BaseModel], data: Any) -> Any:
    """`<key>_file: path` -> `<key>: contents` for each secret field of `model`; both set is an error.

    The file is read at load time, so a missing one fails validation there.
    """
    keys = secret_file_keys(model)
    if not keys or not isinstance(data, dict):
        return data
    out = data
    for key in keys:
        file_key = f"{key}_file"
        if file_key not in data:
            continue
        if out is data:
            out = dict(data)
        path = out.pop(file_key)
        if path is None:
            continue
        if not isinstance(path, str | os.PathLike) or not str(path).strip():
            raise ValueError(f"{file_key} must be the path of a file holding {key}")
        if out.get(key) is not None:
            raise ValueError(f"set either {key} or {file_key}, not both")
        out[key] = read_secret_file(path)
    return out


class SecretFields(BaseModel):
    """Base of config models: every `Secret` field also accepts `<key>_file` (config, docs and JSON Schema)."""

    @model_validator(mode="before")
    @classmethod
    def _read_secret_files(cls, data: Any) -> Any:
        return read_secret_files(cls, data)

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        schema = handler(core_schema)
        keys = secret_file_keys(cls)
        target = handler.resolve_ref_schema(schema) if keys else schema
        properties = target.get("properties", {})
        for key in keys:
            file_key = f"{key}_file"
            properties[file_key] = {"type": "string", "title": file_key.replace("_", " ").capitalize(),
                                    "description": f"file holding {key}, read at load time (instead of {key})"}
            if key in target.get("required", []):
                target["required"].remove(key)
                target.setdefault("allOf", []).append({"anyOf": [{"required": [key]}, {"required": [file_key]}]})
        if "required" in target and not target["required"]:
            del target["required"]
        return schema


# --- DSNs ---------------------------------------------------------------------------------

def dsn_rule(what: str, *, schemes: Collection[str] | None = None, key_value: bool = False) -> AfterValidator:
    """The one DSN rule: a `scheme://` URL (with a scheme in `schemes`, any if None),
    or with `key_value` a libpq `key=value` string. `what` completes "<field> must be ..."."""
    allowed = None if schemes is None else {s.lower() for s in schemes}

    def check(v: SecretStr, info: ValidationInfo) -> SecretStr:
        text = v.get_secret_value().strip()
        match = _URL_SCHEME.match(text)
        if match:
            ok = allowed is None or match[1].lower() in allowed
        else:
            ok = key_value and "=" in text
        if not ok:
            raise ValueError(f"{info.field_name or 'dsn'} must be {what}")
        return v

    return AfterValidator(check)

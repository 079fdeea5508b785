"""Regenerate the README's config reference from the pydantic models.

The models are the single source of truth; `tests/test_docs.py` fails when the
README is stale. Run: `.venv/bin/python scripts/gen_config_docs.py`.
"""

from __future__ import annotations

import enum
import sys
import typing
from pathlib import Path

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from _readme import update_block  # noqa: E402

START, END = "<!-- config-reference:start -->", "<!-- config-reference:end -->"


def _type_name(tp: typing.Any) -> str:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        meta = " ".join(str(getattr(m, "json_schema", "")) for m in args[1:])
        return "duration" if "pattern" in meta and "ms|s|m|h|d|w" in meta else _type_name(args[0])
    if origin in (typing.Union, __import__("types").UnionType):
        return " \\| ".join(_type_name(a) for a in args if a is not type(None))
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (list, tuple, set):
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return f"map {_type_name(args[0])} → {_type_name(args[1])}" if args else "map"
    if isinstance(tp, type):
        if issubclass(tp, enum.Enum):
            return " \\| ".join(f"`{m.value}`" for m in tp)
        if issubclass(tp, BaseModel):
            return f"[{tp.__name__}](#{tp.__name__.lower()})"
        return {"str": "string", "int": "integer", "float": "number", "bool": "boolean", "timedelta": "duration",
                "SecretStr": "secret string", "PosixPath": "path", "Path": "path"}.get(tp.__name__, tp.__name__)
    return str(tp).replace("typing.", "")


def _default(f: FieldInfo) -> str:
    if f.is_required():
        return "**required**"
    if f.default_factory is not None:
        try:
            value = f.default_factory()  # type: ignore[call-arg]
        except TypeError:
            return ""
        if isinstance(value, BaseModel):
            return "see model"
        return f"`{value}`" if value not in ([], {}) else ""
    if f.default is PydanticUndefined or f.default is None:
        return ""
    from datetime import timedelta

    from agent.durations import format_duration

    value = f.default
    if isinstance(value, timedelta):
        value = format_duration(value)
    value = getattr(value, "value", value)
    if isinstance(value, bool):
        value = str(value).lower()
    return f"`{value}`"


def _models(root: type[BaseModel]) -> list[type[BaseModel]]:
    seen: list[type[BaseModel]] = []

    def visit(tp: typing.Any) -> None:
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if tp in seen:
                return
            seen.append(tp)
            for f in tp.model_fields.values():
                visit(f.annotation)
            return
        for a in typing.get_args(tp):
            visit(a)

    visit(root)
    return seen


def render() -> str:
    from agent.config import config_model
    from agent.secrets import secret_file_keys
    from checks.base import CheckConfig

    common = set(CheckConfig.model_fields) - {"type"}

    lines = [START, "", "Generated from the config models by `scripts/gen_config_docs.py`; "
             "`sre-agent config schema` prints the same as JSON Schema.", ""]
    models = _models(config_model())
    first_check = next(i for i, m in enumerate(models) if issubclass(m, CheckConfig))
    models.insert(first_check, CheckConfig)
    for model in models:
        is_check_type = issubclass(model, CheckConfig) and model is not CheckConfig
        name = "Config (the file's top level)" if model.__name__ == "Config" else model.__name__
        lines += [f"#### {model.__name__}" if model.__name__ != "Config" else f"#### {name}", ""]
        doc = (model.__doc__ or "").strip().splitlines()
        if doc and model.__name__ != "Config" and not doc[0].startswith("!!!"):
            lines += [doc[0], ""]
        if is_check_type:
            lines += ["Plus the keys every check accepts ([CheckConfig](#checkconfig)).", ""]
        lines += ["| key | type | default | description |", "|---|---|---|---|"]
        for fname, f in model.model_fields.items():
            if is_check_type and fname in common:
                continue
            key = f.alias or fname
            desc = (f.description or "").replace("|", "\\|")
            lines.append(f"| `{key}` | {_type_name(f.annotation)} | {_default(f)} | {desc} |")
            if key in secret_file_keys(model):
                lines.append(f"| `{key}_file` | path |  | file holding {key}, read at load time (instead of {key}) |")
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def main() -> int:
    return update_block(START, END, render, "config reference", "gen_config_docs.py")


if __name__ == "__main__":
    raise SystemExit(main())

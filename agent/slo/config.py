"""Config models of the `slos:` section: a native SLO entry or an OpenSLO `kind: SLO` document.

`SloEntry` is what `agent.config` validates each `slos:` item against. An item
with `apiVersion`/`kind` is read as OpenSLO, anything else as the native spec;
both expose `to_spec()` (the one internal form) and `to_checks(config)` (one
`slo` check per SLO). `semantic_issues(config)` reports what one entry cannot
know alone (duplicate SLO names, unknown `sli.check`, no Prometheus to ask).
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Discriminator, Tag

from agent.check import CheckConfig
from agent.registry import RootConfig, Section, register_section
from agent.slo.openslo import OpenSloDocument
from agent.slo.spec import SloCheckConfig, SloSpec


def _entry_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "openslo" if "apiVersion" in value or "kind" in value else "slo"
    return "openslo" if isinstance(value, OpenSloDocument) else "slo"


SloEntry = Annotated[
    Union[Annotated[SloSpec, Tag("slo")], Annotated[OpenSloDocument, Tag("openslo")]],  # noqa: UP007
    Discriminator(_entry_kind),
]


def slo_specs(config: RootConfig | None) -> list[SloSpec]:
    """Every SLO of a config in the internal form, in config order."""
    return [entry.to_spec() for entry in getattr(config, "slos", [])]


def semantic_issues(config: RootConfig) -> list[tuple[tuple[Any, ...], str]]:
    """Problems across entries, located by `slos[i]...` paths."""
    out: list[tuple[tuple[Any, ...], str]] = []
    seen: dict[str, int] = {}
    for i, entry in enumerate(getattr(config, "slos", [])):
        name = entry.to_spec().name
        name_loc = ("metadata", "name") if isinstance(entry, OpenSloDocument) else ("name",)
        if name in seen:
            out.append((("slos", i, *name_loc), f"duplicate SLO name {name!r} (also used by slos[{seen[name]}])"))
        else:
            seen[name] = i
        out.extend((("slos", i, *loc), message) for loc, message in entry.semantic_issues(config))
    return out


__all__ = ["OpenSloDocument", "SloCheckConfig", "SloEntry", "SloSpec", "semantic_issues", "slo_specs"]


def _to_checks(entry: Any, config: RootConfig | None) -> list[CheckConfig]:
    return list(entry.to_checks(config))


def _check_names(raw: Any) -> dict[str, str]:
    """The check an SLO entry derives, from its raw data (it may be invalid): `slo-<name>`."""
    if not isinstance(raw, dict):
        return {}
    meta = raw.get("metadata")
    name = meta.get("name") if _entry_kind(raw) == "openslo" and isinstance(meta, dict) else raw.get("name")
    return {SloSpec.check_name_for(name): "slo"} if isinstance(name, str) else {}


register_section(Section("slos", SloEntry, to_checks=_to_checks, semantic_issues=semantic_issues, kind="SLO", order=20,
                         check_names=_check_names))

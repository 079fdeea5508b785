"""The config loader under fuzzing: every input loads or raises `ConfigError`, never anything else.

Inputs are drawn from the config's own JSON Schema (every section, check type,
receiver and source kind), with values that are often valid, sometimes of the
wrong type, out of range, huge or strange, plus YAML-level mutations (aliases,
duplicated lines, bad bytes) and included files. Examples are bounded and
derandomized so CI is deterministic; raise FUZZ_EXAMPLES locally to search
harder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from agent.config import ConfigBase, ConfigError, json_schema, load_config

SCHEMA = json_schema()
DEFS = SCHEMA.get("$defs", {})
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "200"))
#: issues about a whole file rather than one field (their path is the root)
FILE_LEVEL = ("invalid YAML", "not valid UTF-8", "cannot read config", "the config must", "the main config must",
              "an included file may only hold", "config file is larger")

WEIRD_STRINGS = st.sampled_from([
    "", " ", "x", "a" * 300, "Bad Name", "${UNSET_VAR}", "${SET_VAR}", "$${ESCAPED}", "${SET_VAR:-dflt}",
    "http://127.0.0.1:1/", "https://[::1]:99999/", "127.0.0.1:0", "host:port", ":9108", "[::1]:80",
    "0 3 * * *", "* * *", "99999999999d", "9" * 400 + "s", "1h30m", "0s", "-5s", "30s", "500ms",
    "runbooks/slo-burn.md", "runbooks/nope.md", "/etc/hostname", "\x00", "\u00e9\u4e2d\U0001f600", "SLO", "DataProduct",
    "critical", "warning", "info", "emergency", "v1", "postgresql://u:p@127.0.0.1:1/db",
    "sqlite:///nope.db", "1", "true", "null", "{", "*", "[a-z", "(?P<x", "UTC", "Mars/Olympus",
])
WEIRD_NUMBERS = st.one_of(
    st.integers(min_value=-(10 ** 30), max_value=10 ** 30),
    st.sampled_from([0, 1, -1, 65535, 65536, 2 ** 63, 10 ** 400, 0.5, -0.0, 1e308, float("inf"), float("nan")]),
)
LEAVES = st.one_of(st.none(), st.booleans(), WEIRD_NUMBERS, WEIRD_STRINGS, st.text(max_size=20))


def junk(depth: int = 0) -> st.SearchStrategy[Any]:
    """Any YAML value at all: the "wrong type" a user (or a bad template) may write."""
    if depth > 2:
        return LEAVES
    return st.one_of(LEAVES, st.lists(st.deferred(lambda: junk(depth + 1)), max_size=3),
                     st.dictionaries(st.one_of(WEIRD_STRINGS, st.integers(-3, 3)), st.deferred(lambda: junk(depth + 1)),
                                     max_size=3))


_STRATEGIES: dict[tuple[int, int], st.SearchStrategy[Any]] = {}


def from_schema(node: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Values shaped by a JSON Schema node, mostly conforming, sometimes junk (built once per node and depth)."""
    key = (id(node), min(depth, 8))
    if key not in _STRATEGIES:
        valid = _conforming(node, depth)
        _STRATEGIES[key] = st.one_of(valid, valid, valid, valid, junk(depth)) if depth else valid
    return _STRATEGIES[key]


def _conforming(node: dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
    if "$ref" in node:
        ref = node["$ref"].rsplit("/", 1)[-1]
        return st.deferred(lambda: from_schema(DEFS[ref], depth + 1))
    if "const" in node:
        return st.just(node["const"])
    if "enum" in node:
        return st.sampled_from(node["enum"])
    for key in ("anyOf", "oneOf"):
        if key in node:
            return st.one_of(*(from_schema(n, depth + 1) for n in node[key]))
    kind = node.get("type")
    if depth > 7:
        return LEAVES
    if kind == "object":
        return _object(node, depth)
    if kind == "array":
        items = node.get("items", {})
        return st.lists(from_schema(items, depth + 1) if items else junk(depth), max_size=3)
    if kind == "string":
        examples = node.get("examples") or []
        return st.one_of(WEIRD_STRINGS, *( [st.sampled_from(examples)] if examples else []))
    if kind in ("integer", "number"):
        bounds = [node[k] for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum") if k in node]
        return st.one_of(WEIRD_NUMBERS, st.sampled_from(bounds or [0]), st.integers(0, 100))
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    return junk(depth)


def _object(node: dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
    props: dict[str, Any] = node.get("properties", {})
    required = set(node.get("required", []))
    if not props:
        extra = node.get("additionalProperties")
        values = from_schema(extra, depth + 1) if isinstance(extra, dict) else junk(depth + 1)
        return st.dictionaries(WEIRD_STRINGS, values, max_size=3)

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, sub in props.items():
            if name in required or draw(st.integers(0, 3)) == 0:
                if name not in required and draw(st.integers(0, 12)) == 0:
                    continue  # sometimes a required key is missing
                out[name] = draw(from_schema(sub, depth + 1))
        if draw(st.integers(0, 10)) == 0:
            out[draw(WEIRD_STRINGS)] = draw(junk(depth + 1))  # an unknown key
        return out

    return build()


def _main_config() -> st.SearchStrategy[dict[str, Any]]:
    """A root with a few sections filled; keeps each example small enough to be fast."""
    props = SCHEMA["properties"]

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        keys = draw(st.lists(st.sampled_from(sorted(props)), min_size=1, max_size=4, unique=True))
        return {k: draw(from_schema(props[k], 1)) for k in keys}

    return build()


def _mutate_text(text: str, how: int, n: int) -> bytes:
    lines = text.splitlines()
    if how == 1 and lines:  # a line twice: duplicate keys, or a list item twice
        i = n % len(lines)
        lines.insert(i, lines[i])
    elif how == 2:  # aliases, also recursive and nested ones
        lines += ["x-anchors: &a [1, 2]", "x-use: [*a, *a]", "x-rec: &r [*r]"] if n % 2 else ["x: &b {k: v}", "y: *b"]
    elif how == 3 and lines:  # a byte that is not UTF-8
        return ("\n".join(lines[: n % len(lines)]) + "\n").encode() + b"\xff\xfe\n" + "\n".join(lines[n % len(lines):]).encode()
    elif how == 4 and lines:  # cut short
        lines = lines[: max(1, n % len(lines))]
    return ("\n".join(lines) + "\n").encode()


def _assert_loads_or_config_error(path: Path) -> None:
    try:
        config = load_config(path, env={"SET_VAR": "value-of-set-var"})
    except ConfigError as exc:
        assert exc.issues, "a ConfigError lists at least one issue"
        for issue in exc.issues:
            assert isinstance(issue.path, str) and issue.message and issue.file, issue
            # (a fuzzed secret may be a word of the message: redaction is process-wide)
            assert issue.path or issue.message.startswith(FILE_LEVEL) or "<redacted>" in issue.message, \
                f"an issue without a field path: {issue}"
            str(issue)
        return
    assert isinstance(config, ConfigBase)
    config.all_checks()


SEARCHING = "FUZZ_EXAMPLES" in os.environ  # a local search: random, and no slow shrinking


@settings(max_examples=EXAMPLES, derandomize=not SEARCHING, deadline=None, database=None,
          phases=[Phase.explicit, Phase.generate] if SEARCHING else list(Phase),
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                                 HealthCheck.function_scoped_fixture])
@given(main=_main_config(), included=st.one_of(st.none(), _main_config()), how=st.integers(0, 6),
       n=st.integers(0, 1000))
def test_every_input_loads_or_raises_config_error(tmp_path_factory: Any, main: dict[str, Any],
                                                  included: dict[str, Any] | None, how: int, n: int) -> None:
    tmp = tmp_path_factory.mktemp("fuzz")
    if included is not None:
        (tmp / "inc.yaml").write_bytes(_mutate_text(yaml.safe_dump(included, allow_unicode=True), how, n))
        main = {**main, "include": ["inc.yaml", "*.none"]}
    text = yaml.safe_dump(main, allow_unicode=True)
    path = tmp / "config.yaml"
    path.write_bytes(_mutate_text(text, how if included is None else 0, n))
    _assert_loads_or_config_error(path)

"""A config loads only the check types it names; the full scan agrees with the lazy lookup.

`agent.registry.find_type("http")` imports `checks/http.py` alone (a type's
module is named after it), so `sre-agent check` does not import every type
and build every model for one check. These tests pin the convention and
what still needs every type (an unknown one, the JSON Schema).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import checks
from agent import registry

ROOT = Path(__file__).resolve().parent.parent


def test_every_type_lives_in_the_module_named_after_it() -> None:
    for name, cls in registry.check_types().items():
        assert cls.__module__ == f"checks.{name}", (name, cls.__module__)
        assert registry.find_type(name) is cls


def test_every_module_that_registers_a_section_is_listed() -> None:
    registering = {f"checks.{p.stem}" for p in (ROOT / "checks").glob("*.py")
                   if re.search(r"^register_section\(", p.read_text(), re.M)}
    assert registering == set(checks.SECTION_MODULES)


def _modules_after_loading(tmp_path: Path, checks_yaml: str) -> tuple[list[str], str]:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(checks_yaml)
    code = ("import sys, json\nfrom agent.config import load_config, ConfigError\n"
            f"try:\n    load_config({str(cfg)!r}, env={{}}); err = ''\n"
            "except ConfigError as exc:\n    err = str(exc)\n"
            "print(json.dumps([sorted(m for m in sys.modules if m.startswith('checks.')), err]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT, check=True)
    mods, err = json.loads(out.stdout)
    return mods, err


def test_a_config_imports_only_the_types_it_names(tmp_path: Path) -> None:
    mods, err = _modules_after_loading(tmp_path, "checks:\n  - {name: web, type: http, url: 'http://127.0.0.1:9/'}\n")
    assert not err
    assert "checks.http" in mods
    assert not {"checks.backup", "checks.kubernetes", "checks.host", "checks.process", "checks.slo"} & set(mods)


def test_an_unknown_type_still_lists_every_type(tmp_path: Path) -> None:
    mods, err = _modules_after_loading(tmp_path, "checks:\n  - {name: web, type: htp, url: 'http://127.0.0.1:9/'}\n")
    assert "unknown type 'htp'; did you mean 'http'?" in err and "kubernetes" in err
    assert {"checks.backup", "checks.kubernetes"} <= set(mods)

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
from typing import Any

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
    assert registering == set(checks.SECTION_MODULES.values())


def _run_json(code: str) -> Any:
    """What a fresh interpreter running `code` prints, as JSON (a process of its own: nothing imported yet)."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT, check=True)
    return json.loads(out.stdout)


def _modules_after_loading(tmp_path: Path, checks_yaml: str) -> tuple[list[str], str]:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(checks_yaml)
    code = ("import sys, json\nfrom agent.config import load_config, ConfigError\n"
            f"try:\n    load_config({str(cfg)!r}, env={{}}); err = ''\n"
            "except ConfigError as exc:\n    err = str(exc)\n"
            "print(json.dumps([sorted(m for m in sys.modules if m.startswith('checks.')), err]))")
    mods, err = _run_json(code)
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


def test_each_declared_section_key_is_the_one_its_module_registers() -> None:
    declared = {**registry.SECTION_MODULES, **checks.SECTION_MODULES}
    code = ("import importlib, json, sys\nfrom agent import registry\nout = {}\n"
            f"for key, module in {declared!r}.items():\n"
            "    importlib.import_module(module); out[key] = key in registry.registered_sections()\n"
            "print(json.dumps([out, sorted(registry.registered_sections())]))")
    found, registered = _run_json(code)
    assert found == dict.fromkeys(declared, True) and registered == sorted(declared)


def _lazy_load(tmp_path: Path, text: str) -> tuple[list[str], str, list[str]]:
    cfg = tmp_path / "lazy.yaml"
    cfg.write_text(text)
    code = ("import sys, json\nfrom agent.config import load_config, ConfigError\nattrs = []\n"
            f"try:\n    c = load_config({str(cfg)!r}, env={{}}, lazy_sections=True); err = ''\n"
            "    attrs = sorted(k for k in ('alerting', 'slos', 'status_page', 'digest', 'data_products') if hasattr(c, k))\n"
            "except ConfigError as exc:\n    err = str(exc)\n"
            "owners = ('agent.alerting.config', 'agent.slo.config', 'agent.statuspage.config', 'agent.digest.config',"
            " 'checks.data_product')\n"
            "print(json.dumps([sorted(m for m in owners if m in sys.modules), err, attrs]))")
    mods, err, attrs = _run_json(code)
    return mods, err, attrs


def test_sre_agent_check_loads_only_the_sections_a_config_has(tmp_path: Path) -> None:
    web = "checks:\n  - {name: web, type: http, url: 'http://127.0.0.1:9/'}\n"
    mods, err, attrs = _lazy_load(tmp_path, web)
    assert (mods, err, attrs) == ([], "", [])
    mods, err, attrs = _lazy_load(tmp_path, web + "alerting:\n  receivers: [{name: ops, log: {}}]\n"
                                                    "  route: {receiver: ops}\n")
    assert mods == ["agent.alerting.config"] and not err and attrs == ["alerting"]
    # a section it has is validated as fully as ever
    mods, err, _ = _lazy_load(tmp_path, web + "alerting:\n  route: {receiver: nobody}\n")
    assert "alerting.route.receiver: unknown receiver 'nobody'" in err


def test_sre_agent_check_still_refuses_an_invalid_section(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("checks:\n  - {name: web, type: http, url: 'http://127.0.0.1:9/'}\nslos:\n  - {name: x}\n")
    out = subprocess.run([sys.executable, "-m", "agent.cli", "check", "-c", str(cfg), "web"], capture_output=True,
                         text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 2 and "config invalid" in out.stderr and "slos[0]" in out.stderr

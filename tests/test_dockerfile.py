"""The container image's Dockerfile, read as Docker would (no Docker engine here).

It must build from python:3.11-slim, install the package with the sql, s3 and
kubernetes extras, run as the numeric non-root user 65534 (Kubernetes can only
verify runAsNonRoot for a numeric USER), start `sre-agent run`, and give the
agent a writable state directory that is a volume, so the image works with a
read-only root filesystem; the Helm chart mounts its state volume there.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = "/var/lib/sre-agent"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse(text: str) -> list[Stage]:
    """Instructions per stage, continuation lines joined, comments and the parser directive dropped."""
    logical, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        logical.append(current + stripped)
        current = ""
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            m = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", args.strip(), re.I)
            assert m, f"cannot read FROM {args!r}"
            stages.append(Stage(m.group(1), m.group(2)))
        else:
            assert stages, f"{keyword} before FROM"
            stages[-1].instructions.append((keyword, args.strip()))
    return stages


STAGES = parse((ROOT / "Dockerfile").read_text())
FINAL = STAGES[-1]


def test_every_stage_is_python_311_slim():
    assert STAGES
    for stage in STAGES:
        assert re.fullmatch(r"python:3\.11-slim(@sha256:[0-9a-f]{64})?", stage.base), stage.base


def test_the_package_is_installed_with_the_sql_s3_and_kubernetes_extras():
    extras_defined = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    runs = " ".join(FINAL.all("RUN"))
    m = re.search(r"pip install [^&]*\"sre-agent\[([a-z0-9,]+)\]\"", runs)
    assert m, "the final stage pip-installs sre-agent[...]"
    extras = set(m.group(1).split(","))
    assert extras == {"sql", "s3", "kubernetes"}
    assert extras <= set(extras_defined)
    assert "--no-index" in runs, "the final stage installs only the wheels built in the build stage"
    built = " ".join(s for stage in STAGES[:-1] for s in stage.all("RUN"))
    assert '".[sql,s3,kubernetes]"' in built


def test_it_runs_as_numeric_non_root_65534():
    users = FINAL.all("USER")
    assert users == ["65534:65534"]
    index = [kw for kw, _ in FINAL.instructions].index("USER")
    assert "RUN" not in [kw for kw, _ in FINAL.instructions[index:]], "nothing runs as root after USER"


def test_entrypoint_is_sre_agent_run_in_exec_form():
    (entrypoint,) = FINAL.all("ENTRYPOINT")
    assert json.loads(entrypoint) == ["sre-agent", "run"]
    assert FINAL.all("CMD") == []
    assert FINAL.all("EXPOSE") == ["9108"]


def test_the_state_dir_is_a_writable_volume_for_a_read_only_root():
    runs = " ".join(FINAL.all("RUN"))
    assert f"chown 65534:65534 {STATE_DIR}" in runs
    assert [json.loads(v) for v in FINAL.all("VOLUME")] == [[STATE_DIR]]
    assert FINAL.all("WORKDIR") == [STATE_DIR], "the embedded quickstart's relative state_dir lands here"
    assert "PYTHONDONTWRITEBYTECODE=1" in " ".join(FINAL.all("ENV"))
    # The chart mounts its state volume at the same path and points the agent at it.
    helpers = (ROOT / "helm" / "sre-agent" / "templates" / "_helpers.tpl").read_text()
    assert f"mountPath: {STATE_DIR}" in helpers
    assert f'"state_dir" "{STATE_DIR}"' in helpers


def test_copied_sources_exist_and_nothing_is_fetched():
    for stage in STAGES:
        assert not stage.all("ADD"), "ADD can fetch URLs and unpack archives: use COPY"
        for args in stage.all("COPY"):
            if args.startswith("--from"):
                continue
            *sources, _dest = shlex.split(args)
            for src in sources:
                assert (ROOT / src).exists(), f"COPY {src}: no such path in the repository"

def test_the_build_context_is_an_allow_list_of_what_is_copied():
    ignore = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    assert ignore[0] == "*", "everything is excluded first (no .venv, .git or state files in the context)"
    for stage in STAGES:
        for args in stage.all("COPY"):
            if not args.startswith("--from"):
                for src in shlex.split(args)[:-1]:
                    assert f"!{src.rstrip('/')}" in ignore, f"COPY {src} but .dockerignore excludes it"


def test_the_charts_default_image_is_this_one():
    header = (ROOT / "Dockerfile").read_text()
    m = re.search(r"docker build -t (\S+):(\S+) \.", header)
    assert m, "the Dockerfile says how it is tagged"
    values = yaml.safe_load((ROOT / "helm" / "sre-agent" / "values.yaml").read_text())
    chart = yaml.safe_load((ROOT / "helm" / "sre-agent" / "Chart.yaml").read_text())
    assert values["image"]["repository"] == m.group(1)
    assert m.group(2) == chart["appVersion"]

"""The event reader (`agent.yamlfile._EventReader`) gives what PyYAML's composer and constructor give.

`yamlfile.load` reads configs from libyaml's events for speed (10,000 checks:
3.4 s -> 0.5 s) and hands what it does not handle to the composer; both paths
must agree on data, duplicate-key problems and errors, for every YAML file in
the repository and for the corners a config may use.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agent import yamlfile

ROOT = Path(__file__).resolve().parent.parent

CORNERS = {
    "scalars": "a: 1\nb: 1.5\nc: true\nd: ~\ne: ''\nf: 0x1F\ng: 1_000\nh: 2001-02-03\ni: 2001-02-03T04:05:06Z\nj: .inf\nk: 'true'\n",
    "tags": "a: !!str 123\nb: !!int '5'\nc: !!float 1\nd: !!bool yes\ne: !!binary aGk=\nf: ! 12\n",
    # (`1` and `true` in one mapping are one Python key: the event reader calls that a duplicate)
    "keys": "1: one\nfalse: yes\n~: none\n2001-02-03: date\n'q': quoted\n",
    "anchors": "base: &b {x: 1, y: [1, 2]}\nuse: *b\nlist: [*b, *b]\ns: &s text\nt: *s\n",
    "docs": "a: 1\n---\n- 2\n---\n...\n",
    "empty": "",
    "nested": "a: [[[{b: [c, {d: e}]}]]]\n",
    "duplicates": "a: 1\na: 2\nb: {c: 1, c: 2}\nl: [{x: 1, x: 1}]\n",
    "int-and-string-keys": "1: a\n'1': b\n",
    "multiline": "a: |\n  line 1\n  line 2\nb: >\n  folded\n  text\n",
    "merge": "base: &b {x: 1}\nm: {<<: *b, y: 2}\n",
}
ERRORS = {
    "undefined-alias": "a: *nope\n",
    "duplicate-anchor": "a: &x 1\nb: &x 2\n",
    "bad-date": "a: 2001-02-30\n",
    "unknown-tag": "a: !custom 1\n",
    "bad-int": "a: !!int x\n",
    "recursive": "x: &a [*a]\n",
    "deep": "x: " + "[" * 150 + "]" * 150 + "\n",
    "syntax": "a: [1, 2\n",
}


def _both(path: Path) -> tuple[object, object]:
    text = yamlfile.read_text(path)
    out = []
    for read in (lambda: yamlfile.load(path), lambda: yamlfile._load_composed(text, str(path))):
        try:
            docs, problems = read()
            out.append(([d.data for d in docs], [(p.message, p.line, p.path) for p in problems]))
        except yamlfile.YamlFileError as exc:
            out.append(("error", exc.problem.message, exc.problem.line))
    return out[0], out[1]


def _repo_yaml() -> list[Path]:
    skip = {".git", ".venv", "node_modules"}
    return sorted(p for p in ROOT.rglob("*.y*ml") if not skip & set(p.relative_to(ROOT).parts)
                  and p.suffix in (".yaml", ".yml") and "templates" not in p.parts)


@pytest.mark.parametrize("case", sorted(CORNERS))
def test_corners_read_the_same(tmp_path: Path, case: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(CORNERS[case])
    fast, composed = _both(path)
    assert fast == composed


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_errors_are_the_same(tmp_path: Path, case: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(ERRORS[case])
    fast, composed = _both(path)
    assert fast[0] == "error" and fast == composed


def test_every_yaml_file_in_the_repository_reads_the_same() -> None:
    files = _repo_yaml()
    assert len(files) > 10
    for path in files:
        fast, composed = _both(path)
        assert fast == composed, path


def test_lines_are_read_only_when_asked_and_match(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("agent:\n  listen: x\nchecks:\n  - name: a\n    type: tcp\n    port: 1\n")
    [doc], _ = yamlfile.load(path)
    assert doc.marks.later is not None and not doc.marks.lines
    assert doc.marks.line_for(("checks", 0, "port")) == 6
    assert doc.marks.line_for(("agent", "listen", "deeper")) == 2
    assert doc.marks.later is None


def test_equal_plain_scalars_share_one_object(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("checks:\n" + "".join(f"  - {{name: c{i}, team: payments, timeout: 5s}}\n" for i in range(3)))
    [doc], _ = yamlfile.load(path)
    teams = {id(c["team"]) for c in doc.data["checks"]}
    assert len(teams) == 1


def test_equal_quoted_scalars_share_one_object(tmp_path: Path) -> None:
    path = tmp_path / "c.json"  # JSON is YAML whose every key and string is quoted
    path.write_text('{"checks": [' + ", ".join(f'{{"name": "c{i}", "team": "payments"}}' for i in range(3)) + "]}")
    [doc], _ = yamlfile.load(path)
    checks = doc.data["checks"]
    assert len({id(c["team"]) for c in checks}) == 1
    assert len({id(k) for c in checks for k in c if k == "name"}) == 1

"""What a one-shot run found, for a person or a CI system: terminal lines, JUnit XML, Markdown, JSON.

`sre-agent check` runs a selection of checks (a suite: `--tag smoke`) and
hands the outcome here as a `Report`. The ops guides speak of PASSED /
FAILED / WARNING / SKIPPED, CI systems read JUnit XML, a deploy ticket takes
Markdown and scripts take JSON; all four are rendered from the same entries,
worst first. A check that is in the suite but was not run (disabled, or left
out by another filter) is an entry too, SKIPPED with the reason, so a report
never silently shrinks. Pure formatting: no I/O, time passed in.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from xml.etree import ElementTree as ET

from agent import humanize
from agent.core import CheckResult, Status

Format = Literal["junit", "markdown", "json"]
FORMATS: tuple[Format, ...] = ("junit", "markdown", "json")
#: report file suffix -> format, when `--report-format` is not given
SUFFIXES: dict[str, Format] = {".xml": "junit", ".md": "markdown", ".markdown": "markdown", ".json": "json"}
SKIPPED = "SKIPPED"
#: a result in the ops guides' words
OUTCOME = {Status.OK: "PASSED", Status.WARNING: "WARNING", Status.CRITICAL: "FAILED", Status.UNKNOWN: "FAILED"}
#: worst first: what the on-call person reads first
_RANK = {Status.CRITICAL: 0, Status.UNKNOWN: 1, Status.WARNING: 2, Status.OK: 3}
_COUNT_ORDER = ("OK", "WARNING", "CRITICAL", "UNKNOWN", SKIPPED)
#: characters XML 1.0 cannot carry at all (a command's output may hold them)
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass
class Entry:
    """One check of the run: its result, or why it was skipped."""

    check: str
    type: str
    result: CheckResult | None = None
    skipped: str | None = None
    tags: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def status(self) -> str:
        """OK / WARNING / CRITICAL / UNKNOWN, or SKIPPED."""
        return self.result.status.name if self.result is not None else SKIPPED

    @property
    def outcome(self) -> str:
        """PASSED / WARNING / FAILED / SKIPPED."""
        return OUTCOME[self.result.status] if self.result is not None else SKIPPED

    @property
    def failing(self) -> bool:
        return self.result is not None and self.result.status != Status.OK

    @property
    def summary(self) -> str:
        if self.result is None:
            return self.skipped or "skipped"
        return self.result.summary

    def to_dict(self) -> dict[str, Any]:
        if self.result is not None:
            return {**self.result.to_dict(), "result": self.outcome, "tags": list(self.tags)}
        return {"check": self.check, "type": self.type, "status": SKIPPED, "code": None, "summary": self.summary,
                "skipped": self.skipped, "result": SKIPPED, "observations": {}, "duration_seconds": 0.0,
                "labels": dict(self.labels), "details": {}, "timestamp": None, "tags": list(self.tags)}


@dataclass
class Report:
    entries: list[Entry]
    started_at: float
    duration_seconds: float
    #: what was run, in words: "suite smoke", "checks web-*", "all checks"
    title: str = "sre-agent check"

    def ordered(self) -> list[Entry]:
        """Worst first (CRITICAL, UNKNOWN, WARNING, OK, then SKIPPED); otherwise in selection order."""
        return sorted(self.entries, key=lambda e: _RANK[e.result.status] if e.result is not None else len(_RANK))

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(_COUNT_ORDER, 0)
        for e in self.entries:
            out[e.status] += 1
        return out

    @property
    def results(self) -> list[CheckResult]:
        return [e.result for e in self.entries if e.result is not None]

    @property
    def exit_code(self) -> int:
        """The Nagios code of the worst result run (skipped checks do not count)."""
        return int(Status.worst([r.status for r in self.results]))

    def summary_line(self) -> str:
        """`9 checks: 5 OK, 1 WARNING, 3 CRITICAL in 1.2s`."""
        n = len(self.entries)
        parts = [f"{count} {status}" for status, count in self.counts().items() if count]
        head = f"{n} check{'s' if n != 1 else ''}"
        return head + (": " + ", ".join(parts) if parts else "") + f" in {_elapsed(self.duration_seconds)}"


def _elapsed(seconds: float) -> str:
    return f"{seconds:.1f}s" if seconds < 60 else humanize.duration(seconds)


def observations_text(observations: Mapping[str, float], now: float) -> str:
    """`latency 234ms · status code 503 · last update 2026-05-01 03:04 UTC (3h ago)`."""
    return " · ".join(f"{humanize.label(k)} {humanize.observation(k, v, now)}" for k, v in sorted(observations.items()))


def one_line(text: str) -> str:
    return " ".join(text.split())


# -- the terminal ----------------------------------------------------------------------

@dataclass(frozen=True)
class Line:
    """A line of terminal output; `status` is set on a check's line (the CLI colours it)."""

    text: str
    status: str | None = None


def text_lines(report: Report, *, verbose: bool = False, failed_only: bool = False, now: float) -> list[Line]:
    """One line per check, worst first; observations under failing checks (every check with `verbose`)."""
    shown = [e for e in report.ordered() if not failed_only or e.failing]
    width = min(40, max((len(e.check) for e in shown), default=0))
    type_width = min(14, max((len(e.type) for e in shown), default=0))
    out: list[Line] = []
    for e in shown:
        took = f"  [{humanize.precise_duration(e.result.duration_seconds)}]" if e.result is not None else ""
        out.append(Line(f"{e.check:<{width}}  {e.type:<{type_width}}  {one_line(e.summary)}{took}", e.status))
        if e.result is not None and e.result.observations and (verbose or e.failing):
            out.append(Line(" " * 10 + observations_text(e.result.observations, now)))
    return out


# -- files -------------------------------------------------------------------------------

def format_for(path: str, explicit: str | None) -> Format:
    """The report format: `--report-format`, else from the file's suffix."""
    if explicit is not None:
        if explicit not in FORMATS:
            raise ValueError(f"unknown report format {explicit!r}; allowed: {', '.join(FORMATS)}")
        return explicit  # type: ignore[return-value]
    lowered = path.lower()
    for suffix, fmt in SUFFIXES.items():
        if lowered.endswith(suffix):
            return fmt
    raise ValueError(f"cannot tell the report format from {path!r}: name it *.xml (JUnit), *.md (Markdown) or "
                     f"*.json, or pass --report-format {'|'.join(FORMATS)}")


def render(report: Report, fmt: Format, now: float) -> str:
    if fmt == "junit":
        return to_junit(report)
    if fmt == "markdown":
        return to_markdown(report, now)
    return to_json(report)


def to_json(report: Report) -> str:
    """The same document as `sre-agent check -o json`: every entry, in selection order."""
    return json.dumps([e.to_dict() for e in report.entries], indent=2, default=str)


def _xml_text(text: str) -> str:
    return _XML_INVALID.sub("\N{REPLACEMENT CHARACTER}", text)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def to_junit(report: Report) -> str:
    """JUnit XML as Jenkins, GitLab, GitHub Actions and Buildkite read it: one testcase per check.

    CRITICAL is a `<failure>`, UNKNOWN an `<error>` (the check could not tell), a skipped check
    `<skipped message=reason>`; WARNING passes (JUnit has no warning) with its status in the
    testcase's properties and output, as the exit code 1 already says.
    """
    counts = report.counts()
    failures, errors, skipped = counts["CRITICAL"], counts["UNKNOWN"], counts[SKIPPED]
    attrs = {"name": report.title, "tests": str(len(report.entries)), "failures": str(failures),
             "errors": str(errors), "skipped": str(skipped), "time": f"{report.duration_seconds:.3f}",
             "timestamp": _iso(report.started_at)}
    root = ET.Element("testsuites", attrs)
    suite = ET.SubElement(root, "testsuite", {**attrs, "hostname": socket.gethostname()})
    for e in report.ordered():
        case = ET.SubElement(suite, "testcase", {
            "name": e.check, "classname": f"sre-agent.{e.type}",
            "time": f"{e.result.duration_seconds:.3f}" if e.result is not None else "0.000"})
        props = ET.SubElement(case, "properties")
        ET.SubElement(props, "property", {"name": "status", "value": e.status})
        for tag in e.tags:
            ET.SubElement(props, "property", {"name": "tag", "value": _xml_text(tag)})
        for key, value in sorted(e.labels.items()):
            ET.SubElement(props, "property", {"name": f"label.{key}", "value": _xml_text(value)})
        summary = _xml_text(one_line(e.summary))
        if e.result is None:
            ET.SubElement(case, "skipped", {"message": summary})
            continue
        body = _xml_text(_case_output(e, report.started_at))
        if e.result.status == Status.CRITICAL:
            ET.SubElement(case, "failure", {"message": summary, "type": "CRITICAL"}).text = body
        elif e.result.status == Status.UNKNOWN:
            ET.SubElement(case, "error", {"message": summary, "type": "UNKNOWN"}).text = body
        ET.SubElement(case, "system-out").text = body
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _case_output(e: Entry, now: float) -> str:
    assert e.result is not None
    lines = [f"{e.result.status.name}: {e.result.summary}"]
    lines += [f"{k} = {humanize.observation(k, v, now)}" for k, v in sorted(e.result.observations.items())]
    return "\n".join(lines)


def _cell(text: str) -> str:
    """Markdown table cell: one line, pipes escaped."""
    return one_line(text).replace("\\", "\\\\").replace("|", "\\|") or " "


def to_markdown(report: Report, now: float) -> str:
    """A PASSED / FAILED / WARNING / SKIPPED table (worst first), then what the failing checks observed."""
    counts = report.counts()
    words = [f"{n} {w}" for w, n in (("PASSED", counts["OK"]), ("WARNING", counts["WARNING"]),
                                     ("FAILED", counts["CRITICAL"] + counts["UNKNOWN"]), (SKIPPED, counts[SKIPPED])) if n]
    lines = [f"# {report.title}", "",
             f"{humanize.when(report.started_at)} · {len(report.entries)} checks: {', '.join(words) or 'none'} "
             f"in {_elapsed(report.duration_seconds)}", "",
             "| result | check | type | status | summary | duration |", "|---|---|---|---|---|---|"]
    for e in report.ordered():
        took = humanize.precise_duration(e.result.duration_seconds) if e.result is not None else ""
        lines.append(f"| {e.outcome} | {_cell(e.check)} | {_cell(e.type)} | {e.status} | {_cell(e.summary)} | {took or ' '} |")
    failing = [e for e in report.ordered() if e.failing and e.result is not None and e.result.observations]
    if failing:
        lines += ["", "## Observations of failing checks"]
        for e in failing:
            assert e.result is not None
            lines += ["", f"**{_cell(e.check)}** ({e.status})", ""]
            lines += [f"- {humanize.label(k)}: {humanize.observation(k, v, now)}"
                      for k, v in sorted(e.result.observations.items())]
    return "\n".join(lines) + "\n"

"""DNS probe: does a name resolve, to what, and how fast, from a given server?

A service is down for its users when its name is: a deleted record, a
resolver that SERVFAILs or a record pointing at the old address. dnspython's
async resolver asks one server (or the system's) with the check's timeout as
its lifetime, without search domains or caching, so each run is a real
query. Answers are compared in a normal form: lowercase, no trailing dots,
IP addresses canonical, TXT strings joined and unquoted. dnspython is
imported by the first query, not with the config model.
"""

from __future__ import annotations

import ipaddress
import time
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from agent.core import CheckResult, Status
from agent.durations import human
from agent.secrets import redact
from checks.base import Check, CheckConfig, DurationThresholds, Model, named_levels
from checks.tcp import latency_finding, seconds_text

if TYPE_CHECKING:
    import dns.asyncresolver
    import dns.resolver

RecordType = Literal["A", "AAAA", "CNAME", "MX", "TXT", "NS", "SRV", "PTR", "SOA", "CAA"]
_RECORDS = ("A", "AAAA", "CNAME", "MX", "TXT", "NS", "SRV", "PTR", "SOA", "CAA")


def normalize(record: str, value: str) -> str:
    """The form answers and expectations are compared in."""
    text = value.strip()
    if record == "TXT":
        return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text
    if record in ("A", "AAAA"):
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            return text.lower()
    return " ".join(part.rstrip(".") for part in text.lower().split())


def parse_server(server: str) -> tuple[str, int]:
    """`10.0.0.2`, `10.0.0.2:5353`, `fd00::1` or `[fd00::1]:53` -> (address, port)."""
    host, port = server.strip(), "53"
    if host.startswith("["):
        host, _, rest = host[1:].partition("]")
        port = rest.removeprefix(":") or port
    elif host.count(":") == 1:
        host, port = host.split(":")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"server must be an IP address with an optional port, e.g. 10.0.0.2, "
                         f"10.0.0.2:5353 or [fd00::1]:53; got {server!r}") from None
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"server port must be 1-65535, got {port!r}")
    return host, int(port)


class DnsExpect(Model):
    contains: list[str] = Field(default_factory=list, description="values that must all be among the answers")
    equals: list[str] | None = Field(default=None, description="the exact set of answers")
    min_answers: int = Field(default=1, ge=0, description="fewest answers that pass; 0 allows an empty answer")


class DnsConfig(CheckConfig):
    type: Literal["dns"]
    query: str = Field(description="name to resolve (an IP address for PTR)")
    record: RecordType = Field(default="A", description="record type: " + ", ".join(_RECORDS))
    server: str | None = Field(default=None, description="nameserver IP[:port]; default: the system resolver")
    tcp: bool = Field(default=False, description="query over TCP instead of UDP")
    expect: DnsExpect = Field(default_factory=DnsExpect)
    latency: DurationThresholds | None = Field(default=None, description="thresholds on the query time")

    def observation_thresholds(self) -> dict[str, dict[str, float]]:
        return named_levels(query_seconds=self.latency.levels() if self.latency else {})

    @field_validator("record", mode="before")
    @classmethod
    def _record(cls, v: Any) -> Any:
        if isinstance(v, str) and v.upper() in _RECORDS:
            return v.upper()
        raise ValueError(f"unknown record type {v!r}; allowed: {', '.join(_RECORDS)}")

    @field_validator("server")
    @classmethod
    def _server(cls, v: str | None) -> str | None:
        if v is not None:
            parse_server(v)
        return v

    @field_validator("query")
    @classmethod
    def _query(cls, v: str) -> str:
        if not v.strip() or " " in v.strip():
            raise ValueError(f"query must be a domain name, got {v!r}")
        return v.strip()

    @field_validator("expect")
    @classmethod
    def _addresses(cls, v: DnsExpect, info: ValidationInfo) -> DnsExpect:
        record = info.data.get("record")
        if record in ("A", "AAAA"):
            version = 4 if record == "A" else 6
            for value in [*v.contains, *(v.equals or [])]:
                try:
                    ok = ipaddress.ip_address(value).version == version
                except ValueError:
                    ok = False
                if not ok:
                    raise ValueError(f"{value!r} is not an IPv{version} address, as {record} answers are")
        return v

    def qname(self) -> str:
        """The name asked for: a PTR query for an IP address asks for its in-addr/ip6 name."""
        if self.record == "PTR" and _is_ip(self.query):
            import dns.reversename

            return dns.reversename.from_address(self.query).to_text()
        return self.query


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _answer_text(record: str, rdata: Any) -> str:
    if record == "TXT":
        return normalize(record, b"".join(rdata.strings).decode("utf-8", errors="replace"))
    return normalize(record, rdata.to_text())


def _shown(values: list[str], limit: int = 5) -> str:
    text = ", ".join(values[:limit])
    return text + (f" and {len(values) - limit} more" if len(values) > limit else "")


class DnsCheck(Check):
    type = "dns"
    runbooks = {"": "runbooks/dns-resolution-failed.md"}
    Config = DnsConfig
    timeout_status = Status.CRITICAL
    config: DnsConfig
    _resolver: dns.asyncresolver.Resolver | None = None

    async def _get_resolver(self) -> dns.asyncresolver.Resolver:
        if self._resolver is None:
            import dns.asyncresolver  # here, not at module level: a config without dns checks never loads it
            import dns.nameserver

            if self.config.server is None:
                # reads /etc/resolv.conf: a blocking file read, so off the loop, once per check
                resolver = await self.in_thread(dns.asyncresolver.Resolver)
            else:
                address, port = parse_server(self.config.server)
                resolver = dns.asyncresolver.Resolver(configure=False)
                resolver.nameservers = [dns.nameserver.Do53Nameserver(address, port)]
            resolver.timeout = resolver.lifetime = self.timeout
            resolver.cache = None
            self._resolver = resolver
        return self._resolver

    async def run(self) -> CheckResult:
        import dns.exception
        import dns.resolver

        cfg = self.config
        label = f"{cfg.record} {cfg.query}"
        server = cfg.server or "system resolver"
        details: dict[str, Any] = {"query": cfg.query, "record": cfg.record, "server": server}
        try:
            resolver = await self._get_resolver()
        except dns.resolver.NoResolverConfiguration:
            return self.result(Status.UNKNOWN, "no system resolver configured (no nameserver in /etc/resolv.conf); "
                                               "set server:", **details)
        started = time.perf_counter()
        obs: dict[str, float] = {}
        answers: list[str] = []
        try:
            answer = await resolver.resolve(cfg.qname(), cfg.record, tcp=cfg.tcp, search=False,
                                            lifetime=self.timeout)
            answers = sorted(_answer_text(cfg.record, r) for r in answer)
            if answer.rrset is not None:
                obs["ttl_seconds"] = float(answer.rrset.ttl)
        except dns.resolver.NXDOMAIN:
            return self._fail(f"{label}: NXDOMAIN (name does not exist) from {server}", started, details)
        except dns.resolver.NoAnswer:
            answers = []
        except dns.exception.Timeout:
            return self._fail(f"{label}: timed out after {seconds_text(self.timeout)} "
                              f"querying {server}", started, details)
        except dns.resolver.NoNameservers as exc:
            return self._fail(f"{label}: no nameserver answered ({_nameserver_errors(exc)})", started, details)
        except dns.exception.DNSException as exc:
            return self._fail(f"{label}: query failed: {exc}", started, details)
        elapsed = time.perf_counter() - started
        obs.update(query_seconds=elapsed, answers=float(len(answers)))
        details["answers"] = answers
        findings = self._compare(answers)
        latency = latency_finding(cfg.latency, elapsed, "query time")
        if latency is not None:
            findings.append(latency)
        got = _shown(answers) if answers else f"no {cfg.record} records"
        head = f"{label}: {got} in {human(elapsed)}"
        if not findings:
            return self.result(Status.OK, redact(head), obs, **details)
        status = Status.worst([s for s, _ in findings])
        return self.result(status, redact(f"{head}; " + "; ".join(m for _, m in findings)), obs, **details)

    def _compare(self, answers: list[str]) -> list[tuple[Status, str]]:
        expect, record = self.config.expect, self.config.record
        out: list[tuple[Status, str]] = []
        if len(answers) < expect.min_answers:
            out.append((Status.CRITICAL, f"{len(answers)} answers, expected at least {expect.min_answers}"))
        missing = [v for v in expect.contains if normalize(record, v) not in answers]
        if missing:
            out.append((Status.CRITICAL, f"missing {_shown(missing)}"))
        if expect.equals is not None:
            wanted = sorted({normalize(record, v) for v in expect.equals})
            if wanted != sorted(set(answers)):
                out.append((Status.CRITICAL, f"expected exactly {_shown(wanted)}"))
        return out

    def _fail(self, summary: str, started: float, details: dict[str, Any]) -> CheckResult:
        obs = {"query_seconds": time.perf_counter() - started, "answers": 0.0}
        return self.result(Status.CRITICAL, redact(summary), obs, **details)


def _nameserver_errors(exc: dns.resolver.NoNameservers) -> str:
    errors = exc.kwargs.get("errors") or []
    parts = []
    for err in errors[:3]:
        server, _tcp, port, problem = err[:4]
        what = problem if isinstance(problem, str) else (str(problem) or type(problem).__name__)
        parts.append(f"{server}:{port} {what}")
    return "; ".join(parts) or str(exc)

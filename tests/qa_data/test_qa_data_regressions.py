"""Regressions found by trying SLOs, freshness and backups as a new user would.

- an epoch in milliseconds read as seconds crashed the freshness check
  ("check raised ValueError: year 58864 is out of range") instead of UNKNOWN
  naming the value and the unit to set;
- restic's "unable to open config file" for an unreachable REST server was
  reported as "repository does not exist";
- an SLO objective written "99.9%" (it is a percentage) was refused with
  pydantic's "unable to parse string as a number", not saying what is allowed.
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from pydantic import ValidationError

from agent.core import Status
from agent.slo.spec import SloSpec
from checks._freshness_sources import FreshnessError, read_prometheus
from checks._values import NotATimestamp, to_epoch
from tests.backup.util import backup_check, run_at
from tests.freshness.util import freshness_check, run

NOW = 1_795_000_000.0


def _sqlite_check(tmp_path: Path, query: str, **source: object):
    return freshness_check(source={"kind": "sql", "dsn": f"sqlite:///{tmp_path / 'f.db'}", "query": query, **source},
                           warn_after="1h", error_after="4h")


@pytest.mark.parametrize(("value", "unit"), [(1_795_000_000_000, "ms"), (1_795_000_000_000_000, "us"),
                                             (1_795_000_000_000_000_000, "ns")])
async def test_epoch_in_a_smaller_unit_is_unknown_with_the_unit_to_set(tmp_path: Path, value: int, unit: str) -> None:
    result = await run(_sqlite_check(tmp_path, f"select {value}"), now=NOW)
    assert result.status == Status.UNKNOWN
    assert "raised" not in result.summary
    assert f"got int {value}" in result.summary
    assert f"set epoch_unit: {unit}" in result.summary


async def test_epoch_milliseconds_with_epoch_unit_ms_still_works(tmp_path: Path) -> None:
    result = await run(_sqlite_check(tmp_path, "select 1794999400000", epoch_unit="ms"), now=NOW)
    assert result.status == Status.OK
    assert result.observations["age_seconds"] == 600


def test_to_epoch_refuses_times_past_year_9999_and_guesses_the_unit() -> None:
    with pytest.raises(NotATimestamp) as caught:
        to_epoch("1795000000000")
    assert caught.value.unit_guess == "ms"
    assert to_epoch(253402300799) == 253402300799.0


async def test_prometheus_timestamp_in_milliseconds_is_unknown_not_a_crash() -> None:
    class Answer(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": [
                {"metric": {}, "value": [NOW, "1795000000000"]}]}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return None

    server = HTTPServer(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        check = freshness_check(source={"kind": "prometheus", "query": "max(etl_last_success_ms)",
                                        "url": f"http://127.0.0.1:{server.server_address[1]}"}, warn_after="1h")
        result = await run(check, now=NOW)
        with pytest.raises(FreshnessError) as caught:
            await read_prometheus(check.config.source, None, 5.0)  # type: ignore[arg-type]
    finally:
        server.shutdown()
        server.server_close()
    assert result.status == Status.UNKNOWN
    assert "raised" not in result.summary
    assert "epoch ms" in result.summary and "convert it to seconds in the query" in result.summary
    assert caught.value.status == Status.UNKNOWN


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_unreachable_restic_rest_server_is_not_reported_as_a_missing_repository(tmp_path: Path) -> None:
    if shutil.which("restic") is None:
        pytest.fail("restic is not installed; run scripts/test-deps.sh")
    pw = tmp_path / "pw"
    pw.write_text("Restic-Pass-123\n")
    repo = f"rest:http://user:Rest-Secret-77@127.0.0.1:{_closed_port()}/"
    result = await run_at(backup_check(source={"kind": "restic", "repository": repo, "password_file": str(pw),
                                               "cache_dir": str(tmp_path / "cache")}))
    assert result.status == Status.CRITICAL
    assert "repository unreachable" in result.summary
    assert "does not exist" not in result.summary
    assert "Rest-Secret-77" not in result.summary


def _spec(objective: object) -> SloSpec:
    return SloSpec.model_validate({"name": "a", "service": "api", "objective": objective, "sli": {"check": "api"}})


@pytest.mark.parametrize("written", ["99.9%", "99.9 %", "99.9"])
def test_slo_objective_may_be_written_with_a_percent_sign(written: str) -> None:
    assert _spec(written).objective_ratio == 0.999


def test_slo_objective_text_error_says_what_is_allowed() -> None:
    with pytest.raises(ValidationError) as caught:
        _spec("high")
    message = caught.value.errors()[0]["msg"]
    assert "objective is a percentage such as 99.9" in message and "'high'" in message
    with pytest.raises(ValidationError, match="between 0 and 100"):
        _spec("100%")

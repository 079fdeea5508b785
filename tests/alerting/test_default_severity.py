"""A check without `severity:` pages only for CRITICAL results: WARNING results are warnings."""

from __future__ import annotations

from agent.core import Status
from tests.alerting.helpers import config, feed, make_engine, wait

CONFIG = """
checks:
  - {name: cert-expiry, type: command, command: ["true"]}
alerting:
  route:
    receiver: chat
    group_wait: 0s
    group_interval: 1m
    routes:
      - {match: {severity: critical}, receiver: pager}
  receivers:
    - {name: chat, log: {}}
    - {name: pager, log: {}}
"""


async def test_warning_results_of_a_check_without_severity_do_not_page(tmp_path, store, clock, receivers):
    engine = await make_engine(config(tmp_path, CONFIG), store, clock, receivers)
    await feed(engine, clock, "cert-expiry", [Status.WARNING, Status.WARNING])
    await wait(engine, clock, 0)
    assert receivers["chat"].events() == [("cert-expiry", "firing", "warning")]
    assert receivers["pager"].events() == []


async def test_critical_results_of_a_check_without_severity_page_as_critical(tmp_path, store, clock, receivers):
    engine = await make_engine(config(tmp_path, CONFIG), store, clock, receivers)
    await feed(engine, clock, "cert-expiry", [Status.CRITICAL, Status.CRITICAL])
    await wait(engine, clock, 0)
    assert receivers["pager"].events() == [("cert-expiry", "firing", "critical")]
    assert receivers["chat"].events() == []

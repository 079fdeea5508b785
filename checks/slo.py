"""The `slo` check type: evaluates one SLO (built from a `slos:` entry) on its schedule.

Each SLO is its own check so a Prometheus outage or a broken query makes that
SLO UNKNOWN while the others keep evaluating. The math lives in `agent.slo`;
this module only wires a source (Prometheus or the store's probe history) to
the evaluation, with the time injected so burn windows are testable.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from agent import catalogue
from agent.core import CheckResult
from agent.slo.evaluate import BUDGET_REMAINING, BURN_RATE, OBJECTIVE, SLI, evaluate, unknown_result
from agent.slo.sources import HistorySli, PrometheusSli, SliSource, SourceError
from agent.slo.spec import SloCheckConfig
from agent.slo.windows import evaluation_windows
from checks.base import Check, MetricFamily

if TYPE_CHECKING:
    from agent.context import CheckContext


class SloCheck(Check):
    type = "slo"
    runbooks = {"": "runbooks/slo-burn.md"}
    Config = SloCheckConfig
    metric_families: ClassVar[dict[str, MetricFamily]] = catalogue.families(OBJECTIVE, SLI, BUDGET_REMAINING, BURN_RATE,
                                                                            make=MetricFamily)

    def __init__(self, config: SloCheckConfig, context: CheckContext, clock: Callable[[], float] = time.time) -> None:
        super().__init__(config, context)
        self.config: SloCheckConfig = config
        self.clock = clock

    def source(self) -> SliSource | None:
        spec = self.config.slo
        if spec.sli.check is not None:
            return HistorySli(spec, self.context.store)
        url = self.config.prometheus_url or self.context.prometheus_url
        if url is None:
            return None
        per_query = spec.prometheus.timeout.total_seconds() if spec.prometheus else 10.0
        token = spec.prometheus.bearer_token if spec.prometheus else None
        return PrometheusSli(spec, url, min(per_query, self.timeout), token.get_secret_value() if token else None)

    async def run(self) -> CheckResult:
        spec = self.config.slo
        source = self.source()
        if source is None:
            return unknown_result(spec, "no Prometheus configured (set prometheus.url or agent.prometheus_url)")
        try:
            readings = await source.read(evaluation_windows(spec.window), self.clock())
        except SourceError as exc:
            return unknown_result(spec, str(exc))
        return evaluate(spec, readings).to_result()

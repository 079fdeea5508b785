"""What a check may use besides its own config: shared, expensive-to-build things.

TLS contexts are built once per (verify, CA, client cert) and reused: building
one per probe costs tens of CPU-ms. The state store is here for checks that
read history (an SLO over the agent's own probes).
"""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from agent.store import Store


class AgentSettingsView(Protocol):
    """The agent-wide settings a check may read (`agent.config.AgentSettings`)."""

    @property
    def prometheus_url(self) -> str | None: ...


class ConfigView(Protocol):
    """The running config as checks see it (`agent.config.ConfigBase`): the seam stays below config."""

    @property
    def agent(self) -> AgentSettingsView: ...


@dataclass
class CheckContext:
    config: ConfigView | None = None
    store: Store | None = None
    #: shared objects a check type keeps for its lifetime (sessions, pools), keyed by the type
    shared: dict[str, Any] = field(default_factory=dict)
    _ssl: dict[tuple[Any, ...], ssl.SSLContext] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def ssl_context(self, verify: bool = True, ca_file: str | None = None,
                    cert_file: str | None = None, key_file: str | None = None) -> ssl.SSLContext:
        key = (verify, ca_file, cert_file, key_file)
        with self._lock:
            ctx = self._ssl.get(key)
            if ctx is None:
                ctx = ssl.create_default_context(cafile=ca_file)
                if not verify:
                    ctx.check_hostname = False
                    ctx.verify_mode = ssl.CERT_NONE
                if cert_file:
                    ctx.load_cert_chain(cert_file, key_file)
                self._ssl[key] = ctx
            return ctx

    @property
    def prometheus_url(self) -> str | None:
        return self.config.agent.prometheus_url if self.config is not None else None

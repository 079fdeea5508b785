"""The layering holds: no import cycle anywhere in agent/ and checks/, and the agent finds check types by discovery.

`lint-imports` (run by `make test`) enforces the layers contract in pyproject.toml;
this test adds what it does not: no cycle even counting `if TYPE_CHECKING:` imports
and imports inside functions, and no module of `agent` naming `checks` at all.
"""

from __future__ import annotations

import grimp


def _graph(exclude_type_checking: bool) -> grimp.ImportGraph:
    return grimp.build_graph("agent", "checks", exclude_type_checking_imports=exclude_type_checking, cache_dir=None)


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            if i < len(edges[node]):
                work.append((node, i + 1))
                nxt = edges[node][i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return found


def test_no_import_cycles_counting_lazy_and_type_checking_imports() -> None:
    assert _cycles(_graph(exclude_type_checking=False)) == []


def test_cycle_finder_finds_a_cycle() -> None:
    class Fake:
        modules = {"a", "b", "c"}

        @staticmethod
        def find_modules_directly_imported_by(m: str) -> set[str]:
            return {"a": {"b"}, "b": {"a"}, "c": {"a"}}[m]

    assert _cycles(Fake()) == [["a", "b"]]  # type: ignore[arg-type]


def test_agent_never_imports_checks() -> None:
    graph = _graph(exclude_type_checking=False)
    offenders = sorted((m, d) for m in graph.modules if m == "agent" or m.startswith("agent.")
                       for d in graph.find_modules_directly_imported_by(m) if d == "checks" or d.startswith("checks."))
    assert offenders == []


def test_every_check_type_is_found_by_discovery() -> None:
    import pkgutil

    import checks
    from agent.registry import check_types

    modules = {i.name for i in pkgutil.iter_modules(checks.__path__) if not i.name.startswith("_") and i.name != "base"}
    assert {cls.__module__.removeprefix("checks.") for cls in check_types().values()} == modules

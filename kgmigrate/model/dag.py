"""Order migrations by their dependencies (a DAG: merges allowed, cycles refused).

A migration that declares no `depends_on` depends on the migration with the next lower version,
which gives neo4j-migrations' linear chain by default. The order is a topological order that,
among the migrations ready at each point, takes the lowest version first, so it is stable.
"""

import heapq
from collections.abc import Mapping, Sequence

from kgmigrate.errors import KgmError
from kgmigrate.model.versions import Version


class DependencyError(KgmError):
    """Missing dependencies or a dependency cycle."""


def resolve_dependencies(
    declared: Mapping[Version, Sequence[Version] | None],
) -> dict[Version, tuple[Version, ...]]:
    """Fill in the implicit linear dependency for migrations that declare none."""
    versions = sorted(declared)
    resolved: dict[Version, tuple[Version, ...]] = {}
    for i, version in enumerate(versions):
        deps = declared[version]
        if deps is None:
            resolved[version] = (versions[i - 1],) if i else ()
        else:
            resolved[version] = tuple(deps)
    return resolved


def topological_order(dependencies: Mapping[Version, Sequence[Version]]) -> list[Version]:
    missing = sorted({f"{v} depends on {d}" for v, deps in dependencies.items() for d in deps
                      if d not in dependencies})
    if missing:
        raise DependencyError(f"missing dependencies: {'; '.join(missing)}")
    self_deps = sorted(str(v) for v, deps in dependencies.items() if v in deps)
    if self_deps:
        raise DependencyError(f"a migration cannot depend on itself: {', '.join(self_deps)}")
    waiting = {v: set(deps) for v, deps in dependencies.items()}
    dependents: dict[Version, list[Version]] = {v: [] for v in dependencies}
    for version, deps in dependencies.items():
        for dep in deps:
            dependents[dep].append(version)
    ready = [v for v, deps in waiting.items() if not deps]
    heapq.heapify(ready)
    order: list[Version] = []
    while ready:
        version = heapq.heappop(ready)
        order.append(version)
        for dependent in dependents[version]:
            waiting[dependent].discard(version)
            if not waiting[dependent]:
                heapq.heappush(ready, dependent)
    if len(order) != len(dependencies):
        raise DependencyError(f"dependency cycle: {_describe_cycle(waiting, set(order))}")
    return order


def _describe_cycle(waiting: Mapping[Version, set[Version]], done: set[Version]) -> str:
    """Walk unresolved dependencies until a version repeats; name that loop."""
    start = min(v for v in waiting if v not in done)
    path: list[Version] = []
    current = start
    while current not in path:
        path.append(current)
        current = min(d for d in waiting[current] if d not in done)
    loop = [*path[path.index(current):], current]
    return " depends on ".join(str(v) for v in loop)

"""Who copies a model from whom: a pipelined tree over the nodes that need it.

The roots are the nodes that already hold a verified copy (or, when none does, the origin:
the controller's bundle or the hub). Each node serves at most `degree` others, in
breadth-first order, so the holders multiply level by level. Copies are pipelined per file:
a node starts pulling file k as soon as its upstream has verified file k, so with F files a
chain of depth D finishes after about (F + D - 1) file times instead of D whole models.

`degree` -1 turns fan-out off (every node from the origin or the first holder: the naive
baseline); `degree` 0 picks the degree with the smallest estimated finish time for F files:
    time(d) ~ d x (F + depth(d) - 1) / F   (in whole-model transfer times at one link's rate;
    a parent shares its uplink among its d children).
"""

from __future__ import annotations

from dataclasses import dataclass

ORIGINS = ("controller", "hub")


@dataclass(frozen=True)
class Assignment:
    target: str
    upstream: str  # a host name, "controller" or "hub"
    level: int  # 1 = pulls from a root


def _levels(roots: int, targets: int, degree: int) -> list[tuple[int, int]]:
    """(parent index in roots+targets, level) for each target."""
    out: list[tuple[int, int]] = []
    level = [0] * roots
    for j in range(targets):
        parent = (
            j // degree
            if roots == 1
            else (j % roots if j < roots * degree else roots + (j - roots * degree) // degree)
        )
        lvl = level[parent] + 1
        out.append((parent, lvl))
        level.append(lvl)
    return out


def estimate(roots: int, targets: int, degree: int, files: int) -> float:
    if targets == 0:
        return 0.0
    depth = max(lvl for _, lvl in _levels(roots, targets, degree))
    files = max(files, 1)
    return degree * (files + depth - 1) / files


def best_degree(roots: int, targets: int, files: int, max_degree: int = 4) -> int:
    return min(range(1, max_degree + 1), key=lambda d: (round(estimate(roots, targets, d, files), 6), d))


def plan(
    holders: list[str], targets: list[str], origin: str | None, files: int, degree: int = 0
) -> list[Assignment]:
    """Assign every target an upstream. Raises ValueError when there is no source at all."""
    if not targets:
        return []
    roots = sorted(holders) or ([origin] if origin else [])
    if not roots:
        raise ValueError("no node holds this model and it has no bundle or hub source")
    ordered = sorted(targets)
    if degree < 0:  # no fan-out: every target from the first root (the naive baseline)
        return [Assignment(target, roots[0], 1) for target in ordered]
    d = degree or best_degree(len(roots), len(ordered), files)
    nodes = roots + ordered
    return [
        Assignment(target, nodes[parent], lvl)
        for target, (parent, lvl) in zip(ordered, _levels(len(roots), len(ordered), d), strict=True)
    ]

"""The registry of evaluation metrics and the one table formatter that shows their results.

As in stylegan2-ada-pytorch's metric_main.py, a metric is a plain named function of an evaluation
context that returns a dict, registered with `@register_metric(name, task=..., rows=...)`. Its
registration also says when it does not apply (`requires`: checks of the context that return a reason
or None) and how its values read in a table (`rows`: the values of one subject -> a list of `Row`).
Each task has its own name space and context: "image" (`ganimate evaluate`, metrics/evaluate.py),
"restore" (restore/metrics.py) and "clip" (clips/evaluate.py).

`format_table` renders rows either as an aligned list (one subject: an image run) or as a markdown grid
(several subjects: the methods of a restoration or clip evaluation); `metric_rows` collects the rows of
every registered metric of a task for one subject's values.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

MISSING = "—"  # a grid cell whose subject has no such row


@dataclass(frozen=True)
class Row:
    """One value in a table: its label, the value as text and a note (such as the real-data reference).

    A `detail` row is too wide for the aligned list: it is printed after it as "label  value" and left
    out of grids.
    """

    label: str
    value: str
    note: str = ""
    detail: bool = False


@dataclass(frozen=True)
class Metric:
    """A registered metric: its function, the checks that say why it does not apply, its table rows."""

    name: str
    task: str
    fn: Callable[[Any], dict]
    rows: Callable[[dict], list[Row]]
    requires: tuple[Callable[[Any], str | None], ...] = ()
    about: str = ""

    def problem(self, ctx) -> str | None:
        """Why the metric does not apply to `ctx` (the first failing check), or None."""
        for check in self.requires:
            reason = check(ctx)
            if reason:
                return reason
        return None

    def __call__(self, ctx) -> dict:
        return self.fn(ctx)


_REGISTRY: dict[str, dict[str, Metric]] = {}


def register_metric(name: str, *, task: str, rows: Callable[[dict], list[Row]],
                    requires: Iterable[Callable[[Any], str | None]] = (), about: str = ""):
    """Decorator: register `fn(ctx) -> dict` as metric `name` of `task`; the function is returned unchanged.

    rows(values) gives the metric's table rows from a subject's values ([] when it has none of them).
    """

    def decorate(fn: Callable[[Any], dict]) -> Callable[[Any], dict]:
        known = metrics_for(task)
        if name in known and known[name].fn.__module__ != fn.__module__:
            raise ValueError(f"metric {name!r} of task {task!r} is already registered by {known[name].fn.__module__}")
        known[name] = Metric(name, task, fn, rows, tuple(requires), about)
        return fn

    return decorate


def metrics_for(task: str) -> dict[str, Metric]:
    """The metrics of `task` by name, in registration order (the live registry: do not edit it)."""
    return _REGISTRY.setdefault(task, {})


def compute_metrics(task: str, ctx, names: Iterable[str], strict: bool = False,
                    log: Callable[[str], object] | None = None) -> tuple[dict, dict, dict]:
    """(merged results, {name: reason it does not apply}, {name: seconds}) of the metrics `names` of `task`.

    strict: a metric that does not apply is an error instead of an "n/a" entry.
    """
    from ganimate.errors import GanimateError

    known = metrics_for(task)
    results, na, seconds = {}, {}, {}
    for name in names:
        metric = known[name]
        reason = metric.problem(ctx)
        if reason:
            if strict:
                raise GanimateError(f"{name} {reason}" if reason.startswith("needs") else f"{name}: {reason}")
            na[name] = reason
            continue
        start = time.perf_counter()
        results.update(metric(ctx))
        seconds[name] = round(time.perf_counter() - start, 2)
        if log is not None:
            log(f"{name}: {seconds[name]:.1f}s")
    return results, na, seconds


def metric_rows(task: str, values: dict) -> list[Row]:
    """The table rows of every registered metric of `task` for one subject's values, in registration order."""
    return [row for metric in metrics_for(task).values() for row in metric.rows(values)]


def fmt(value, spec: str, missing: str = MISSING) -> str:
    """`value` formatted with `spec`, or `missing` for None."""
    return missing if value is None else format(value, spec)


def format_table(rows: list[Row] | Mapping[str, list[Row]], *, title: str = "", corner: str = "",
                 footer: Iterable[str] = ()) -> str:
    """The one table formatter of evaluation results.

    rows as a list (one subject): `title`, then "  label  value  note" aligned, the detail rows and the
    `footer` lines, indented. rows as a mapping subject -> rows: a markdown table with one line per
    subject and one column per row label (first-seen order, `corner` heading the subject column), cells
    the values or "—"; notes and detail rows are left out, `title` and `footer` lines go above and below.
    """
    if isinstance(rows, Mapping):
        return _grid(rows, title, corner, footer)
    main = [r for r in rows if not r.detail]
    width = max([len(r.label) for r in main] + [6])
    lines = [title] if title else []
    lines += [f"  {r.label:<{width}}  {r.value:>8}  {r.note}".rstrip() for r in main]
    lines += [f"  {r.label}  {r.value}" for r in rows if r.detail]
    lines += [f"  {line}" for line in footer]
    return "\n".join(lines)


def _grid(subjects: Mapping[str, list[Row]], title: str, corner: str, footer: Iterable[str]) -> str:
    cells = {name: {r.label: r.value for r in rows if not r.detail} for name, rows in subjects.items()}
    columns = list(dict.fromkeys(label for row in cells.values() for label in row))
    lines = [title, ""] if title else []
    lines += [f"| {' | '.join([corner, *columns])} |", "|---" * (len(columns) + 1) + "|"]
    lines += [f"| {' | '.join([name, *(row.get(c, MISSING) for c in columns)])} |" for name, row in cells.items()]
    lines += list(footer)
    return "\n".join(lines)

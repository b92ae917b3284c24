"""``python -m kd.report <outputs dir> [<dir> ...] [--out DIR]``: compare the runs below the folders."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from kd.errors import describe_write_error
from kd.report.table import best_configurations, header, row_cells, write_report
from kd.task import TASKS_BY_NAME


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kd.report", description=__doc__.splitlines()[0])
    parser.add_argument("roots", type=Path, nargs="+", help="multirun folders, or any folders holding run folders")
    parser.add_argument("--out", type=Path, default=None, help="where to write (default: the first root)")
    args = parser.parse_args(argv)
    try:
        result = write_report(args.roots, args.out)
    except OSError as err:  # a full disk: one paragraph, no half-written report.json
        advice = "Free space and run the same command again, or write the report elsewhere with --out <folder>."
        if (message := describe_write_error(err, args.out or args.roots[0], advice)) is None:
            raise
        raise SystemExit(f"error: {message}") from None
    rows, out = result["rows"], args.out or args.roots[0]
    # on the console the first two columns of each task (test/acc, val/acc_best; test/ppl, val/ppl_best)
    tasks = {row["task"] for row in rows}
    shown = [c for c in result["columns"] if any(c in TASKS_BY_NAME[t].columns[:2] for t in tasks)]
    table = Table(title=f"kd report: {' '.join(map(str, args.roots))}",
                  caption=f"↓ lower is better, ↑ higher; bold: best (per task); all columns in {out / 'report.md'}")
    table.add_column("configuration", overflow="fold")
    for column in ("runs", "failed", *map(header, shown)):
        table.add_column(column)
    best = {key: best_configurations(rows, key) for key in shown}
    for row in rows:
        table.add_row(*(Text(text, style="bold" if top else "") for text, top in row_cells(row, shown, best)))
    console = Console(soft_wrap=True)
    console.print(table)
    console.print(f"wrote {out / 'report.md'}, report.json and {len(result['plots'])} plot(s)")


if __name__ == "__main__":
    main()

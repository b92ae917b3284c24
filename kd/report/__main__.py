"""``python -m kd.report <outputs dir> [<dir> ...] [--out DIR]``: compare the runs below the folders."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from kd.report.table import format_summary, write_report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", type=Path, nargs="+", help="multirun folders, or any folders holding run folders")
    parser.add_argument("--out", type=Path, default=None, help="where to write (default: the first root)")
    args = parser.parse_args(argv)
    result = write_report(args.roots, args.out)
    table = Table(title=f"kd report: {' '.join(map(str, args.roots))}")
    for column in ("configuration", "runs", "failed", "test/acc", "val/acc_best"):
        table.add_column(column)
    for row in result["rows"]:
        acc, best = row["test/acc"], row["val/acc_best"]
        table.add_row(row["configuration"], str(row["runs"]), str(row["failed"]),
                      format_summary((acc["mean"], acc["std"]) if acc else None, True),
                      format_summary((best["mean"], best["std"]) if best else None, True))
    console = Console(soft_wrap=True)
    console.print(table)
    console.print(f"wrote {(args.out or args.roots[0]) / 'report.md'}, report.json and {len(result['plots'])} plot(s)")


if __name__ == "__main__":
    main()

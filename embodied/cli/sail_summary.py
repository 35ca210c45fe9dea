"""`embodied-sail-summary <dir>`: the SAIL runs of a multirun dir, loop seeds pooled (embodied.sail_report).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from embodied.errors import user_errors
from embodied.sail_report import __doc__ as REPORT_DOC
from embodied.sail_report import summarize


@user_errors("embodied-sail-summary")
def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="embodied-sail-summary", description=REPORT_DOC.split("\n\n")[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir", help="a multirun dir (or any dir) holding SAIL run dirs")
    args = parser.parse_args(argv)
    summary = summarize(args.dir)
    print(summary["markdown"])
    print(f"Written: {Path(args.dir) / 'summary.md'}, {Path(args.dir) / 'summary.json'}")


if __name__ == "__main__":
    main()

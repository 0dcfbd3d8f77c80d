"""Queued `dvc exp run` suites: each experiment is the pipeline with a few `-S` overrides, named `<prefix>-<name>`.

    suite.queue()             # dvc exp run --queue, one per experiment; then `dvc queue start`
    suite.collect(row, out)   # one CSV row per finished experiment, read from its committed metrics

Stages whose params and code did not change come from DVC's run cache, so experiments that move only one network
share the other's training.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout


def committed_json(sha: str, path: str) -> Any:
    """A JSON file as an experiment's commit holds it."""
    return json.loads(git("show", f"{sha}:{path}"))


@dataclass(frozen=True)
class Suite:
    prefix: str
    experiments: tuple[tuple[str, str, dict[str, str]], ...]  # (name, the change, {param: value})
    fields: tuple[str, ...]

    def queue(self) -> None:
        for name, _, overrides in self.experiments:
            sets = [a for k, v in overrides.items() for a in ("-S", f"{k}={v}")]
            subprocess.run(["dvc", "exp", "run", "--queue", "-n", f"{self.prefix}-{name}", *sets], cwd=ROOT,
                           check=True)

    def ref(self, name: str) -> str | None:
        """The newest experiment commit named <prefix>-<name> (any baseline commit)."""
        refs = [line.split() for line in git("for-each-ref", "--sort=-committerdate",
                                             "--format=%(objectname) %(refname)", "refs/exps").splitlines()]
        return next((sha for sha, ref in refs if ref.rsplit("/", 1)[-1] == f"{self.prefix}-{name}"), None)

    def collect(self, row: Callable[[str, str, str], dict], out: Path) -> None:
        """row(name, change, sha) -> one CSV row of self.fields, for each finished experiment."""
        rows = []
        for name, change, _ in self.experiments:
            sha = self.ref(name)
            if sha is None:
                print(f"{self.prefix}-{name}: no finished experiment (dvc queue status)", file=sys.stderr)
                continue
            rows.append(row(name, change, sha))
        with open(out, "w", newline="") as f:
            w = csv.DictWriter(f, self.fields)
            w.writeheader()
            w.writerows(rows)
        print(f"wrote {len(rows)} experiments to {out}")

    def main(self, doc: str, row: Callable[[str, str, str], dict], csv_path: Path) -> None:
        """The command line both suites share: `queue` the experiments, or `collect` them into `csv_path`."""
        ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
        ap.add_argument("command", choices=("queue", "collect"))
        ap.add_argument("--out", type=Path, default=csv_path)
        args = ap.parse_args()
        self.queue() if args.command == "queue" else self.collect(row, args.out)

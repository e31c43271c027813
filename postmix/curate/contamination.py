"""The contamination matrix: for every training source (the rows' ``source`` column) and
benchmark, per side (``question``: user turns against question fields, ``answer``: assistant
turns against answer fields, ``paraphrase``: prompt embeddings near a question), how many rows
were flagged and how many of the benchmark's instances they hit - the table the Tulu 3
decontamination toolkit prints, one per stage run and one per mix version.

A matrix keeps the hit instances as sets, so the matrices of several steps (a mix build's
per-source and global decontam steps) merge exactly: rows are flagged by one step only (a flagged
row is removed), while two steps can hit the same instance. Written as JSON
(``{"benchmarks": [{"name", "instances"}], "cells": [{"source", "benchmark", "side",
"rows_flagged", "instances_hit", "benchmark_instances", "share"}]}``) and as TSV with the same
columns.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SIDES = ("question", "answer", "paraphrase")
FILES = ("contamination.tsv", "contamination.json")  # beside a stage's output: <stem>.<name>
COLUMNS = ("source", "benchmark", "side", "rows_flagged", "instances_hit", "benchmark_instances",
           "share")


@dataclass
class Cell:
    rows_flagged: int = 0
    instances: set[int] = field(default_factory=set)


@dataclass
class ContaminationMatrix:
    """``benchmarks``: name -> instances, in the order given; ``cells``: (source, benchmark,
    side) -> rows flagged and the instances (numbers within the benchmark) they hit."""

    benchmarks: dict[str, int] = field(default_factory=dict)
    cells: dict[tuple[str, str, str], Cell] = field(default_factory=dict)

    def add(self, source: str, benchmark: str, side: str, rows: int,
            instances: Iterable[int]) -> None:
        cell = self.cells.setdefault((source, benchmark, side), Cell())
        cell.rows_flagged += rows
        cell.instances.update(int(i) for i in instances)

    @classmethod
    def merged(cls, matrices: Iterable[ContaminationMatrix]) -> ContaminationMatrix:
        """One matrix of several steps' (a benchmark's size is the first step's that names it)."""
        out = cls()
        for matrix in matrices:
            for name, instances in matrix.benchmarks.items():
                out.benchmarks.setdefault(name, instances)
            for (source, benchmark, side), cell in matrix.cells.items():
                out.add(source, benchmark, side, cell.rows_flagged, cell.instances)
        return out

    def rows(self) -> list[dict[str, Any]]:
        """The cells as records, by source, then benchmark (in the given order), then side."""
        order = {name: i for i, name in enumerate(self.benchmarks)}
        keys = sorted(self.cells, key=lambda k: (k[0], order.get(k[1], len(order)), k[1],
                                                 SIDES.index(k[2])))
        out = []
        for source, benchmark, side in keys:
            cell = self.cells[(source, benchmark, side)]
            size = self.benchmarks.get(benchmark, 0)
            out.append({"source": source, "benchmark": benchmark, "side": side,
                        "rows_flagged": cell.rows_flagged, "instances_hit": len(cell.instances),
                        "benchmark_instances": size,
                        "share": round(len(cell.instances) / size, 6) if size else 0.0})
        return out

    def to_json(self) -> dict[str, Any]:
        return {"benchmarks": [{"name": n, "instances": i} for n, i in self.benchmarks.items()],
                "cells": self.rows()}

    def to_tsv(self) -> str:
        lines = ["\t".join(COLUMNS)]
        for row in self.rows():
            lines.append("\t".join(_tsv_value(row[c]) for c in COLUMNS))
        return "\n".join(lines) + "\n"

    def files(self) -> dict[str, str]:
        """File name -> text, as a stage writes them beside its output."""
        return {"contamination.tsv": self.to_tsv(),
                "contamination.json": json.dumps(self.to_json(), indent=1, ensure_ascii=False)
                + "\n"}

    def write(self, folder: Path) -> dict[str, str]:
        """``contamination.tsv`` and ``.json`` in ``folder``; returns the manifest entry."""
        texts = self.files()
        for name, text in texts.items():
            (folder / name).write_text(text, encoding="utf-8")
        return {"json": "contamination.json", "tsv": "contamination.tsv"}


def _tsv_value(value: Any) -> str:
    # a source name is free text: keep one cell on one line
    return " ".join(str(value).replace("\t", " ").split()) if isinstance(value, str) else str(value)

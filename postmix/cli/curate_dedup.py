"""``postmix curate dedup IN OUT``: parse options into a ``DedupConfig`` and call the library."""

from __future__ import annotations

from pathlib import Path

import typer
from pydantic import ValidationError

from postmix.errors import ConfigError


def register(group: typer.Typer) -> None:
    @group.command("dedup")
    def dedup_command(
        source: str = typer.Argument(..., help="Input records (.jsonl/.parquet/Arrow folder/hf:name)."),
        output: Path = typer.Argument(..., help="Output .jsonl or .parquet; rejects and report go beside it."),
        mode: str = typer.Option("both", "--mode", help="exact, near, or both (exact first)."),
        on: str = typer.Option("user", "--on", help="Text compared: user, prompt, assistant or conversation."),
        shingle: str = typer.Option("word", "--shingle", help="Shingle units: word or char."),
        ngram: int = typer.Option(5, "--ngram", help="Units per shingle."),
        num_perm: int = typer.Option(128, "--num-perm", help="MinHash permutations."),
        threshold: float = typer.Option(0.8, "--threshold", help="Jaccard similarity that counts as a near duplicate."),
        bands: int | None = typer.Option(None, "--bands", help="LSH bands (with --rows); chosen from --threshold when omitted."),
        rows: int | None = typer.Option(None, "--rows", help="LSH rows per band (with --bands)."),
        seed: int = typer.Option(1, "--seed", help="Permutation seed."),
        hash_mode: str = typer.Option("fast", "--hash", help="fast, or datasketch (signatures equal datasketch.MinHash)."),
        scheme: str = typer.Option("affine32", "--datasketch-scheme", help="affine32 (datasketch 2.x), legacy (< 2.0) or affine64."),
        verify: bool = typer.Option(False, "--verify", help="Check candidates by exact Jaccard; drop false positives."),
        keep: str = typer.Option("first", "--keep", help="Survivor: first, longest or source-priority."),
        source_priority: str | None = typer.Option(None, "--source-priority", help="Comma-separated sources, best first."),
        against: str | None = typer.Option(None, "--against", help="Reference dataset or mix: remove rows that duplicate it."),
        cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Where reference signatures are cached."),
        no_nfkc: bool = typer.Option(False, "--no-nfkc", help="Skip Unicode NFKC normalisation."),
        case_sensitive: bool = typer.Option(False, "--case-sensitive", help="Do not lowercase."),
        keep_punctuation: bool = typer.Option(False, "--keep-punctuation", help="Do not strip punctuation and symbols."),
        format: str | None = typer.Option(None, "--format", "-f", help="Input format when not postmix records."),
        engine: str = typer.Option("local", "--engine", help="local (this process, every core) or ray (Ray Data on "
                                   "RAY_ADDRESS / --ray-address, else a local Ray); same results."),
        ray_address: str | None = typer.Option(None, "--ray-address", help="Ray cluster to join with --engine ray."),
    ) -> None:
        """Remove exact and near-duplicate rows (MinHash-LSH); every removal names the row it duplicates."""
        from postmix.cli import print_report_summary
        from postmix.curate.dedup import DedupConfig
        from postmix.curate.executor import make_executor
        from postmix.curate.steps import get_step
        from postmix.io.errors_text import one_line
        from postmix.io.write import report_path

        try:
            config = DedupConfig(
                mode=mode, on=on, shingle=shingle, ngram=ngram, num_perm=num_perm, threshold=threshold,
                bands=bands, rows=rows, seed=seed, hash=hash_mode, datasketch_scheme=scheme, verify=verify,
                keep=keep,
                source_priority=[s.strip() for s in source_priority.split(",") if s.strip()] if source_priority else [],
                normalise={"nfkc": not no_nfkc, "lowercase": not case_sensitive, "strip_punctuation": not keep_punctuation},
            )
        except ValidationError as exc:
            raise ConfigError(f"bad dedup option: {one_line(exc)}") from None
        if against is not None and engine == "ray":
            raise ConfigError("--against runs on the local engine only (the reference's signature cache "
                              "is a local file): drop --engine ray for this step")
        executor = make_executor(engine, {"address": ray_address} if ray_address else None)
        extra = {"against": against, "cache_dir": cache_dir} if against is not None else {}
        result = executor.run_file(get_step("dedup"), source, output, config, format=format,
                                   **extra)
        print_report_summary(result.report, {"output": str(result.output), "rejects": str(result.rejects),
                                             "report": str(report_path(result.output))})

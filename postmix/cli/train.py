"""``postmix train sft | dpo | rlvr | verify``: argument parsing only."""

from __future__ import annotations

import shlex
from pathlib import Path

import typer
from rich.console import Console

out = Console()

_METHOD_HELP = {
    "sft": "Supervised fine-tuning on assistant tokens (packed) of an SFT mix.",
    "dpo": "Length-normalised DPO on a preference mix.",
    "rlvr": "GRPO with verifiable rewards (verifier per row) on an RLVR mix.",
}


def _train_command(method: str):
    def command(
        model: str = typer.Option(..., "--model", help="Base model: a local folder or a Hub name."),
        output: Path = typer.Option(..., "--output", "-o", help="Folder for the final model and run_card.json."),
        mix: str | None = typer.Option(None, "--mix", help="Mix version to train on, name@N (or name for the latest)."),
        data: str | None = typer.Option(None, "--data", help="A postmix dataset file instead of a mix."),
        config: Path | None = typer.Option(None, "--config", "-c", help=f"{method}.yaml with config fields (see docs/train.md)."),
        home: Path | None = typer.Option(None, "--home", help="Mix registry (default: $POSTMIX_HOME, else ./.postmix)."),
        max_steps: int | None = typer.Option(None, "--max-steps", help="Stop after N optimiser steps (smoke runs)."),
        launch: str = typer.Option("single", "--launch", help="single (this process) or accelerate."),
        num_processes: int = typer.Option(1, "--num-processes", help="Total processes over all machines (accelerate)."),
        deepspeed: str | None = typer.Option(None, "--deepspeed", help="zero2 or zero3 (with --launch accelerate)."),
        fsdp: bool = typer.Option(False, "--fsdp", help="FSDP2 sharding (with --launch accelerate)."),
        accelerate_config: Path | None = typer.Option(None, "--accelerate-config", help="Use this accelerate config file."),
        num_machines: int = typer.Option(1, "--num-machines", help="Machines in a multi-node run."),
        machine_rank: int = typer.Option(0, "--machine-rank", help="This machine's rank (0..num-machines-1)."),
        main_process_ip: str | None = typer.Option(None, "--main-process-ip", help="Address of machine rank 0."),
        main_process_port: int | None = typer.Option(None, "--main-process-port", help="Port on machine rank 0."),
        dry_run: bool = typer.Option(False, "--dry-run", help="With --launch accelerate: write the config, print the command, stop."),
    ) -> None:
        from postmix.errors import ConfigError
        from postmix.train.config import load_config

        cfg = load_config(method, config)  # fail on a bad config before any launch
        if max_steps is not None:
            cfg = cfg.model_copy(update={"max_steps": max_steps})
        if deepspeed is not None and deepspeed not in ("zero2", "zero3"):
            raise ConfigError(f"--deepspeed must be zero2 or zero3, not {deepspeed!r}")
        if deepspeed and fsdp:
            raise ConfigError("choose one of --deepspeed and --fsdp")
        if launch not in ("single", "accelerate"):
            raise ConfigError(f"--launch must be single or accelerate, not {launch!r}")
        if launch == "accelerate":
            from postmix.train.launch import make_launch_config, relaunch

            settings = make_launch_config(
                mode="accelerate", num_processes=num_processes,
                strategy=deepspeed or ("fsdp" if fsdp else "ddp"),
                accelerate_config=str(accelerate_config) if accelerate_config else None,
                num_machines=num_machines, machine_rank=machine_rank, main_process_ip=main_process_ip,
                main_process_port=main_process_port, mixed_precision="no" if cfg.bf16 is False else "bf16")
            cmd, config_file, status = relaunch(
                method, settings, output=output, dry_run=dry_run, model=model, mix=mix, data=data,
                config=config, home=home, max_steps=max_steps)
            out.print(f"accelerate config: {config_file}")
            out.print(shlex.join(cmd), highlight=False, soft_wrap=True)
            if status:
                raise typer.Exit(status)
            return
        from postmix.train.launch import make_launch_config

        make_launch_config(num_processes=num_processes, strategy=deepspeed or ("fsdp" if fsdp else "ddp"),
                           num_machines=num_machines)  # rejects multi-GPU flags without --launch
        from postmix.train.run import train

        result = train(method, model, output=output, mix=mix, data=data, config=cfg, home=home)
        card = result.run_card
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in sorted(card.get("metrics", {}).items())
                            if k in ("train_loss", "rewards/margins", "reward", "train_runtime"))
        out.print(f"[bold]{method} done[/bold]: run {card['run_id']} on {card['mix'] or card['data']['path']}"
                  + (f" ({metrics})" if metrics else ""))
        out.print(f"  model     {output}")
        out.print(f"  run card  {Path(output) / 'run_card.json'}")

    command.__doc__ = _METHOD_HELP[method]
    return command


def verify_cmd(
    source: str = typer.Argument(..., help="Rows with response, ground_truth, verifier[, constraints]."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Scores file (default: <input>.scores.jsonl)."),
) -> None:
    """Score responses with the RLVR verifiers and report accuracy per verifier."""
    from postmix.io.write import report_path
    from postmix.train.verify import verify_file

    result = verify_file(source, output)
    report = result.report
    out.print(f"[bold]{report.summary()}[/bold]")
    for name, stats in report.details["per_verifier"].items():
        out.print(f"  {name:8s} {stats['correct']}/{stats['rows']} correct ({stats['accuracy']:.1%})")
    out.print(f"  scores   {result.scores}\n  rejects  {result.rejects}\n  report   {report_path(result.scores)}")


def register(group: typer.Typer) -> None:
    for method in ("sft", "dpo", "rlvr"):
        group.command(method, help=_METHOD_HELP[method])(_train_command(method))
    group.command("verify")(verify_cmd)

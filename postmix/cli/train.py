"""``postmix train sft | dpo | rlvr | check | verify``: argument parsing only. Each method's options
come from its config model (``postmix.train.config``): ``--learning-rate``, ``--max-steps``,
``--lora-r``, ... override the ``--config`` file's values."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import typer

from postmix.cli import options as opts
from postmix.cli.command import PostmixGroup, with_renames
from postmix.cli.output import json_option, out, print_json, print_report_summary
from postmix.train.config import CONFIGS

app = typer.Typer(cls=PostmixGroup, no_args_is_help=True, add_completion=False)


@app.callback()
def train() -> None:
    """SFT, DPO and RLVR over TRL on one mix version."""


_METHOD_HELP = {
    "sft": "Supervised fine-tuning on assistant tokens (packed) of an SFT mix.",
    "dpo": "Length-normalised DPO on a preference mix.",
    "rlvr": "GRPO with verifiable rewards (verifier per row) on an RLVR mix.",
}


def _train_command(method: str):
    def command(
        model: str = typer.Option(..., "--model", help="Base model: a local folder or a Hub name."),
        output: Path = typer.Option(
            ..., "--output", "-o", help="Folder for the final model and run_card.json."
        ),
        mix: str | None = typer.Option(
            None, "--mix", help="Mix version to train on, name@N (or name for the latest)."
        ),
        data: str | None = typer.Option(
            None, "--data", help="A postmix dataset file instead of a mix."
        ),
        config: Path | None = typer.Option(
            None, "--config", "-c", help=f"{method}.yaml with config fields (see docs/train.md)."
        ),
        home: Path | None = typer.Option(
            None, "--home", help="Mix registry (default: $POSTMIX_HOME, else ./.postmix)."
        ),
        launch: str = typer.Option(
            "single", "--launch", help="single (this process) or accelerate."
        ),
        num_processes: int = typer.Option(
            1, "--num-processes", help="Total processes over all machines (accelerate)."
        ),
        deepspeed: str | None = typer.Option(
            None, "--deepspeed", help="zero2 or zero3 (with --launch accelerate)."
        ),
        fsdp: bool = typer.Option(
            False, "--fsdp", help="FSDP2 sharding (with --launch accelerate)."
        ),
        accelerate_config: Path | None = typer.Option(
            None, "--accelerate-config", help="Use this accelerate config file."
        ),
        num_machines: int = typer.Option(1, "--num-machines", help="Machines in a multi-node run."),
        machine_rank: int = typer.Option(
            0, "--machine-rank", help="This machine's rank (0..num-machines-1)."
        ),
        main_process_ip: str | None = typer.Option(
            None, "--main-process-ip", help="Address of machine rank 0."
        ),
        main_process_port: int | None = typer.Option(
            None, "--main-process-port", help="Port on machine rank 0."
        ),
        dry_run: bool = typer.Option(
            False,
            "--dry-run",
            help="With --launch accelerate: write the config, print the command, stop.",
        ),
        as_json: bool = json_option("Print the run card as JSON."),
        config_values: Any = None,
    ) -> None:
        from postmix.errors import ConfigError

        cfg, overrides = _config(method, config, config_values)
        if deepspeed is not None and deepspeed not in ("zero2", "zero3"):
            raise ConfigError(f"--deepspeed must be zero2 or zero3, not {deepspeed!r}")
        if deepspeed and fsdp:
            raise ConfigError("choose one of --deepspeed and --fsdp")
        if launch not in ("single", "accelerate"):
            raise ConfigError(f"--launch must be single or accelerate, not {launch!r}")
        if launch == "accelerate":
            from postmix.train.launch import make_launch_config, relaunch

            settings = make_launch_config(
                mode="accelerate",
                num_processes=num_processes,
                strategy=deepspeed or ("fsdp" if fsdp else "ddp"),
                accelerate_config=str(accelerate_config) if accelerate_config else None,
                num_machines=num_machines,
                machine_rank=machine_rank,
                main_process_ip=main_process_ip,
                main_process_port=main_process_port,
                mixed_precision="no" if cfg.bf16 is False else "bf16",
            )
            cmd, config_file, status = relaunch(
                method,
                settings,
                output=output,
                dry_run=dry_run,
                model=model,
                mix=mix,
                data=data,
                config=_merged_config(method, cfg, output) if overrides else config,
                home=home,
            )
            out.print(f"accelerate config: {config_file}")
            out.print(shlex.join(cmd), highlight=False, soft_wrap=True)
            if status:
                raise typer.Exit(status)
            return
        from postmix.train.launch import make_launch_config

        make_launch_config(
            num_processes=num_processes,
            strategy=deepspeed or ("fsdp" if fsdp else "ddp"),
            num_machines=num_machines,
        )  # rejects multi-GPU flags without --launch
        from postmix.train.run import train

        result = train(method, model, output=output, mix=mix, data=data, config=cfg, home=home)
        card = result.run_card
        if as_json:
            print_json(card)
            return
        metrics = ", ".join(
            f"{k}={v:.4g}"
            for k, v in sorted(card.get("metrics", {}).items())
            if k in ("train_loss", "rewards/margins", "reward", "train_runtime")
        )
        out.print(
            f"[bold]{method} done[/bold]: run {card['run_id']} on "
            f"{card['mix'] or card['data']['path']}" + (f" ({metrics})" if metrics else "")
        )
        if card.get("preflight"):
            out.print(f"  pre-flight {card['preflight']['totals']['trained_share']:.1%} of tokens "
                      f"trained; template: {card['preflight']['template']}", highlight=False)
            out.print(f"  pre-flight page {card['preflight'].get('html')}")
        out.print(f"  model     {output}")
        out.print(f"  run card  {Path(output) / 'run_card.json'}")

    command.__doc__ = _METHOD_HELP[method]
    return opts.with_config_options(command, CONFIGS[method])


def _config(method: str, config: Path | None, config_values: Any) -> tuple[Any, bool]:
    """The ``--config`` file's config with the command line's options over it; and whether any
    option was given."""
    from postmix.train.config import load_config, parse_config

    cfg = load_config(method, config)  # a bad config file fails before any launch
    options, given = config_values
    overrides = any(v not in (None, []) for v in given.values())
    if overrides:
        fields = opts.values_from(
            CONFIGS[method], options, given, cfg.model_dump(exclude_unset=True)
        )
        opts.validate(CONFIGS[method], fields, options)  # a bad option, named
        cfg = parse_config(method, fields, origin="options")
    return cfg, overrides


def _check_command():
    from postmix.train.preflight import ROWS_PER_SOURCE

    def check(
        model: str = typer.Option(..., "--model", help="Base model: a local folder or a Hub name."),
        mix: str | None = typer.Option(
            None, "--mix", help="Mix version to check, name@N (or name for the latest)."
        ),
        data: str | None = typer.Option(
            None, "--data", help="A postmix dataset file instead of a mix."
        ),
        config: Path | None = typer.Option(
            None, "--config", "-c", help="sft.yaml with config fields (see docs/train.md)."
        ),
        home: Path | None = typer.Option(
            None, "--home", help="Mix registry (default: $POSTMIX_HOME, else ./.postmix)."
        ),
        rows: int = typer.Option(
            ROWS_PER_SOURCE, "--rows", min=1, help="Rows checked per source (the first ones)."
        ),
        html: Path | None = typer.Option(
            None, "--html", help="Also write a page with the trained tokens highlighted."
        ),
        as_json: bool = json_option("Print the numbers as JSON."),
        config_values: Any = None,
    ) -> None:
        from postmix.train.data import load_training_data
        from postmix.train.preflight import preflight

        cfg, _ = _config("sft", config, config_values)
        training = load_training_data("sft", mix=mix, data=data, home=home)
        report = preflight(model, training.dataset, cfg, sources=training.sources,
                           ids=training.ids, rows_per_source=rows)
        page = report.write_html(html) if html else None
        if as_json:
            print_json(report.to_dict() | {"html": str(page) if page else None})
            return
        report.render(out)
        if page:
            out.print(f"  page  {page}")

    check.__doc__ = _CHECK_HELP
    return opts.with_config_options(check, CONFIGS["sft"])


_CHECK_HELP = (
    "SFT pre-flight (also run by `train sft`): one example per source with the trained tokens "
    "marked, the trainable-token share and what max_length cuts per source, the chat template "
    "TRL will use; stops in one line when assistant-only loss cannot work."
)


def _merged_config(method: str, config: Any, output: Path) -> Path:
    """The config with the command line's overrides, as the file every launched process reads."""
    import yaml

    path = Path(output) / f"postmix-{method}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        yaml.safe_dump(config.model_dump(mode="json", exclude_unset=True), sort_keys=False)
    )
    return path


def verify_cmd(
    source: str = typer.Argument(
        ..., help="Rows with response, ground_truth, verifier[, constraints]."
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Scores file (default: <input>.scores.jsonl)."
    ),
    as_json: bool = json_option(),
) -> None:
    """Score responses with the RLVR verifiers and report accuracy per verifier."""
    from postmix.io.write import report_path
    from postmix.train.verify import verify_file

    result = verify_file(source, output)
    report = result.report
    if as_json:
        print_report_summary(report, {}, as_json=True)
        return
    out.print(f"[bold]{report.summary()}[/bold]")
    for name, stats in report.details["per_verifier"].items():
        out.print(
            f"  {name:8s} {stats['correct']}/{stats['rows']} correct ({stats['accuracy']:.1%})"
        )
    out.print(
        f"  scores   {result.scores}\n  rejects  {result.rejects}\n  report   "
        f"{report_path(result.scores)}"
    )


for _method in ("sft", "dpo", "rlvr"):
    _command = _train_command(_method)
    app.command(_method, help=_METHOD_HELP[_method], cls=with_renames(_command.renames))(_command)
_check = _check_command()
app.command("check", help=_CHECK_HELP, cls=with_renames(_check.renames))(_check)
app.command("verify", cls=with_renames({}))(verify_cmd)

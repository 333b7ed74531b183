# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""The `accelerate launch` command of a training run: one node, several nodes under Slurm, or a CPU trial.

`recipes/launch.slurm` calls `python -m medvl_recipes.launch --slurm ...` once per node (one `srun` task each);
this module turns Slurm's environment into the rendezvous flags (`--num_machines`, `--machine_rank`,
`--main_process_ip/port`, `--rdzv_backend c10d`) and runs `accelerate launch` with them. The same function builds
the command of the tests and of `bench/bench_engines.py`, with the documented CPU override of each engine
(`cpu_override`), so there is one place that knows how each accelerate config runs on CPU.

Usage:

    python -m medvl_recipes.launch --stage decoder --recipe recipes/llama-3.2-11b-vision/decoder/config_full.yaml \
        --accelerate-config accelerate_configs/zero3.yaml --slurm --dry-run
"""

import argparse
import os
import shlex
import socket
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from medvl_recipes.errors import MedvlError


ENTRY_POINTS = {"encoder": "medvl_recipes.train_encoder", "decoder": "medvl_recipes.train_decoder"}
# accelerate applies FSDP only on accelerator devices: with a CPU it keeps `distributed_type` MULTI_CPU and wraps
# the model in DistributedDataParallel, without an error (accelerate 1.16, `AcceleratorState.__init__`).
FSDP_ON_CPU = (
    "accelerate runs FSDP only on GPUs (and other accelerators): on CPU it silently trains plain DDP instead; "
    "try ddp.yaml, zero2.yaml or zero3.yaml on CPU"
)
DEFAULT_PORT = 29500


def distributed_type(accelerate_config: str | Path) -> str:
    """The `distributed_type` of an accelerate config file (`MULTI_GPU`, `FSDP`, `DEEPSPEED`, `NO`)."""
    path = Path(accelerate_config)
    if not path.is_file():
        raise MedvlError(f"{path}: no such accelerate config; pass one of accelerate_configs/*.yaml")
    return str(yaml.safe_load(path.read_text()).get("distributed_type", "NO"))


def cpu_override(accelerate_config: str | Path) -> tuple[dict[str, str], list[str], list[str]]:
    """How to run an accelerate config on CPU with gloo: `(environment, launcher flags, training flags)`.

    - DDP (`MULTI_GPU`, `NO`): `ACCELERATE_USE_CPU=1` and `--use_cpu true`.
    - DeepSpeed: `DS_ACCELERATOR=cpu` (DeepSpeed's CPU accelerator), `--use_cpu false --ddp_backend gloo`: with
      `use_cpu` accelerate never selects DeepSpeed, and without a backend `TrainingArguments` counts one process.
    - FSDP: refused (`FSDP_ON_CPU`), since accelerate would run DDP under the FSDP name.

    All three add `--mixed_precision no`: the smoke recipes train in float32, the configs say bf16 for GPUs.

    Args:
        accelerate_config (`str` or `Path`): One of `accelerate_configs/*.yaml`.
    """
    kind = distributed_type(accelerate_config)
    if kind == "FSDP":
        raise MedvlError(f"{accelerate_config}: {FSDP_ON_CPU}")
    if kind == "DEEPSPEED":
        return {"DS_ACCELERATOR": "cpu"}, ["--mixed_precision", "no"], ["--use_cpu", "false", "--ddp_backend", "gloo"]
    return {"ACCELERATE_USE_CPU": "1"}, ["--mixed_precision", "no"], ["--use_cpu", "true"]


def accelerate_command(
    script: str,
    accelerate_config: str | Path,
    script_args: Sequence[str] = (),
    *,
    num_processes: int | None = None,
    num_machines: int = 1,
    machine_rank: int = 0,
    main_process_ip: str | None = None,
    main_process_port: int | None = None,
    rdzv_backend: str | None = None,
    cpu: bool = False,
) -> tuple[list[str], dict[str, str]]:
    """`(argv, extra environment)` of `accelerate launch --config_file accelerate_config ... script script_args`.

    Args:
        script (`str`):
            `"encoder"` or `"decoder"` (the recipe entry points, run with `-m`) or a path to a Python script.
        accelerate_config (`str` or `Path`):
            One of `accelerate_configs/*.yaml`.
        script_args (`Sequence[str]`):
            The training arguments, e.g. `["--config", "recipes/.../config_full.yaml"]`.
        num_processes (`int`, *optional*):
            Processes over all machines; the config's value when unset.
        num_machines, machine_rank, main_process_ip, main_process_port, rdzv_backend:
            The rendezvous, as `accelerate launch` takes them; only passed when set (or `num_machines > 1`).
            Pass a free `main_process_port` when other runs may share the host.
        cpu (`bool`):
            Add the engine's CPU override (`cpu_override`).
    """
    env, launcher, trainer = cpu_override(accelerate_config) if cpu else ({}, [], [])
    argv = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(accelerate_config), *launcher]
    if num_processes is not None:
        argv += ["--num_processes", str(num_processes)]
    if num_machines > 1:
        if main_process_ip is None:
            raise MedvlError("a multi-node launch needs the main process address (MASTER_ADDR)")
        argv += ["--num_machines", str(num_machines), "--machine_rank", str(machine_rank)]
        argv += ["--main_process_ip", main_process_ip, "--main_process_port", str(main_process_port or DEFAULT_PORT)]
    elif main_process_port is not None:
        # One machine: accelerate's default port (29500) clashes with any other run on the same host.
        argv += ["--main_process_port", str(main_process_port)]
        if distributed_type(accelerate_config) == "NO":
            # single_gpu.yaml has no data parallelism of its own; several machines need it.
            argv.append("--multi_gpu")
    if rdzv_backend is not None:
        argv += ["--rdzv_backend", rdzv_backend]
    argv += ["-m", ENTRY_POINTS[script]] if script in ENTRY_POINTS else [str(script)]
    return [*argv, *script_args, *trainer], env


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, for a rendezvous that must not clash with other runs on this host."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env_int(environ: Mapping[str, str], *names: str) -> int:
    for name in names:
        value = environ.get(name, "")
        if value:
            try:
                # SLURM_GPUS_ON_NODE may read "4" or "4(x2)"; the count comes first.
                return int(value.split("(")[0])
            except ValueError as err:
                raise MedvlError(f"${name}={value!r} is not a number") from err
    raise MedvlError(f"${names[0]} is not set: run this inside a Slurm job step (srun), or pass the value")


def slurm_command(
    script: str,
    accelerate_config: str | Path,
    script_args: Sequence[str] = (),
    *,
    environ: Mapping[str, str] | None = None,
    num_nodes: int | None = None,
    gpus_per_node: int | None = None,
    cpu: bool = False,
) -> tuple[list[str], dict[str, str]]:
    """`accelerate_command` for this node of a Slurm job: one `srun` task per node, each launching its GPUs.

    Reads `SLURM_NNODES`, the node's rank (`SLURM_NODEID`, else `SLURM_PROCID`), `MASTER_ADDR` (the job's first
    host; `recipes/launch.slurm` sets it from `scontrol show hostnames`), `MASTER_PORT` (default 29500) and the
    GPUs per node (`SLURM_GPUS_ON_NODE`, else `SLURM_GPUS_PER_NODE`), and rendezvous with `--rdzv_backend c10d`.

    Args:
        script, accelerate_config, script_args, cpu: As for `accelerate_command`.
        environ (`Mapping[str, str]`, *optional*): The environment to read; `os.environ` when unset.
        num_nodes (`int`, *optional*): Nodes to use; all of the job's (`SLURM_NNODES`) when unset.
        gpus_per_node (`int`, *optional*): Overrides the GPU count from Slurm's environment.
    """
    environ = os.environ if environ is None else environ
    job_nodes = _env_int(environ, "SLURM_NNODES", "SLURM_JOB_NUM_NODES")
    num_nodes = job_nodes if num_nodes is None else num_nodes
    if not 1 <= num_nodes <= job_nodes:
        raise MedvlError(f"--nodes {num_nodes}, but the Slurm job has {job_nodes} node(s); sbatch --nodes={num_nodes}")
    rank = _env_int(environ, "SLURM_NODEID", "SLURM_PROCID")
    if gpus_per_node is None:
        gpus_per_node = _env_int(environ, "SLURM_GPUS_ON_NODE", "SLURM_GPUS_PER_NODE")
    master = environ.get("MASTER_ADDR")
    if not master:
        raise MedvlError("$MASTER_ADDR is not set: export the job's first host (scontrol show hostnames | head -1)")
    return accelerate_command(
        script,
        accelerate_config,
        script_args,
        num_processes=num_nodes * gpus_per_node,
        num_machines=num_nodes,
        machine_rank=rank,
        main_process_ip=master,
        main_process_port=int(environ.get("MASTER_PORT") or DEFAULT_PORT),
        rdzv_backend="c10d",
        cpu=cpu,
    )


def format_command(argv: Sequence[str], env: Mapping[str, str]) -> str:
    """The command as one shell line, its extra environment first."""
    return " ".join([*(f"{key}={shlex.quote(value)}" for key, value in env.items()), shlex.join(argv)])


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m medvl_recipes.launch",
        description="Run (or print) the accelerate launch command of a recipe; training flags follow `--`.",
    )
    parser.add_argument("--stage", required=True, choices=sorted(ENTRY_POINTS), help="Which entry point to run.")
    parser.add_argument("--recipe", required=True, help="The recipe YAML (passed as --config).")
    parser.add_argument("--accelerate-config", required=True, help="One of accelerate_configs/*.yaml.")
    parser.add_argument("--slurm", action="store_true", help="Take the rendezvous from Slurm's environment.")
    parser.add_argument("--nodes", type=int, default=None, help="Nodes to use (default: the whole Slurm job).")
    parser.add_argument("--gpus-per-node", type=int, default=None, help="Default: $SLURM_GPUS_ON_NODE.")
    parser.add_argument("--num-processes", type=int, default=None, help="Single-node process count.")
    parser.add_argument("--cpu", action="store_true", help="Add the engine's CPU override (gloo).")
    parser.add_argument("--dry-run", action="store_true", help="Print the command instead of running it.")
    args, script_args = parser.parse_known_args(argv)
    script_args = [arg for arg in script_args if arg != "--"]
    script_args = ["--config", args.recipe, *script_args]
    if args.slurm:
        command, env = slurm_command(
            args.stage,
            args.accelerate_config,
            script_args,
            num_nodes=args.nodes,
            gpus_per_node=args.gpus_per_node,
            cpu=args.cpu,
        )
    else:
        command, env = accelerate_command(
            args.stage, args.accelerate_config, script_args, num_processes=args.num_processes, cpu=args.cpu
        )
    if args.dry_run:
        print(format_command(command, env))  # noqa: T201
        return 0
    sys.stdout.flush()
    os.execvpe(command[0], command, {**os.environ, **env})
    return 0  # not reached: execvpe replaces this process


def main() -> None:
    try:
        sys.exit(cli())
    except MedvlError as err:
        print(f"error: {err}", file=sys.stderr)  # noqa: T201
        sys.exit(2)


if __name__ == "__main__":
    main()

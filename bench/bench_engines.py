# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""CPU benchmark of the training engines: the decoder smoke recipe on the tiny Mllama, 2 processes (gloo).

Each engine runs `accelerate launch --config_file accelerate_configs/<engine>.yaml` with its CPU override
(`medvl_recipes.launch.cpu_override`), the same steps and batch; the table gives training samples/s (the Trainer's
`train_samples_per_second`, all ranks) and the peak RSS of the largest rank (`getrusage(RUSAGE_CHILDREN)`: the
ranks are waited-for descendants of this process), each also relative to DDP. FSDP is absent: accelerate runs it
only on GPUs.

Usage:

    python bench/bench_engines.py                 # builds the tiny model and fixture data in a temp dir
    python bench/bench_engines.py --steps 20 --engines ddp zero2
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from medvl_recipes.launch import accelerate_command, free_port  # noqa: E402


RECIPE = REPO / "recipes" / "llama-3.2-11b-vision" / "decoder" / "config_smoke.yaml"


def run_engine(engine: str, model: Path, data: Path, out: Path, steps: int, batch_size: int) -> dict:
    """Run one engine in a fresh child process tree; returns samples/s and the peak RSS of its largest rank."""
    script_args = ["--config", str(RECIPE), "--model_name_or_path", str(model), "--dataset_name", str(data)]
    script_args += ["--output_dir", str(out), "--max_steps", str(steps), "--per_device_train_batch_size"]
    script_args += [str(batch_size), "--num_sample_generations", "0", "--save_strategy", "no", "--report_to", "none"]
    argv, env = accelerate_command(
        "decoder",
        REPO / "accelerate_configs" / f"{engine}.yaml",
        script_args,
        num_processes=2,
        main_process_port=free_port(),
        cpu=True,
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{REPO / 'src'}:{REPO}", **env}
    # A helper process per engine, so that RUSAGE_CHILDREN's maximum is this engine's alone.
    probe = (
        "import resource, subprocess, sys, json; r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "sys.stderr.write(r.stderr[-3000:] if r.returncode else ''); rc = r.returncode; "
        "print(json.dumps({'rc': rc, 'rss_kb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))"
    )
    result = subprocess.run([sys.executable, "-c", probe, *argv], env=env, capture_output=True, text=True)
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    if measured["rc"] != 0:
        raise SystemExit(f"{engine}: accelerate launch failed (exit {measured['rc']}):\n{result.stderr}")
    metrics = json.loads((out / "train_results.json").read_text())
    return {"samples_per_s": metrics["train_samples_per_second"], "peak_rss_mb": measured["rss_kb"] / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", nargs="+", default=["ddp", "zero2", "zero3"])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=2, help="Per process.")
    parser.add_argument("--model", type=Path, default=None, help="Tiny Mllama (default: built in a temp dir).")
    parser.add_argument("--data", type=Path, default=None, help="Chat folder (default: fixture data).")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-engines-"))
    if args.model is None:
        from medvl_recipes.samples.tiny_models import build_tiny_models

        args.model = build_tiny_models(tmp / "models", seed=0)["mllama"]
    if args.data is None:
        from tests.fixtures.factories import write_chat_dataset

        args.data = write_chat_dataset(tmp / "chat", n_train=48, n_val=4, seed=0)
    rows = {
        engine: run_engine(engine, args.model, args.data, tmp / engine, args.steps, args.batch_size)
        for engine in args.engines
    }
    base = rows.get("ddp")
    print("| engine | samples/s | vs DDP | peak RSS per rank (MB) | vs DDP |")
    print("|---|---|---|---|---|")
    for engine, row in rows.items():
        speed = f"{row['samples_per_s'] / base['samples_per_s']:.2f}x" if base else "-"
        memory = f"{row['peak_rss_mb'] / base['peak_rss_mb']:.2f}x" if base else "-"
        print(f"| {engine} | {row['samples_per_s']:.1f} | {speed} | {row['peak_rss_mb']:.0f} | {memory} |")
    print(
        f"({args.steps} steps x 2 processes x {args.batch_size} samples; max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB in this process)"
    )


if __name__ == "__main__":
    main()

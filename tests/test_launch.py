# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Multi-node: the Slurm launcher's commands from a fake Slurm environment, and a real 2-machine rendezvous."""

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from medvl_recipes.errors import MedvlError
from medvl_recipes.launch import accelerate_command, free_port, slurm_command
from tests.ddp_siglip_worker import make_pairs, reference_grads


REPO = Path(__file__).resolve().parents[1]
SLURM_ENV = {
    "SLURM_NNODES": "4",
    "SLURM_NODEID": "2",
    "SLURM_GPUS_ON_NODE": "8",
    "MASTER_ADDR": "gpu-017",
    "MASTER_PORT": "29512",
}


def _flag(argv, name):
    return argv[argv.index(name) + 1]


def test_slurm_command_takes_the_rendezvous_from_slurm():
    recipe = "recipes/llama-3.2-11b-vision/decoder/config_full.yaml"
    argv, env = slurm_command(
        "decoder", REPO / "accelerate_configs" / "zero3.yaml", ["--config", recipe], environ=SLURM_ENV
    )
    assert argv[1:3] == ["-m", "accelerate.commands.launch"] and env == {}
    assert _flag(argv, "--num_machines") == "4" and _flag(argv, "--machine_rank") == "2"
    assert _flag(argv, "--num_processes") == "32"  # 4 nodes x 8 GPUs
    assert _flag(argv, "--main_process_ip") == "gpu-017" and _flag(argv, "--main_process_port") == "29512"
    assert _flag(argv, "--rdzv_backend") == "c10d"
    assert argv[-4:] == ["-m", "medvl_recipes.train_decoder", "--config", recipe]


@pytest.mark.parametrize(
    ("drop", "message"),
    [("SLURM_NNODES", r"\$SLURM_NNODES is not set"), ("MASTER_ADDR", r"\$MASTER_ADDR is not set")],
)
def test_slurm_command_names_what_is_missing(drop, message):
    environ = {key: value for key, value in SLURM_ENV.items() if key != drop}
    with pytest.raises(MedvlError, match=message):
        slurm_command("encoder", REPO / "accelerate_configs" / "ddp.yaml", environ=environ)


def test_more_nodes_than_the_job_has_is_refused():
    with pytest.raises(MedvlError, match="--nodes 8, but the Slurm job has 4 node"):
        slurm_command("encoder", REPO / "accelerate_configs" / "ddp.yaml", environ=SLURM_ENV, num_nodes=8)


def _fake_slurm_bin(tmp_path: Path) -> Path:
    """`scontrol` lists two hosts; `srun` runs its command once per node with that node's SLURM_NODEID."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scripts = {
        "scontrol": '#!/bin/bash\n[[ "$1 $2" == "show hostnames" ]] && printf "node-a\\nnode-b\\n"\n',
        "srun": (
            "#!/bin/bash\nnodes=1\nwhile [[ $1 == --* ]]; do [[ $1 == --nodes=* ]] && nodes=${1#--nodes=}; shift; done\n"
            'for ((i = 0; i < nodes; i++)); do SLURM_NODEID=$i SLURM_PROCID=$i "$@" || exit $?; done\n'
        ),
    }
    for name, text in scripts.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(stat.S_IRWXU)
    (bin_dir / "python").symlink_to(sys.executable)
    return bin_dir


def test_launch_slurm_script_gives_each_node_its_rank(tmp_path):
    env = {
        **os.environ,
        "PATH": f"{_fake_slurm_bin(tmp_path)}:{os.environ['PATH']}",
        "PYTHONPATH": str(REPO / "src"),
        "SLURM_NNODES": "2",
        "SLURM_JOB_NODELIST": "node-[a-b]",
        "SLURM_GPUS_ON_NODE": "8",
    }
    args = ["--model", "llama-3.2-11b-vision", "--stage", "decoder", "--config", "full", "--accelerator", "zero3"]
    result = subprocess.run(
        ["bash", "recipes/launch.slurm", *args, "--args", "--learning_rate 1e-4 --seed 3", "--dry-run"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2
    for rank, line in enumerate(lines):
        argv = line.split()
        assert _flag(argv, "--machine_rank") == str(rank) and _flag(argv, "--num_machines") == "2"
        assert _flag(argv, "--num_processes") == "16" and _flag(argv, "--main_process_ip") == "node-a"
        assert _flag(argv, "--config_file") == "accelerate_configs/zero3.yaml"
        assert argv[-6:] == [
            "--config",
            "recipes/llama-3.2-11b-vision/decoder/config_full.yaml",
            "--learning_rate",
            "1e-4",
            "--seed",
            "3",
        ]


def test_launch_slurm_script_refuses_a_missing_recipe(tmp_path):
    env = {**os.environ, "PATH": f"{_fake_slurm_bin(tmp_path)}:{os.environ['PATH']}", "SLURM_NNODES": "2"}
    args = ["--model", "llama-3.2-11b-vision", "--stage", "decoder", "--config", "nope", "--accelerator", "zero3"]
    result = subprocess.run(["bash", "recipes/launch.slurm", *args], cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 2
    assert "recipes/llama-3.2-11b-vision/decoder/config_nope.yaml does not exist" in result.stderr


def _wait_all(processes: list[subprocess.Popen], timeout: float) -> None:
    # Stop waiting as soon as one launcher fails (the other would wait for it in a collective), then kill what is left.
    deadline = time.monotonic() + timeout
    try:
        while any(p.poll() is None for p in processes) and time.monotonic() < deadline:
            if any(p.returncode not in (None, 0) for p in processes):
                break
            time.sleep(0.5)
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def test_two_machines_global_negatives_match_one_batch(tiny_models, tmp_path):
    """2 machines x 1 process on 127.0.0.1 (c10d), 2 micro-batches of 2 pairs each, `negatives: global`:
    the gradient equals one process on the 8 pairs as one batch."""
    out, port = tmp_path / "grads.pt", free_port()
    # LOGLEVEL: the elastic agents log their rendezvous and exit barrier, which is what a hang needs to be read.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{REPO / 'src'}:{REPO}", "LOGLEVEL": "INFO"}
    processes = []
    for rank in range(2):
        argv, extra_env = accelerate_command(
            str(REPO / "tests" / "ddp_siglip_worker.py"),
            REPO / "accelerate_configs" / "ddp.yaml",
            [str(tiny_models["siglip"]), str(out)],
            num_processes=2,
            num_machines=2,
            machine_rank=rank,
            main_process_ip="127.0.0.1",
            main_process_port=port,
            rdzv_backend="c10d",
            cpu=True,
        )
        # Both "machines" are this host, where each c10d agent would guess it hosts the store: say which one does.
        # Output goes to files: with pipes, rank 1 blocks on a full pipe while the test reads rank 0's, and rank 0
        # waits for rank 1 in the next collective.
        launcher = [*argv[:3], "--rdzv_conf", f"is_host={int(rank == 0)}", *argv[3:]]
        with open(tmp_path / f"rank{rank}.log", "w") as log:
            processes.append(
                subprocess.Popen(
                    ["nice", "-n", "10", *launcher],
                    env={**env, **extra_env},
                    cwd=tmp_path,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                )
            )
    # Past torch's 300 s exit barrier: an agent whose peer left first waits it out (pytorch/pytorch#69520), then
    # exits 0.
    _wait_all(processes, timeout=420)
    logs = [(tmp_path / f"rank{rank}.log").read_text() for rank in range(2)]
    returncodes = [process.returncode for process in processes]
    assert returncodes == [0, 0], "\n".join(f"--- rank {r} ---\n{log[-4000:]}" for r, log in enumerate(logs))
    saved = torch.load(out)
    assert saved["world_size"] == 2
    ref_loss, ref_grads = reference_grads(tiny_models["siglip"], make_pairs(8))
    assert saved["loss"] == pytest.approx(ref_loss, abs=1e-5)
    for name, grad in ref_grads.items():
        torch.testing.assert_close(saved["grads"][name], grad, rtol=1e-5, atol=1e-5, msg=name)

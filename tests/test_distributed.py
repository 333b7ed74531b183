# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Both smoke recipes under each accelerate config, 2 processes, through `accelerate launch --config_file`.

Each run uses the CPU override of `medvl_recipes.launch.cpu_override` (DDP: `ACCELERATE_USE_CPU=1`; DeepSpeed:
`DS_ACCELERATOR=cpu --use_cpu false --ddp_backend gloo`; all: `--mixed_precision no`), trains 2 steps of
2 processes x 2 samples, saves, and the saved folder reloads with `from_pretrained`. The reloaded model is
compared with a 1-process run of the same seed on the same global batch (1 x 4 samples): same samples in each
step (accelerate's seeded sampler hands the 2 ranks the two halves of the 1-process batch), the loss normalised
over the global batch's tokens (decoder) or all-gathered negatives (encoder, `negatives: global`).

Tolerance: outputs (decoder logits, encoder embeddings) within `ATOL` = 1e-5, float32. Measured: 1.6e-7 to
5.4e-7 for DDP, ZeRO-2 and ZeRO-3 (2 CPU processes, gloo): the all-reduce and the padding of 2 vs 4 samples change
the summation order, and AdamW's division by sqrt(v) turns ~1e-7 gradient differences into somewhat larger weight
differences. Training moves the outputs by 0.29 (encoder) and 1.0 (decoder), so a run on other samples, another
loss normalisation or another engine's fallback fails the check.

Where an engine cannot run on CPU the test is marked `gpu` and says why (FSDP: accelerate falls back to DDP).
On 2 or more GPUs every run, the 1-process reference included, trains on the GPUs in float32 without TF32.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModel, AutoModelForImageTextToText, AutoProcessor

from medvl_recipes.collators import SiglipPairCollator, VisionSFTCollator
from medvl_recipes.data.chat import load_chat_split
from medvl_recipes.launch import FSDP_ON_CPU, accelerate_command, free_port
from tests.fixtures.factories import write_chat_dataset, write_prepared_dataset


REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "accelerate_configs"
RECIPES = {
    "encoder": REPO / "recipes" / "siglip-base-patch16-224" / "encoder" / "config_smoke.yaml",
    "decoder": REPO / "recipes" / "llama-3.2-11b-vision" / "decoder" / "config_smoke.yaml",
}
ATOL = 1e-5
# Files only each engine writes into checkpoint-N: proof that the engine, not a fallback, ran.
# FSDP: the sharded model that accelerate's `save_fsdp_model` writes with torch.distributed.checkpoint
# (SHARDED_STATE_DICT, one `.distcp` file per rank); DeepSpeed: its per-rank partitioned states under global_stepN.
ENGINE_FILES = {
    "ddp": "optimizer.pt",
    "zero2": "global_step{step}/zero_pp_rank_1_mp_rank_00_optim_states.pt",
    "zero3": "global_step{step}/zero_pp_rank_1_mp_rank_00_model_states.pt",
    "fsdp": "pytorch_model_fsdp_0/__1_0.distcp",
}
ON_GPU = torch.cuda.device_count() >= 2
# On GPUs the runs and the 1-process reference train on the GPUs, in float32 (the configs say bf16, the smoke
# recipes `use_cpu: true`) and without TF32, so that they compare at ATOL as on CPU.
GPU_LAUNCHER, GPU_TRAINING, GPU_ENV = (
    ["--mixed_precision", "no"],
    ["--use_cpu", "false"],
    {"NVIDIA_TF32_OVERRIDE": "0"},
)
slow = pytest.mark.slow
# FSDP: accelerate 1.16 selects FSDP only on accelerator devices (`AcceleratorState.__init__` sets
# `DistributedType.FSDP` only for MULTI_GPU/MULTI_XPU/...): on CPU it trains DDP (`ACCELERATE_USE_CPU=1`) or
# single processes, without an error, so the FSDP runs need 2 CUDA devices.
gpu = [
    pytest.mark.gpu,
    pytest.mark.skipif(not ON_GPU, reason="FSDP through accelerate runs only on GPUs; these runs need 2"),
]
needs_deepspeed = pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None, reason="pip install deepspeed")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("distributed-data")
    return {
        "encoder": write_prepared_dataset(root / "pairs", n_train=16, n_val=4, seed=0),
        "decoder": write_chat_dataset(root / "chat", n_train=16, n_val=4, seed=0),
    }


def recipe_args(stage, tiny_models, data, output_dir, *extra):
    model = tiny_models["siglip" if stage == "encoder" else "mllama"]
    args = ["--config", str(RECIPES[stage]), "--model_name_or_path", str(model), "--dataset_name", str(data[stage])]
    args += ["--output_dir", str(output_dir), "--max_steps", "2", "--save_strategy", "steps", "--save_steps", "2"]
    args += ["--logging_steps", "1", "--report_to", "none", "--disable_tqdm", "true"]
    if stage == "encoder":
        args += ["--retrieval_eval", "false", "--warmup_steps", "0"]
    else:
        # The vision warm-up runs before the engine wraps the model (tests/test_vision_warmup.py, test_resume.py).
        args += ["--num_sample_generations", "0", "--vision_warmup_steps", "0"]
    return [*args, *extra]


def run(argv, env, cwd, timeout=600):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{REPO / 'src'}:{REPO}", **env}
    result = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def launch(engine, stage, tiny_models, data, output_dir, *extra, num_processes=2, cpu=not ON_GPU):
    argv, env = accelerate_command(
        stage,
        CONFIGS / f"{engine}.yaml",
        recipe_args(stage, tiny_models, data, output_dir, *extra, *([] if cpu else GPU_TRAINING)),
        num_processes=num_processes,
        main_process_port=free_port(),
        cpu=cpu,
    )
    if not cpu:
        at = argv.index("--config_file") + 2
        argv, env = [*argv[:at], *GPU_LAUNCHER, *argv[at:]], {**env, **GPU_ENV}
    return run(["nice", "-n", "10", *argv], env, cwd=output_dir.parent)


@pytest.fixture(scope="module")
def single_process(tiny_models, data, tmp_path_factory):
    """The 1-process reference of each stage: 2 steps of 4 samples, the same seed."""
    outputs = {}

    def get(stage):
        if stage not in outputs:
            out = tmp_path_factory.mktemp(f"single-{stage}") / "run"
            argv = [sys.executable, "-m", f"medvl_recipes.train_{stage}"]
            device = GPU_TRAINING if ON_GPU else ["--use_cpu", "true"]
            argv += recipe_args(stage, tiny_models, data, out, "--per_device_train_batch_size", "4", *device)
            run(argv, GPU_ENV if ON_GPU else {}, cwd=out.parent)
            outputs[stage] = out
        return outputs[stage]

    return get


def encoder_outputs(model_dir, data):
    from medvl_recipes.data.prepared import load_prepared_split

    model = AutoModel.from_pretrained(model_dir).eval()
    rows = list(load_prepared_split(str(data["encoder"]), "validation"))
    batch = SiglipPairCollator(AutoProcessor.from_pretrained(model_dir))(rows)
    with torch.no_grad():
        out = model(**batch)
    # The sigmoid loss's scale and bias too: they get their gradient from the loss alone (not via the embeddings).
    return torch.cat([out.image_embeds.flatten(), out.text_embeds.flatten(), model.logit_scale, model.logit_bias])


def decoder_outputs(model_dir, data):
    model = AutoModelForImageTextToText.from_pretrained(model_dir).eval()
    processor = AutoProcessor.from_pretrained(model_dir)
    rows = list(load_chat_split(str(data["decoder"]), "validation"))
    batch = VisionSFTCollator(processor, max_length=256)(rows)
    batch.pop("labels")
    with torch.no_grad():
        logits = model(**batch).logits
    return logits[batch["attention_mask"].bool()]


OUTPUTS = {"encoder": encoder_outputs, "decoder": decoder_outputs}


def check_against_single_process(engine, stage, out, reference, tiny_models, data):
    assert (out / "checkpoint-2" / ENGINE_FILES[engine].format(step=2)).exists(), sorted(
        os.listdir(out / "checkpoint-2")
    )
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    got, want = OUTPUTS[stage](out, data), OUTPUTS[stage](reference, data)
    untrained = OUTPUTS[stage](tiny_models["siglip" if stage == "encoder" else "mllama"], data)
    assert (want - untrained).abs().max() > 100 * ATOL, "training did not move the outputs: the check is void"
    diff = (got - want).abs().max().item()
    assert diff <= ATOL, f"{engine}/{stage}: 2 processes differ from 1 process by {diff:.2e} (tolerance {ATOL})"
    return diff


def _engine_params(stages):
    params = []
    for stage in stages:
        for engine in ("ddp", "zero2", "zero3", "fsdp"):
            marks = [needs_deepspeed] if engine.startswith("zero") else []
            if engine == "fsdp":
                marks += gpu
            elif (engine, stage) not in {("ddp", "decoder"), ("zero2", "decoder")}:
                # The default `make test` runs the two cheapest; the rest is `make test-distributed`.
                marks.append(slow)
            params.append(pytest.param(engine, stage, marks=marks, id=f"{engine}-{stage}"))
    return params


@pytest.mark.parametrize(("engine", "stage"), _engine_params(["decoder", "encoder"]))
def test_two_processes_match_one(engine, stage, tiny_models, data, single_process, tmp_path):
    # The encoder contrasts the global batch (all-gathered) so that 2 x 2 pairs == 1 x 4 pairs.
    extra = ["--per_device_train_batch_size", "2"] + (["--negatives", "global"] if stage == "encoder" else [])
    out = tmp_path / "run"
    launch(engine, stage, tiny_models, data, out, *extra)
    check_against_single_process(engine, stage, out, single_process(stage), tiny_models, data)


@pytest.mark.parametrize(
    "engine", [pytest.param("zero3", marks=[slow, needs_deepspeed]), pytest.param("fsdp", marks=gpu)]
)
def test_resume_from_sharded_checkpoint(engine, tiny_models, data, tmp_path):
    """Stop after step 1, resume from the engine's sharded checkpoint-1: the same weights as 2 steps straight.

    Both runs' `output_dir` reload with `from_pretrained`: the engine's final save gathered the full weights
    (ZeRO-3: `zero3_save_16bit_model`; FSDP: `modeling.full_weights_on_save`).
    """
    extra = ["--per_device_train_batch_size", "2", "--save_steps", "1"]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    launch(engine, "decoder", tiny_models, data, straight, *extra)
    launch(engine, "decoder", tiny_models, data, resumed, *extra, "--max_steps", "1")
    checkpoint = resumed / "checkpoint-1"
    assert (checkpoint / ENGINE_FILES[engine].format(step=1)).exists(), sorted(os.listdir(checkpoint))
    launch(engine, "decoder", tiny_models, data, resumed, *extra, "--resume_from_checkpoint", str(checkpoint))
    state = json.loads((resumed / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    diff = (decoder_outputs(resumed, data) - decoder_outputs(straight, data)).abs().max().item()
    assert diff <= ATOL, f"resumed run differs by {diff:.2e}"


def test_fsdp_final_save_gathers_the_full_state_dict():
    # The code path of the `gpu` FSDP runs, on the plugin that fsdp.yaml configures: its checkpoints are sharded,
    # and `Trainer.save_model` writes weights under FSDP only for FULL_STATE_DICT (transformers 5.24 tests
    # `"FULL_STATE_DICT" in str(fsdp_plugin.state_dict_type)`), which `full_weights_on_save` switches to.
    from types import SimpleNamespace

    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import FullyShardedDataParallelPlugin

    from medvl_recipes.modeling import full_weights_on_save

    fsdp_config = load_config_from_file(str(CONFIGS / "fsdp.yaml")).fsdp_config
    plugin = FullyShardedDataParallelPlugin(
        fsdp_version=fsdp_config["fsdp_version"], state_dict_type=fsdp_config["fsdp_state_dict_type"]
    )
    assert "SHARDED_STATE_DICT" in str(plugin.state_dict_type)
    trainer = SimpleNamespace(
        is_fsdp_enabled=True, accelerator=SimpleNamespace(state=SimpleNamespace(fsdp_plugin=plugin))
    )
    full_weights_on_save(trainer)
    assert "FULL_STATE_DICT" in str(plugin.state_dict_type)
    full_weights_on_save(SimpleNamespace(is_fsdp_enabled=False))  # DDP, DeepSpeed, one process: nothing to switch


def test_fsdp_on_cpu_is_refused_with_the_reason(tmp_path):
    # accelerate would silently train DDP under an FSDP config on CPU; the launcher says so instead.
    from medvl_recipes.errors import MedvlError

    with pytest.raises(MedvlError, match="accelerate runs FSDP only on GPUs"):
        accelerate_command("decoder", CONFIGS / "fsdp.yaml", cpu=True)
    assert "silently trains plain DDP" in FSDP_ON_CPU

# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Fine-tune Llama 3.2 Vision (Mllama) to write reports from images, with TRL `SFTTrainer` (full, LoRA, QLoRA).

Tested on CPU with the tiny model (`config_smoke.yaml`); the real recipes state their GPU needs in their headers.

Usage:

    accelerate launch --config_file accelerate_configs/single_gpu.yaml -m medvl_recipes.train_decoder \
        --config recipes/llama-3.2-11b-vision/decoder/config_lora.yaml

    accelerate launch --config_file accelerate_configs/zero3.yaml -m medvl_recipes.train_decoder \
        --config recipes/llama-3.2-11b-vision/decoder/config_full.yaml

    medvl train-decoder --config recipes/llama-3.2-11b-vision/decoder/config_smoke.yaml
"""

import copy
import dataclasses
import logging
import sys
from collections.abc import Sequence

from transformers import set_seed
from trl import SFTConfig, SFTTrainer, TrlParser

from medvl_recipes.callbacks import RunIdentityCallback, TrainingStatsCallback
from medvl_recipes.checkpoints import resume_weights_source, start_run
from medvl_recipes.collators import VisionSFTCollator
from medvl_recipes.configs import DecoderModelConfig, DecoderScriptArguments, get_recipe_path, parse_recipe
from medvl_recipes.data.chat import load_chat_split
from medvl_recipes.errors import MedvlError
from medvl_recipes.hub.push import push_training_output, take_over_push
from medvl_recipes.logs import setup_logging
from medvl_recipes.modeling import check_checkpoint, get_decoder, get_processor, save_checkpoint
from medvl_recipes.prompts import assistant_text, training_prompt, write_prompt
from medvl_recipes.retrieval_context import write_retrieval_context


logger = logging.getLogger(__name__)


def _get_datasets(script_args, training_args):
    # The chat splits (`medvl to-chat` folders or TRL `messages` + `images` datasets, local or Hub); the test split
    # only when evaluation or sample logs need it.
    config = script_args.dataset_config
    train_dataset = load_chat_split(script_args.dataset_name, script_args.dataset_train_split, config=config)
    if script_args.max_train_samples is not None:
        train_dataset = train_dataset.select(range(min(script_args.max_train_samples, len(train_dataset))))
    needs_eval = training_args.eval_strategy != "no" or script_args.num_sample_generations > 0
    eval_dataset = (
        load_chat_split(script_args.dataset_name, script_args.dataset_test_split, config=config)
        if needs_eval
        else None
    )
    return train_dataset, eval_dataset


def _write_card_and_push(script_args, training_args, model_args, metrics, recipe, push_to_hub) -> None:
    from medvl_recipes.hub.model_card import write_model_card

    write_model_card(
        training_args.output_dir,
        stage="decoder",
        base_model=model_args.model_name_or_path,
        recipe=recipe,
        dataset=script_args.dataset_name,
        metrics=metrics,
        training_args=training_args.to_dict(),
    )
    if push_to_hub:
        push_training_output(training_args.output_dir, training_args)


class _TrainImages(Sequence):
    """The training split's first image per sample, opened as the collator opens it, when asked for (a real split's
    decoded images would not all fit in memory)."""

    def __init__(self, dataset, collator: VisionSFTCollator):
        self.dataset, self.collator = dataset, collator

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        row = self.dataset[index]
        raw = row.get("images") or [row.get("image")]
        return self.collator.load_image(raw[0], f"train sample {index}")


def _check_retrieval_args(model_args) -> None:
    if model_args.retrieval_context_k < 0:
        raise MedvlError(
            f"retrieval_context_k must be 0 (no context) or positive, got {model_args.retrieval_context_k}"
        )
    if model_args.retrieval_context_k > 0:
        if not model_args.retrieval_context_encoder:
            raise MedvlError(
                "retrieval_context_k > 0 needs retrieval_context_encoder: the fine-tuned SigLIP (`medvl train-encoder` "
                "output) that finds each image's similar training reports"
            )
        check_checkpoint(model_args.retrieval_context_encoder, "retrieval_context_encoder")


def _add_retrieval_context(train_dataset, eval_dataset, collator, model_args, training_args):
    # Each sample's prompt gets the reports of its nearest training images (`medvl_recipes.retrieval_context`).
    if model_args.retrieval_context_k <= 0:
        return train_dataset, eval_dataset, None
    from medvl_recipes.prompts import with_context
    from medvl_recipes.retrieval_context import build_retrieval_context

    context = build_retrieval_context(
        model_args.retrieval_context_encoder,
        _TrainImages(train_dataset, collator),
        [str(i) for i in train_dataset["id"]],
        [assistant_text(messages) for messages in train_dataset["messages"]],
        k=model_args.retrieval_context_k,
        device=str(training_args.device),
    )

    def add(dataset, contexts):
        return dataset.map(
            lambda row, i: {"messages": with_context(row["messages"], contexts[i])},
            with_indices=True,
            keep_in_memory=True,
            desc="retrieval context",
        )

    train_dataset = add(train_dataset, context.training_contexts())
    if eval_dataset is not None:
        eval_dataset = add(eval_dataset, context.reports_for(_TrainImages(eval_dataset, collator)))
    return train_dataset, eval_dataset, context


def _check_warmup_args(model_args) -> None:
    if model_args.vision_warmup_steps <= 0:
        return
    if model_args.use_peft:
        # The warm-up changes the base model's vision tower, and the adapter a LoRA run saves does not contain it.
        raise MedvlError(
            "vision_warmup_steps > 0 with use_peft: the warm-up trains the base model's vision tower, which a LoRA "
            "adapter does not save; warm up in a full run (use_peft: false) and train LoRA from its output, or set "
            "vision_warmup_steps: 0"
        )
    if model_args.vision_warmup_encoder:
        check_checkpoint(model_args.vision_warmup_encoder, "vision_warmup_encoder")
    elif not model_args.vision_warmup_concepts:
        raise MedvlError(
            "vision_warmup_steps > 0 needs something to learn: set vision_warmup_encoder, vision_warmup_concepts or both"
        )


def _warm_up_vision(model, processor, collator, train_dataset, model_args, training_args, resume_from) -> dict:
    # The vision alignment stage before SFT (`medvl_recipes.vision_warmup`); a resumed run has its weights already.
    if model_args.vision_warmup_steps <= 0:
        return {}
    if resume_from:
        logger.info("resuming from %s: the vision warm-up is skipped (its result is in the checkpoint)", resume_from)
        return {}
    from transformers.integrations import is_deepspeed_zero3_enabled

    from medvl_recipes.vision_warmup import warm_up_vision_tower

    if is_deepspeed_zero3_enabled():
        # ZeRO-3 partitions the weights while loading, so no process holds the whole vision tower to train.
        raise MedvlError(
            "vision_warmup_steps > 0 does not run under DeepSpeed ZeRO-3 (the weights are partitioned at load time); "
            "warm up in a single-process or DDP run and train ZeRO-3 from its output, or set vision_warmup_steps: 0"
        )
    reports = [assistant_text(messages) for messages in train_dataset["messages"]]
    return warm_up_vision_tower(
        model,
        processor.image_processor,
        _TrainImages(train_dataset, collator),
        encoder=model_args.vision_warmup_encoder,
        reports=reports if model_args.vision_warmup_concepts else None,
        steps=model_args.vision_warmup_steps,
        learning_rate=model_args.vision_warmup_learning_rate,
        batch_size=model_args.vision_warmup_batch_size,
        seed=training_args.seed,
    )


def _sample_generations(trainer, processor, eval_dataset, script_args, prompt, context) -> dict:
    # Reports for the test split after training, asked as the checkpoint will be; the first few are logged.
    from medvl_recipes.generation import log_sample_generations

    samples = log_sample_generations(
        trainer.accelerator.unwrap_model(trainer.model),
        processor,
        eval_dataset,
        prompt=prompt,
        context=context,
        num_logged=script_args.num_sample_generations,
        max_new_tokens=script_args.sample_max_new_tokens,
        batch_size=max(trainer.args.per_device_eval_batch_size, 1),
    )
    return {f"{script_args.dataset_test_split}_bleu": samples["bleu"]}


def main(script_args, training_args, model_args, recipe: str | None = None):
    set_seed(training_args.seed)
    push_to_hub = take_over_push(training_args)
    if training_args.activation_checkpointing and not training_args.activation_checkpointing_kwargs:
        # Reentrant checkpointing needs inputs that require grad and breaks with frozen towers and DDP.
        training_args.activation_checkpointing_kwargs = {"use_reentrant": False}
    if not script_args.dataset_name:
        raise MedvlError("dataset_name is not set; point it at a `medvl to-chat` folder or a TRL-format dataset")
    check_checkpoint(model_args.model_name_or_path, "model_name_or_path")
    _check_warmup_args(model_args)
    _check_retrieval_args(model_args)
    identity, resume_from = start_run(script_args, training_args, model_args)

    # Data
    train_dataset, eval_dataset = _get_datasets(script_args, training_args)

    # Processor and model
    processor = get_processor(model_args)
    # A full-weights checkpoint is loaded with from_pretrained, which maps its keys (see resume_weights_source).
    weights_args = copy.copy(model_args)
    weights_args.model_name_or_path = resume_weights_source(model_args.model_name_or_path, resume_from)
    model = get_decoder(weights_args, training_args)
    collator = VisionSFTCollator(
        processor,
        max_length=training_args.max_length,
        loss_on=script_args.loss_on,
        too_long=script_args.too_long,
        max_image_side=model_args.max_image_side,
    )
    warmup_stats = _warm_up_vision(model, processor, collator, train_dataset, model_args, training_args, resume_from)
    prompt = training_prompt(train_dataset["messages"])  # before the retrieval context joins the user turns
    train_dataset, eval_dataset, context = _add_retrieval_context(
        train_dataset, eval_dataset, collator, model_args, training_args
    )

    # Trainer
    trainer = SFTTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset if training_args.eval_strategy != "no" else None,
        processing_class=processor,
        data_collator=collator,
        callbacks=[RunIdentityCallback(identity, prompt=prompt, context=context)],
    )
    TrainingStatsCallback().add_to(trainer)

    # Train
    result = trainer.train(resume_from_checkpoint=resume_from)
    metrics = dict(result.metrics) | warmup_stats
    if collator.num_dropped:
        logger.warning("%d training samples were dropped as too long for max_length", collator.num_dropped)

    # Save
    run_args = {
        name: dataclasses.asdict(args) for name, args in (("script_args", script_args), ("model_args", model_args))
    }
    run_args["training_args"] = training_args.to_dict()
    save_checkpoint(trainer, processor, training_args.output_dir, run_args=run_args)
    if trainer.is_world_process_zero():
        write_prompt(training_args.output_dir, *prompt)
        write_retrieval_context(training_args.output_dir, context)

    # Evaluate
    if trainer.is_world_process_zero() and script_args.num_sample_generations > 0:
        metrics |= _sample_generations(trainer, processor, eval_dataset, script_args, prompt, context)
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)

    # Model card and push
    if trainer.is_world_process_zero():
        _write_card_and_push(script_args, training_args, model_args, metrics, recipe, push_to_hub)
    return metrics


def build_parser() -> TrlParser:
    return TrlParser((DecoderScriptArguments, SFTConfig, DecoderModelConfig), prog="medvl train-decoder")


def cli(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    script_args, training_args, model_args = parse_recipe(build_parser(), argv)
    main(script_args, training_args, model_args, recipe=get_recipe_path(argv))
    return 0


if __name__ == "__main__":
    setup_logging()
    sys.exit(cli())

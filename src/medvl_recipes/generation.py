# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Report generation with a Llama 3.2 Vision model: batched (eval harness) and streamed (demo).

The prompt is built exactly as in training (`medvl to-chat`): the default system prompt, then a user turn with the
image and the first instruction of the default prompt set, then the assistant header.
"""

import logging
from collections.abc import Iterable, Iterator
from threading import Thread
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import TextIteratorStreamer

from medvl_recipes.imaging import open_image
from medvl_recipes.prompts import build_messages


logger = logging.getLogger(__name__)


def _model_inputs(model, processor, images: list[Any], prompt: str | None, system_prompt: str | None):
    text = processor.apply_chat_template(build_messages(prompt, system_prompt), add_generation_prompt=True)
    pil_images = [[open_image(image, None, f"image {i}")] for i, image in enumerate(images)]
    # Left padding: every row's last prompt token sits at the end, where generation continues.
    inputs = processor(
        text=[text] * len(images),
        images=pil_images,
        padding=True,
        padding_side="left",
        add_special_tokens=False,  # the chat template already starts with <|begin_of_text|>
        return_tensors="pt",
    ).to(model.device)
    inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    return inputs


def _pad_token_id(processor) -> int | None:
    tokenizer = getattr(processor, "tokenizer", processor)
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


@torch.inference_mode()
def generate_reports(
    model,
    processor,
    images: Iterable[Any],
    *,
    prompt: str | None = None,
    system_prompt: str | None = None,
    max_new_tokens: int = 128,
    batch_size: int = 8,
    do_sample: bool = False,
    show_progress: bool = True,
) -> list[str]:
    """Generate one report per image, in batches with left padding; greedy unless `do_sample`.

    Args:
        model (`PreTrainedModel` or `PeftModel`):
            An `MllamaForConditionalGeneration` (fine-tuned or base; a LoRA `PeftModel` works too).
        processor (`ProcessorMixin`):
            Its `MllamaProcessor`.
        images (iterable of PIL images, paths or bytes):
            One image per report.
        prompt (`str`, *optional*):
            The instruction; defaults to `PROMPT_SETS["default"][0]`, the phrasing the model was trained with.
        system_prompt (`str`, *optional*):
            Defaults to `DEFAULT_SYSTEM_PROMPT`.
        max_new_tokens (`int`, *optional*, defaults to `128`):
            Longest report in tokens.
        batch_size (`int`, *optional*, defaults to `8`):
            Images per `generate` call.
        do_sample (`bool`, *optional*, defaults to `False`):
            Sample instead of greedy decoding.
        show_progress (`bool`, *optional*, defaults to `True`):
            Show a tqdm bar over batches.

    Returns:
        `list[str]`: the reports, in the order of `images`, without special tokens, stripped.
    """
    images = list(images)
    was_training = model.training
    model.eval()
    reports = []
    starts = range(0, len(images), batch_size)
    for start in tqdm(starts, desc="generating reports", disable=not show_progress or len(starts) < 2):
        inputs = _model_inputs(model, processor, images[start : start + batch_size], prompt, system_prompt)
        output = model.generate(
            **inputs, max_new_tokens=max_new_tokens, do_sample=do_sample, pad_token_id=_pad_token_id(processor)
        )
        new_tokens = output[:, inputs["input_ids"].shape[1] :]  # (B, new)
        reports += [text.strip() for text in processor.batch_decode(new_tokens, skip_special_tokens=True)]
    model.train(was_training)
    return reports


def stream_report(
    model,
    processor,
    image: Any,
    *,
    prompt: str | None = None,
    system_prompt: str | None = None,
    max_new_tokens: int = 128,
) -> Iterator[str]:
    """Generate one report greedily and yield the growing text as tokens arrive (for a live demo).

    Args:
        model (`PreTrainedModel` or `PeftModel`):
            An `MllamaForConditionalGeneration`.
        processor (`ProcessorMixin`):
            Its `MllamaProcessor`.
        image (PIL image, path or bytes):
            The image to describe.
        prompt (`str`, *optional*):
            Defaults to `PROMPT_SETS["default"][0]`.
        system_prompt (`str`, *optional*):
            Defaults to `DEFAULT_SYSTEM_PROMPT`.
        max_new_tokens (`int`, *optional*, defaults to `128`):
            Longest report in tokens.

    Yields:
        `str`: the report so far (each value extends the previous one); the last value is the full report.
    """
    inputs = _model_inputs(model, processor, [image], prompt, system_prompt)
    tokenizer = getattr(processor, "tokenizer", processor)
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    kwargs = dict(
        **inputs,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        pad_token_id=_pad_token_id(processor),
        streamer=streamer,
    )

    errors = []

    def _generate():
        try:
            with torch.inference_mode():
                model.generate(**kwargs)
        except Exception as err:  # surfaced in the caller's thread below
            errors.append(err)
            streamer.end()  # otherwise the consumer waits for tokens forever

    thread = Thread(target=_generate, daemon=True)
    thread.start()
    text = ""
    for piece in streamer:
        text += piece
        yield text.strip()
    thread.join()
    if errors:
        raise errors[0]


def log_sample_generations(
    model, processor, dataset, *, num_logged: int = 3, max_new_tokens: int = 64, batch_size: int = 8
) -> dict[str, Any]:
    """Generate a report for every sample of a chat `dataset`, log the first few next to their references.

    Args:
        model (`PreTrainedModel` or `PeftModel`):
            The trained model.
        processor (`ProcessorMixin`):
            Its processor.
        dataset (`datasets.Dataset`):
            Chat samples (`messages`, `images`), e.g. from `medvl_recipes.data.chat.load_chat_split`.
        num_logged (`int`, *optional*, defaults to `3`):
            How many prediction/reference pairs to log.
        max_new_tokens (`int`, *optional*, defaults to `64`):
            Longest report in tokens.
        batch_size (`int`, *optional*, defaults to `8`):
            Images per `generate` call.

    Returns:
        `dict` with `bleu` (sacrebleu corpus BLEU over the whole dataset), `predictions` and `references`.
    """
    import sacrebleu

    references = [
        "".join(part.get("text") or "" for part in message["content"] if part.get("type") == "text").strip()
        for message in (next(m for m in reversed(row) if m["role"] == "assistant") for row in dataset["messages"])
    ]
    images = [row[0] for row in dataset["images"]]
    predictions = generate_reports(
        model, processor, images, max_new_tokens=max_new_tokens, batch_size=batch_size, show_progress=False
    )
    bleu = sacrebleu.corpus_bleu(predictions, [references]).score
    for i in range(min(num_logged, len(predictions))):
        logger.info("sample %d\n  generated: %s\n  reference: %s", i, predictions[i], references[i])
    logger.info("corpus BLEU of %d generated reports: %.2f", len(predictions), bleu)
    return {"bleu": bleu, "predictions": predictions, "references": references}

# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Report generation with a Llama 3.2 Vision model: batched (eval harness) and streamed (demo).

The prompt is built exactly as in training (`prompts.build_messages`): the system prompt, then a user turn with the
image, the retrieval context of a decoder trained with one (`retrieval_context`) and the instruction, then the
assistant header.
"""

import logging
from collections.abc import Iterable, Iterator
from threading import Thread
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import TextIteratorStreamer

from medvl_recipes.imaging import open_image
from medvl_recipes.prompts import assistant_text, build_messages


logger = logging.getLogger(__name__)


def _model_inputs(model, processor, images: list[Any], prompt, system_prompt, contexts=None):
    contexts = contexts if contexts is not None else [None] * len(images)
    texts = [
        processor.apply_chat_template(
            build_messages(prompt, system_prompt, context=context), add_generation_prompt=True
        )
        for context in contexts
    ]
    # Left padding: every row's last prompt token sits at the end, where generation continues.
    inputs = processor(
        text=texts,
        images=[[image] for image in images],
        padding=True,
        padding_side="left",
        add_special_tokens=False,  # the chat template already starts with <|begin_of_text|>
        return_tensors="pt",
    ).to(model.device)
    inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    return inputs


def _open_images(images: list[Any]) -> list:
    return [open_image(image, None, f"image {i}") for i, image in enumerate(images)]


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
    context=None,
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
        context (`RetrievalContext`, *optional*):
            The decoder's retrieval context (`retrieval_context.load_retrieval_context`): each prompt gets the reports
            of the training images nearest to its own image, as in training.
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
        batch = _open_images(images[start : start + batch_size])
        contexts = context.reports_for(batch) if context is not None else None
        inputs = _model_inputs(model, processor, batch, prompt, system_prompt, contexts)
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
    context: list[str] | None = None,
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
        context (`list[str]`, *optional*):
            The retrieval context of the image (`RetrievalContext.reports_for`), for a decoder trained with one.
        max_new_tokens (`int`, *optional*, defaults to `128`):
            Longest report in tokens.

    Yields:
        `str`: the report so far (each value extends the previous one); the last value is the full report.
    """
    inputs = _model_inputs(
        model, processor, _open_images([image]), prompt, system_prompt, [context] if context else None
    )
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
    model,
    processor,
    dataset,
    *,
    prompt: tuple[str | None, str | None] = (None, None),
    context=None,
    num_logged: int = 3,
    max_new_tokens: int = 64,
    batch_size: int = 8,
) -> dict[str, Any]:
    """Generate a report for every sample of a chat `dataset`, log the first few next to their references.

    Args:
        model (`PreTrainedModel` or `PeftModel`):
            The trained model.
        processor (`ProcessorMixin`):
            Its processor.
        dataset (`datasets.Dataset`):
            Chat samples (`messages`, `images`), e.g. from `medvl_recipes.data.chat.load_chat_split`.
        prompt (`tuple`, *optional*):
            `(instruction, system_prompt)` the model was trained with (`prompts.training_prompt`); defaults otherwise.
        context (`RetrievalContext`, *optional*):
            The run's retrieval context, when it trained with one.
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

    references = [assistant_text(messages) for messages in dataset["messages"]]
    images = [row[0] for row in dataset["images"]]
    predictions = generate_reports(
        model,
        processor,
        images,
        prompt=prompt[0],
        system_prompt=prompt[1],
        context=context,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        show_progress=False,
    )
    bleu = sacrebleu.corpus_bleu(predictions, [references]).score
    for i in range(min(num_logged, len(predictions))):
        logger.info("sample %d\n  generated: %s\n  reference: %s", i, predictions[i], references[i])
    logger.info("corpus BLEU of %d generated reports: %.2f", len(predictions), bleu)
    return {"bleu": bleu, "predictions": predictions, "references": references}

# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Batch collators: `VisionSFTCollator` (Llama 3.2 Vision SFT with TRL) and `SiglipPairCollator` (SigLIP pairs)."""

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image as PILImage
from transformers import ProcessorMixin

from medvl_recipes.data.chat import check_chat_example
from medvl_recipes.errors import MedvlError
from medvl_recipes.imaging import open_image


logger = logging.getLogger(__name__)

IGNORE_INDEX = -100
LOSS_ON_CHOICES = ("assistant", "all")
TOO_LONG_CHOICES = ("error", "drop")


@dataclass
class VisionSFTCollator:
    """Collate chat samples with images into a training batch for Llama 3.2 Vision (Mllama) with TRL `SFTTrainer`.

    Each sample's chat is rendered with the processor's chat template and tokenized with the images nested per sample,
    so a batch may mix images of different aspect ratios (the processor pads tiles and builds the masks). Labels are
    the input ids with `-100` on padding, on every image token and, with `loss_on="assistant"`, on everything that is
    not an assistant turn (the system prompt, the user turns and the assistant header, which generation supplies).
    Each assistant turn's end-of-turn token is kept, so the model learns to stop.

    Input keys (one dict per sample, as in the chat-JSONL files of `medvl to-chat`):
        - `messages`: list of `{"role", "content"}`, content a string or a list of `{"type": "text"|"image"}` parts.
        - `images`: list of images (PIL images, bytes, or paths relative to `image_root`), one per image part;
          or `image`: a single image.
        - `id` (optional): named in error messages.

    Output keys: `input_ids` (B, L), `attention_mask` (B, L), `labels` (B, L), `pixel_values`
    (B, max_images, max_tiles, 3, H, W), `aspect_ratio_ids` (B, max_images), `aspect_ratio_mask`
    (B, max_images, max_tiles), `cross_attention_mask` (B, L, max_images, max_tiles).

    Args:
        processor (`ProcessorMixin`):
            An `MllamaProcessor` (or a processor with the same call signature and an `image_token_id`).
        max_length (`int`, *optional*):
            Longest sequence in tokens. Longer samples are cut at the end as long as every image token survives;
            a sample whose image token(s) would be cut is handled by `too_long`. `None` never truncates.
        loss_on (`str`, *optional*, defaults to `"assistant"`):
            `"assistant"` trains on the assistant turns only; `"all"` on every non-padding, non-image token.
        too_long (`str`, *optional*, defaults to `"error"`):
            `"error"` raises a `MedvlError` naming the sample; `"drop"` leaves it out of the batch and counts it in
            `num_dropped`.
        image_root (`str` or `Path`, *optional*):
            Folder that relative image paths are resolved against (the chat JSONL file's folder).
        max_image_side (`int`, *optional*):
            Downscale images whose longer side exceeds this (keeps the aspect ratio) before the processor tiles them.
        chat_template (`str`, *optional*):
            Overrides the processor's chat template.

    Example:
    ```python
    >>> collator = VisionSFTCollator(AutoProcessor.from_pretrained(model_dir), max_length=512, image_root="chat/")
    >>> batch = collator([{"messages": [...], "images": ["images/0001.png"]}])
    >>> sorted(batch)
    ['aspect_ratio_ids', 'aspect_ratio_mask', 'attention_mask', 'cross_attention_mask', 'input_ids', 'labels', 'pixel_values']
    ```
    """

    processor: ProcessorMixin
    max_length: int | None = None
    loss_on: str = "assistant"
    too_long: str = "error"
    image_root: str | Path | None = None
    max_image_side: int | None = None
    chat_template: str | None = None
    num_dropped: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.loss_on not in LOSS_ON_CHOICES:
            raise MedvlError(f"loss_on={self.loss_on!r} is not supported; choose one of {LOSS_ON_CHOICES}")
        if self.too_long not in TOO_LONG_CHOICES:
            raise MedvlError(f"too_long={self.too_long!r} is not supported; choose one of {TOO_LONG_CHOICES}")
        self.image_root = Path(self.image_root) if self.image_root is not None else None
        self.tokenizer = getattr(self.processor, "tokenizer", self.processor)
        self.image_token_id = self.tokenizer.convert_tokens_to_ids(self.processor.image_token)

    def _render(self, messages: list[dict], add_generation_prompt: bool = False) -> str:
        text = self.processor.apply_chat_template(
            messages, chat_template=self.chat_template, tokenize=False, add_generation_prompt=add_generation_prompt
        )
        # MllamaProcessor prepends the BOS token to any text without it; do it here so the assistant spans are
        # located in exactly the text that gets tokenized (a custom template may leave BOS out).
        bos = self.tokenizer.bos_token
        return text if not bos or text.startswith(bos) else bos + text

    def _assistant_spans(self, messages: list[dict], text: str, where: str) -> list[tuple[int, int]]:
        """Character spans of the assistant turns in `text`, from the end of their header to the end of the turn."""
        spans = []
        for i, message in enumerate(messages):
            if message.get("role") != "assistant":
                continue
            # The prompt rendered with the generation header is exactly what the model sees at inference time,
            # so the turn's trained part starts right after it and runs to the end of the turn (incl. <|eot_id|>).
            prefix = text if i == len(messages) - 1 else self._render(messages[: i + 1])
            start, end = len(self._render(messages[:i], add_generation_prompt=True)), len(prefix)
            if not text.startswith(prefix) or start > end:
                raise MedvlError(
                    f"{where}: the chat template does not render a conversation's prefixes as prefixes, so the "
                    "assistant turns cannot be located; use a Llama-3-style template or loss_on='all'"
                )
            spans.append((start, end))
        return spans

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        texts, images, spans, wheres = [], [], [], []
        for position, example in enumerate(examples):
            where = f"sample {position} of the batch" + (f" (id {example['id']})" if example.get("id") else "")
            check_chat_example(example, where, image_token=self.processor.image_token)
            messages = example["messages"]
            texts.append(self._render(messages))
            spans.append(self._assistant_spans(messages, texts[-1], where) if self.loss_on == "assistant" else [])
            raw_images = example.get("images") if example.get("images") is not None else [example["image"]]
            images.append([self.load_image(image, where) for image in raw_images])
            wheres.append(where)

        batch = self.processor(
            text=texts,
            images=images,
            padding=True,
            padding_side="right",
            add_special_tokens=False,  # the chat template already starts with <|begin_of_text|>
            return_offsets_mapping=self.loss_on == "assistant",
            return_tensors="pt",
        )
        input_ids, attention_mask = batch["input_ids"], batch["attention_mask"]  # (B, L)
        labels = input_ids.clone()
        if self.loss_on == "assistant":
            token_starts = batch.pop("offset_mapping")[..., 0]  # (B, L) character offset of each token
            trained = torch.zeros_like(labels, dtype=torch.bool)
            for row, row_spans in enumerate(spans):
                for low, high in row_spans:
                    trained[row] |= (token_starts[row] >= low) & (token_starts[row] < high)
            labels[~trained] = IGNORE_INDEX
        # Padding carries no signal. The image token must never be a target: its id lies outside the language
        # model's output vocabulary (Mllama's lm_head has `vocab_size` rows, the image token id equals it).
        labels[attention_mask == 0] = IGNORE_INDEX
        labels[input_ids == self.image_token_id] = IGNORE_INDEX
        batch["labels"] = labels

        if self.max_length is not None and input_ids.shape[1] > self.max_length:
            # Cutting text is fine; cutting an image token would leave its pixels with nothing to attend from.
            loses_image = (input_ids[:, self.max_length :] == self.image_token_id).any(dim=1)  # (B,)
            if loses_image.any():
                row = int(loses_image.nonzero()[0])
                if self.too_long == "error":
                    raise MedvlError(
                        f"{wheres[row]}: {int(attention_mask[row].sum())} tokens, and cutting it to max_length="
                        f"{self.max_length} would cut an image token; raise max_length, shorten the text, or set "
                        "too_long='drop'"
                    )
                self.num_dropped += int(loses_image.sum())
                for row in loses_image.nonzero()[:, 0].tolist():
                    logger.warning("dropped %s: too long for max_length=%d", wheres[row], self.max_length)
                if loses_image.all():
                    raise MedvlError(
                        f"every sample of a batch of {len(examples)} was dropped as too long for max_length="
                        f"{self.max_length}; raise max_length"
                    )
                batch = {key: value[~loses_image] for key, value in batch.items()}
            length = min(int(batch["attention_mask"].sum(dim=1).max()), self.max_length)
            for key in ("input_ids", "attention_mask", "labels", "cross_attention_mask"):
                batch[key] = batch[key][:, :length]
        return dict(batch)

    def load_image(self, image: Any, where: str) -> PILImage.Image:
        """Open one image as training does (`image_root`, `max_image_side`); `where` names it in errors."""
        image = open_image(image, self.image_root, where)
        if self.max_image_side is not None and max(image.size) > self.max_image_side:
            image = image.copy()
            image.thumbnail((self.max_image_side, self.max_image_side))
        return image


@dataclass
class SiglipPairCollator:
    """Collate image-text pairs into a SigLIP batch.

    Texts are padded to `max_length` and truncated, as SigLIP was trained (its text tower pools the last
    position, so the padding length is part of the model). Images are resized to `image_size`.

    Input keys (one dict per pair, e.g. a row of a prepared dataset): `image_column` (PIL image, datasets
    `{"bytes", "path"}` dict, bytes or a path) and `text_column` (str); `id` (optional) is named in errors.

    Output keys: `input_ids` (B, max_length), `pixel_values` (B, 3, H, W), and `attention_mask`
    (B, max_length) when the tokenizer returns one.

    Args:
        processor (`ProcessorMixin`):
            A `SiglipProcessor`.
        image_column (`str`, *optional*, defaults to `"image"`):
            Key of the image in each example.
        text_column (`str`, *optional*, defaults to `"text"`):
            Key of the text in each example.
        max_length (`int`, *optional*, defaults to `64`):
            Text length in tokens.
        image_size (`int`, *optional*):
            Square image side in pixels; defaults to the processor's size.

    Example:
    ```python
    >>> collator = SiglipPairCollator(AutoProcessor.from_pretrained(model_dir), max_length=64)
    >>> batch = collator([{"image": PIL.Image.new("RGB", (96, 80)), "text": "No pleural effusion."}])
    >>> batch["input_ids"].shape, batch["pixel_values"].shape
    (torch.Size([1, 64]), torch.Size([1, 3, 64, 64]))
    ```
    """

    processor: ProcessorMixin
    image_column: str = "image"
    text_column: str = "text"
    max_length: int = 64
    image_size: int | None = None

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        images, texts = [], []
        for position, example in enumerate(examples):
            where = f"sample {position} of the batch" + (f" (id {example['id']})" if example.get("id") else "")
            for column in (self.image_column, self.text_column):
                if example.get(column) is None:
                    raise MedvlError(
                        f"{where}: no {column!r} value; set image_column/text_column to the dataset's columns"
                    )
            images.append(open_image(example[self.image_column], None, where))
            texts.append(str(example[self.text_column]))
        image_kwargs = {}
        if self.image_size is not None:
            image_kwargs["size"] = {"height": self.image_size, "width": self.image_size}
        batch = self.processor(
            text=texts,
            images=images,
            padding="max_length",
            max_length=self.max_length,
            truncation=True,
            return_tensors="pt",
            **image_kwargs,
        )
        return dict(batch)

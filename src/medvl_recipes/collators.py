# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Batch collators: `VisionSFTCollator` (Llama 3.2 Vision SFT with TRL) and `SiglipPairCollator` (SigLIP pairs)."""

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image as PILImage
from transformers import ProcessorMixin

from medvl_recipes.errors import MedvlError
from medvl_recipes.imaging import load_image


logger = logging.getLogger(__name__)

IGNORE_INDEX = -100
LOSS_ON_CHOICES = ("assistant", "all")
TOO_LONG_CHOICES = ("error", "drop")


def open_image(image: Any, root: Path | None, where: str) -> PILImage.Image:
    """Open a PIL image, bytes, a datasets `Image()` dict or a path (relative to `root`) as RGB; errors name `where`."""
    if isinstance(image, PILImage.Image):
        return image.convert("RGB")
    if isinstance(image, dict) and (image.get("bytes") or image.get("path")):
        # A datasets `Image()` feature read with `decode=False`.
        image = image.get("bytes") or image["path"]
    if isinstance(image, (str, Path)):
        image = Path(image) if Path(image).is_absolute() or root is None else root / image
    elif not isinstance(image, (bytes, bytearray)):
        raise MedvlError(f"{where}: an image must be a PIL image, bytes or a path, got {type(image).__name__}")
    try:
        return load_image(image)
    except (MedvlError, OSError) as err:
        raise MedvlError(
            f"{where}: cannot read image: {err}; fix or remove the file, or rerun `medvl to-chat` to rewrite it"
        ) from err


# `SiglipPairCollator` calls it by its earlier private name.
_open_image = open_image


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.get("text") or "" for part in content or [] if part.get("type") == "text")


def _num_image_parts(messages: list[dict]) -> int:
    count = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            count += content.count("<|image|>")
        else:
            count += sum(1 for part in content or [] if part.get("type") == "image")
            count += sum((part.get("text") or "").count("<|image|>") for part in content or [])
    return count


def check_chat_example(example: dict, where: str) -> None:
    """Raise a `MedvlError` naming `where` (e.g. `"sample 3 (id abc)"`) if `example` cannot be trained on.

    Checks that the example has a `messages` list with at least one assistant turn and an `images` list (or a single
    `image`) with exactly one entry per image placeholder in the messages.

    Args:
        example (`dict`):
            A chat-JSONL record: `{"messages": [...], "images": [...]}`.
        where (`str`):
            How to name the sample in the error message.
    """
    messages = example.get("messages")
    if not isinstance(messages, list) or not messages:
        raise MedvlError(f"{where}: no `messages` list; each line needs the chat-JSONL layout of `medvl to-chat`")
    if not any(
        message.get("role") == "assistant" and _text_of(message.get("content")).strip() for message in messages
    ):
        raise MedvlError(
            f"{where}: the chat has no (non-empty) assistant turn, so there is nothing to learn; add the report as an "
            "assistant message or drop the sample"
        )
    images = example.get("images")
    if images is None and example.get("image") is not None:
        images = [example["image"]]
    num_images = len(images or [])
    num_placeholders = _num_image_parts(messages)
    if num_images == 0:
        raise MedvlError(
            f"{where}: the sample has no image; give it an `images` list (paths relative to the JSONL file) or drop it"
        )
    if num_placeholders != num_images:
        raise MedvlError(
            f"{where}: the messages have {num_placeholders} image placeholder(s) (`{{'type': 'image'}}` parts or "
            f"<|image|> tokens) but `images` has {num_images}; give one image per placeholder"
        )


def load_chat_split(dataset_dir: str | Path, split: str):
    """Load `dataset_dir/{split}.jsonl` (the chat-JSONL layout of `medvl to-chat`) as a `datasets.Dataset`.

    Every line is checked with `check_chat_example` and its image paths are made absolute (they are relative to
    the JSONL file), so errors name the file and line before any training starts.

    Args:
        dataset_dir (`str` or `Path`):
            The chat folder (`train.jsonl`, `validation.jsonl`, `images/`).
        split (`str`):
            File stem, e.g. `"train"`.

    Returns:
        `datasets.Dataset` with columns `id`, `messages`, `images` (absolute paths).
    """
    import json

    from datasets import Dataset

    path = Path(dataset_dir) / f"{split}.jsonl"
    if not path.is_file():
        raise MedvlError(f"{path}: no such file; point dataset_name at a folder written by `medvl to-chat`")
    rows = []
    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path} line {line_number} (sample {len(rows)})"
            try:
                example = json.loads(line)
            except json.JSONDecodeError as err:
                raise MedvlError(
                    f"{where}: not valid JSON ({err.msg}); rewrite the file with `medvl to-chat`"
                ) from err
            check_chat_example(example, where)
            images = example.get("images") if example.get("images") is not None else [example["image"]]
            absolute = []
            for image in images:
                image_path = Path(image) if Path(image).is_absolute() else path.parent / image
                if not image_path.is_file():
                    raise MedvlError(
                        f"{where}: image {image_path} does not exist; copy the `images/` folder next to the JSONL or "
                        "rerun `medvl to-chat`"
                    )
                absolute.append(str(image_path))
            rows.append({"id": str(example.get("id", len(rows))), "messages": example["messages"], "images": absolute})
    if not rows:
        raise MedvlError(f"{path}: no samples; rerun `medvl to-chat` or choose another split")
    return Dataset.from_list(rows)


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
        self.image_token_id = self.tokenizer.convert_tokens_to_ids("<|image|>")

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
            check_chat_example(example, where)
            messages = example["messages"]
            texts.append(self._render(messages))
            spans.append(self._assistant_spans(messages, texts[-1], where) if self.loss_on == "assistant" else [])
            raw_images = example.get("images") if example.get("images") is not None else [example["image"]]
            images.append([self._load(image, where) for image in raw_images])
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

    def _load(self, image: Any, where: str) -> PILImage.Image:
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
            images.append(_open_image(example[self.image_column], None, where))
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

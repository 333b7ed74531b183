# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""The instructions a report-generation model is trained and queried with, and how a checkpoint stores them.

Training (`medvl to-chat`) picks one phrasing per sample deterministically from a prompt set; generation
(`generate_reports`, the eval harness, the demo) uses the first phrasing of the same set, so the model is
asked at inference time in a way it has seen during training.
"""

import json
from collections.abc import Sequence
from pathlib import Path


# Written next to a trained decoder: `{"instruction": ..., "system_prompt": ...}`, what it was trained with.
PROMPT_FILE = "prompt.json"

DEFAULT_SYSTEM_PROMPT = (
    "You are an expert radiologist. Describe the medical image accurately and concisely, "
    "as the findings section of a radiology report."
)

PROMPT_SETS: dict[str, list[str]] = {
    "default": [
        "Describe this medical image.",
        "Write the radiology report for this image.",
        "What are the findings in this image?",
        "Provide a concise report of this study.",
        "Describe the imaging findings.",
    ],
    # A single fixed instruction, for ablations that remove prompt diversity.
    "single": ["Describe this medical image."],
}


def get_prompt_set(name: str) -> list[str]:
    """Return the instruction phrasings of prompt set `name`.

    Args:
        name (`str`):
            A key of `PROMPT_SETS`.
    """
    from medvl_recipes.errors import MedvlError

    if name not in PROMPT_SETS:
        raise MedvlError(f"unknown prompt set {name!r}; choose one of {sorted(PROMPT_SETS)}")
    return PROMPT_SETS[name]


# The retrieval context (`medvl_recipes.retrieval_context`): the reports of the most similar training images, placed
# in the user turn between the image and the instruction.
CONTEXT_HEADER = "Reports of similar prior studies:"


def format_context(reports: Sequence[str]) -> str:
    """The user-turn text of a retrieval context: `CONTEXT_HEADER`, then one numbered line per report."""
    lines = [f"{rank}. {' '.join(report.split())}" for rank, report in enumerate(reports, start=1)]
    return "\n".join([CONTEXT_HEADER, *lines])


def build_messages(
    instruction: str | None = None,
    system_prompt: str | None = None,
    *,
    report: str | None = None,
    context: Sequence[str] | None = None,
) -> list[dict]:
    """The conversation of one sample in TRL's conversational vision format, for training and for generation.

    A system turn (unless `system_prompt` is `""`), a user turn with one image, the retrieval context (when given)
    and the instruction, and, when `report` is given, the assistant's answer. Training (`medvl to-chat`,
    `train-decoder`'s retrieval context) and generation build their prompts here, so the model is asked at inference
    exactly as it was trained.

    Args:
        instruction (`str`, *optional*):
            The user's instruction after the image; defaults to `PROMPT_SETS["default"][0]`.
        system_prompt (`str`, *optional*):
            Defaults to `DEFAULT_SYSTEM_PROMPT`; pass `""` for no system turn.
        report (`str`, *optional*):
            The assistant turn (training samples); omitted for a generation request.
        context (`Sequence[str]`, *optional*):
            Reports of similar training images (`format_context`), most similar first; none when `None` or empty.
    """
    instruction = PROMPT_SETS["default"][0] if instruction is None else instruction
    system_prompt = DEFAULT_SYSTEM_PROMPT if system_prompt is None else system_prompt
    user_text = f"{format_context(context)}\n\n{instruction}" if context else instruction
    messages = [{"role": "system", "content": [{"type": "text", "text": system_prompt}]}] if system_prompt else []
    messages.append({"role": "user", "content": [{"type": "image"}, {"type": "text", "text": user_text}]})
    if report is not None:
        messages.append({"role": "assistant", "content": [{"type": "text", "text": report}]})
    return messages


def with_context(messages: list[dict], context: Sequence[str]) -> list[dict]:
    """A copy of a training sample's `messages` whose first user turn has the retrieval `context` before its
    instruction, as `build_messages(..., context=context)` writes it."""
    out, done = [], not context
    for message in messages:
        if message["role"] == "user" and not done:
            done, prefix = True, f"{format_context(context)}\n\n"
            content = message["content"]
            if isinstance(content, str):
                content = prefix + content
            else:
                content = [dict(part) for part in content]
                text_part = next((part for part in reversed(content) if part.get("type") == "text"), None)
                if text_part is None:
                    content.append({"type": "text", "text": prefix.strip()})
                else:
                    text_part["text"] = prefix + (text_part.get("text") or "")
            message = {**message, "content": content}
        out.append(message)
    return out


def read_prompt(decoder: str) -> tuple[str | None, str | None]:
    """The `(instruction, system_prompt)` stored with a decoder checkpoint, or `(None, None)` for the defaults.

    Args:
        decoder (`str`): A checkpoint folder or Hub id; `prompt.json` is `{"instruction": ..., "system_prompt": ...}`.
    """
    path = Path(decoder) / PROMPT_FILE
    if not Path(decoder).exists():
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

        try:
            path = Path(hf_hub_download(decoder, PROMPT_FILE))
        except (EntryNotFoundError, LocalEntryNotFoundError):
            return None, None
    if not path.is_file():
        return None, None
    stored = json.loads(path.read_text())
    return stored.get("instruction"), stored.get("system_prompt")


def message_text(content) -> str:
    """The text of a message's `content`: a string, or the joined `{"type": "text"}` parts (images skipped)."""
    if isinstance(content, str):
        return content.strip()
    return "".join(part.get("text") or "" for part in content or [] if part.get("type") == "text").strip()


def assistant_text(messages: list[dict]) -> str:
    """The report of a training sample: the text of its last assistant turn ("" when it has none)."""
    return next((message_text(m.get("content")) for m in reversed(messages) if m.get("role") == "assistant"), "")


def training_prompt(conversations) -> tuple[str, str]:
    """The `(instruction, system_prompt)` to ask a model trained on `conversations` with (TRL messages lists).

    The default set's first phrasing when training used it (what `medvl to-chat` writes and generation asks), else
    the most frequent user instruction; the system turn of the training data, or `""` when it had none.

    Args:
        conversations (`Iterable[list[dict]]`): The training samples' `messages`.
    """
    from collections import Counter

    instructions, systems = Counter(), Counter()
    for messages in conversations:
        systems[next((message_text(m["content"]) for m in messages if m["role"] == "system"), "")] += 1
        instructions.update(message_text(m["content"]) for m in messages if m["role"] == "user")
    default = PROMPT_SETS["default"][0]
    instruction = default if default in instructions or not instructions else instructions.most_common(1)[0][0]
    return instruction, systems.most_common(1)[0][0] if systems else DEFAULT_SYSTEM_PROMPT


def write_prompt(output_dir: str | Path, instruction: str, system_prompt: str) -> Path:
    """Write `output_dir/prompt.json`, read back by `read_prompt` (generate, eval, demo, the model card)."""
    path = Path(output_dir) / PROMPT_FILE
    path.write_text(json.dumps({"instruction": instruction, "system_prompt": system_prompt}, indent=2) + "\n")
    return path

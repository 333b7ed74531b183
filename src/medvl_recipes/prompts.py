# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""The instructions a report-generation model is trained and queried with.

Training (`medvl to-chat`) picks one phrasing per sample deterministically from a prompt set; generation
(`generate_reports`, the eval harness, the demo) uses the first phrasing of the same set, so the model is
asked at inference time in a way it has seen during training.
"""

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

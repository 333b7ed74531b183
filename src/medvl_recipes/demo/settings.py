# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""The demo's settings: `DemoConfig` (flags and `MEDVL_DEMO_*` variables), where its models and data come from,
and the keyword arguments of `demo.launch`."""

import json
import os
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from medvl_recipes.errors import MedvlError


QUICKSTART_DIR = Path("outputs/quickstart")
ENV_PREFIX = "MEDVL_DEMO_"


@dataclass
class DemoConfig:
    """Demo settings; every field can be set by a flag (`--max-new-tokens`) or an environment variable
    (`MEDVL_DEMO_MAX_NEW_TOKENS`).

    Args:
        decoder (`str`, *optional*): Report model folder or Hub id (full model or LoRA adapter).
        encoder (`str`, *optional*): SigLIP folder or Hub id, used for similarity and the case index.
        index_dataset (`str`, *optional*): Prepared dataset folder or Hub dataset id to index.
        index_split (`str`, *optional*, defaults to `"train"`): Split of `index_dataset` to index (similar cases).
        calibration_split (`str`, *optional*, defaults to `"validation"`): Held-out split that calibrates the
            out-of-distribution threshold and the image-report match score (see `cases.calibrate`).
        ood_percentile (`float`, *optional*, defaults to `5`): Out-of-distribution threshold: this percentile of
            the calibration images' best similarity to the index.
        mask_fraction (`float`, *optional*, defaults to `0.1`): Height fraction of the top and bottom bands blanked
            when a DICOM declares burned-in annotation and masking is on.
        index_limit (`int`, *optional*, defaults to `2000`): Index at most this many rows.
        max_new_tokens (`int`, *optional*, defaults to `128`): Generation length.
        top_k (`int`, *optional*, defaults to `3`): Similar cases shown.
        host (`str`, *optional*): Server address; Gradio's default (`GRADIO_SERVER_NAME` or 127.0.0.1) if unset.
            Use `0.0.0.0` to share on a network.
        port (`int`, *optional*): Server port; Gradio's default (`GRADIO_SERVER_PORT` or 7860) if unset.
        cache_dir (`str`, *optional*, defaults to `"outputs/demo-cache"`): Where the case index and examples live.
        max_upload_mb (`float`, *optional*, defaults to `20`): Largest accepted upload.
        max_pixels (`int`, *optional*, defaults to `40_000_000`): Largest accepted image (width x height).
        concurrency_limit (`int`, *optional*, defaults to `1`): Generations run at the same time.
        queue_size (`int`, *optional*, defaults to `16`): Requests waiting at most; more are refused.
        session_ttl_s (`int`, *optional*, defaults to `3600`): Gradio deletes cached files older than this.
    """

    decoder: str | None = field(
        default=None, metadata={"help": "Report model folder or Hub id (full model or LoRA adapter)."}
    )
    encoder: str | None = field(
        default=None, metadata={"help": "SigLIP folder or Hub id, for the similarity and the case index."}
    )
    index_dataset: str | None = field(
        default=None, metadata={"help": "Prepared dataset folder or Hub dataset id to index for similar cases."}
    )
    index_split: str = field(
        default="train", metadata={"help": "Split of the index dataset searched for similar cases (training cases)."}
    )
    calibration_split: str = field(
        default="validation",
        metadata={"help": "Held-out split that calibrates the out-of-distribution threshold and the match score."},
    )
    ood_percentile: float = field(
        default=5.0,
        metadata={
            "help": "An image is flagged as unlike the training data when its best match is below this percentile "
            "of the calibration images' best matches."
        },
    )
    mask_fraction: float = field(
        default=0.1,
        metadata={"help": "Height fraction of the top and bottom bands blanked when burned-in text is masked."},
    )
    index_limit: int = field(default=2000, metadata={"help": "Index at most this many rows."})
    max_new_tokens: int = field(default=128, metadata={"help": "Generation length in tokens."})
    top_k: int = field(default=3, metadata={"help": "Similar cases shown."})
    host: str | None = field(
        default=None, metadata={"help": "Server address (0.0.0.0 to share on a network); Gradio's default if unset."}
    )
    port: int | None = field(default=None, metadata={"help": "Server port; Gradio's default (7860) if unset."})
    cache_dir: str = field(
        default="outputs/demo-cache",
        metadata={"help": "Where the case index cache and the example images are written."},
    )
    max_upload_mb: float = field(default=20.0, metadata={"help": "Largest accepted upload in MB."})
    max_pixels: int = field(
        default=40_000_000, metadata={"help": "Largest accepted image in pixels (width x height)."}
    )
    concurrency_limit: int = field(default=1, metadata={"help": "Generations that run at the same time."})
    queue_size: int = field(default=16, metadata={"help": "Requests that may wait in the queue; more are refused."})
    session_ttl_s: int = field(
        default=3600, metadata={"help": "Gradio deletes its cached files older than this many seconds."}
    )

    @classmethod
    def from_env(cls, environ: dict | None = None, **overrides) -> "DemoConfig":
        """Build a config from `MEDVL_DEMO_*` variables, then `overrides` (flags; `None` means unset)."""
        environ = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            raw = environ.get(ENV_PREFIX + f.name.upper())
            if raw not in (None, ""):
                values[f.name] = _cast(f, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def field_type(f) -> type:
    """The scalar type (`int`, `float` or `str`) of a `DemoConfig` field, looking through `| None`."""
    args = typing.get_args(f.type) or (f.type,)
    return next((t for t in (int, float) if t in args), str)


def _cast(f, raw: str):
    try:
        return field_type(f)(raw)
    except ValueError as err:
        raise MedvlError(f"{ENV_PREFIX}{f.name.upper()}={raw!r} is not a number") from err


def resolve_sources(
    config: DemoConfig, root: str | Path = QUICKSTART_DIR, space_config: str | Path | None = None
) -> DemoConfig:
    """Fill unset model/dataset sources: first from a Space's `demo_config.json`, then from the quickstart layout.

    Quickstart layout: `root/decoder` and `root/encoder` (trained), falling back to the untrained
    `root/models/tiny-llama-3.2-vision` and `root/models/tiny-siglip`; `root/dataset` for the index.

    Args:
        config (`DemoConfig`): Settings from flags/environment.
        root (`str` or `Path`, *optional*, defaults to `outputs/quickstart`): The quickstart output folder.
        space_config (`str` or `Path`, *optional*): A `demo_config.json` written by `medvl push space`.
    """
    resolved = DemoConfig(**asdict(config))
    if space_config is not None and Path(space_config).is_file():
        for key, value in json.loads(Path(space_config).read_text()).items():
            if getattr(resolved, key, None) is None and value is not None:
                setattr(resolved, key, value)
    root = Path(root)
    candidates = {
        "decoder": [root / "decoder", root / "models" / "tiny-llama-3.2-vision"],
        "encoder": [root / "encoder", root / "models" / "tiny-siglip"],
        "index_dataset": [root / "dataset"],
    }
    for key, paths in candidates.items():
        if getattr(resolved, key) is None:
            found = next((p for p in paths if p.is_dir()), None)
            if found is None:
                flag = "--" + key.replace("_", "-")
                raise MedvlError(
                    f"no {key.replace('_', ' ')} given and none found under {root} ({', '.join(map(str, paths))}); "
                    f"run `make quickstart` or pass {flag} (or set {ENV_PREFIX}{key.upper()})"
                )
            resolved.__setattr__(key, str(found))
    return resolved


def launch_kwargs(config: DemoConfig, examples_dir: str | Path | None = None) -> dict:
    """Keyword arguments for `demo.launch`: address, upload size limit, and the examples folder it may serve."""
    # Unset host/port leave Gradio's own defaults, which a Space sets through GRADIO_SERVER_NAME/PORT.
    return {
        "server_name": config.host,
        "server_port": config.port,
        "max_file_size": f"{config.max_upload_mb:g}mb",
        "allowed_paths": [str(examples_dir)] if examples_dir else None,
        "show_error": False,
        # The run-history page would keep every upload's file name in the browser.
        "run_history": False,
    }

# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""The demo's models: the report decoder and the SigLIP encoder, loaded by `medvl_recipes.modeling`."""

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from medvl_recipes.demo.settings import DemoConfig


logger = logging.getLogger(__name__)


@dataclass
class DemoModels:
    """The loaded report model and encoder with their processors."""

    decoder: torch.nn.Module
    decoder_processor: object
    encoder: torch.nn.Module
    encoder_processor: object
    revisions: dict[str, str | None] = field(default_factory=dict)


def model_revision(name_or_path: str) -> str | None:
    """The Hub commit a model id resolves to in the local cache, `None` for a local folder or an uncached id.

    Args:
        name_or_path (`str`): A folder or Hub id.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    if Path(name_or_path).is_dir():
        return None
    try:
        # The cache lays a snapshot out as `.../snapshots/<commit>`: the folder name is the revision served.
        return Path(snapshot_download(name_or_path, local_files_only=True)).name
    except (LocalEntryNotFoundError, HFValidationError, OSError):
        return None


def load_models(config: DemoConfig) -> DemoModels:
    """Load the decoder and encoder named by a resolved `config`.

    Args:
        config (`DemoConfig`): Settings with `decoder` and `encoder` set (see `resolve_sources`).
    """
    from medvl_recipes.modeling import load_decoder, load_encoder

    decoder, decoder_processor = load_decoder(config.decoder)
    encoder, encoder_processor = load_encoder(config.encoder)
    logger.info("Loaded decoder %s and encoder %s", config.decoder, config.encoder)
    revisions = {"decoder": model_revision(config.decoder), "encoder": model_revision(config.encoder)}
    return DemoModels(decoder, decoder_processor, encoder, encoder_processor, revisions)

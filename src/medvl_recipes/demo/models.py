# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""The demo's models: the report decoder and the SigLIP encoder, loaded by `medvl_recipes.modeling`."""

import logging
from dataclasses import dataclass, field

import torch

from medvl_recipes.demo.settings import DemoConfig


logger = logging.getLogger(__name__)


@dataclass
class DemoModels:
    """The loaded report model and encoder with their processors, and how the decoder was trained to be asked."""

    decoder: torch.nn.Module
    decoder_processor: object
    encoder: torch.nn.Module
    encoder_processor: object
    revisions: dict[str, str | None] = field(default_factory=dict)
    # (instruction, system prompt) of the decoder's prompt.json; None: the project defaults.
    prompt: tuple[str | None, str | None] = (None, None)
    # The decoder's retrieval context (`medvl_recipes.retrieval_context`), when it was trained with one.
    context: object | None = None


def load_models(config: DemoConfig) -> DemoModels:
    """Load the decoder and encoder named by a resolved `config`.

    Args:
        config (`DemoConfig`): Settings with `decoder` and `encoder` set (see `resolve_sources`).
    """
    from medvl_recipes.modeling import load_decoder, load_encoder
    from medvl_recipes.prompts import read_prompt
    from medvl_recipes.retrieval_context import load_retrieval_context

    decoder, decoder_processor = load_decoder(config.decoder)
    encoder, encoder_processor = load_encoder(config.encoder)
    logger.info("Loaded decoder %s and encoder %s", config.decoder, config.encoder)
    from medvl_recipes.checkpoints import model_fingerprint

    # Hub commit the cache serves, or a content fingerprint of a local folder (what produced the report).
    revisions = {"decoder": model_fingerprint(config.decoder), "encoder": model_fingerprint(config.encoder)}
    return DemoModels(
        decoder,
        decoder_processor,
        encoder,
        encoder_processor,
        revisions,
        prompt=read_prompt(config.decoder),
        context=load_retrieval_context(config.decoder),
    )

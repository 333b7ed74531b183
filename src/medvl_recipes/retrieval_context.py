# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""The retrieval context: the reports of the k training images the fine-tuned SigLIP finds nearest, in the prompt.

The encoder feeds the decoder. `medvl train-decoder` with `retrieval_context_k > 0` embeds every training image with
`retrieval_context_encoder` and gives each training sample the reports of its k nearest training images, leaving out
every image with the sample's own report (the sample itself, and the other views of its study, which carry the same
report). The checkpoint keeps what asking it again needs, in `retrieval_context/`: a copy of the encoder, the
training images' embeddings and their reports. `medvl generate`, `medvl eval` (its image-swap control included: the
context follows the swapped image) and the demo read it back with `load_retrieval_context` and ask the decoder as it
was trained. The prompt text itself is `prompts.format_context`.

The reports stored there are the training split's own texts, so a checkpoint pushed to the Hub publishes them; the
training data is de-identified by `medvl prepare` before it gets here.
"""

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from medvl_recipes.errors import MedvlError
from medvl_recipes.retrieval import TorchEncoder


logger = logging.getLogger(__name__)

CONTEXT_DIR = "retrieval_context"
SETTINGS_FILE = "settings.json"
EMBEDDINGS_FILE = "image_embeddings.safetensors"
REPORTS_FILE = "reports.jsonl"
ENCODER_DIR = "encoder"


def _report_key(report: str) -> str:
    return " ".join(report.lower().split())


@dataclass
class ReportIndex:
    """Training images' embeddings (`(N, D)`, L2-normalised) with their sample ids and reports."""

    image_emb: torch.Tensor
    ids: list[str]
    reports: list[str]

    def __post_init__(self):
        # Rows with the same report (case and spacing ignored) share a group: what training leaves out.
        self._groups = {key: group for group, key in enumerate(dict.fromkeys(map(_report_key, self.reports)))}
        self._row_groups = torch.tensor([self._groups[_report_key(r)] for r in self.reports])  # (N,)

    def neighbours(self, query_emb: torch.Tensor, k: int, query_reports: Sequence[str] | None = None) -> list[list]:
        """`(index row, cosine)` of the `k` nearest index images of each query, most similar first.

        Args:
            query_emb (`torch.Tensor` of shape `(B, D)`): L2-normalised image embeddings.
            k (`int`): Neighbours per query (fewer when the index has fewer eligible rows).
            query_reports (`Sequence[str]`, *optional*): The queries' own reports (training): index rows with the
                same report (case and spacing ignored) are left out.
        """
        out = []
        for start in range(0, len(query_emb), 1024):  # (1024, N) scores at a time: a real split's N x N would not fit
            scores = query_emb[start : start + 1024].float() @ self.image_emb.float().T  # (C, N)
            if query_reports is not None:
                own = torch.tensor([self._groups.get(_report_key(r), -1) for r in query_reports[start : start + 1024]])
                scores[own[:, None] == self._row_groups[None, :]] = float("-inf")
            top = torch.topk(scores, k=min(k, scores.shape[1]), dim=1)
            for values, rows in zip(top.values.tolist(), top.indices.tolist(), strict=True):
                out.append([(row, value) for row, value in zip(rows, values, strict=True) if value != float("-inf")])
        return out


class RetrievalContext:
    """A `ReportIndex`, the encoder that embeds queries for it, and `k`: the retrieval context of one decoder.

    Args:
        index (`ReportIndex`): The training images and reports.
        encoder: A `retrieval.TorchEncoder` (or anything with `encode_images` and `model`/`processor`).
        k (`int`): Reports per prompt.
        encoder_name (`str`): Where the encoder came from (recorded in `settings.json`).
    """

    def __init__(self, index: ReportIndex, encoder, k: int, encoder_name: str):
        self.index, self.encoder, self.k, self.encoder_name = index, encoder, k, encoder_name

    @property
    def settings(self) -> dict:
        """What decides the contexts: `k`, the encoder's origin, and the index size."""
        return {"k": self.k, "encoder": self.encoder_name, "num_reports": len(self.index.reports)}

    def lookup(self, images: Sequence) -> list[list[dict]]:
        """`{"id", "report", "similarity"}` of each image's `k` nearest training images, most similar first."""
        emb = self.encoder.encode_images(list(images))  # (B, D)
        return [
            [{"id": self.index.ids[j], "report": self.index.reports[j], "similarity": round(s, 6)} for j, s in row]
            for row in self.index.neighbours(emb, self.k)
        ]

    def reports_for(self, images: Sequence) -> list[list[str]]:
        """Each image's context: the reports of its `k` nearest training images, most similar first."""
        return [[case["report"] for case in row] for row in self.lookup(images)]

    def training_contexts(self) -> list[list[str]]:
        """The context of each index row in training: its nearest rows whose report differs from its own."""
        rows = self.index.neighbours(self.index.image_emb, self.k, query_reports=self.index.reports)
        return [[self.index.reports[j] for j, _ in row] for row in rows]

    def save(self, folder: str | Path) -> Path:
        """Write the context into `folder` (settings, embeddings, reports, the encoder); return it."""
        from medvl_recipes.jsonl import write_jsonl

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({"image_emb": self.index.image_emb.contiguous()}, folder / EMBEDDINGS_FILE)
        rows = [{"id": i, "report": r} for i, r in zip(self.index.ids, self.index.reports, strict=True)]
        write_jsonl(folder / REPORTS_FILE, rows)
        self.encoder.model.save_pretrained(folder / ENCODER_DIR)
        self.encoder.processor.save_pretrained(folder / ENCODER_DIR)
        (folder / SETTINGS_FILE).write_text(json.dumps(self.settings, indent=2) + "\n")
        return folder


def write_retrieval_context(output_dir: str | Path, context: RetrievalContext | None) -> Path | None:
    """Make `output_dir/retrieval_context/` hold `context`, or remove it when the run had none.

    A folder left by an earlier run into the same `output_dir` would otherwise give the new checkpoint a context
    it was not trained with. The new one is written beside it and renamed into place.
    """
    import shutil

    folder = Path(output_dir) / CONTEXT_DIR
    if context is None:
        if folder.exists():
            logger.warning("Deleting %s, left by an earlier run with a retrieval context", folder)
            shutil.rmtree(folder)
        return None
    staging = folder.with_name(f".{CONTEXT_DIR}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    context.save(staging)
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return folder


def build_retrieval_context(
    encoder: str, images: Sequence, ids: Sequence[str], reports: Sequence[str], *, k: int, device: str = "cpu"
) -> RetrievalContext:
    """Embed the training `images` with `encoder` and index them with their `ids` and `reports`.

    Args:
        encoder (`str`): A fine-tuned SigLIP (folder or Hub id), e.g. the `medvl train-encoder` output.
        images (`Sequence`): The training images (PIL), opened lazily by the sequence if it likes.
        ids (`Sequence[str]`): Their sample ids.
        reports (`Sequence[str]`): Their reports.
        k (`int`): Reports per prompt.
        device (`str`, *optional*, defaults to `"cpu"`): Where the encoder runs.
    """
    if k <= 0:
        raise MedvlError(f"retrieval_context_k must be positive to build a retrieval context, got {k}")
    model = TorchEncoder(encoder, device=device)
    chunks = []
    for start in tqdm(range(0, len(images), 256), desc="retrieval context: embed training images"):
        chunks.append(model.encode_images(images[start : start + 256]))
    index = ReportIndex(torch.cat(chunks), list(ids), list(reports))
    logger.info("retrieval context: %d training images indexed with %s, %d reports per prompt", len(ids), encoder, k)
    return RetrievalContext(index, model, k, encoder)


def _context_folder(decoder: str) -> Path | None:
    # The decoder's retrieval_context/ folder (downloaded for a Hub id), or None when it was trained without one.
    local = Path(decoder)
    if local.exists():
        folder = local / CONTEXT_DIR
        return folder if (folder / SETTINGS_FILE).is_file() else None
    from huggingface_hub import hf_hub_download, snapshot_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    try:
        hf_hub_download(decoder, f"{CONTEXT_DIR}/{SETTINGS_FILE}")
    except (EntryNotFoundError, LocalEntryNotFoundError):
        return None
    return Path(snapshot_download(decoder, allow_patterns=[f"{CONTEXT_DIR}/*"])) / CONTEXT_DIR


def load_retrieval_context(decoder: str, device: str = "cpu") -> RetrievalContext | None:
    """The retrieval context a decoder checkpoint was trained with, or `None` when it has none.

    Args:
        decoder (`str`): A `medvl train-decoder` output folder or Hub id.
        device (`str`, *optional*, defaults to `"cpu"`): Where its encoder runs.
    """
    folder = _context_folder(decoder)
    if folder is None:
        return None
    from medvl_recipes.jsonl import read_jsonl

    settings = json.loads((folder / SETTINGS_FILE).read_text())
    rows = [row for _, row in read_jsonl(folder / REPORTS_FILE, what="a retrieval-context report")]
    image_emb = load_file(folder / EMBEDDINGS_FILE)["image_emb"]
    if len(rows) != len(image_emb):
        raise MedvlError(f"{folder}: {len(rows)} reports but {len(image_emb)} embeddings; train the decoder again")
    index = ReportIndex(image_emb, [row["id"] for row in rows], [row["report"] for row in rows])
    encoder = TorchEncoder(str(folder / ENCODER_DIR), device=device)
    logger.info(
        "retrieval context of %s: %d reports per prompt from %d training images", decoder, settings["k"], len(rows)
    )
    return RetrievalContext(index, encoder, int(settings["k"]), settings.get("encoder", ""))

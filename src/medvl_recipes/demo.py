# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""The functions behind the Gradio demo (`app.py`): settings, model loading, upload checks, the similar-case
index and the streamed analysis of one image.

`app.py` only parses its flags and calls `build_demo(load_demo(config), config).launch(...)`. Nothing here
reads, logs or stores a DICOM file's patient-identifying tags: uploads are decoded to pixels by
`medvl_recipes.imaging`, the uploaded file is deleted from Gradio's cache as soon as it has been read, and the
images a browser session was shown (preview, thumbnails) are deleted when that session ends (`SessionFiles`).
"""

import contextlib
import hashlib
import json
import logging
import os
import threading
import typing
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
from PIL import Image

from medvl_recipes.errors import MedvlError
from medvl_recipes.imaging import is_dicom


logger = logging.getLogger(__name__)

QUICKSTART_DIR = Path("outputs/quickstart")
ENV_PREFIX = "MEDVL_DEMO_"
DISCLAIMER = (
    "**Not for clinical use.** This demo shows a research model. Its reports can be wrong or incomplete and are "
    "not a diagnosis. Upload only de-identified images; DICOM tags are never displayed, uploads are deleted "
    "from the server after they are read and the images shown to you when you close the page."
)
UPLOAD_KINDS = {"png": "PNG", "jpeg": "JPEG", "dicom": "DICOM"}
THUMBNAIL_SIZE = (160, 160)


@dataclass
class DemoConfig:
    """Demo settings; every field can be set by a flag (`--max-new-tokens`) or an environment variable
    (`MEDVL_DEMO_MAX_NEW_TOKENS`).

    Args:
        decoder (`str`, *optional*): Report model folder or Hub id (full model or LoRA adapter).
        encoder (`str`, *optional*): SigLIP folder or Hub id, used for similarity and the case index.
        index_dataset (`str`, *optional*): Prepared dataset folder or Hub dataset id to index.
        index_split (`str`, *optional*, defaults to `"validation"`): Split of `index_dataset` to index.
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
    index_split: str = field(default="validation", metadata={"help": "Split of the index dataset."})
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


@dataclass
class DemoModels:
    """The loaded report model and encoder with their processors."""

    decoder: torch.nn.Module
    decoder_processor: object
    encoder: torch.nn.Module
    encoder_processor: object


def load_models(config: DemoConfig) -> DemoModels:
    """Load the decoder and encoder named by a resolved `config`.

    Args:
        config (`DemoConfig`): Settings with `decoder` and `encoder` set (see `resolve_sources`).
    """
    from medvl_recipes.modeling import load_decoder, load_encoder

    decoder, decoder_processor = load_decoder(config.decoder)
    encoder, encoder_processor = load_encoder(config.encoder)
    logger.info("Loaded decoder %s and encoder %s", config.decoder, config.encoder)
    return DemoModels(decoder, decoder_processor, encoder, encoder_processor)


@dataclass
class CaseIndex:
    """Image embeddings of an indexed dataset split, with the rows they came from.

    Args:
        image_emb (`torch.Tensor`): `(N, D)` L2-normalised image embeddings.
        ids (`list[str]`): Row ids.
        texts (`list[str]`): Reference reports.
        dataset (`datasets.Dataset`): The indexed rows (for thumbnails).
    """

    image_emb: torch.Tensor
    ids: list[str]
    texts: list[str]
    dataset: object = field(repr=False)

    def search(self, query_emb: torch.Tensor, k: int) -> list[tuple[int, float]]:
        """The `k` rows most similar to one `(1, D)` or `(D,)` embedding: `[(row, cosine), ...]`, best first."""
        scores = self.image_emb @ query_emb.reshape(-1)  # (N,)
        top = torch.topk(scores, k=min(k, len(self.ids)))
        return [(int(i), float(s)) for s, i in zip(top.values, top.indices, strict=True)]


def _load_split(name_or_path: str, split: str):
    from medvl_recipes.data.prepared import load_prepared_split

    return load_prepared_split(name_or_path, split, setting="--index-split")


def _encoder_fingerprint(encoder) -> str:
    # The weights decide the embeddings: hash them (a few ms for SigLIP-base) so a retrained encoder never
    # reuses a stale index.
    digest = hashlib.sha256()
    for name, tensor in sorted(encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to(torch.float32).cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def build_index(models: DemoModels, config: DemoConfig, batch_size: int = 32) -> CaseIndex:
    """Embed the index split with the encoder, or load the embeddings cached on disk for this encoder and data.

    The cache file is `cache_dir/index-<key>.pt`, keyed by the encoder weights, the dataset fingerprint,
    the split and the row limit.

    Args:
        models (`DemoModels`): Loaded models.
        config (`DemoConfig`): Settings (`index_dataset`, `index_split`, `index_limit`, `cache_dir`).
        batch_size (`int`, *optional*, defaults to `32`): Images per encoder forward pass.
    """
    from medvl_recipes.retrieval import encode_images

    dataset = _load_split(config.index_dataset, config.index_split)
    if config.index_limit and len(dataset) > config.index_limit:
        dataset = dataset.select(range(config.index_limit))
    if len(dataset) == 0:
        raise MedvlError(f"index dataset {config.index_dataset}: split {config.index_split!r} is empty")
    key_source = f"{_encoder_fingerprint(models.encoder)}|{dataset._fingerprint}|{config.index_split}|{len(dataset)}"
    key = hashlib.sha256(key_source.encode()).hexdigest()[:20]
    cache_file = Path(config.cache_dir) / f"index-{key}.pt"
    if cache_file.is_file():
        cached = torch.load(cache_file)
        logger.info("Loaded the case index (%d rows) from %s", len(cached["ids"]), cache_file)
        return CaseIndex(cached["image_emb"], cached["ids"], cached["texts"], dataset)
    images = [row["image"] for row in dataset]
    image_emb = encode_images(
        models.encoder, models.encoder_processor, images, batch_size=batch_size, show_progress=True
    )
    ids, texts = list(dataset["id"]), list(dataset["text"])
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename so that a crash never leaves a truncated cache behind.
    tmp = cache_file.with_suffix(".tmp")
    torch.save({"image_emb": image_emb, "ids": ids, "texts": texts}, tmp)
    tmp.replace(cache_file)
    logger.info("Indexed %d cases from %s[%s] into %s", len(ids), config.index_dataset, config.index_split, cache_file)
    return CaseIndex(image_emb, ids, texts, dataset)


def write_examples(index: CaseIndex, out_dir: str | Path, n: int = 3) -> list[str]:
    """Save the first `n` indexed images as PNG files for the demo's examples.

    Args:
        index (`CaseIndex`): The case index (its dataset supplies the images).
        out_dir (`str` or `Path`): Folder to write `example-<i>.png` to.
        n (`int`, *optional*, defaults to `3`): How many.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(min(n, len(index.ids))):
        path = out_dir / f"example-{i + 1}.png"
        if not path.is_file():
            index.dataset[i]["image"].convert("RGB").save(path)
        paths.append(str(path))
    return paths


def sniff_upload(head: bytes) -> str | None:
    """`"png"`, `"jpeg"` or `"dicom"` from a file's first 132 bytes, `None` for anything else."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if is_dicom(head):
        return "dicom"
    return None


def read_upload(path: str | Path | None, *, max_bytes: int, max_pixels: int) -> tuple[Image.Image, str]:
    """Validate and decode an uploaded PNG, JPEG or DICOM file into an RGB image.

    DICOM is windowed by `medvl_recipes.imaging.dicom_to_image`; none of its tags is returned or logged.

    Args:
        path (`str` or `Path`, *optional*): The uploaded file (`None` when nothing was uploaded).
        max_bytes (`int`): Largest accepted file size.
        max_pixels (`int`): Largest accepted width x height (checked before decoding).

    Returns:
        `(PIL.Image.Image, str)`: the RGB image and its kind (`"png"`, `"jpeg"` or `"dicom"`).

    Raises:
        `MedvlError`: with a message meant for the person who uploaded the file.
    """
    from medvl_recipes.imaging import load_image

    if path is None:
        raise MedvlError("Please upload a PNG, JPEG or DICOM image first.")
    try:
        size = Path(path).stat().st_size
    except FileNotFoundError:
        # Another session that uploaded the very same bytes (same cached file) had it deleted after reading it.
        raise MedvlError("The uploaded file is no longer on the server. Please upload it again.") from None
    if size == 0:
        raise MedvlError("The uploaded file is empty (0 bytes). Please upload a PNG, JPEG or DICOM image.")
    if size > max_bytes:
        raise MedvlError(f"The uploaded file is {size / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB.")
    data = Path(path).read_bytes()
    kind = sniff_upload(data[:132])
    if kind is None:
        raise MedvlError(
            "This file is not a PNG, JPEG or DICOM image (its content does not match any of these formats, "
            "whatever its name says). Please upload a PNG, JPEG or DICOM file."
        )
    try:
        # Bytes, not the path: error messages then never carry the uploaded file's name.
        image = load_image(data, max_pixels=max_pixels)
    except MedvlError as err:
        reason = str(err).removeprefix("<bytes>: ")
        if "max_pixels" in reason:
            reason = f"the image is too large (the limit is {max_pixels / 1e6:.0f} megapixels)"
        elif "no pixel data" in reason:
            reason = "this DICOM file contains no image (no pixel data), e.g. a structured report"
        raise MedvlError(f"Cannot read this {UPLOAD_KINDS[kind]} file: {reason}.") from None
    return image, kind


def delete_cached_file(path: str | Path | None) -> None:
    """Delete a file (and its now-empty per-file folder) from Gradio's cache; paths outside the cache are left alone.

    Args:
        path (`str` or `Path`, *optional*): A file in Gradio's cache (`GRADIO_TEMP_DIR`).
    """
    from gradio.utils import get_upload_folder

    if path is None:
        return
    path = Path(path)
    if Path(get_upload_folder()).resolve() not in path.resolve().parents:
        return
    path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # the folder may hold other files
        path.parent.rmdir()


class SessionFiles:
    """The files in Gradio's cache that each browser session holds, deleted when the last session holding them ends.

    Gradio names a cached file by the hash of its content, so two sessions shown the same image (an example, the
    thumbnail of a popular similar case) share one file: a file is deleted only once no session holds it. Sessions
    are Gradio's `session_hash`es; one ends when its tab is closed or reloaded (`Blocks.unload`). Gradio's
    time-based `delete_cache` stays as the backstop for sessions that never end cleanly (REST calls).

    Args:
        keep (`Iterable[str]`, *optional*): Cached files never deleted (the cached copies of the examples).
    """

    # A run can outlive its session (the tab was closed mid-report); its late files are deleted when it
    # finishes, so recently ended sessions are remembered, a bounded number of them.
    max_ended = 4096

    def __init__(self, keep: Iterable[str] = ()):
        self.keep = {str(Path(p).resolve()) for p in keep}
        self._holders: dict[str, set[str]] = {}  # file -> sessions holding it
        self._files: dict[str, set[str]] = {}  # session -> files it holds
        self._ended: OrderedDict[str, None] = OrderedDict()
        # One lock around write + register and check + delete: a file another session is writing right now
        # is never deleted in between.
        self._lock = threading.Lock()

    def add(self, session_hash: str | None, path: str | Path | None) -> str | Path | None:
        """Record that a session holds a cached file; returns `path` (nothing is recorded without a session)."""
        if session_hash is None or path is None:
            return path
        with self._lock:
            self._add(session_hash, path)
        return path

    def _add(self, session_hash: str, path: str | Path) -> None:
        key = str(Path(path).resolve())
        self._holders.setdefault(key, set()).add(session_hash)
        self._files.setdefault(session_hash, set()).add(key)

    def cache_image(self, session_hash: str | None, image: Image.Image, component) -> str:
        """Write `image` into Gradio's cache exactly as `component` (a `gr.Image` or `gr.Gallery`) would when
        it is returned, and record it for the session. Returns the path to give the component instead.
        """
        from gradio.image_utils import save_image

        with self._lock:
            path = save_image(image, cache_dir=component.GRADIO_CACHE, format=component.format)
            if session_hash is not None:
                self._add(session_hash, path)
        return path

    def release(self, session_hash: str | None, path: str | Path | None) -> None:
        """Drop a session's hold on one file (an upload once it is read) and delete the file if no session holds it."""
        if path is None:
            return
        key = str(Path(path).resolve())
        with self._lock:
            holders = self._holders.get(key, set())
            holders.discard(session_hash)
            self._files.get(session_hash, set()).discard(key)
            if not holders:
                self._holders.pop(key, None)
                self._delete(key)

    def end_session(self, session_hash: str | None) -> list[str]:
        """Delete every file of an ended session that no other session holds; returns the deleted paths."""
        if session_hash is None:
            return []
        with self._lock:
            self._ended[session_hash] = None
            while len(self._ended) > self.max_ended:
                self._ended.popitem(last=False)
            deleted = []
            for key in self._files.pop(session_hash, set()):
                holders = self._holders.get(key, set())
                holders.discard(session_hash)
                if not holders:
                    self._holders.pop(key, None)
                    if self._delete(key):
                        deleted.append(key)
        if deleted:
            logger.info("Session ended: deleted %d cached files", len(deleted))
        return deleted

    def has_ended(self, session_hash: str | None) -> bool:
        """Whether `end_session` was called for this session (recently)."""
        with self._lock:
            return session_hash in self._ended

    def _delete(self, key: str) -> bool:
        if key in self.keep:
            return False
        delete_cached_file(key)
        return True


def siglip_match(models: DemoModels, image_emb: torch.Tensor, report: str) -> tuple[float, float]:
    """SigLIP image-report agreement: `(probability, cosine)`.

    The probability is the model's own sigmoid of `logit_scale.exp() * cosine + logit_bias`, the quantity its
    contrastive loss was trained on.

    Args:
        models (`DemoModels`): Loaded models.
        image_emb (`torch.Tensor`): `(1, D)` image embedding.
        report (`str`): The report text.
    """
    from medvl_recipes.retrieval import encode_texts

    text_emb = encode_texts(models.encoder, models.encoder_processor, [report])  # (1, D)
    cosine = float(image_emb.reshape(-1) @ text_emb.reshape(-1))
    with torch.no_grad():
        scale = float(models.encoder.logit_scale.exp())
        bias = float(models.encoder.logit_bias) if getattr(models.encoder, "logit_bias", None) is not None else 0.0
    return float(torch.sigmoid(torch.tensor(scale * cosine + bias))), cosine


@dataclass
class Analysis:
    """One step of `analyse`: what the page shows so far."""

    image: Image.Image | None = None
    report: str = ""
    similarity: tuple[float, float] | None = None
    cases: list[dict] = field(default_factory=list)
    status: str = ""
    done: bool = False


def analyse(models: DemoModels, index: CaseIndex, config: DemoConfig, path: str | None) -> Iterator[Analysis]:
    """Validate an upload, find similar cases, stream a report, then score image-report agreement.

    Args:
        models (`DemoModels`): Loaded models.
        index (`CaseIndex`): The case index.
        config (`DemoConfig`): Settings (`max_upload_mb`, `max_pixels`, `top_k`, `max_new_tokens`).
        path (`str`, *optional*): The uploaded file.

    Yields:
        `Analysis`: the state after validation, after each generated piece, and the final state (`done=True`).
        Bad input gives a single `Analysis` whose `status` explains the problem.
    """
    from medvl_recipes.generation import stream_report
    from medvl_recipes.retrieval import encode_images

    try:
        image, kind = read_upload(path, max_bytes=int(config.max_upload_mb * 1e6), max_pixels=config.max_pixels)
    except MedvlError as err:
        yield Analysis(status=f"⚠️ {err}", done=True)
        return
    image_emb = encode_images(models.encoder, models.encoder_processor, [image])  # (1, D)
    cases = []
    for rank, (row, score) in enumerate(index.search(image_emb, config.top_k), start=1):
        thumbnail = index.dataset[row]["image"].convert("RGB")
        thumbnail.thumbnail(THUMBNAIL_SIZE)
        cases.append(
            {
                "rank": rank,
                "score": round(score, 3),
                "id": index.ids[row],
                "report": index.texts[row],
                "thumbnail": thumbnail,
            }
        )
    state = Analysis(image=image, cases=cases, status=f"Generating a report for the {UPLOAD_KINDS[kind]} image…")
    yield state
    for text in stream_report(models.decoder, models.decoder_processor, image, max_new_tokens=config.max_new_tokens):
        state.report = text
        yield state
    state.similarity = siglip_match(models, image_emb, state.report) if state.report else None
    state.status = "Done." if state.report else "Done (the model generated an empty report)."
    state.done = True
    yield state


def _similarity_text(similarity: tuple[float, float] | None) -> str:
    if similarity is None:
        return ""
    probability, cosine = similarity
    return f"**Image-report match (SigLIP):** {probability:.3f} (cosine {cosine:.3f})"


def build_demo(models: DemoModels, index: CaseIndex, config: DemoConfig, examples: list[str] | None = None):
    """The Gradio Blocks app: upload, streamed report, SigLIP similarity and similar cases.

    The `analyse` event is exposed as the API endpoint `/analyse` (for `gradio_client`), runs through the
    queue with `config.concurrency_limit` concurrent generations, and returns, in order: the cleared upload,
    the rendered image, the status line, the report, the similarity line, the case gallery and the case table.

    Files in Gradio's cache: an upload is deleted once it is read; the files cached for a session (uploads never
    analysed, the preview, the thumbnails) are deleted when the session ends (`demo.unload`), unless another
    session still shows them (`SessionFiles`, kept as `demo.session_files`); the examples' cached copies are
    kept. `delete_cache=(session_ttl_s // 4, session_ttl_s)` deletes whatever a session that never ended left.

    Args:
        models (`DemoModels`): Loaded models.
        index (`CaseIndex`): The case index.
        config (`DemoConfig`): Settings.
        examples (`list[str]`, *optional*): Example image paths (see `write_examples`).
    """
    import gradio as gr

    examples = examples or []
    headers = ["rank", "score", "case", "reference report"]
    files = SessionFiles()

    def hold_upload(path, request: gr.Request):
        # A file uploaded but never analysed is still deleted when the session ends.
        files.add(request.session_hash, path)

    def end_session(request: gr.Request):
        files.end_session(request.session_hash)

    def run(path, request: gr.Request):
        session = request.session_hash if request is not None else None
        files.add(session, path)
        image, shown = None, []
        try:
            for step in analyse(models, index, config, path):
                if image is not None and not step.done:
                    # While tokens stream in, only the text changes: the images are not sent again.
                    yield (gr.skip(), gr.skip(), step.status, step.report, gr.skip(), gr.skip(), gr.skip())
                    continue
                if step.image is not None and image is None:
                    # Written to Gradio's cache here, as the components would (same folder, same name), so
                    # that the files this session was shown are known and deleted when it ends.
                    image = files.cache_image(session, step.image, preview)
                    shown = [
                        (files.cache_image(session, c["thumbnail"], gallery), f"#{c['rank']} · {c['score']:.3f}")
                        for c in step.cases
                    ]
                table = [[c["rank"], c["score"], c["id"], c["report"]] for c in step.cases]
                # The file input is cleared so that an uploaded file's name (which can identify a patient) does
                # not stay on the page.
                yield (None, image, step.status, step.report, _similarity_text(step.similarity), shown, table)
        finally:
            files.release(session, path)
            if files.has_ended(session):
                # The tab was closed while the report streamed: delete what this run cached after that.
                files.end_session(session)

    with gr.Blocks(
        title="medvl-recipes demo", delete_cache=(max(60, config.session_ttl_s // 4), config.session_ttl_s)
    ) as demo:
        gr.Markdown("# Medical image → report (medvl-recipes)")
        gr.Markdown(DISCLAIMER, elem_id="disclaimer")
        with gr.Row():
            with gr.Column():
                upload = gr.File(
                    label=f"PNG, JPEG or DICOM image (up to {config.max_upload_mb:g} MB)",
                    file_types=[".png", ".jpg", ".jpeg", ".dcm", ".dicom"],
                    type="filepath",
                    elem_id="upload",
                )
                button = gr.Button("Generate report", variant="primary", elem_id="run")
                preview = gr.Image(
                    label="Image", type="pil", interactive=False, elem_id="preview", format="png", height=360
                )
                if examples:
                    gr.Examples(
                        examples=examples, inputs=upload, label="Examples from the sample data", cache_examples=False
                    )
                    # The examples' cached copies (also where an upload of the same file lands) serve every
                    # session: neither a session's end nor `delete_cache` may delete them.
                    example_copies = {upload.move_resource_to_block_cache(p) for p in examples}
                    upload.keep_in_cache.update(example_copies)
                    files.keep.update(str(Path(p).resolve()) for p in example_copies)
            with gr.Column():
                status = gr.Markdown(elem_id="status")
                report = gr.Textbox(label="Generated report", lines=6, interactive=False, elem_id="report")
                similarity = gr.Markdown(elem_id="similarity")
                gallery = gr.Gallery(
                    label="Similar cases", columns=config.top_k, height=240, elem_id="gallery", format="jpeg"
                )
                cases = gr.Dataframe(
                    headers=headers,
                    label="Similar cases (reference reports)",
                    interactive=False,
                    wrap=True,
                    column_widths=["8%", "10%", "27%", "55%"],
                    elem_id="cases",
                )
        button.click(
            run,
            inputs=upload,
            outputs=[upload, preview, status, report, similarity, gallery, cases],
            api_name="analyse",
            concurrency_limit=config.concurrency_limit,
        )
        upload.upload(
            hold_upload, inputs=upload, outputs=None, queue=False, show_progress="hidden", api_visibility="private"
        )
        demo.unload(end_session)
    demo.session_files = files
    demo.queue(max_size=config.queue_size, default_concurrency_limit=config.concurrency_limit)
    return demo


def launch_kwargs(config: DemoConfig, examples_dir: str | Path | None = None) -> dict:
    """Keyword arguments for `demo.launch`: address, upload size limit, and the examples folder it may serve."""
    # Unset host/port leave Gradio's own defaults, which a Space sets through GRADIO_SERVER_NAME/PORT.
    return {
        "server_name": config.host,
        "server_port": config.port,
        "max_file_size": f"{config.max_upload_mb:g}mb",
        "allowed_paths": [str(examples_dir)] if examples_dir else None,
        "show_error": False,
    }

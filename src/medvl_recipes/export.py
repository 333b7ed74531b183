# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""`medvl export onnx ENCODER_DIR OUT`: the SigLIP vision and text towers as ONNX graphs, run with onnxruntime.

Layout, as in the Hub's `onnx/` folders: `OUT/config.json` and the processor files (`processor_config.json`,
tokenizer) at the top, `OUT/onnx/vision_model.onnx` (`pixel_values` -> `image_embeds`) and `OUT/onnx/text_model.onnx`
(`input_ids` -> `text_embeds`), both with a dynamic batch axis, plus `OUT/onnx/siglip_logits.json` (the logit scale
and bias that turn a cosine into SigLIP's match probability). `--quantize` adds int8 dynamically quantised copies
(`*_quantized.onnx`, onnxruntime `quantize_dynamic`). `OnnxEncoder` loads the folder behind the same interface as
`retrieval.TorchEncoder`, so `medvl generate --encoder OUT` uses it.

Needs the `export` extra: `pip install "medvl-recipes[export]"` (onnx, onnxruntime).

Usage:

    medvl export onnx outputs/quickstart/encoder outputs/quickstart/encoder-onnx --quantize
"""

import argparse
import json
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from medvl_recipes.errors import MedvlError


logger = logging.getLogger(__name__)

LOGITS_FILE = "siglip_logits.json"
OPSET = 17


class _VisionTower(torch.nn.Module):
    def __init__(self, model, interpolate: bool):
        super().__init__()
        self.model, self.interpolate = model, interpolate

    def forward(self, pixel_values):  # (B, 3, H, W) -> (B, D)
        return self.model.get_image_features(
            pixel_values=pixel_values, interpolate_pos_encoding=self.interpolate
        ).pooler_output


class _TextTower(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids):  # (B, L) -> (B, D)
        return self.model.get_text_features(input_ids=input_ids).pooler_output


def _processor_size(processor) -> tuple[int, int]:
    size = processor.image_processor.size
    return int(size["height"]), int(size["width"])


def export_onnx(encoder: str, output_dir: str | Path, *, quantize: bool = False, max_length: int = 64) -> Path:
    """Export a SigLIP checkpoint's towers to `output_dir/onnx/` (fp32; int8 copies with `quantize`).

    Args:
        encoder (`str`):
            A SigLIP checkpoint folder or Hub id (e.g. a `medvl train-encoder` output_dir).
        output_dir (`str` or `Path`):
            Gets `config.json`, the processor files and `onnx/`.
        quantize (`bool`, *optional*, defaults to `False`):
            Also write `onnx/{vision,text}_model_quantized.onnx` (int8 weights, dynamic activation quantisation).
        max_length (`int`, *optional*, defaults to `64`):
            Text length the example input is traced with (the graph's length axis stays dynamic).

    Returns:
        `Path`: `output_dir`.
    """
    from medvl_recipes.modeling import load_encoder
    from medvl_recipes.retrieval import needs_pos_interpolation

    output_dir = Path(output_dir)
    onnx_dir = output_dir / "onnx"
    onnx_dir.mkdir(parents=True, exist_ok=True)
    model, processor = load_encoder(encoder, dtype="float32", device="cpu")
    height, width = _processor_size(processor)
    pixel_values = torch.zeros(2, 3, height, width)
    input_ids = torch.ones(2, max_length, dtype=torch.long)
    vision = _VisionTower(model, needs_pos_interpolation(model, pixel_values)).eval()
    with warnings.catch_warnings():
        # The TorchScript exporter warns about tracing Python conditions that are constant for this graph.
        warnings.simplefilter("ignore")
        for module, inputs, name, input_name, output_name in (
            (vision, pixel_values, "vision_model", "pixel_values", "image_embeds"),
            (_TextTower(model).eval(), input_ids, "text_model", "input_ids", "text_embeds"),
        ):
            # dynamo=False: the TorchScript exporter needs no onnxscript and handles SigLIP's attention as is.
            torch.onnx.export(
                module,
                (inputs,),
                str(onnx_dir / f"{name}.onnx"),
                dynamo=False,
                input_names=[input_name],
                output_names=[output_name],
                dynamic_axes={
                    input_name: {0: "batch_size"} | ({1: "sequence_length"} if name == "text_model" else {}),
                    output_name: {0: "batch_size"},
                },
                opset_version=OPSET,
            )
    if quantize:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        for name in ("vision_model", "text_model"):
            quantize_dynamic(
                onnx_dir / f"{name}.onnx", onnx_dir / f"{name}_quantized.onnx", weight_type=QuantType.QInt8
            )
    model.config.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    logits = {"logit_scale": float(model.logit_scale.detach()), "logit_bias": float(model.logit_bias.detach())}
    (onnx_dir / LOGITS_FILE).write_text(json.dumps(logits, indent=2) + "\n")
    logger.info("wrote %s", ", ".join(sorted(p.name for p in onnx_dir.glob("*.onnx"))))
    return output_dir


class OnnxEncoder:
    """A `medvl export onnx` folder run with onnxruntime, with the interface of `retrieval.TorchEncoder`.

    Args:
        path (`str` or `Path`):
            The export folder (`onnx/vision_model.onnx`, `onnx/text_model.onnx`, processor files).
        quantized (`bool`, *optional*, defaults to `False`):
            Use the int8 `*_quantized.onnx` graphs.
        num_threads (`int`, *optional*):
            onnxruntime intra-op threads (default: onnxruntime's choice).
    """

    def __init__(self, path: str | Path, *, quantized: bool = False, num_threads: int | None = None):
        import onnxruntime
        from transformers import AutoProcessor

        path = Path(path)
        suffix = "_quantized" if quantized else ""
        files = [path / "onnx" / f"{name}{suffix}.onnx" for name in ("vision_model", "text_model")]
        missing = [str(file) for file in files if not file.is_file()]
        if missing:
            hint = " (export with --quantize)" if quantized else ""
            raise MedvlError(f"{missing[0]}: missing; run `medvl export onnx ENCODER_DIR {path}`{hint}")
        options = onnxruntime.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = num_threads
        providers = ["CPUExecutionProvider"]
        self.vision, self.text = (onnxruntime.InferenceSession(str(f), options, providers=providers) for f in files)
        self.processor = AutoProcessor.from_pretrained(path)
        logits = json.loads((path / "onnx" / LOGITS_FILE).read_text())
        self.logit_scale = float(logits["logit_scale"])  # log temperature, as in the checkpoint
        self.logit_bias = float(logits["logit_bias"])

    def encode_images(self, images, batch_size: int = 32) -> torch.Tensor:
        """L2-normalised image embeddings `(N, D)`, float32 (as `retrieval.encode_images`)."""
        chunks = []
        for start in range(0, len(images), batch_size):
            batch = [image.convert("RGB") for image in images[start : start + batch_size]]
            pixel_values = self.processor(images=batch, return_tensors="np")["pixel_values"].astype(np.float32)
            (features,) = self.vision.run(None, {"pixel_values": pixel_values})
            chunks.append(F.normalize(torch.from_numpy(features), dim=-1))
        return torch.cat(chunks) if chunks else torch.empty(0, 0)

    def encode_texts(self, texts, batch_size: int = 32, max_length: int = 64) -> torch.Tensor:
        """L2-normalised text embeddings `(N, D)`, padded to `max_length` (as `retrieval.encode_texts`)."""
        tokenizer = getattr(self.processor, "tokenizer", self.processor)
        chunks = []
        for start in range(0, len(texts), batch_size):
            tokens = tokenizer(
                list(texts[start : start + batch_size]),
                padding="max_length",
                max_length=max_length,
                truncation=True,
                return_tensors="np",
            )
            (features,) = self.text.run(None, {"input_ids": tokens["input_ids"].astype(np.int64)})
            chunks.append(F.normalize(torch.from_numpy(features), dim=-1))
        return torch.cat(chunks) if chunks else torch.empty(0, 0)


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="medvl export",
        description="Export a trained model for inference without PyTorch.",
    )
    kinds = parser.add_subparsers(dest="kind", required=True)
    onnx = kinds.add_parser(
        "onnx",
        help="SigLIP vision and text towers as ONNX graphs (dynamic batch) + processor files.",
        description="Export the SigLIP encoder's vision and text towers to ONNX, laid out like the Hub's onnx/ folders.",
    )
    onnx.add_argument("encoder", help="SigLIP checkpoint folder or Hub id (a `medvl train-encoder` output_dir).")
    onnx.add_argument("output_dir", help="Folder to write config, processor and onnx/*.onnx into.")
    onnx.add_argument("--quantize", action="store_true", help="Also write int8 dynamically quantised graphs.")
    args = parser.parse_args(argv)
    try:
        import onnxruntime  # noqa: F401
    except ImportError as err:
        raise MedvlError('onnx export needs onnx and onnxruntime: pip install "medvl-recipes[export]"') from err
    export_onnx(args.encoder, args.output_dir, quantize=args.quantize)
    return 0

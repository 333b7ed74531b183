# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""`VisionSFTCollator`: exact label tensors, batching of mixed aspect ratios, truncation and bad input."""

import json

import pytest
import torch
from PIL import Image
from transformers import AutoProcessor

from medvl_recipes.collators import VisionSFTCollator
from medvl_recipes.data.chat import load_chat_split
from medvl_recipes.errors import MedvlError
from medvl_recipes.prompts import DEFAULT_SYSTEM_PROMPT


IGNORE = -100
REPORT_A = "A nodule in the left lower zone. No pleural effusion."
REPORT_B = "No focal nodule."


@pytest.fixture(scope="module")
def processor(tiny_mllama_4_tiles):
    # The real model's tiling (4 tiles), so that batches mix tile counts; the 1-tile default is a special case.
    return AutoProcessor.from_pretrained(tiny_mllama_4_tiles)


def chat(report, *, prompt="Describe this medical image.", image=None, size=(96, 80)):
    return {
        "id": f"s-{len(report)}",
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": DEFAULT_SYSTEM_PROMPT}]},
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]},
            {"role": "assistant", "content": [{"type": "text", "text": report}]},
        ],
        "images": [image if image is not None else Image.new("RGB", size, color=(90, 90, 90))],
    }


def ids_of(processor, text):
    return processor.tokenizer(text, add_special_tokens=False)["input_ids"]


def prompt_text(prompt="Describe this medical image."):
    return (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        f"{DEFAULT_SYSTEM_PROMPT}<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n<|image|>{prompt}<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def expected_row(processor, report, length):
    """Hand-built reference: prompt tokens -100, then the report and <|eot_id|> kept, then padding -100."""
    full = ids_of(processor, prompt_text() + report + "<|eot_id|>")
    answer = ids_of(processor, report + "<|eot_id|>")
    # The rendered text tokenizes as prompt + answer (the header ends in newlines, a pre-token boundary).
    assert full[-len(answer) :] == answer
    labels = [IGNORE] * (len(full) - len(answer)) + answer + [IGNORE] * (length - len(full))
    input_ids = full + [processor.tokenizer.pad_token_id] * (length - len(full))
    return torch.tensor(input_ids), torch.tensor(labels), len(full)


def test_labels_exact_for_a_padded_batch_of_two_aspect_ratios(processor):
    wide, tall = chat(REPORT_A, size=(200, 60)), chat(REPORT_B, size=(60, 200))
    batch = VisionSFTCollator(processor)([wide, tall])

    assert set(batch) == {
        "input_ids",
        "attention_mask",
        "labels",
        "pixel_values",
        "aspect_ratio_ids",
        "aspect_ratio_mask",
        "cross_attention_mask",
    }
    length = batch["input_ids"].shape[1]
    for row, report in enumerate((REPORT_A, REPORT_B)):
        input_ids, labels, n = expected_row(processor, report, length)
        torch.testing.assert_close(batch["input_ids"][row], input_ids)
        torch.testing.assert_close(batch["labels"][row], labels)
        torch.testing.assert_close(batch["attention_mask"][row], (torch.arange(length) < n).long())
    # Every <|image|> is -100 (its id lies outside the LM's output vocabulary), and so is every padding slot.
    image_positions = batch["input_ids"] == processor.tokenizer.convert_tokens_to_ids("<|image|>")
    assert image_positions.sum() == 2
    assert (batch["labels"][image_positions] == IGNORE).all()
    assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE).all()
    # The kept tokens are exactly the reports plus their end-of-turn token.
    kept = [processor.tokenizer.decode(batch["input_ids"][r][batch["labels"][r] != IGNORE]) for r in range(2)]
    assert kept == [REPORT_A + "<|eot_id|>", REPORT_B + "<|eot_id|>"]

    # Image tensors: per sample they equal the processor's output for that image alone (tiles padded to the max).
    for row, sample in enumerate((wide, tall)):
        alone = processor(
            images=[sample["images"]], text=[prompt_text()], add_special_tokens=False, return_tensors="pt"
        )
        torch.testing.assert_close(batch["aspect_ratio_ids"][row], alone["aspect_ratio_ids"][0])
        torch.testing.assert_close(batch["aspect_ratio_mask"][row], alone["aspect_ratio_mask"][0])
        torch.testing.assert_close(batch["pixel_values"][row], alone["pixel_values"][0])
    assert batch["aspect_ratio_ids"][0] != batch["aspect_ratio_ids"][1]
    # Cross-attention: tokens from the image on attend to the image's real tiles only.
    cross = batch["cross_attention_mask"]  # (B, L, images, tiles)
    assert cross.shape[:2] == batch["input_ids"].shape
    for row in range(2):
        first = int(image_positions[row].nonzero()[0])
        assert (cross[row, :first] == 0).all()
        assert (cross[row, first:, 0] == batch["aspect_ratio_mask"][row, 0]).all()


def test_loss_on_all_keeps_everything_but_padding_and_images(processor):
    batch = VisionSFTCollator(processor, loss_on="all")([chat(REPORT_A), chat(REPORT_B)])
    expected = batch["input_ids"].clone()
    expected[batch["attention_mask"] == 0] = IGNORE
    expected[batch["input_ids"] == processor.tokenizer.convert_tokens_to_ids("<|image|>")] = IGNORE
    torch.testing.assert_close(batch["labels"], expected)
    assert (batch["labels"][1] == IGNORE).sum() == 1 + (batch["attention_mask"][1] == 0).sum()


def test_multi_turn_keeps_every_assistant_turn_only(processor):
    sample = chat(REPORT_A)
    sample["messages"] += [
        {"role": "user", "content": [{"type": "text", "text": "Any effusion?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "No."}]},
    ]
    batch = VisionSFTCollator(processor)([sample])
    kept = batch["input_ids"][0][batch["labels"][0] != IGNORE]
    answers = ids_of(processor, REPORT_A + "<|eot_id|>") + ids_of(processor, "No.<|eot_id|>")
    assert kept.tolist() == answers


def test_custom_template_without_bos_still_trains_exactly_the_answer(processor):
    # MllamaProcessor prepends <|begin_of_text|> to text that lacks it; the spans must follow that shift.
    template = processor.chat_template.replace("{{- bos_token }}", "")
    batch = VisionSFTCollator(processor, chat_template=template)([chat(REPORT_A)])
    kept = batch["input_ids"][0][batch["labels"][0] != IGNORE]
    assert kept.tolist() == ids_of(processor, REPORT_A + "<|eot_id|>")


def test_truncation_keeps_the_image_token(processor):
    sample = chat(REPORT_A)
    n = len(ids_of(processor, prompt_text() + REPORT_A + "<|eot_id|>"))
    batch = VisionSFTCollator(processor, max_length=n - 3)([sample])
    _, labels, _ = expected_row(processor, REPORT_A, n)
    torch.testing.assert_close(batch["labels"][0], labels[: n - 3])
    assert batch["input_ids"].shape == batch["cross_attention_mask"].shape[:2] == (1, n - 3)


def test_too_long_sample_that_would_lose_its_image_errors_or_is_dropped(processor):
    short = chat(REPORT_B)
    # A user prompt so long that the image token sits beyond max_length.
    long = chat(REPORT_A, prompt="x " * 300)
    long["messages"][1]["content"] = long["messages"][1]["content"][::-1]  # text first, then the image
    n_short = len(ids_of(processor, prompt_text() + REPORT_B + "<|eot_id|>"))
    with pytest.raises(MedvlError, match=r"sample 1 of the batch.*would cut an image token.*too_long='drop'"):
        VisionSFTCollator(processor, max_length=128)([short, long])
    collator = VisionSFTCollator(processor, max_length=128, too_long="drop")
    batch = collator([short, long])
    assert collator.num_dropped == 1
    input_ids, labels, _ = expected_row(processor, REPORT_B, n_short)
    torch.testing.assert_close(batch["labels"], labels[None])
    torch.testing.assert_close(batch["input_ids"], input_ids[None])
    with pytest.raises(MedvlError, match="every sample of a batch of 1 was dropped"):
        collator([long])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s: s.update(images=[]), r"sample 0 .*has no image"),
        (lambda s: s["messages"][1]["content"].append({"type": "image"}), r"sample 0 .*2 image placeholder.*has 1"),
        (
            lambda s: s["messages"][1]["content"].append({"type": "text", "text": "<|image|>"}),
            r"sample 0 .*2 image placeholder",
        ),
        (lambda s: s.update(images=["missing/nowhere.png"]), r"sample 0 .*cannot read image.*nowhere\.png"),
        (lambda s: s["messages"].pop(), r"sample 0 .*no \(non-empty\) assistant turn"),
    ],
)
def test_bad_samples_name_the_sample_and_the_fix(processor, mutate, message):
    sample = chat(REPORT_A)
    mutate(sample)
    with pytest.raises(MedvlError, match=message):
        VisionSFTCollator(processor)([sample])


def test_unreadable_image_file(processor, tmp_path):
    (tmp_path / "broken.png").write_bytes(b"not a png")
    sample = chat(REPORT_A)
    sample["images"] = ["broken.png"]
    with pytest.raises(MedvlError, match=r"sample 0 .*broken\.png"):
        VisionSFTCollator(processor, image_root=tmp_path)([sample])


def test_load_chat_split_checks_every_line(tmp_path):
    Image.new("RGB", (32, 32)).save(tmp_path / "a.png")
    good = chat(REPORT_A)
    good["images"] = ["a.png"]
    bad = chat(REPORT_B)
    bad["images"] = ["b.png"]
    (tmp_path / "train.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(MedvlError, match=r"train\.jsonl line 2 \(sample 1\): image .*b\.png does not exist"):
        load_chat_split(tmp_path, "train")
    (tmp_path / "train.jsonl").write_text(json.dumps(good) + "\n")
    dataset = load_chat_split(tmp_path, "train")
    assert dataset[0]["images"] == [str(tmp_path / "a.png")]


def _tiled_image(grid: tuple[int, int], colours: list[tuple[int, int, int]], tile: int = 112) -> Image.Image:
    """An image of `grid` (rows, columns) blocks of one tile each, block k (row-major) filled with colours[k]."""
    rows, cols = grid
    image = Image.new("RGB", (cols * tile, rows * tile))
    for k, colour in enumerate(colours):
        r, c = divmod(k, cols)
        image.paste(Image.new("RGB", (tile, tile), colour), (c * tile, r * tile))
    return image


def test_each_sample_gets_its_own_pixels_when_a_batch_mixes_sizes_and_aspect_ratios(processor):
    # Every tile of every image has its own colour, so a pixel row that came from the wrong sample, a wrong tile
    # order or a tile of another image shows. The tiny processor with the real model's tiling (`--max-tiles 4`):
    # 112-px tiles, at most 4; Mllama's aspect-ratio
    # ids for 4 tiles count (tile rows, tile columns) as 1:(1,1) 2:(1,2) 3:(1,3) 4:(1,4) 5:(2,1) 6:(2,2) 7:(3,1) 8:(4,1).
    assert processor.image_processor.size["height"] == 112 and processor.image_processor.max_image_tiles == 4
    colours = iter([(i * 23 % 256, i * 71 % 256, 255 - i * 19 % 256) for i in range(1, 11)])
    samples = {  # name -> (tile grid (rows, columns), aspect-ratio id)
        "wide": ((1, 3), 3),
        "tall": ((2, 1), 5),
        "square": ((2, 2), 6),
    }
    cases = {}
    for name, (grid, ratio_id) in samples.items():
        tile_colours = [next(colours) for _ in range(grid[0] * grid[1])]
        cases[name] = (_tiled_image(grid, tile_colours), ratio_id, tile_colours)
    small_colour = next(colours)
    cases["small"] = (Image.new("RGB", (60, 60), small_colour), 1, [small_colour])  # upscaled into one tile

    def expected_tile(colour):
        # The processor rescales to [0, 1] and normalises with mean = std = 0.5 (checked below).
        value = (torch.tensor(colour, dtype=torch.float32) / 255.0 - 0.5) / 0.5
        return value[:, None, None].expand(3, 112, 112)

    assert list(processor.image_processor.image_mean) == [0.5] * 3 == list(processor.image_processor.image_std)
    collator = VisionSFTCollator(processor)
    for order in (["wide", "tall", "square", "small"], ["small", "square", "wide", "tall"]):
        batch = collator([chat(REPORT_A, image=cases[name][0]) for name in order])
        assert batch["pixel_values"].shape == (4, 1, 4, 3, 112, 112)
        for row, name in enumerate(order):
            _, ratio_id, tile_colours = cases[name]
            n_tiles = len(tile_colours)
            assert batch["aspect_ratio_ids"][row].tolist() == [ratio_id], name
            assert batch["aspect_ratio_mask"][row].tolist() == [[1] * n_tiles + [0] * (4 - n_tiles)], name
            for k, colour in enumerate(tile_colours):
                torch.testing.assert_close(
                    batch["pixel_values"][row, 0, k], expected_tile(colour), atol=2.5 / 255, rtol=0, msg=name
                )
            assert (batch["pixel_values"][row, 0, n_tiles:] == 0).all(), f"{name}: padding tiles must be empty"
            # Text side: the tokens after the image token may attend exactly this sample's real tiles.
            image_pos = int((batch["input_ids"][row] == collator.image_token_id).nonzero()[0])
            attended = batch["cross_attention_mask"][row, image_pos:][batch["attention_mask"][row, image_pos:] == 1]
            assert (attended[:, 0] == batch["aspect_ratio_mask"][row, 0]).all(), name

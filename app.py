# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Gradio demo: upload a PNG/JPEG or DICOM image, get a streamed report with its findings highlighted, a plain-word
image-report match, an out-of-distribution check and the most similar training cases. Not for clinical use.

Runs on CPU (tested with the quickstart's smoke models) or one GPU.

    python app.py                                   # serves outputs/quickstart/{decoder,encoder,dataset}, offline
    python app.py --decoder me/medvl-decoder --encoder me/medvl-encoder --index-dataset me/medvl-data --port 7860

Every flag can also be set as an environment variable, e.g. MEDVL_DEMO_MAX_NEW_TOKENS=64.
In a Space pushed by `medvl push space`, the model ids come from demo_config.json next to this file.

API (`gradio_client`): `/report` (file, mask_burned_in) and `/similar` (file, mask_burned_in); their outputs are
listed in `REPORT_OUTPUTS` and `SIMILAR_OUTPUTS` below and on the page's "Use via API" view.
"""

import argparse
import logging
import sys
import tempfile
from dataclasses import fields
from pathlib import Path

import gradio as gr
from starlette.middleware import Middleware

from medvl_recipes.demo.analysis import Analysis, analyse, find_similar, open_upload, shown_image
from medvl_recipes.demo.cases import Calibration, CaseIndex, build_index, calibrate, write_examples
from medvl_recipes.demo.models import DemoModels, load_models
from medvl_recipes.demo.presentation import (
    DISCLAIMER,
    REPORT_DISCLAIMER,
    burned_in_markdown,
    cases_markdown,
    findings_markdown,
    highlight_report,
    match_markdown,
    ood_markdown,
    report_record,
    similarity_words,
    write_report_files,
)
from medvl_recipes.demo.session_files import SessionFiles, UploadGuard
from medvl_recipes.demo.settings import QUICKSTART_DIR, DemoConfig, field_type, launch_kwargs, resolve_sources
from medvl_recipes.demo.uploads import UPLOAD_KINDS, Upload
from medvl_recipes.errors import MedvlError
from medvl_recipes.hub.push import SPACE_CONFIG_FILE
from medvl_recipes.logs import setup_logging


logger = logging.getLogger(__name__)

FINDING_COLORS = {"present": "#e03131", "uncertain": "#f08c00", "absent": "#2f9e44"}
REPORT_OUTPUTS = (
    "Returns, in order: the upload (always cleared), the analysed image (PNG), the burned-in annotation warning "
    "(Markdown), the status line, the report as [text, finding state] pieces (state: present, uncertain, absent or "
    "null), the findings (Markdown), the image-report match (Markdown), the out-of-distribution check (Markdown), "
    "the similar cases' thumbnails with captions, their reference reports (Markdown) and the report files "
    "(report.txt, report.json with the model id and revision)."
)
SIMILAR_OUTPUTS = (
    "Returns, in order: the status line, the out-of-distribution check (Markdown), the similar training cases' "
    "thumbnails with captions, their reference reports (Markdown) and the cases as JSON "
    "([{rank, score (cosine), id, report}], the uploaded image itself left out)."
)
CSS = """
#report .token .text { white-space: pre-wrap; }
#cases, #ood, #match, #findings { overflow-wrap: anywhere; }
"""


class DemoPage:
    """The page's components and event handlers, over the loaded models, case index and calibration.

    Files in Gradio's cache: an upload is read and deleted at once (the decoded image stays in the session's
    `gr.State`), unless a request for the same bytes is still to be answered; an upload whose request the full
    queue refuses is deleted at once (`UploadGuard`, given to `demo.launch` by `build`); the files cached for a
    session (uploads, the preview, thumbnails, report files) are deleted when the session ends (`demo.unload`),
    unless another session still shows them (`SessionFiles`, kept as `demo.session_files`); the examples' cached
    copies are kept.
    """

    def __init__(self, models: DemoModels, index: CaseIndex, calibration: Calibration, config: DemoConfig):
        self.models, self.index, self.calibration, self.config = models, index, calibration, config
        self.files = SessionFiles()
        self.examples: list[str] = []

    def cleared(self) -> tuple:
        """Empty results: report pieces, findings, match, out-of-distribution check, gallery, cases, downloads."""
        return [], "", "", "", [], "", None

    def prepare(self, source, mask: bool, session: str | None) -> tuple:
        """Read an upload or an example: preview, warning, status, cleared results, the decoded image (state)."""
        try:
            upload = open_upload(source, self.config)
        except MedvlError as err:
            return (None, None, "", f"⚠️ {err}", *self.cleared(), None)
        image, masked = shown_image(upload, self.config, mask)
        preview = self.files.cache_image(session, image, self.preview)
        warning = burned_in_markdown(Analysis(burned_in=upload.burned_in, masked=masked), self.config)
        status = f"{UPLOAD_KINDS[upload.kind]} image ready ({image.width}×{image.height}): press **Generate report**."
        # The file input is cleared so that an uploaded file's name (which can identify a patient) does not stay.
        return (None, preview, warning, status, *self.cleared(), upload)

    def on_upload(self, path, mask, request: gr.Request):
        try:
            return self.prepare(path, mask, request.session_hash)
        finally:
            self.files.add(request.session_hash, path)
            self.files.release(request.session_hash, path)

    def on_example(self, mask, evt: gr.SelectData, request: gr.Request):
        return self.prepare(self.examples[evt.index], mask, request.session_hash)

    def on_mask(self, mask, upload: Upload | None, request: gr.Request):
        if upload is None:
            return gr.skip(), gr.skip()
        image, masked = shown_image(upload, self.config, mask)
        warning = burned_in_markdown(Analysis(burned_in=upload.burned_in, masked=masked), self.config)
        return self.files.cache_image(request.session_hash, image, self.preview), warning

    def cases_shown(self, session: str | None, step: Analysis) -> list:
        captions = [f"#{c['rank']} · {similarity_words(c['score'])}" for c in step.cases]
        return [
            (self.files.cache_image(session, c["thumbnail"], self.gallery), caption)
            for c, caption in zip(step.cases, captions, strict=True)
        ]

    def report_files(self, session: str | None, step: Analysis) -> list[str]:
        with tempfile.TemporaryDirectory() as folder:
            written = write_report_files(report_record(step, self.config, self.models), folder)
            return [self.files.cache_file(session, path, self.downloads) for path in written]

    def report(self, path, mask, prepared, request: gr.Request):
        """Generate a report for the uploaded file (API) or the image read on upload (page)."""
        session = request.session_hash if request is not None else None
        self.files.add(session, path)
        skip = gr.skip()
        image, shown = None, []
        try:
            for step in analyse(self.models, self.index, self.calibration, self.config, path or prepared, mask):
                pieces, findings = highlight_report(step.report), findings_markdown(step.findings)
                if image is not None and not step.done:
                    # While tokens stream in, only the text changes: the images are not sent again.
                    yield (skip, skip, skip, step.status, pieces, findings, skip, skip, skip, skip, skip)
                    continue
                if step.image is not None and image is None:
                    # Written to Gradio's cache here, as the components would (same folder, same name), so
                    # that the files this session was shown are known and deleted when it ends.
                    image = self.files.cache_image(session, step.image, self.preview)
                    shown = self.cases_shown(session, step)
                ood = ood_markdown(step, self.calibration, len(self.index.ids))
                files = self.report_files(session, step) if step.done and step.report else None
                match = match_markdown(step, self.calibration)
                warning = burned_in_markdown(step, self.config)
                cases = cases_markdown(step)
                if not step.report:
                    findings = ""
                yield (None, image, warning, step.status, pieces, findings, match, ood, shown, cases, files)
        finally:
            self.files.release(session, path)
            if self.files.has_ended(session):
                # The tab was closed while the report streamed: delete what this run cached after that.
                self.files.end_session(session)

    def similar(self, path, mask, prepared, request: gr.Request):
        """The similar training cases and the out-of-distribution check, without a report."""
        session = request.session_hash if request is not None else None
        self.files.add(session, path)
        try:
            upload = open_upload(path, self.config) if path is not None else prepared
            if upload is None:
                raise MedvlError("Please upload a PNG, JPEG or DICOM image first.")
            image, _ = shown_image(upload, self.config, mask)
        except MedvlError as err:
            return f"⚠️ {err}", "", [], "", []
        finally:
            self.files.release(session, path)
        step = find_similar(self.models, self.index, self.calibration, self.config, image)
        table = [{k: c[k] for k in ("rank", "score", "id", "report")} for c in step.cases]
        ood = ood_markdown(step, self.calibration, len(self.index.ids))
        return "Similar cases found.", ood, self.cases_shown(session, step), cases_markdown(step), table

    def end_session(self, request: gr.Request):
        self.files.end_session(request.session_hash)


def keep_examples_cached(component, examples: list[str], files: SessionFiles) -> None:
    """Keep the examples' copies in Gradio's cache for every session."""
    # The examples' cached copies serve every session: neither a session's end nor `delete_cache` may delete them.
    example_copies = {component.move_resource_to_block_cache(p) for p in examples}
    component.keep_in_cache.update(example_copies)
    files.keep.update(str(Path(p).resolve()) for p in example_copies)


def input_column(page: DemoPage, config: DemoConfig, examples: list[str]) -> dict:
    """The left column: upload, examples, masking option, buttons, preview."""
    c = {}
    c["upload"] = gr.File(
        label=f"PNG, JPEG or DICOM image (up to {config.max_upload_mb:g} MB; the type is read from the content)",
        type="filepath",
        elem_id="upload",
    )
    if examples:
        c["examples"] = gr.Gallery(
            value=examples,
            label="Examples (validation images, click one to load it)",
            columns=len(examples),
            height=140,
            allow_preview=False,
            elem_id="examples",
        )
        keep_examples_cached(c["examples"], examples, page.files)
    c["mask"] = gr.Checkbox(
        value=True,
        label=f"Blank the top and bottom {config.mask_fraction:.0%} of a DICOM that declares burned-in text",
        elem_id="mask",
    )
    with gr.Row():
        c["run"] = gr.Button("Generate report", variant="primary", elem_id="run", min_width=160)
        c["similar"] = gr.Button("Similar cases only", elem_id="similar", min_width=160)
    c["preview"] = page.preview = gr.Image(
        label="Image", type="pil", interactive=False, elem_id="preview", format="png", height=280
    )
    c["burned"] = gr.Markdown(label="burned-in annotation warning", elem_id="burned")
    return c


def result_column(page: DemoPage, config: DemoConfig) -> dict:
    """The right column: status, report with findings, disclaimer, downloads, checks, similar cases."""
    c = {}
    c["status"] = gr.Markdown(label="status", elem_id="status")
    c["report"] = gr.HighlightedText(
        label="Generated report (sentences coloured by the findings they name)",
        color_map=FINDING_COLORS,
        show_legend=True,
        combine_adjacent=False,
        elem_id="report",
    )
    gr.Markdown(f"*{REPORT_DISCLAIMER}*", elem_id="report-disclaimer")
    c["findings"] = gr.Markdown(label="findings", elem_id="findings")
    c["match"] = gr.Markdown(label="image-report match", elem_id="match")
    c["ood"] = gr.Markdown(label="out-of-distribution check", elem_id="ood")
    c["downloads"] = page.downloads = gr.File(
        label="Download the report (text, JSON)", file_count="multiple", interactive=False, elem_id="download"
    )
    c["gallery"] = page.gallery = gr.Gallery(
        label="Similar training cases", columns=config.top_k, height=220, elem_id="gallery", format="jpeg"
    )
    c["cases"] = gr.Markdown(label="similar cases' reports", elem_id="cases")
    c["cases_json"] = gr.JSON(visible=False, label="Similar cases (JSON)")
    return c


def build_demo(
    models: DemoModels,
    index: CaseIndex,
    calibration: Calibration,
    config: DemoConfig,
    examples: list[str] | None = None,
):
    """The Gradio Blocks app: upload with preview, streamed report with findings, checks and similar cases.

    Endpoints (for `gradio_client`), run through the queue with `config.concurrency_limit` concurrent
    generations: `/report` (outputs: `REPORT_OUTPUTS`) and `/similar` (outputs: `SIMILAR_OUTPUTS`).
    `delete_cache=(session_ttl_s // 4, session_ttl_s)` deletes whatever a session that never ended left.

    Args:
        models (`DemoModels`): Loaded models.
        index (`CaseIndex`): The case index.
        calibration (`Calibration`): Its calibration (out-of-distribution threshold, match scale).
        config (`DemoConfig`): Settings.
        examples (`list[str]`, *optional*): Example image paths (see `write_examples`).
    """
    page = DemoPage(models, index, calibration, config)
    page.examples = examples or []
    with gr.Blocks(
        title="medvl-recipes demo", delete_cache=(max(60, config.session_ttl_s // 4), config.session_ttl_s)
    ) as demo:
        gr.Markdown("# Medical image → report (medvl-recipes)")
        gr.Markdown(DISCLAIMER, elem_id="disclaimer")
        prepared = gr.State(None)
        with gr.Row():
            with gr.Column(min_width=320):
                left = input_column(page, config, page.examples)
            with gr.Column(min_width=320):
                right = result_column(page, config)
        results = [right[k] for k in ("report", "findings", "match", "ood", "gallery", "cases", "downloads")]
        on_input = [left["upload"], left["preview"], left["burned"], right["status"], *results, prepared]
        private = {"queue": False, "show_progress": "hidden", "api_visibility": "private"}
        left["upload"].upload(page.on_upload, inputs=[left["upload"], left["mask"]], outputs=on_input, **private)
        if page.examples:
            left["examples"].select(page.on_example, inputs=left["mask"], outputs=on_input, **private)
        left["mask"].change(
            page.on_mask, inputs=[left["mask"], prepared], outputs=[left["preview"], left["burned"]], **private
        )
        inputs = [left["upload"], left["mask"], prepared]
        left["run"].click(
            page.report,
            inputs=inputs,
            outputs=[left["upload"], left["preview"], left["burned"], right["status"], *results[:-1], results[-1]],
            api_name="report",
            api_description=REPORT_OUTPUTS,
            concurrency_limit=config.concurrency_limit,
        )
        similar_outputs = [right["status"], right["ood"], right["gallery"], right["cases"], right["cases_json"]]
        left["similar"].click(
            page.similar, inputs=inputs, outputs=similar_outputs, api_name="similar", api_description=SIMILAR_OUTPUTS
        )
        demo.unload(page.end_session)
    demo.session_files = page.files
    demo.queue(max_size=config.queue_size, default_concurrency_limit=config.concurrency_limit)
    return demo


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    for f in fields(DemoConfig):
        parser.add_argument(
            "--" + f.name.replace("_", "-"),
            type=field_type(f),
            default=None,
            help=f"{f.metadata['help']} Env MEDVL_DEMO_{f.name.upper()}; default: {f.default}.",
        )
    parser.add_argument(
        "--quickstart-dir", default=str(QUICKSTART_DIR), help="Where `make quickstart` wrote its outputs."
    )
    return parser.parse_args(argv)


def build(argv: list[str] | None = None):
    """Load everything and return `(demo, config, launch_kwargs)` without starting the server."""
    args = vars(parse_args(argv))
    quickstart_dir = args.pop("quickstart_dir")
    config = DemoConfig.from_env(**args)
    config = resolve_sources(config, root=quickstart_dir, space_config=Path(__file__).with_name(SPACE_CONFIG_FILE))
    models = load_models(config)
    index = build_index(models, config)
    calibration = calibrate(models, index, config)
    examples_dir = Path(config.cache_dir) / "examples"
    examples = write_examples(calibration.dataset, examples_dir)
    demo = build_demo(models, index, calibration, config, examples=examples)
    # Uploads are held from their arrival until their request is answered or refused (see `UploadGuard`).
    guard = {"middleware": [Middleware(UploadGuard, files=demo.session_files)]}
    return demo, config, {**launch_kwargs(config, examples_dir), "css": CSS, "app_kwargs": guard}


def main(argv: list[str] | None = None) -> None:
    setup_logging()
    try:
        demo, config, kwargs = build(argv)
    except MedvlError as err:
        sys.exit(f"app.py: error: {err}")
    print(f"medvl demo: decoder {config.decoder}, encoder {config.encoder}, index {config.index_dataset}")
    demo.launch(**kwargs)


if __name__ == "__main__":
    main()

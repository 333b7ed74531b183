# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Gradio demo: upload a PNG/JPEG or DICOM image, get a streamed report, the SigLIP image-report similarity and
the most similar cases of an indexed dataset split. Not for clinical use.

Runs on CPU (tested with the quickstart's smoke models) or one GPU.

    python app.py                                   # serves outputs/quickstart/{decoder,encoder,dataset}, offline
    python app.py --decoder me/medvl-decoder --encoder me/medvl-encoder --index-dataset me/medvl-data --port 7860

Every flag can also be set as an environment variable, e.g. MEDVL_DEMO_MAX_NEW_TOKENS=64.
In a Space pushed by `medvl push space`, the model ids come from demo_config.json next to this file.
"""

import argparse
import logging
import sys
from dataclasses import fields
from pathlib import Path

import gradio as gr

from medvl_recipes.demo.analysis import DISCLAIMER, analyse, similarity_text
from medvl_recipes.demo.cases import CaseIndex, build_index, write_examples
from medvl_recipes.demo.models import DemoModels, load_models
from medvl_recipes.demo.session_files import SessionFiles
from medvl_recipes.demo.settings import QUICKSTART_DIR, DemoConfig, field_type, launch_kwargs, resolve_sources
from medvl_recipes.errors import MedvlError
from medvl_recipes.hub.push import SPACE_CONFIG_FILE
from medvl_recipes.logs import setup_logging


logger = logging.getLogger(__name__)


def analysis_handler(models: DemoModels, index: CaseIndex, config: DemoConfig, files: SessionFiles, preview, gallery):
    """The `/analyse` event: yields the page's outputs as `analyse` progresses (see `build_demo`).

    Images are written to Gradio's cache through `files`, for the `preview` image and the `gallery` thumbnails.
    """

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
                yield (None, image, step.status, step.report, similarity_text(step.similarity), shown, table)
        finally:
            files.release(session, path)
            if files.has_ended(session):
                # The tab was closed while the report streamed: delete what this run cached after that.
                files.end_session(session)

    return run


def keep_examples_cached(upload, examples: list[str], files: SessionFiles) -> None:
    """Keep the examples' copies in Gradio's cache for every session."""
    # The examples' cached copies (also where an upload of the same file lands) serve every session: neither a
    # session's end nor `delete_cache` may delete them.
    example_copies = {upload.move_resource_to_block_cache(p) for p in examples}
    upload.keep_in_cache.update(example_copies)
    files.keep.update(str(Path(p).resolve()) for p in example_copies)


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
    examples = examples or []
    headers = ["rank", "score", "case", "reference report"]
    files = SessionFiles()

    def hold_upload(path, request: gr.Request):
        # A file uploaded but never analysed is still deleted when the session ends.
        files.add(request.session_hash, path)

    def end_session(request: gr.Request):
        files.end_session(request.session_hash)

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
                    keep_examples_cached(upload, examples, files)
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
            analysis_handler(models, index, config, files, preview, gallery),
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
    examples_dir = Path(config.cache_dir) / "examples"
    examples = write_examples(index, examples_dir)
    return build_demo(models, index, config, examples=examples), config, launch_kwargs(config, examples_dir)


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

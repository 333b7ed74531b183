# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""`medvl review`: the Gradio page on which clinicians rate generated reports (one or two runs, A/B).

    medvl review --runs outputs/eval-a outputs/eval-b --dataset outputs/quickstart/dataset \
        --answers reviews/ --credentials ~/reviewers.txt --port 7861
    medvl review stats --answers reviews/ --runs outputs/eval-a outputs/eval-b --output-dir reviews/stats

Each reviewer logs in (`--credentials` or `MEDVL_REVIEWERS`), gets their own seeded, blinded, order-randomised
queue and, per case, the image, the reference and the report(s); they record per-finding verdicts (prefilled from
the finding extractor), the ReXVal error counts, an acceptability score (1-5), a preference and a comment.
Each answer is saved at once; a reviewer who comes back resumes at their first unanswered case.
"""

import argparse
import logging
import sys
from dataclasses import dataclass

import gradio as gr

from medvl_recipes.errors import MedvlError
from medvl_recipes.review.cases import (
    FINDING_VERDICTS,
    REXVAL_ERRORS,
    QueueItem,
    ReviewCase,
    load_cases,
    load_images,
    reviewer_queue,
)
from medvl_recipes.review.store import check_login, load_answers, load_credentials, save_answer


logger = logging.getLogger(__name__)

POSITIONS = (1, 2)
PREFERENCES = ("Report 1", "Report 2", "No preference")


@dataclass
class ReviewSettings:
    """Where the review's inputs and answers are, and its seed."""

    cases: list[ReviewCase]
    images: dict
    answers_dir: str
    seed: int = 0


def verdict_rows(findings: dict[str, str]) -> list[list[str]]:
    """Prefilled per-finding verdicts: every finding the report states (present or uncertain) is `correct`."""
    return [[name, state, "correct"] for name, state in sorted(findings.items()) if name != "no finding"]


class ReviewPage:
    """The review page's components and handlers (one reviewer = one login, seen through `request.username`)."""

    def __init__(self, settings: ReviewSettings):
        self.settings = settings
        self.ab = len(settings.cases[0].reports) == 2

    def queue(self, reviewer: str) -> list[QueueItem]:
        return reviewer_queue(self.settings.cases, reviewer, self.settings.seed)

    def current(self, reviewer: str) -> tuple[int, QueueItem | None, int]:
        """The first unanswered position of the reviewer's queue, its item (None when all done), the queue length."""
        queue = self.queue(reviewer)
        answered = load_answers(self.settings.answers_dir, reviewer)
        position = next((i for i, item in enumerate(queue) if item.case.case_id not in answered), len(queue))
        return position, (queue[position] if position < len(queue) else None), len(queue)

    def show(self, request: gr.Request, status: str = ""):
        """Every output for the reviewer's current case (see `outputs` in `build_review_app`)."""
        reviewer = request.username
        position, item, total = self.current(reviewer)
        if item is None:
            done = f"Reviewer **{reviewer}**: all {total} cases reviewed. Thank you."
            return [
                done,
                None,
                "",
                *[gr.update(visible=False)] * self.n_report_outputs,
                None,
                "",
                status,
                gr.update(visible=False),
            ]
        values = [f"Reviewer **{reviewer}** · case {position + 1} of {total}", self.settings.images[item.case.case_id]]
        values.append(f"**Reference report:** {item.case.reference}")
        for p in POSITIONS:
            system = item.shown[p - 1] if p <= len(item.shown) else None
            visible = system is not None
            values.append(
                gr.update(value=f"**Report {p}:** {item.case.reports[system]}" if visible else "", visible=visible)
            )
            values.append(
                gr.update(value=verdict_rows(item.case.findings[system]) if visible else [], visible=visible)
            )
            values.extend([gr.update(value=0, visible=visible)] * (2 * len(REXVAL_ERRORS)))
            values.append(gr.update(value=None, visible=visible))
        values += [None, "", status, gr.update(visible=True)]
        return values

    @property
    def n_report_outputs(self) -> int:
        return len(POSITIONS) * (3 + 2 * len(REXVAL_ERRORS))

    def save(self, data: dict, request: gr.Request):
        """Save the shown case's answer from the page's inputs (`{component: value}`), then show the next case."""
        reviewer = request.username
        _, item, _ = self.current(reviewer)
        if item is None:
            return self.show(request)
        values = [data[component] for component in self.inputs]
        per_position, (preference, comment) = values[:-2], values[-2:]
        width = 2 + 2 * len(REXVAL_ERRORS)
        systems = {}
        for p, system in enumerate(item.shown):
            verdicts, *counts, acceptability = per_position[p * width : (p + 1) * width]
            if acceptability is None:
                return self.show(request, status=f"⚠️ Please rate the acceptability of Report {p + 1} (1-5).")
            bad = [row[2] for row in (verdicts or []) if row and row[0] and row[2] not in FINDING_VERDICTS]
            if bad:
                allowed = ", ".join(FINDING_VERDICTS)
                return self.show(request, status=f"⚠️ Report {p + 1}: verdict {bad[0]!r} is not one of: {allowed}.")
            systems[system] = {
                "acceptability": int(acceptability),
                "errors": {
                    category: {"significant": int(counts[2 * k] or 0), "insignificant": int(counts[2 * k + 1] or 0)}
                    for k, category in enumerate(REXVAL_ERRORS)
                },
                "findings": [
                    {"finding": row[0], "extractor": row[1], "verdict": row[2]}
                    for row in (verdicts or [])
                    if row and row[0]
                ],
            }
        chosen = {"Report 1": item.shown[0], "Report 2": item.shown[-1], "No preference": "none"}.get(preference)
        answer = {
            "case_id": item.case.case_id,
            "shown": list(item.shown),
            "systems": systems,
            "preference": chosen if self.ab else None,
            "comment": comment or "",
        }
        save_answer(self.settings.answers_dir, reviewer, answer)
        return self.show(request, status=f"Saved case {item.case.case_id}.")


def report_inputs(p: int) -> list:
    """One report's column: text, per-finding verdicts, ReXVal error counts, acceptability."""
    components = [gr.Markdown(elem_id=f"report-{p}")]
    components.append(
        gr.Dataframe(
            headers=["finding", "extractor", "verdict"],
            datatype=["str", "str", "str"],
            type="array",
            interactive=True,
            label=f"Report {p}: per-finding verdicts ({', '.join(FINDING_VERDICTS)}); add rows for missed findings",
            elem_id=f"verdicts-{p}",
        )
    )
    gr.Markdown(f"Report {p}: errors against the reference (ReXVal), clinically significant / insignificant")
    for k, category in enumerate(REXVAL_ERRORS):
        with gr.Row():
            components.append(
                gr.Number(0, label=f"{category}: significant", minimum=0, precision=0, elem_id=f"err-{p}-{k}-sig")
            )
            components.append(
                gr.Number(0, label="insignificant", minimum=0, precision=0, elem_id=f"err-{p}-{k}-insig")
            )
    components.append(
        gr.Radio(
            [1, 2, 3, 4, 5],
            label=f"Report {p}: overall acceptability (1 = unacceptable, 5 = as a radiologist would write)",
            elem_id=f"accept-{p}",
        )
    )
    return components


def build_review_app(settings: ReviewSettings):
    """The review Blocks app; launch it with `auth=` (see `cli`)."""
    page = ReviewPage(settings)
    with gr.Blocks(title="medvl-recipes review") as demo:
        gr.Markdown(
            "# Expert review of generated reports\nResearch use. Reports are blinded: Report 1 and 2 are "
            "shown in a random order per case."
        )
        progress = gr.Markdown(elem_id="progress")
        with gr.Row():
            with gr.Column(min_width=320):
                image = gr.Image(type="pil", interactive=False, label="Image", elem_id="case-image", height=320)
                reference = gr.Markdown(elem_id="reference")
            columns = []
            for p in POSITIONS:
                with gr.Column(min_width=320):
                    columns.extend(report_inputs(p))
        preference = gr.Radio(
            list(PREFERENCES), label="Which report is better?", visible=page.ab, elem_id="preference"
        )
        comment = gr.Textbox(label="Comment", lines=2, elem_id="comment")
        status = gr.Markdown(elem_id="review-status")
        save = gr.Button("Save and next", variant="primary", elem_id="save")
        outputs = [progress, image, reference, *columns, preference, comment, status, save]
        inputs = [c for c in columns if not isinstance(c, gr.Markdown)] + [preference, comment]
        demo.load(page.show, inputs=None, outputs=outputs, api_visibility="private")
        page.inputs = inputs
        # A set of inputs: the handler gets `{component: value}` (there are 2 x 14 + 2 of them).
        save.click(page.save, inputs=set(inputs), outputs=outputs, api_visibility="private")
    return demo


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="medvl review", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", nargs="+", required=True, help="One or two `medvl eval` output folders (A, B).")
    parser.add_argument(
        "--dataset", help="Prepared dataset the runs evaluated (default: from the run's metrics.json)."
    )
    parser.add_argument("--split", help="Its split (default: from the run's metrics.json, else validation).")
    parser.add_argument("--answers", required=True, help="Folder of the answers (one JSONL file per reviewer).")
    parser.add_argument("--credentials", help="File of `login:password` lines (else MEDVL_REVIEWERS).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the queues' order and blinding.")
    parser.add_argument("--host", default=None, help="Server address (Gradio's default if unset).")
    parser.add_argument("--port", type=int, default=None, help="Server port (Gradio's default if unset).")
    return parser.parse_args(argv)


def build(argv: list[str] | None = None):
    """`(demo, launch kwargs)` for `medvl review` flags, without starting the server."""
    import json
    from pathlib import Path

    args = parse_args(argv)
    credentials = load_credentials(args.credentials)
    cases = load_cases(args.runs)
    config = {}
    metrics = Path(args.runs[0]) / "metrics.json"
    if metrics.is_file():
        config = json.loads(metrics.read_text()).get("config", {})
    dataset, split = args.dataset or config.get("dataset"), args.split or config.get("split") or "validation"
    if not dataset:
        raise MedvlError("no --dataset given and the run's metrics.json names none")
    images = load_images(dataset, split, [case.case_id for case in cases])
    demo = build_review_app(ReviewSettings(cases, images, args.answers, args.seed))
    kwargs = {
        "auth": lambda login, password: check_login(credentials, login, password),
        "server_name": args.host,
        "server_port": args.port,
        "run_history": False,
        "show_error": False,
    }
    return demo, kwargs


def cli(argv: list[str] | None = None) -> int:
    """`medvl review ...` (the page) or `medvl review stats ...`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "stats":
        from medvl_recipes.review.stats import cli as stats_cli

        return stats_cli(argv[1:])
    demo, kwargs = build(argv)
    demo.launch(**kwargs)
    return 0

# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""`medvl review`: the Gradio page on which clinicians rate generated reports (one or two runs, A/B).

    medvl review --runs outputs/eval-a outputs/eval-b --dataset outputs/quickstart/dataset \
        --answers reviews/ --credentials ~/reviewers.txt --port 7861
    medvl review stats --answers reviews/ --runs outputs/eval-a outputs/eval-b --output-dir reviews/stats
    medvl review publish --answers reviews/ --runs outputs/eval-a outputs/eval-b --secret-file ~/.medvl-review-secret \
        --output-dir reviews/hub && medvl push dataset reviews/hub --repo-id me/medvl-review

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
from medvl_recipes.evaluation.findings import NO_FINDING, load_lexicon
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
# A finding the report states is judged with one of these; one it does not state can only be `missed`.
STATED_VERDICTS = tuple(v for v in FINDING_VERDICTS if v != "missed")
NOT_STATED = "not stated"
_STATED = ("present", "uncertain")
COLUMN_MIN_WIDTH = 300


@dataclass
class ReviewSettings:
    """Where the review's inputs and answers are, and its seed."""

    cases: list[ReviewCase]
    images: dict
    answers_dir: str
    seed: int = 0


def prefilled_verdicts(findings: dict[str, str], reference_findings: dict[str, str]) -> tuple[list, list[str]]:
    """The extractor's prefill of one report's verdicts: `([(finding, state, verdict)], missed findings)`.

    A finding the report states (present or uncertain) is `correct` when the reference states it too, else
    `hallucinated` (`correct` when the run has no reference findings); a finding the reference states and the
    report does not is prefilled as missed. The reviewer changes any of them.
    """
    stated_in_reference = {n for n, state in reference_findings.items() if state in _STATED and n != NO_FINDING}
    rows = []
    for name, state in sorted(findings.items()):
        if state in _STATED and name != NO_FINDING:
            agrees = not reference_findings or name in stated_in_reference
            rows.append((name, state, "correct" if agrees else "hallucinated"))
    stated = {row[0] for row in rows}
    return rows, sorted(stated_in_reference - stated)


class ReviewPage:
    """The review page's components and handlers (one reviewer = one login, seen through `request.username`).

    Per report position it shows `slots` verdict dropdowns (one per finding the report states, the others hidden)
    and a multi-select of the findings the report missed.
    """

    def __init__(self, settings: ReviewSettings, vocabulary: list[str]):
        self.settings = settings
        self.ab = len(settings.cases[0].reports) == 2
        self.vocabulary = [name for name in vocabulary if name != NO_FINDING]
        self.slots = max(
            1,
            *(len(prefilled_verdicts(f, {})[0]) for case in settings.cases for f in case.findings.values()),
        )

    def queue(self, reviewer: str) -> list[QueueItem]:
        return reviewer_queue(self.settings.cases, reviewer, self.settings.seed)

    def current(self, reviewer: str) -> tuple[int, QueueItem | None, int]:
        """The first unanswered position of the reviewer's queue, its item (None when all done), the queue length."""
        queue = self.queue(reviewer)
        answered = load_answers(self.settings.answers_dir, reviewer)
        position = next((i for i, item in enumerate(queue) if item.case.case_id not in answered), len(queue))
        return position, (queue[position] if position < len(queue) else None), len(queue)

    @property
    def per_position(self) -> int:
        """Outputs (and, but for the report text, inputs) per report: text, verdicts, missed, error counts, score."""
        return 1 + self.slots + 1 + 2 * len(REXVAL_ERRORS) + 1

    def report_values(self, p: int, case: ReviewCase | None, system: str | None) -> list:
        """The updates of report position `p` (hidden when `system` is None)."""
        visible = system is not None
        rows, missed = prefilled_verdicts(case.findings[system], case.reference_findings) if visible else ([], [])
        values = [gr.update(value=f"**Report {p}:** {case.reports[system]}" if visible else "", visible=visible)]
        for k in range(self.slots):
            if k < len(rows):
                name, state, verdict = rows[k]
                values.append(gr.update(label=f"{name} (extractor: {state})", value=verdict, visible=True))
            else:
                values.append(gr.update(value=None, visible=False))
        choices = sorted(set(self.vocabulary) - {row[0] for row in rows} | set(missed))
        values.append(gr.update(choices=choices, value=missed, visible=visible))
        values.extend([gr.update(value=0, visible=visible)] * (2 * len(REXVAL_ERRORS)))
        values.append(gr.update(value=None, visible=visible))
        return values

    def show(self, request: gr.Request, status: str = ""):
        """Every output for the reviewer's current case (see `outputs` in `build_review_app`)."""
        reviewer = request.username
        position, item, total = self.current(reviewer)
        if item is None:
            done = f"Reviewer **{reviewer}**: all {total} cases reviewed. Thank you."
            hidden = [gr.update(visible=False)] * (len(POSITIONS) * self.per_position)
            return [done, None, "", *hidden, None, "", status, gr.update(visible=False), None]
        values = [f"Reviewer **{reviewer}** · case {position + 1} of {total}", self.settings.images[item.case.case_id]]
        values.append(f"**Reference report:** {item.case.reference}")
        for p in POSITIONS:
            values += self.report_values(p, item.case, item.shown[p - 1] if p <= len(item.shown) else None)
        return [*values, None, "", status, gr.update(visible=True), item.case.case_id]

    def rating(self, values: list, case: ReviewCase, system: str) -> dict | str:
        """One report's rating from its inputs (verdicts, missed, error counts, score), or what is wrong with them."""
        verdicts, (missed, *counts, acceptability) = values[: self.slots], values[self.slots :]
        if acceptability is None:
            return "Please rate the acceptability"
        rows, _ = prefilled_verdicts(case.findings[system], case.reference_findings)
        findings = []
        for (name, state, _), verdict in zip(rows, verdicts, strict=False):
            if verdict not in STATED_VERDICTS:
                return f"Please choose a verdict for {name!r} ({', '.join(STATED_VERDICTS)})"
            findings.append({"finding": name, "extractor": state, "verdict": verdict})
        states = case.findings[system]
        for name in missed or []:
            extractor = states.get(name) if states.get(name) not in (None, *_STATED) else NOT_STATED
            findings.append({"finding": name, "extractor": extractor, "verdict": "missed"})
        return {
            "acceptability": int(acceptability),
            "errors": {
                category: {"significant": int(counts[2 * k] or 0), "insignificant": int(counts[2 * k + 1] or 0)}
                for k, category in enumerate(REXVAL_ERRORS)
            },
            "findings": findings,
        }

    def save(self, data: dict, request: gr.Request):
        """Save the shown case's answer from the page's inputs (`{component: value}`), then show the next case."""
        reviewer = request.username
        _, item, _ = self.current(reviewer)
        if item is None or data[self.shown_case] != item.case.case_id:
            # Saved meanwhile from another tab: never file these inputs under the next case.
            return self.show(request, status="⚠️ That case was already saved (another tab?); here is your next one.")
        values = [data[component] for component in self.inputs]
        per_position, (preference, comment) = values[:-2], values[-2:]
        width = self.per_position - 1
        systems = {}
        for p, system in enumerate(item.shown):
            rating = self.rating(per_position[p * width : (p + 1) * width], item.case, system)
            if isinstance(rating, str):
                return self.show(request, status=f"⚠️ Report {p + 1}: {rating}.")
            systems[system] = rating
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


def report_inputs(p: int, slots: int) -> list:
    """One report's column: text, per-finding verdict dropdowns, missed findings, ReXVal error counts, score."""
    components = [gr.Markdown(elem_id=f"report-{p}")]
    with gr.Group(elem_id=f"verdicts-{p}"):
        gr.Markdown(f"Report {p}: per-finding verdicts (prefilled from the finding extractor)")
        for k in range(slots):
            components.append(
                gr.Dropdown(list(STATED_VERDICTS), label="finding", elem_id=f"verdict-{p}-{k}", min_width=0)
            )
        components.append(
            gr.Dropdown(
                [],
                multiselect=True,
                allow_custom_value=True,
                label=f"Report {p}: findings it missed",
                elem_id=f"missed-{p}",
                min_width=0,
            )
        )
    gr.Markdown(f"Report {p}: errors against the reference (ReXVal), counted as clinically significant or not")
    for k, category in enumerate(REXVAL_ERRORS):
        gr.Markdown(category.capitalize(), elem_classes="review-category")
        with gr.Row():
            for kind, suffix in (("significant", "sig"), ("insignificant", "insig")):
                components.append(
                    gr.Number(0, label=kind, minimum=0, precision=0, elem_id=f"err-{p}-{k}-{suffix}", min_width=120)
                )
    components.append(
        gr.Radio(
            [1, 2, 3, 4, 5],
            label=f"Report {p}: overall acceptability (1 = unacceptable, 5 = as a radiologist would write)",
            elem_id=f"accept-{p}",
        )
    )
    return components


def build_review_app(settings: ReviewSettings, vocabulary: list[str] | None = None):
    """The review Blocks app; launch it with `auth=` (see `cli`).

    Args:
        settings (`ReviewSettings`): The cases, images, answers folder and seed.
        vocabulary (`list[str]`, *optional*): The finding names offered as missed (default: the extractor's lexicon).
    """
    page = ReviewPage(settings, load_lexicon().names if vocabulary is None else vocabulary)
    with gr.Blocks(title="medvl-recipes review") as demo:
        gr.Markdown(
            "# Expert review of generated reports\nResearch use. Reports are blinded: Report 1 and 2 are "
            "shown in a random order per case."
        )
        progress = gr.Markdown(elem_id="progress")
        with gr.Row():
            # 300 px: on a phone (390 px less the page's padding) the columns stack instead of squeezing.
            with gr.Column(min_width=COLUMN_MIN_WIDTH):
                image = gr.Image(type="pil", interactive=False, label="Image", elem_id="case-image", height=320)
                reference = gr.Markdown(elem_id="reference")
            columns = []
            for p in POSITIONS:
                with gr.Column(min_width=COLUMN_MIN_WIDTH, visible=p == 1 or page.ab):
                    columns.extend(report_inputs(p, page.slots))
        preference = gr.Radio(
            list(PREFERENCES), label="Which report is better?", visible=page.ab, elem_id="preference"
        )
        comment = gr.Textbox(label="Comment", lines=2, elem_id="comment")
        status = gr.Markdown(elem_id="review-status")
        save = gr.Button("Save and next", variant="primary", elem_id="save")
        page.shown_case = gr.State(None)
        outputs = [progress, image, reference, *columns, preference, comment, status, save, page.shown_case]
        inputs = [c for c in columns if not isinstance(c, gr.Markdown)] + [preference, comment]
        demo.load(page.show, inputs=None, outputs=outputs, api_visibility="private")
        page.inputs = inputs
        # A set of inputs: the handler gets `{component: value}` (there are many of them).
        save.click(page.save, inputs={*inputs, page.shown_case}, outputs=outputs, api_visibility="private")
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
    """`medvl review ...` (the page), `medvl review stats ...` or `medvl review publish ...`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "stats":
        from medvl_recipes.review.stats import cli as stats_cli

        return stats_cli(argv[1:])
    if argv and argv[0] == "publish":
        from medvl_recipes.review.publish import cli as publish_cli

        return publish_cli(argv[1:])
    demo, kwargs = build(argv)
    demo.launch(**kwargs)
    return 0

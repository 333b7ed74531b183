# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Expert review: credentials, the seeded blinded queue, atomic per-reviewer answers, the page in Chromium with
three reviewers, and `medvl review stats` against hand-computed kappa and tau."""

import json
import math
import os
import re
import shutil
from pathlib import Path

import pytest

from medvl_recipes.errors import MedvlError
from medvl_recipes.jsonl import write_jsonl
from medvl_recipes.launch import free_port
from medvl_recipes.review.app import prefilled_verdicts
from medvl_recipes.review.cases import REXVAL_ERRORS, load_cases, reviewer_queue
from medvl_recipes.review.stats import review_stats
from medvl_recipes.review.store import check_login, load_answers, load_credentials, save_answer
from tests import test_hub
from tests.fixtures.factories import write_prepared_dataset


CASE_IDS = ["c1", "c2"]
hub = test_hub.hub  # the local Hub server (tests/hub_server.py) as a fixture, for `medvl push dataset`


def write_run(folder: Path, generations: dict[str, str], scores: dict[str, float], references: dict[str, str]) -> Path:
    """A `medvl eval` run folder with its per_sample.jsonl."""
    rows = [
        {
            "id": case_id,
            "reference": references[case_id],
            "generation": text,
            "findings_generation": {"pleural effusion": "present", "no finding": "absent"},
            "findings_reference": {"pleural effusion": "present", "cardiomegaly": "present", "no finding": "absent"},
            "scores": {"bleu": scores[case_id]},
        }
        for case_id, text in generations.items()
    ]
    write_jsonl(folder / "per_sample.jsonl", rows)
    return folder


def test_credentials_from_file_or_environment(tmp_path):
    path = tmp_path / "reviewers.txt"
    path.write_text("# reviewers\nalice:pw-a\nbob:pw:with:colons\n")
    assert load_credentials(path) == {"alice": "pw-a", "bob": "pw:with:colons"}
    assert load_credentials(environ={"MEDVL_REVIEWERS": "carol:x, dan:y"}) == {"carol": "x", "dan": "y"}
    assert check_login({"alice": "pw-a"}, "alice", "pw-a") and not check_login({"alice": "pw-a"}, "alice", "pw")
    assert not check_login({"alice": "pw-a"}, "eve", "pw-a")
    path.write_text("alice\n")
    with pytest.raises(MedvlError, match=r"reviewers.txt:1: expected `login:password`"):
        load_credentials(path)
    with pytest.raises(MedvlError, match="no reviewers"):
        load_credentials(environ={})


def test_queue_is_seeded_blinded_and_per_reviewer(tmp_path):
    refs = {f"c{i}": "ref" for i in range(6)}
    run_a = write_run(tmp_path / "a", {k: f"A {k}" for k in refs}, dict.fromkeys(refs, 0.0), refs)
    run_b = write_run(tmp_path / "b", {k: f"B {k}" for k in refs}, dict.fromkeys(refs, 0.0), refs)
    cases = load_cases([run_a, run_b])
    queue = reviewer_queue(cases, "alice", seed=3)
    assert [(i.case.case_id, i.shown) for i in queue] == [
        (i.case.case_id, i.shown) for i in reviewer_queue(cases, "alice", seed=3)
    ]
    assert sorted(i.case.case_id for i in queue) == sorted(refs)
    orders = {tuple(i.case.case_id for i in reviewer_queue(cases, f"r{n}", seed=3)) for n in range(8)}
    shown = {i.shown for n in range(8) for i in reviewer_queue(cases, f"r{n}", seed=3)}
    assert len(orders) > 1 and shown == {("A", "B"), ("B", "A")}


def test_answers_are_per_reviewer_and_resumable(tmp_path):
    save_answer(tmp_path, "alice", {"case_id": "c1", "systems": {}})
    save_answer(tmp_path, "alice", {"case_id": "c2", "systems": {}})
    save_answer(tmp_path, "alice", {"case_id": "c1", "systems": {}, "comment": "second thoughts"})
    assert load_answers(tmp_path, "alice")["c1"]["comment"] == "second thoughts"
    assert load_answers(tmp_path, "bob") == {}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alice.jsonl"]  # no temporary file left behind
    with pytest.raises(MedvlError, match="bad reviewer login"):
        load_answers(tmp_path, "../alice")


def test_verdicts_are_prefilled_from_the_extractor():
    report = {"pleural effusion": "present", "edema": "uncertain", "pneumothorax": "absent", "no finding": "absent"}
    reference = {"pleural effusion": "present", "atelectasis": "present", "no finding": "absent"}
    rows, missed = prefilled_verdicts(report, reference)
    assert rows == [("edema", "uncertain", "hallucinated"), ("pleural effusion", "present", "correct")]
    assert missed == ["atelectasis"]
    # No reference findings in the run: what the report states is prefilled as correct, nothing as missed.
    assert prefilled_verdicts(report, {}) == (
        [("edema", "uncertain", "correct"), ("pleural effusion", "present", "correct")],
        [],
    )
    assert prefilled_verdicts({"no finding": "present"}, {"no finding": "present"}) == ([], [])


def _rating(acceptability: int, significant: int = 0) -> dict:
    errors = {c: {"significant": 0, "insignificant": 0} for c in REXVAL_ERRORS}
    errors[REXVAL_ERRORS[0]]["significant"] = significant
    return {"acceptability": acceptability, "errors": errors, "findings": []}


def test_stats_match_hand_computed_kappa_and_tau(tmp_path):
    refs = dict.fromkeys(CASE_IDS, "ref")
    run_a = write_run(tmp_path / "a", {"c1": "a1", "c2": "a2"}, {"c1": 0.1, "c2": 0.3}, refs)
    run_b = write_run(tmp_path / "b", {"c1": "b1", "c2": "b2"}, {"c1": 0.2, "c2": 0.4}, refs)
    answers = tmp_path / "answers"
    # Acceptability of (c1,A), (c1,B), (c2,A), (c2,B): rater 1 [1, 1, 2, 2], rater 2 [1, 2, 2, 2].
    for reviewer, ratings, preference in (("r1", (1, 1, 2, 2), "B"), ("r2", (1, 2, 2, 2), "A")):
        for k, case_id in enumerate(CASE_IDS):
            systems = {"A": _rating(ratings[2 * k], significant=1), "B": _rating(ratings[2 * k + 1])}
            save_answer(answers, reviewer, {"case_id": case_id, "systems": systems, "preference": preference})
    stats = review_stats(str(answers), [str(run_a), str(run_b)], n_resamples=200)
    # Cohen's kappa: observed 3/4; expected 0.5*0.25 + 0.5*0.75 = 0.5; (0.75 - 0.5) / (1 - 0.5) = 0.5.
    assert stats["agreement"]["cohen_kappa"] == pytest.approx(0.5)
    # Kendall tau-b of bleu [0.1, 0.2, 0.3, 0.4] vs mean acceptability [1, 1.5, 2, 2]: 5 concordant pairs,
    # 0 discordant, one tie in the experts: 5 / sqrt(6 * 5).
    assert stats["metric_correlations"]["bleu"]["tau_b"] == pytest.approx(5 / math.sqrt(30))
    scores = stats["expert_scores"]
    assert scores["A"]["acceptability"]["mean"] == pytest.approx(1.5)
    assert scores["B"]["acceptability"]["mean"] == pytest.approx(1.75)
    assert scores["A"]["significant"]["mean"] == 1 and scores["B"]["significant"]["mean"] == 0
    a = scores["A"]["acceptability"]
    assert 1 <= a["ci_low"] <= a["mean"] <= a["ci_high"] <= 2
    assert scores["A"]["preferred_share"] == 0.5


def test_stats_cli_writes_a_report(tmp_path):
    from medvl_recipes.cli import main

    refs = dict.fromkeys(CASE_IDS, "ref")
    run = write_run(tmp_path / "a", {"c1": "a1", "c2": "a2"}, {"c1": 0.1, "c2": 0.3}, refs)
    for case_id, score in zip(CASE_IDS, (2, 4), strict=True):
        save_answer(tmp_path / "answers", "r1", {"case_id": case_id, "systems": {"A": _rating(score)}})
    args = ["review", "stats", "--answers", str(tmp_path / "answers"), "--runs", str(run)]
    assert main([*args, "--output-dir", str(tmp_path / "out")]) == 0
    payload = json.loads((tmp_path / "out" / "review_stats.json").read_text())
    assert payload["expert_scores"]["A"]["acceptability"]["mean"] == 3
    assert "| A | 3.00" in (tmp_path / "out" / "review_report.md").read_text()
    assert main(["review", "stats", "--answers", str(tmp_path / "none"), "--runs", str(run), "--output-dir", "x"]) == 2


# The page in a real browser


@pytest.fixture(scope="module")
def review_app(tmp_path_factory):
    from medvl_recipes.review.app import build

    root = tmp_path_factory.mktemp("review")
    dataset = write_prepared_dataset(root / "dataset", n_train=2, n_val=3)
    from datasets import load_dataset

    rows = load_dataset(str(dataset), split="validation")
    refs = {row["id"]: row["text"] for row in rows}
    run_a = write_run(root / "a", {k: f"System A says: {v}" for k, v in refs.items()}, dict.fromkeys(refs, 0.5), refs)
    run_b = write_run(root / "b", {k: f"System B says: {v}" for k, v in refs.items()}, dict.fromkeys(refs, 0.2), refs)
    (root / "reviewers.txt").write_text("alice:alice-pw\nbob:bob-pw\ncarol:carol-pw\ndave:dave-pw\n")
    port = free_port()
    argv = ["--runs", str(run_a), str(run_b), "--dataset", str(dataset), "--answers", str(root / "answers")]
    demo, kwargs = build([*argv, "--credentials", str(root / "reviewers.txt"), "--seed", "7", "--port", str(port)])
    demo.launch(**kwargs, prevent_thread_lock=True, quiet=True)
    yield {"url": f"http://127.0.0.1:{port}/", "answers": root / "answers", "runs": [str(run_a), str(run_b)]}
    demo.close()


def _login(browser, url: str, login: str, viewport: dict | None = None):
    from playwright.sync_api import expect

    page = browser.new_context(viewport=viewport or {"width": 1400, "height": 1000}).new_page()
    page.goto(url, wait_until="domcontentloaded")
    page.locator("input[type=text], input[name=username]").first.fill(login)
    page.locator("input[type=password]").first.fill(f"{login}-pw")
    page.locator("button", has_text="Login").click()
    expect(page.locator("#progress")).to_contain_text(f"Reviewer {login}", timeout=60_000)
    return page


def _fill(page, acceptability: tuple[int, int], comment: str):
    for p, score in zip((1, 2), acceptability, strict=True):
        page.locator(f"#accept-{p} label", has_text=str(score)).first.click()
    page.locator("#preference label", has_text="Report 1").click()
    page.locator("#comment textarea").fill(comment)


def _rate(page, position: int, acceptability: tuple[int, int], comment: str):
    from playwright.sync_api import expect

    expect(page.locator("#progress")).to_contain_text(f"case {position} of 3")
    _fill(page, acceptability, comment)
    page.locator("#save").click()
    expect(page.locator("#review-status")).to_contain_text("Saved case", timeout=30_000)


def _choose(page, dropdown: str, option: str):
    # Gradio's dropdown: a combobox input whose options are `li[role=option]` listed while it has the focus.
    page.locator(f"{dropdown} input").click()
    page.locator(f'li[role=option][aria-label="{option}"]').click()


def test_browser_two_reviewers_resume_and_a_third_sees_nothing(review_app, browser, tmp_path):
    from playwright.sync_api import expect

    alice = _login(browser, review_app["url"], "alice")
    assert "System A says" in alice.locator("#report-1").inner_text() + alice.locator("#report-2").inner_text()
    # Verdicts prefilled from the extractor: the finding Report 1 states, the one of the reference it missed.
    expect(alice.locator("#verdict-1-0")).to_contain_text("pleural effusion (extractor: present)")
    assert alice.locator("#verdict-1-0 input").input_value() == "correct"
    expect(alice.locator("#missed-1")).to_contain_text("cardiomegaly")
    _choose(alice, "#verdict-1-0", "wrong location or severity")
    _rate(alice, 1, (4, 3), "alice one")
    alice.reload()  # a closed tab or a reload: she resumes at her second case
    expect(alice.locator("#progress")).to_contain_text("case 2 of 3", timeout=60_000)
    second_tab = _login(browser, review_app["url"], "alice")
    _rate(alice, 2, (5, 2), "alice two")
    # The second tab still shows case 2: its save must not be filed under case 3.
    _fill(second_tab, (1, 1), "stale tab")
    second_tab.locator("#save").click()
    expect(second_tab.locator("#review-status")).to_contain_text("already saved", timeout=30_000)
    expect(second_tab.locator("#progress")).to_contain_text("case 3 of 3")
    assert len(load_answers(review_app["answers"], "alice")) == 2
    second_tab.close()
    bob = _login(browser, review_app["url"], "bob")
    for position in (1, 2, 3):
        _rate(bob, position, (3, 3), f"bob {position}")
    _rate(alice, 3, (4, 4), "alice three")
    expect(alice.locator("#progress")).to_contain_text("all 3 cases reviewed")
    alice.screenshot(path=str(tmp_path / "review-done.png"))

    carol = _login(browser, review_app["url"], "carol")
    expect(carol.locator("#progress")).to_contain_text("case 1 of 3")
    assert carol.locator("#comment textarea").input_value() == ""
    html = carol.content()
    # Whole words: Gradio's dropdowns are `role="combobox"`.
    assert re.search(r"\b(alice|bob)\b", html) is None
    # The answers folder is not served.
    answers_path = review_app["answers"] / "alice.jsonl"
    assert carol.request.get(f"{review_app['url']}gradio_api/file={answers_path}").status in (403, 404)
    carol.screenshot(path=str(tmp_path / "review-screenshot.png"), full_page=True)
    if os.environ.get("MEDVL_DEMO_SCREENSHOT_DIR"):
        shutil.copy(tmp_path / "review-screenshot.png", Path(os.environ["MEDVL_DEMO_SCREENSHOT_DIR"]))

    alice_answers, bob_answers = (load_answers(review_app["answers"], r) for r in ("alice", "bob"))
    assert len(alice_answers) == 3 and len(bob_answers) == 3
    assert sorted(a["comment"] for a in alice_answers.values()) == ["alice one", "alice three", "alice two"]
    (first,) = [a for a in alice_answers.values() if a["comment"] == "alice one"]
    assert first["systems"][first["shown"][0]]["findings"] == [
        {"finding": "pleural effusion", "extractor": "present", "verdict": "wrong location or severity"},
        {"finding": "cardiomegaly", "extractor": "not stated", "verdict": "missed"},
    ]
    assert [f["verdict"] for f in first["systems"][first["shown"][1]]["findings"]] == ["correct", "missed"]
    # Blinding: what was Report 1 is recorded per case; the preference names that run.
    for answer in alice_answers.values():
        assert answer["preference"] == answer["shown"][0] and set(answer["shown"]) == {"A", "B"}
    stats = review_stats(str(review_app["answers"]), review_app["runs"], n_resamples=100)
    assert stats["agreement"]["reviewers"] == ["alice", "bob"] and stats["agreement"]["n_shared"] == 6
    for page in (alice, bob, carol):
        page.close()


def test_review_page_fits_a_phone(review_app, browser, tmp_path):
    from playwright.sync_api import expect

    phone = _login(browser, review_app["url"], "dave", viewport={"width": 390, "height": 844})
    expect(phone.locator("#verdict-1-0")).to_contain_text("pleural effusion")
    phone.wait_for_timeout(500)  # let the layout settle after the case's updates
    assert phone.evaluate("document.scrollingElement.scrollWidth") <= 390 + 1
    # Nothing visible sticks out to the right (an element can overflow a clipping parent without scrolling).
    too_wide = phone.evaluate(
        """() => [...document.querySelectorAll('body *')]
            .filter(e => e.getClientRects().length && e.getBoundingClientRect().right > 391)
            .map(e => e.tagName + '#' + e.id + '.' + e.className)"""
    )
    assert too_wide == []
    # The columns stack: each report and its controls get the phone's width, not a third of it.
    for selector in ("#case-image", "#report-1", "#verdict-1-0", "#err-1-0-sig", "#report-2", "#accept-2"):
        assert phone.locator(selector).bounding_box()["width"] > 150, selector
    assert phone.locator("#report-1").bounding_box()["width"] > 300
    phone.screenshot(path=str(tmp_path / "review-phone.png"), full_page=True)
    if os.environ.get("MEDVL_DEMO_SCREENSHOT_DIR"):
        shutil.copy(tmp_path / "review-phone.png", Path(os.environ["MEDVL_DEMO_SCREENSHOT_DIR"]))
    phone.close()


def test_three_reviewers_get_krippendorffs_alpha():
    from medvl_recipes.review.stats import agreement

    rows = [
        {"reviewer": r, "case_id": c, "system": "A", "acceptability": score}
        for r in ("alice", "bob", "carol")
        for c, score in (("c1", 1), ("c2", 3), ("c3", 5))
    ]
    perfect = agreement(rows)
    assert perfect["krippendorff_alpha_ordinal"] == pytest.approx(1.0)
    rows[-1] = {**rows[-1], "acceptability": 1}  # carol disagrees on c3
    assert agreement(rows)["krippendorff_alpha_ordinal"] < 0.9


# Publishing the answers as a Hub dataset


def test_publish_pseudonymises_masks_and_pushes_a_card(hub, tmp_path, monkeypatch, capsys):
    import pyarrow.parquet as pq
    from datasets import load_dataset
    from huggingface_hub import DatasetCard

    from medvl_recipes.cli import main as medvl
    from medvl_recipes.review.publish import REVIEW_FEATURES, SECRET_ENV, pseudonym

    refs = dict.fromkeys(CASE_IDS, "Small left pleural effusion.")
    run_a = write_run(tmp_path / "a", {"c1": "a1", "c2": "a2"}, {"c1": 0.1, "c2": 0.3}, refs)
    run_b = write_run(tmp_path / "b", {"c1": "b1", "c2": "b2"}, {"c1": 0.2, "c2": 0.4}, refs)
    # metrics.json of `medvl eval`: a local decoder path (names a user) and a Hub id.
    for run, name in ((run_a, "/home/alice/outputs/decoder"), (run_b, "tester/medvl-decoder")):
        (run / "metrics.json").write_text(
            json.dumps({"models": {"decoder": {"name_or_path": name, "revision": "abc"}}})
        )
    answers = tmp_path / "answers"
    answers.mkdir()
    (answers / "reviewers.txt").write_text("alice:alice-secret-pw\nbob:bob-secret-pw\n")  # credentials left nearby
    comment = "Alice here: seen 03/12/2014, MRN 1234567; ask bob."
    for reviewer in ("alice", "bob"):
        for k, case_id in enumerate(CASE_IDS):
            systems = {"A": _rating(2 + k, significant=1), "B": _rating(4)}
            systems["A"]["findings"] = [{"finding": "edema", "extractor": "present", "verdict": "hallucinated"}]
            note = comment if (reviewer, case_id) == ("alice", "c1") else ""
            answer = {"case_id": case_id, "shown": ["B", "A"], "systems": systems, "preference": "B", "comment": note}
            save_answer(answers, reviewer, answer)
    secret_file = tmp_path / "keys" / "review.secret"
    out = tmp_path / "hub-ready"
    argv = ["review", "publish", "--answers", str(answers), "--runs", str(run_a), str(run_b), "--output-dir", str(out)]
    assert medvl([*argv, "--secret-file", str(secret_file)]) == 0
    secret = secret_file.read_text().strip().encode()
    assert len(secret) == 64 and secret_file.stat().st_mode & 0o777 == 0o600
    alice, bob = pseudonym("alice", secret), pseudonym("bob", secret)
    rows = pq.read_table(out / "data" / "train-00000-of-00001.parquet").to_pylist()
    assert len(rows) == 8 and {row["reviewer"] for row in rows} == {alice, bob}
    assert all(len(row["reviewer"]) == len("reviewer-") + 12 for row in rows)
    (masked,) = {row["comment"] for row in rows if row["comment"]}
    assert masked == f"{alice} here: seen ___, ___; ask {bob}."
    a_row = next(row for row in rows if row["system"] == "A")
    assert a_row["shown_as"] == 2 and a_row["significant_errors"] == 1 and a_row["report"] in ("a1", "a2")
    assert a_row["findings"] == [{"finding": "edema", "extractor": "present", "verdict": "hallucinated"}]

    # The same secret keeps the pseudonyms; another one (here from the environment) changes them all.
    assert medvl([*argv, "--secret-file", str(secret_file)]) == 0
    assert {r["reviewer"] for r in pq.read_table(out / "data").to_pylist()} == {alice, bob}
    monkeypatch.setenv(SECRET_ENV, "another-secret-of-the-review-owner")
    assert medvl([*argv, "--output-dir", str(tmp_path / "other"), "--drop-comments"]) == 0
    other = pq.read_table(tmp_path / "other" / "data").to_pylist()
    assert {r["reviewer"] for r in other}.isdisjoint({alice, bob}) and {r["comment"] for r in other} == {None}
    # A secret file inside the published folder is refused.
    assert medvl([*argv, "--secret-file", str(out / "key")]) == 2
    capsys.readouterr()

    assert medvl(["push", "dataset", str(out), "--repo-id", "tester/medvl-review"]) == 0
    files = hub.files("dataset", "tester/medvl-review")
    assert sorted(files) == ["README.md", "data/train-00000-of-00001.parquet"]
    download = tmp_path / "download"
    for name, content in files.items():
        (download / name).parent.mkdir(parents=True, exist_ok=True)
        (download / name).write_bytes(content)
    # What arrived: no login, password, key, token or local path, in the card or in any parquet cell.
    arrived = files["README.md"].decode() + json.dumps(pq.read_table(download / "data").to_pylist())
    for leak in ("alice", "bob", "alice-secret-pw", secret.decode(), test_hub.TOKEN, "/home/", str(tmp_path)):
        assert leak.lower() not in arrived.lower(), leak
    card = DatasetCard.load(download / "README.md")
    assert card.data.license == "cc-by-4.0" and "expert-review" in card.data.tags
    assert "| A | a local checkpoint | `abc` | 4 | 2.50 |" in card.text
    assert "| B | tester/medvl-decoder | `abc` | 4 | 4.00 |" in card.text
    # The card's YAML (data files, features) is what `load_dataset` reads the folder with.
    loaded = load_dataset(str(download), split="train")
    assert loaded.features == REVIEW_FEATURES and len(loaded) == 8

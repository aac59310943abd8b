"""Mutation check: every mutation in MUTATIONS must make at least one of the tests named with it fail.

For each mutation the script copies the repository's src/, tests/ and pyproject.toml into a scratch
folder (tempfile), applies the edit to the copy (its `old` snippet must occur exactly once), runs the
named pytest node ids against the copy (PYTHONPATH = the copy's src; a small plugin checks that
`attnlens` really is imported from there, not from the editable install of the repository) and
reports "caught" (a named test failed) or "SURVIVED" (they all passed, or were skipped). Before
that, the named tests run once on the unmutated copy and must all pass, none skipped (else a
"caught" would mean nothing). Exit status: 0 when every mutation was caught, 1 otherwise.

    make mutation-check                                        # every mutation
    .venv/bin/python scripts/mutation_check.py -k tooltip -k server-   # names containing either text
    .venv/bin/python scripts/mutation_check.py --list

To add a mutation, append a row to MUTATIONS: Mutation(name, file, old, new, tests, why).
`file` is relative to the repository root, `old` an exact snippet of it (whitespace included) that
occurs once, `new` what it becomes, `tests` the pytest node ids (relative to the root) that must
catch it. Keep the tests few and fast: each mutation is one pytest run.
"""

from __future__ import annotations

from typing import NamedTuple


class Mutation(NamedTuple):
    name: str  # short and unique: what is broken
    file: str  # relative to the repository root
    old: str  # exact snippet, must occur exactly once in `file`
    new: str  # its replacement
    tests: tuple[str, ...]  # pytest node ids that must catch it (at least one must fail)
    why: str = ""  # the bug it stands for (issue number, what a user would see)


VB = "tests/browser/test_views_browser.py::"
SB = "tests/browser/test_server_browser.py::"
API = "tests/integration/test_server_api.py::"
PROFILE = "tests/integration/test_profile.py::"
ATLAS = "tests/integration/test_atlas.py::"
VIEWS = "tests/integration/test_views.py::"
DOM_JS = "src/attnlens/views/static/src/dom.js"
APP_JS = "src/attnlens/server/static/app.js"
SERVICE = "src/attnlens/server/service.py"
TRAINER = "src/attnlens/pretraining/trainer.py"
CHECKS = "tests/integration/test_pretraining_checks.py::"

# ---------------------------------------------------------------------------------------- the table
MUTATIONS: list[Mutation] = [
    # -- issue 17.5: text reaching the DOM as HTML (hand-built captures keep an HTML token whole)
    Mutation("tooltip-innerHTML", DOM_JS,
             "    t.textContent = text;\n",
             "    t.innerHTML = text;\n",
             (VB + "test_tooltip_shows_text_not_html",
              VB + "test_html_tokens_sentences_and_model_name_stay_text_in_every_view"),
             "17.5: a token <img src=x onerror=...> runs script when its neuron-view cell is hovered"),
    Mutation("picker-options-as-html", DOM_JS,
             'for (const [v, text] of options) el.append(h("option", { value: String(v), text }));',
             'for (const [v, text] of options) '
             'el.insertAdjacentHTML("beforeend", `<option value="${v}">${text}</option>`);',
             (VB + "test_html_tokens_sentences_and_model_name_stay_text_in_every_view",
              VB + "test_atlas_report_and_its_view_pages_keep_html_as_text"),
             "17.5: the neuron view's query-token picker parses tokens as HTML"),
    Mutation("head-info-line-html", "src/attnlens/views/static/src/head.js",
             'info.push(h("span", { text: `${sel.side === "query"',
             'info.push(Object.assign(h("span"), { innerHTML: `${sel.side === "query"',
             (VB + "test_html_tokens_sentences_and_model_name_stay_text_in_every_view",),
             "17.5: hovering a token puts it into the head view's info line as HTML"),
    Mutation("header-model-name-html", "src/attnlens/views/static/src/shell.js",
             'h("span", { class: "al-model", text: `',
             'Object.assign(h("span", { class: "al-model" }), { innerHTML: `',
             (VB + "test_html_tokens_sentences_and_model_name_stay_text_in_every_view",),
             "17.5: a model name (a folder path) is HTML in every view's header"),
    Mutation("header-sentence-html", "src/attnlens/views/static/src/shell.js",
             'h("span", { text: meta.text_a })',
             'Object.assign(h("span"), { innerHTML: meta.text_a })',
             (VB + "test_injection_sentence_runs_nothing",
              VB + "test_html_tokens_sentences_and_model_name_stay_text_in_every_view"),
             "17.5: sentence A is HTML in the header"),
    Mutation("mask-prediction-html", "src/attnlens/views/static/src/head.js",
             'h("span", { class: "al-pred", text: `${item.label}',
             'Object.assign(h("span", { class: "al-pred" }), { innerHTML: `${item.label}',
             (VB + "test_fetch_source_and_mask_token_hook",),
             "17.5: a predicted token (the host's label) is HTML"),
    Mutation("app-model-option-html", APP_JS,
             'select.append(el("option", { value: m.name, text: `${m.name} (',
             'select.append(Object.assign(el("option", { value: m.name }), { innerHTML: `${m.name} (',
             (SB + "test_html_in_model_names_tokens_and_results_stays_text",),
             "17.5: the web app's model picker parses model names (folder paths) as HTML"),
    Mutation("app-status-html", APP_JS,
             '  s.textContent = text || "";\n',
             '  s.innerHTML = text || "";\n',
             (SB + "test_html_in_model_names_tokens_and_results_stays_text",),
             "17.5: an error message (it names the model) is HTML in the status line"),
    Mutation("app-masked-title-html", APP_JS,
             '$("#masked-title").textContent = ',
             '$("#masked-title").innerHTML = ',
             (SB + "test_html_in_model_names_tokens_and_results_stays_text",),
             "17.5: the masked token is HTML in the masked view's title"),
    Mutation("app-results-link-html", APP_JS,
             'const link = (path) => el("a", { href: `/results/${path.split("/").map(encodeURIComponent).join("/")}`, '
             'target: "_blank", rel: "noopener", text: path });',
             'const link = (path) => Object.assign(el("a", { href: `/results/${path.split("/").map(encodeURIComponent)'
             '.join("/")}`, target: "_blank", rel: "noopener" }), { innerHTML: path });',
             (SB + "test_html_in_model_names_tokens_and_results_stays_text",),
             "17.5: a result file's path is HTML in its link"),
    Mutation("app-results-folder-html", APP_JS,
             'el("strong", { text: a.path || "(results folder)" })',
             'Object.assign(el("strong"), { innerHTML: a.path || "(results folder)" })',
             (SB + "test_html_in_model_names_tokens_and_results_stays_text",),
             "17.5: a results folder's name is HTML in the Results tab"),
    # -- issue 17.6: the server's token limit, the atlas's length boundary, compare's "previous", the report
    Mutation("server-token-limit-ignores-text-b", "src/attnlens/server/batching.py",
             'len(lm.tokenizer(*job.pair)["input_ids"])',
             'len(lm.tokenizer(job.pair[0])["input_ids"])',
             (API + "test_token_limit_counts_both_sentences",),
             "17.6: a short A with a long B passes the server's --max-tokens"),
    Mutation("server-token-limit-boundary", "src/attnlens/server/batching.py",
             "    if n > limit:\n        return LimitError(413",
             "    if n >= limit:\n        return LimitError(413",
             (API + "test_token_limit_counts_both_sentences", API + "test_token_limit_is_the_models_own_maximum_too"),
             "17.6: an input of exactly --max-tokens tokens is refused"),
    Mutation("server-token-limit-ignores-model-max", "src/attnlens/server/batching.py",
             "limit = min(max_tokens, served.lm.max_length)",
             "limit = max_tokens",
             (API + "test_token_limit_is_the_models_own_maximum_too",),
             "17.6: past the model's own maximum the server answers 422 (a model error), not 413"),
    Mutation("atlas-length-boundary", "src/attnlens/capturing/batcher.py",
             "    if n > limit:\n        raise AttnlensError(f\"input is {n} tokens",
             "    if n >= limit:\n        raise AttnlensError(f\"input is {n} tokens",
             (ATLAS + "test_an_input_of_exactly_the_models_length_is_kept",),
             "17.6: the atlas skips (and capture refuses) inputs of exactly the model's maximum length"),
    Mutation("compare-undefined-previous-counts-as-1", SERVICE,
             "profile_l = np.nan_to_num(head_profile(left)[:n_layers, :n_heads], nan=0.0)",
             "profile_l = np.nan_to_num(head_profile(left)[:n_layers, :n_heads], nan=1.0)",
             (API + "test_compare_counts_an_undefined_feature_as_no_attention",
              PROFILE + "test_head_difference_of_hand_made_profiles"),
             "17.6: compare with a one-word input: its undefined previous/next count as full attention"),
    Mutation("compare-drops-previous", SERVICE,
             "values = np.abs(profile_l - profile_r).mean(-1)",
             "values = np.abs(profile_l - profile_r)[..., [0, 2, 3, 4, 5]].mean(-1)",
             (PROFILE + "test_head_difference_of_hand_made_profiles", PROFILE + "test_server_compare_uses_the_profile"),
             "17.6: the compare map ignores the previous-token feature"),
    Mutation("profile-previous-is-next", "src/attnlens/patterns/profile.py",
             '"previous": PATTERNS["previous_token"],',
             '"previous": PATTERNS["next_token"],',
             (PROFILE + "test_previous_and_next_do_not_cross_sentences_or_touch_specials",
              PROFILE + "test_head_difference_of_hand_made_profiles"),
             "17.6: the profile's previous feature measures the next token"),
    Mutation("compare-aligned-by-length", SERVICE,
             "aligned = list(left.tokens) == list(right.tokens)",
             "aligned = len(left.tokens) == len(right.tokens)",
             (PROFILE + "test_server_compare_uses_the_profile",),
             "different inputs of one length are compared row by row as if their tokens matched"),
    Mutation("report-model-name-unescaped", "src/attnlens/analysis/report.py",
             'f"<h1>Attention atlas of {e(at.model_name)}</h1>"',
             'f"<h1>Attention atlas of {at.model_name}</h1>"',
             (ATLAS + "test_report_shows_the_model_and_corpus_names_as_text",
              VB + "test_atlas_report_and_its_view_pages_keep_html_as_text"),
             "17.6: a model path with HTML in it becomes markup in report.html"),
    Mutation("report-corpus-name-unescaped", "src/attnlens/analysis/report.py",
             "inputs from {e(at.corpus_name or 'a corpus')}",
             "inputs from {at.corpus_name or 'a corpus'}",
             (ATLAS + "test_report_shows_the_model_and_corpus_names_as_text",),
             "a corpus name with HTML in it becomes markup in report.html"),
    Mutation("page-title-unescaped", "src/attnlens/io.py",
             'f"<title>{html.escape(title)}</title>',
             'f"<title>{title}</title>',
             (ATLAS + "test_report_shows_the_model_and_corpus_names_as_text",),
             "a model name closes report.html's <title> and adds markup"),
    Mutation("view-page-title-unescaped", "src/attnlens/views/html.py",
             'f"<title>{html.escape(title[:200])}</title>\\n"',
             'f"<title>{title[:200]}</title>\\n"',
             (VIEWS + "test_injection_text_is_escaped",
              VIEWS + "test_html_in_tokens_sentences_and_model_name_is_never_markup"),
             "a sentence closes a view page's <title> and adds markup"),
    # -- the server's limits, tested without sleep-and-hope timing
    Mutation("queue-unbounded", "src/attnlens/server/limits.py",
             "self.capacity = workers + queue\n",
             "self.capacity = workers + queue + 64\n",
             (API + "test_inference_queue_refuses_when_full_and_times_out",
              API + "test_busy_server_answers_429_and_slow_requests_408",
              "tests/integration/test_server_load.py::test_overload_is_refused_with_429_not_piled_up"),
             "requests pile up in the queue instead of a 429"),
    Mutation("queue-no-timeout", "src/attnlens/server/limits.py",
             "return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout_s)",
             "return await asyncio.wrap_future(future)",
             (API + "test_inference_queue_refuses_when_full_and_times_out",),
             "a request waits for inference as long as it takes instead of a 408"),
    Mutation("fuzz-sees-a-500-response", "src/attnlens/server/app.py",
             'raise LimitError(404, f"capture {capture_id[:40]!r} is not kept',
             'raise LimitError(500, f"capture {capture_id[:40]!r} is not kept',
             ("tests/integration/test_server_fuzz.py::test_no_server_errors[GET /api/captures/{capture_id}/meta]",),
             "the fuzz test fails on a 5xx answer (not only on an exception): an unknown capture id gets 500"),
    Mutation("fuzz-sees-a-crash", "src/attnlens/server/app.py",
             "return [m.describe(limits.max_tokens) for m in served.values()]",
             "return [m.describe(limits.max_tokens) for m in served.values()][99:][0]",
             ("tests/integration/test_server_fuzz.py::test_no_server_errors[GET /api/models]",),
             "the fuzz test fails when a route raises (IndexError -> 500)"),
    # -- issue 17.1-17.4: pretraining (resume, RNG, masker, DDP) and the evaluation's accuracies
    Mutation("resume-restarts-from-step-0", TRAINER,
             "resume_from = found[-1][1] if found else None", "resume_from = None",
             (CHECKS + "test_resume_starts_at_the_checkpoint_and_restores_the_rng[tiny]",),
             "17.1: --resume silently retrains from step 0 (same final weights: training is deterministic)"),
    Mutation("resume-skips-the-rng", TRAINER,
             'torch.set_rng_state(torch.tensor(state["rng"]["torch"], dtype=torch.uint8))', "pass",
             (CHECKS + "test_resume_starts_at_the_checkpoint_and_restores_the_rng[mini]",),
             "17.2: a resumed run with dropout draws other dropout masks than an uninterrupted one"),
    Mutation("masker-may-mask-pad-mask-unk", TRAINER,
             "tuple(sorted(set(tok.all_special_ids)))", "(tok.cls_token_id, tok.sep_token_id)",
             (CHECKS + "test_trainer_batches_mask_at_the_configured_rate_never_specials_fresh_every_step",),
             "17.3: [PAD]/[MASK]/[UNK] can be chosen as masked-LM targets"),
    Mutation("masker-rate-hard-coded", TRAINER, "self.config.mask_prob)", "0.15)",
             (CHECKS + "test_trainer_batches_mask_at_the_configured_rate_never_specials_fresh_every_step",),
             "17.3: --mask-prob is ignored"),
    Mutation("masker-same-positions-every-step", "src/attnlens/pretraining/data.py",
             "seed_for(self.seed, 2, step)", "seed_for(self.seed, 2)",
             (CHECKS + "test_trainer_batches_mask_at_the_configured_rate_never_specials_fresh_every_step",),
             "17.3: every step masks the same positions"),
    Mutation("ddp-loss-not-divided-by-world", "src/attnlens/pretraining/objective.py",
             "return float((batch.labels != -100).sum().clamp(min=1)) / world, len(batch.labels) / world",
             "return float((batch.labels != -100).sum().clamp(min=1)), len(batch.labels)",
             (CHECKS + "test_ddp_averages_gradients_of_the_global_batch",),
             "17.4: DDP sums instead of averaging the global batch's gradients"),
    Mutation("eval-mask-accuracy-counts-every-chosen-position", "src/attnlens/pretraining/objective.py",
             "kinds = (shown == self.mask_id,", "kinds = (shown == shown,",
             (CHECKS + "test_evaluation_accuracies_match_an_independent_computation",),
             "the headline MLM accuracy at [MASK] counts kept and random-replaced positions too"),
    Mutation("value-norms-wrong-head-slice-of-w-o", "src/attnlens/capturing/recorders.py",
             "w = out_weight.double().view(out_weight.shape[0], num_heads, d).transpose(0, 1)",
             "w = out_weight.double().view(num_heads, d, out_weight.shape[0]).transpose(1, 2)",
             ("tests/integration/test_capture_values.py::test_value_norms_match_the_models_own_value_and_output_"
              "projections",),
             "value norms read W_O's rows instead of the head's columns: the value_norm lens is wrong"),
    Mutation("lazy-attention-keeps-padding-keys", "src/attnlens/capturing/batcher.py",
             "attentions = own(fwd._attentions[row, :, :, :n, :n])",
             "attentions = own(fwd._attentions[row, :, :, :n, :n]) if n == fwd.mask.shape[1] else None",
             ("tests/unit/test_lazy_attention.py::test_rows_cut_from_a_batch_whose_attention_was_computed_are_the_"
              "models_own",),
             "a capture cut from a batch whose attention was computed gets none (or the padded one)"),
]
# ------------------------------------------------------------------------------------ end of the table
# (the imports follow the table on purpose: the table is what a reader opens this file for)

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
COPIED = ("src", "tests", "pyproject.toml")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".pytest_cache", ".hypothesis")

# A pytest plugin loaded in every run (-p mutation_guard): stop unless attnlens comes from the copy.
GUARD = '''
import os

import pytest


def pytest_configure(config):
    import attnlens

    src = os.path.realpath(os.environ["ATTNLENS_MUTATION_SRC"])
    where = os.path.realpath(attnlens.__file__)
    if not where.startswith(src + os.sep):
        raise pytest.UsageError(f"mutation check: attnlens was imported from {where}, not from the copy in {src}")
'''


def check_table(mutations: list[Mutation]) -> list[str]:
    """Problems with the table itself: duplicate names, snippets that do not occur exactly once."""
    problems = []
    names = [m.name for m in mutations]
    problems += [f"{n}: name used twice" for n in sorted({n for n in names if names.count(n) > 1})]
    for m in mutations:
        path = ROOT / m.file
        if not path.is_file():
            problems.append(f"{m.name}: no file {m.file}")
            continue
        count = path.read_text(encoding="utf-8").count(m.old)
        if count != 1:
            problems.append(f"{m.name}: the old snippet occurs {count} times in {m.file} (must be exactly once)")
        if m.old == m.new:
            problems.append(f"{m.name}: old and new are the same")
        if not m.tests:
            problems.append(f"{m.name}: no tests named")
    return problems


def make_copy(scratch: Path) -> None:
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, scratch / name, ignore=IGNORED, symlinks=True)
        else:
            shutil.copy2(source, scratch / name)
    (scratch / "mutation_guard.py").write_text(GUARD, encoding="utf-8")


def environment(scratch: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CI")}
    env.update(PYTHONPATH=os.pathsep.join([str(scratch / "src"), str(scratch)]), PYTHONDONTWRITEBYTECODE="1",
               ATTNLENS_MUTATION_SRC=str(scratch / "src"), HF_HUB_OFFLINE="1", TRANSFORMERS_VERBOSITY="error",
               TOKENIZERS_PARALLELISM="false")
    return env


def imported_from(scratch: Path) -> str:
    """Where `import attnlens` resolves with the runs' environment (must be the copy)."""
    out = subprocess.run([sys.executable, "-c", "import attnlens; print(attnlens.__file__)"], cwd=scratch,
                         env=environment(scratch), capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise SystemExit(f"mutation check: cannot import attnlens from the copy:\n{out.stderr[-2000:]}")
    return out.stdout.strip()


class Outcome(NamedTuple):
    status: int | None  # pytest's exit status; None: timed out
    failed: list[str]  # tests that failed or errored
    reasons: list[str]  # the first line of each one's failure message
    skipped: list[str]
    passed: list[str]
    seconds: float
    tail: str  # the end of pytest's output


def run_tests(scratch: Path, tests, timeout: float) -> Outcome:
    report = scratch / "junit.xml"
    report.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "mutation_guard",
           f"--junitxml={report}", *tests]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=scratch, env=environment(scratch), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
        status = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the run we started, and what it started (a server, chromium)
        output, _ = proc.communicate()
        status = None
    failed, reasons, skipped, passed = [], [], [], []
    if report.is_file():
        for case in ET.parse(report).iter("testcase"):
            name = f"{case.get('classname', '')}::{case.get('name', '')}"
            bad = [child for child in case if child.tag in ("failure", "error")]
            if bad:
                failed.append(name)
                reasons.append((bad[0].get("message") or bad[0].tag).strip().splitlines()[0][:160])
            elif any(child.tag == "skipped" for child in case):
                skipped.append(name)
            else:
                passed.append(name)
    return Outcome(status, failed, reasons, skipped, passed, time.monotonic() - start, output[-3000:])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", dest="select", action="append", default=[],
                        help="only mutations whose name contains this text (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--no-baseline", action="store_true", help="skip the run of the unmutated copy")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per pytest run (default 900)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--reasons", action="store_true", help="print why each catching test failed")
    args = parser.parse_args(argv)

    chosen = [m for m in MUTATIONS if not args.select or any(s in m.name for s in args.select)]
    if args.list:
        for m in MUTATIONS:
            print(f"{m.name:40s} {m.file}  ({len(m.tests)} tests)  {m.why}")
        return 0
    if not chosen:
        print("mutation check: no mutation matches", args.select)
        return 2
    problems = check_table(MUTATIONS)
    if problems:
        print("mutation check: the table is out of date with the code:\n  " + "\n  ".join(problems))
        return 2

    scratch = Path(tempfile.mkdtemp(prefix="attnlens-mutation-"))
    try:
        make_copy(scratch)
        where = imported_from(scratch)
        if not Path(where).resolve().is_relative_to((scratch / "src").resolve()):
            print(f"mutation check: attnlens imports from {where}, not from the copy {scratch / 'src'}")
            return 2
        print(f"mutation check: {len(chosen)} mutations on a copy in {scratch} (attnlens imported from {where})")
        if not args.no_baseline:
            tests = list(dict.fromkeys(t for m in chosen for t in m.tests))
            base = run_tests(scratch, tests, args.timeout)
            print(f"baseline: {len(base.passed)} passed, {len(base.failed)} failed, {len(base.skipped)} skipped "
                  f"({base.seconds:.0f} s)")
            if base.status != 0 or base.failed or base.skipped or not base.passed:
                print("mutation check: the named tests must all pass (none skipped) on the unmutated copy first:")
                for name in base.failed + base.skipped:
                    print("  not passed:", name)
                print(base.tail)
                return 2
        results = []
        for m in chosen:
            path = scratch / m.file
            original = path.read_text(encoding="utf-8")
            assert original.count(m.old) == 1, f"{m.name}: the old snippet must occur exactly once in {m.file}"
            path.write_text(original.replace(m.old, m.new), encoding="utf-8")
            try:
                out = run_tests(scratch, m.tests, args.timeout)
            finally:
                path.write_text(original, encoding="utf-8")
            if out.status is None:
                verdict = "ERROR"
                detail = f"timed out after {args.timeout:.0f} s"
            elif out.status == 1 and out.failed:
                verdict = "caught"
                detail = "failed: " + ", ".join(n.rsplit("::", 1)[-1] for n in out.failed)
            elif out.status == 0:
                verdict = "SURVIVED"
                detail = f"{len(out.passed)} passed" + (f", {len(out.skipped)} skipped" if out.skipped else "")
            else:
                verdict = "ERROR"
                detail = f"pytest exit status {out.status} (no test result to judge)"
            results.append((m, verdict))
            print(f"{verdict:8s} {m.name:40s} {out.seconds:5.0f} s  {detail}", flush=True)
            if args.reasons:
                for name, reason in zip(out.failed, out.reasons):
                    print(f"{'':9s}{name.rsplit('::', 1)[-1]}: {reason}")
            if verdict == "ERROR":
                print(out.tail)
        survived = [m.name for m, v in results if v != "caught"]
        print(f"\n{len(results) - len(survived)}/{len(results)} mutations caught"
              + (f"; not caught: {', '.join(survived)}" if survived else ""))
        return 1 if survived else 0
    finally:
        if args.keep:
            print(f"scratch folder kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

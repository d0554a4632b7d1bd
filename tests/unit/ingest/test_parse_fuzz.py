"""The telemetry parser under coverage-guided fuzzing (atheris, tests/fuzz/parse_fuzz.py), in a bounded form.

The long form is ``make fuzz`` (10 minutes). A failure prints the crashing input, which libFuzzer also writes to the
working directory as ``crash-<sha1>``: rerun it with ``python -m tests.fuzz.parse_fuzz crash-<sha1>``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
CORPUS = ROOT / "tests" / "fuzz" / "corpus"
SECONDS = 30


def test_no_input_crashes_the_parser_or_breaks_its_promise(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)  # libFuzzer adds what it finds to the corpus: not to the repository's
    run = subprocess.run(
        [sys.executable, "-m", "tests.fuzz.parse_fuzz", f"-max_total_time={SECONDS}", "-rss_limit_mb=1024",
         f"-artifact_prefix={tmp_path}/", str(corpus)],
        cwd=ROOT, capture_output=True, text=True, timeout=SECONDS + 120, check=False,
    )  # fmt: skip
    tail = run.stderr[-3000:]
    assert run.returncode == 0, f"the fuzzer found a failing input:\n{tail}"
    done = [line for line in run.stderr.splitlines() if "DONE" in line.split()]
    assert done, f"the fuzzer did not run to the end:\n{tail}"
    runs = int(done[-1].split()[0].lstrip("#"))
    assert runs > 10_000, f"only {runs} inputs in {SECONDS} s:\n{tail}"
    assert len(list(corpus.iterdir())) > len(list(CORPUS.iterdir())), "coverage guidance found no new input"

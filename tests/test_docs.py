"""The docs: the site builds strictly, the README stays short, and every results file they cite exists."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# A results file as the README (bench/results/...) or a page (results/..., the link docs/results -> bench/results)
# names it: in a link, in code or in prose.
CITED = re.compile(r"(?<![\w/])(?:bench/)?results/[\w./-]+\.(?:md|jsonl|json|png|csv|yaml)(?![\w.])")


def cited_results(text: str) -> set[str]:
    return {m.group(0).removeprefix("bench/") for m in CITED.finditer(text)}


def test_every_cited_results_file_exists():
    missing = [
        f"{page.relative_to(REPO)}: {cited}"
        for page in PAGES
        for cited in sorted(cited_results(page.read_text()))
        if not (REPO / "bench" / cited).is_file()
    ]
    assert not missing, "results files cited but not committed:\n" + "\n".join(missing)


def test_the_citation_pattern_finds_what_a_page_cites():
    text = "see [x](results/showdown/showdown.md) and `bench/results/proxy_fidelity.json`; src/results/y.py no"
    assert cited_results(text) == {"results/showdown/showdown.md", "results/proxy_fidelity.json"}


def test_readme_links_point_at_files_and_it_stays_short():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 150, "README.md: keep it a short entry; details belong in docs/"
    links = re.findall(r"\]\(([^)#]+)\)", text)
    assert links, "the README links into docs/"
    broken = [link for link in links if not link.startswith("http") and not (REPO / link).exists()]
    assert not broken, f"README.md links to missing files: {broken}"


def test_the_docs_site_builds_strictly(tmp_path):
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or shutil.which("mkdocs")
    if mkdocs is None:
        pytest.fail("mkdocs is missing: pip install -e '.[dev]' installs it")
    done = subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "evaluator" / "index.html").is_file()

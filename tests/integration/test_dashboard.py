"""``coderm dashboard`` over a database with suite runs, rendered by Debian's chromium.

A suite of two members watched over the replayed baseline and two tiny checkpoints
(the checkpoints, members and baseline of test_suites.py, so that whichever module runs
second reuses the stored completions and verdicts of the executions); the page is
written, served with ``--serve``, loaded by headless chromium (installed by
deploy/local/chromium.sh) for a screenshot and a DOM dump: the screenshot must be
mostly drawn (its share of non-background pixels, and of coloured ones: the plots'
lines and bands, above thresholds) and the DOM must hold every section.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.integration.test_suites import (
    BASELINE,
    MEMBER_1,
    MEMBER_3,
    add_suite,
    checkpoints_folder,
    watch_args,
)
from tests.stack import ROOT, Services, Stack, cli, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.vllm, pytest.mark.long]
SCRIPT = ROOT / "deploy" / "local" / "chromium.sh"
SUITE = "dash"
WINDOW = (1280, 2400)
#: A pixel is background when every channel is within this of white.
BACKGROUND_TOLERANCE = 24
#: Shares of the screenshot: any drawn pixel (text, axes, plots), and coloured pixels
#: (the plots' strategy lines and bands; text and tables are grey or black).
MIN_DRAWN_SHARE = 0.03
MIN_COLOURED_SHARE = 0.002


@pytest.fixture(scope="module")
def chromium() -> str:
    """The browser, installed through the project's script if missing."""
    done = subprocess.run(
        ["bash", str(SCRIPT)], capture_output=True, text=True, timeout=1200, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def watched(
    stack: Stack,
    services: Services,
    imported: None,
    tiny_model_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> str:
    """The suite ``dash`` evaluated over the baseline and two tiny checkpoints."""
    folder = checkpoints_folder(
        tiny_model_dir, tmp_path_factory.mktemp("dashboard") / "checkpoints", (1000, 2000)
    )
    add_suite(stack, SUITE, MEMBER_1, MEMBER_3)
    done = cli(stack, *watch_args(folder, SUITE, "--baseline", BASELINE), timeout=1500)
    assert done.returncode == 0, done.stdout + done.stderr
    return SUITE


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def browse(
    chromium: str, url: str, profile: Path, *action: str
) -> subprocess.CompletedProcess[str]:
    """Headless chromium on ``url`` (root needs --no-sandbox), its own profile dir."""
    done = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--no-first-run",
            f"--user-data-dir={profile}",
            f"--window-size={WINDOW[0]},{WINDOW[1]}",
            *action,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


def pixel_shares(path: Path) -> tuple[float, float]:
    """(drawn, coloured) shares of a screenshot's pixels."""
    with Image.open(path) as image:
        rgb = np.asarray(image.convert("RGB"), dtype=np.int16)
    drawn = rgb.min(axis=2) < 255 - BACKGROUND_TOLERANCE
    coloured = (rgb.max(axis=2) - rgb.min(axis=2)) > 60
    return float(drawn.mean()), float(coloured.mean())


@pytest.fixture
def served(stack: Stack, watched: str, tmp_path: Path) -> Iterator[str]:
    """``coderm dashboard --suite dash --serve`` on a free port; its URL."""
    port = free_port()
    out = tmp_path / "served"
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from services.cli.app import main; main()",
            *("dashboard", "--suite", watched, "--out", str(out), "--serve", "--port", str(port)),
        ],
        cwd=ROOT,
        env=stack.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/index.html"

    def answers() -> bool:
        if process.poll() is not None:
            raise AssertionError(process.stdout.read().decode() if process.stdout else "exited")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    try:
        wait_for(answers, 120, f"the dashboard served on {url}")
        yield url
    finally:
        process.kill()
        process.wait(timeout=30)
        if process.stdout:
            process.stdout.close()


@pytest.mark.timeout(2400)
def test_dashboard_file_has_every_suite_and_section(
    stack: Stack, watched: str, tmp_path: Path
) -> None:
    done = cli(stack, "dashboard", "--out", str(tmp_path / "all"))
    assert done.returncode == 0, done.stdout + done.stderr
    page = (tmp_path / "all" / "index.html").read_text()
    assert f"Suite {watched}" in page
    section = page[page.index(f"Suite {watched}") :]
    for member in ("he-1", "he-3"):
        assert f"{member} (humaneval): pass@1 by strategy" in section
        assert f"{member} (humaneval): unit-test quality" in section
    assert section.count("data:image/png;base64,") >= 5
    assert "step-2000" in section and BASELINE in section
    assert re.search(r"codegen16b: worse -\d", section), "the latest verdicts name the best"
    unknown = cli(stack, "dashboard", "--suite", "nosuch", "--out", str(tmp_path / "none"))
    assert unknown.returncode == 2 and "no suite 'nosuch'" in unknown.stdout


@pytest.mark.timeout(2400)
def test_served_dashboard_renders_in_headless_chromium(
    chromium: str, served: str, tmp_path: Path
) -> None:
    shot = tmp_path / "dashboard.png"
    browse(chromium, served, tmp_path / "profile-shot", f"--screenshot={shot}")
    with Image.open(shot) as image:
        assert image.size == WINDOW
    drawn, coloured = pixel_shares(shot)
    assert drawn > MIN_DRAWN_SHARE, f"only {drawn:.2%} of the screenshot is drawn ({shot})"
    assert coloured > MIN_COLOURED_SHARE, f"only {coloured:.2%} coloured: no plots? ({shot})"

    dom = browse(chromium, served, tmp_path / "profile-dom", "--dump-dom").stdout
    headings = re.findall(r"<h[1-3]>(.*?)</h[1-3]>", dom)
    for expected in (
        "coderm dashboard",
        f"Suite {SUITE}",
        "Latest verdicts",
        "he-1 (humaneval): pass@1 by strategy",
        "he-1 (humaneval): unit-test quality",
        "he-3 (humaneval): pass@1 by strategy",
        "Throughput",
        "Checkpoint evaluations",
    ):
        assert expected in headings, headings
    assert dom.count('src="data:image/png;base64,') == 5

"""``report.html`` in headless Chromium, opened from a file with no network: no console errors, every image
decoded, every audio player present and loadable; a screenshot of the page is saved in the test's output.

Needs Debian's ``chromium`` (``make sysdeps`` installs it); skipped, saying so, where it is absent."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from helpers import WindowDataset, tiny_model, windows
from helpers_browser import HeadlessChromium, find_chromium

CHECK_PAGE = """(async () => {
  const images = await Promise.all([...document.images].map(img => img.decode().then(
      () => ({width: img.naturalWidth, height: img.naturalHeight}),
      error => ({width: 0, height: 0, error: String(error)}))));
  const audio = await Promise.all([...document.querySelectorAll('audio')].map(a => new Promise(resolve => {
      const done = () => resolve({ready: a.readyState, duration: a.duration, error: a.error && a.error.code,
                                  data: a.currentSrc.startsWith('data:audio/wav;base64,')});
      if (a.readyState >= 1) return done();
      a.addEventListener('loadedmetadata', done);
      a.addEventListener('error', done);
      setTimeout(done, 20000);
      a.load();
  })));
  return {images, audio, title: document.title, tables: document.querySelectorAll('table').length,
          text: document.body.innerText.length};
})()"""


@pytest.fixture(scope="module")
def chromium() -> str:
    exe = find_chromium()
    if exe is None:
        pytest.skip("headless Chromium not found (Debian package 'chromium'; `make sysdeps` installs it)")
    return exe


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, int]:
    """A report written as ``ddsp-demucs evaluate`` writes it (figures from the PNG files), and its number
    of audio players."""
    import torch

    from ddsp_demucs.evaluation import evaluate_model, write_evaluation

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("report")
    results = evaluate_model(tiny_model(perturb=0.3), WindowDataset(windows(4)), compute_f0=False, progress=False)
    written = write_evaluation(out, results, n_boot=100, title="browser test", command="ddsp-demucs evaluate ...")
    n_audio = sum(len(ex.signals) for ex in results.examples)
    return written["paths"]["report"], n_audio


def test_report_renders_in_headless_chromium(chromium, report, tmp_path):
    page, n_audio = report
    with HeadlessChromium(chromium, tmp_path / "profile") as browser:
        session = browser.open(page.resolve().as_uri())
        state = browser.evaluate(session, CHECK_PAGE)
        png = browser.screenshot(session)
        errors = browser.console_errors()
    assert errors == [], errors
    assert state["title"] == "browser test" and state["tables"] >= 1 and state["text"] > 500
    assert len(state["images"]) == 2
    for image in state["images"]:
        assert image["width"] > 0 and image["height"] > 0, image
    assert n_audio == 16 and len(state["audio"]) == n_audio
    for audio in state["audio"]:
        assert audio["data"] and audio["error"] is None and audio["ready"] >= 1 and audio["duration"] > 0, audio
    shot = tmp_path / "report.png"
    shot.write_bytes(png)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert width >= 800 and height > 900 and shot.stat().st_size > 10_000

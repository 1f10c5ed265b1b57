"""Screenshot a report.html in headless Chromium: ``python tools/check_report_html.py REPORT_HTML OUT_PNG``.

Why: a report is for people; the only honest check that it renders is to render it. Chromium runs
offline (no network, no first-run, no sync) with a throwaway profile. Exit 0 and print the PNG path
and size when the screenshot was written; exit 2 with one line when Chromium is missing or fails.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_chromium() -> str | None:
    """The first Chromium-like browser on PATH, or None."""
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def screenshot(report_html: Path, out_png: Path, width: int = 1280, height: int = 2000, timeout_s: float = 90) -> Path:
    """Render ``report_html`` and write a PNG of the first ``height`` pixels; raises RuntimeError on failure."""
    browser = find_chromium()
    if browser is None:
        raise RuntimeError("chromium not found (Debian: apt-get install chromium)")
    report_html, out_png = Path(report_html).resolve(), Path(out_png).resolve()
    if not report_html.is_file():
        raise RuntimeError(f"report not found: {report_html}")
    out_png.parent.mkdir(parents=True, exist_ok=True)
    out_png.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--hide-scrollbars", f"--user-data-dir={profile}", f"--screenshot={out_png}",
               f"--window-size={width},{height}", report_html.as_uri()]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8", errors="replace",
                                  timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"chromium did not finish within {timeout_s:.0f} s") from None
    if not out_png.is_file() or out_png.stat().st_size == 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"chromium wrote no screenshot (exit {proc.returncode}): {last}")
    return out_png


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python tools/check_report_html.py REPORT_HTML OUT_PNG", file=sys.stderr)
        return 2
    try:
        out = screenshot(Path(argv[0]), Path(argv[1]))
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{out} ({out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

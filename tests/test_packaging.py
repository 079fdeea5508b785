"""The wheel carries what the agent reads at run time besides code: the status page's templates and CSS."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_ships_the_status_page_templates_and_stylesheet(tmp_path: Path) -> None:
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                            "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    [wheel] = tmp_path.glob("sre_agent-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for resource in ("agent/statuspage/templates/status.html.j2", "agent/statuspage/static/status.css",
                     "agent/_embedded/quickstart.yaml"):
        assert resource in names, resource

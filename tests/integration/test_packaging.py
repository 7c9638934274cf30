"""What a pip-installed OncallM carries: a wheel built from this tree works on its own.

Built with the project's real build backend, unpacked away from the repository, and
imported from there: anything the package reads from outside ``oncallm/`` at run time
(the Alertmanager templates in deploy/) must have been put inside it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def unpacked_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # As the Makefile finds it: the uv command, else the module pip installed.
    uv = [found] if (found := shutil.which("uv")) else ["python3", "-m", "uv"]
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [*uv, "build", "--wheel", "--out-dir", str(out), str(REPO)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    wheel = next(out.glob("oncallm-*.whl"))
    target = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)
    return target


def _run_from(site: Path, code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=site, capture_output=True, text=True, timeout=60, check=False,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_installed_package_carries_the_alertmanager_templates(unpacked_wheel: Path) -> None:
    shipped = (REPO / "deploy" / "alertmanager" / "oncallm.tmpl").read_text()
    code = (
        "import sys, oncallm.alertmanager_kit as kit;"
        f"assert kit.__file__.startswith({str(unpacked_wheel)!r}), kit.__file__;"
        "sys.stdout.write(kit.template_source())"
    )
    assert _run_from(unpacked_wheel, code) == shipped
    assert not (unpacked_wheel / "deploy").exists()  # read from inside the package


def test_the_installed_package_carries_the_page_script_and_the_demo_metrics(
    unpacked_wheel: Path,
) -> None:
    assert (unpacked_wheel / "oncallm" / "web" / "static" / "oncallm.js").is_file()
    metrics = unpacked_wheel / "oncallm" / "samples" / "cluster" / "metrics"
    assert sorted(p.name for p in metrics.glob("*.json"))

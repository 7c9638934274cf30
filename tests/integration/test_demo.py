"""`make demo` runs `oncallm demo`: it serves, posts the bundled samples, triages them
against the bundled sample cluster, prints each root cause and the links, and every printed
link opens a page."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx

from oncallm.samples import sample_names
from tests.support.services import free_port, oncallm_env, start_oncallm


def test_demo_posts_the_samples_and_prints_working_links(tmp_path: Path) -> None:
    port = free_port()
    env = oncallm_env(f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}", server__port=str(port))
    demo = start_oncallm(["demo"], env, tmp_path)
    try:
        deadline = time.monotonic() + 60
        while "Ctrl-C to stop" not in demo.log():
            assert demo.process.poll() is None, demo.log()
            assert time.monotonic() < deadline, demo.log()
            time.sleep(0.1)
        output = demo.log()
        links = re.findall(rf"http://localhost:{port}/alerts/[0-9a-f]{{16}}", output)
        assert len(links) == len(sample_names()) == 5
        for link in links:
            page = httpx.get(link.replace("localhost", "127.0.0.1"), timeout=10)
            assert page.status_code == 200
            assert "Alert not seen yet" not in page.text
        listed = httpx.get(f"http://127.0.0.1:{port}/api/v1/alerts", timeout=10).json()
        assert {a["status"] for a in listed["items"]} == {"firing", "resolved"}
        # The sample cluster's incidents, named as its README describes them.
        assert "KubeContainerOOMKilled: OOMKilled — Deployment api" in output
        assert "KubeNodeNotReady: NodeFailure — Node node-c" in output
        assert "KubePodCrashLooping: VolumeFailure — PersistentVolumeClaim" in output
        assert "KubeDeploymentReplicasMismatch: ImagePull — Deployment ledger" in output
        for item in listed["items"]:
            detail = httpx.get(
                f"http://127.0.0.1:{port}/api/v1/alerts/{item['fingerprint']}", timeout=10
            ).json()
            assert detail["triage"]["status"] == "succeeded"
            assert detail["triage"]["result"]["root_cause"]["category"] != "Unknown"
    finally:
        demo.stop()

"""A file missing under a mounted Secret or ConfigMap names the object and the key."""

from __future__ import annotations

from oncallm.sources.base import ObjectRef
from oncallm.triage.analyzers import mounted_files
from oncallm.triage.evidence import EvidenceLedger
from oncallm.triage.taxonomy import Category
from tests.unit import kubeobjects as k

LINE = (
    '{"level":"fatal","msg":"cannot create kafka client","error":"read SASL username: '
    'open /etc/kafka/sasl/username: no such file or directory"}'
)


def _pod(name: str = "indexer-1") -> dict[str, object]:
    return k.pod(
        name,
        containers=[
            k.container("indexer", volume_mounts=[{"name": "sasl", "mountPath": "/etc/kafka/sasl"}])
        ],
        statuses=[k.waiting_status("indexer")],
        volumes=[{"name": "sasl", "secret": {"secretName": "indexer-kafka"}}],
    )


def _run(objects: list[dict[str, object]], line: str = LINE) -> list[mounted_files.Finding]:
    ctx = k.context(objects, logs={("shop", "indexer-1", "indexer", True): line + "\n"})
    return list(mounted_files.analyze(ctx, EvidenceLedger("snapshot")))


def test_a_renamed_secret_key_is_named_with_the_keys_it_has() -> None:
    (finding,) = _run([_pod(), k.secret("indexer-kafka", keys=("api-key", "api-secret"))])
    assert finding.category == Category.ConfigError
    assert finding.resource == ObjectRef("Secret", "shop", "indexer-kafka")
    assert "has no key username (it has api-key, api-secret)" in finding.summary
    assert finding.confidence >= 0.9
    (rec,) = mounted_files.recommend(finding, k.context([]))
    assert rec.title == "Restore key username in Secret shop/indexer-kafka"


def test_a_key_that_is_there_or_a_path_outside_mounts_is_no_finding() -> None:
    assert _run([_pod(), k.secret("indexer-kafka", keys=("username", "password"))]) == []
    other = LINE.replace("/etc/kafka/sasl/username", "/var/run/app/pid")
    assert _run([_pod(), k.secret("indexer-kafka", keys=("api-key",))], other) == []

"""``oncallm snapshot capture``: a cluster written out as a snapshot directory (DESIGN §4.2).

Everything is read through the :class:`~oncallm.sources.base.ClusterSource` protocol, so a
capture sees exactly what triage would see — Secrets with their keys and no values — and
the source's concurrency, rate limit and timeouts apply. The result loads with
:class:`~oncallm.sources.snapshot.SnapshotSource` and answers the same queries:

- ``<namespace>/<plural>.json`` — one ``List`` per namespaced kind of ``kinds.py``;
- ``cluster/<plural>.json`` — Nodes, PersistentVolumes, StorageClasses, Namespaces;
- ``events.json`` — the events of the captured namespaces;
- ``logs/<namespace>/<pod>/<container>[.previous].log`` — bounded logs of unhealthy pods;
- ``snapshot.yaml`` — the cluster's name and the capture time ("now" for ages).

A kind that cannot be read (a CRD that is not installed, RBAC that forbids Secrets) is
skipped and reported; a cluster that cannot be read at all is an error.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

import yaml

from oncallm.config import ClusterSettings
from oncallm.errors import SnapshotError
from oncallm.sources.base import ClusterSource, KubeObject, SourceError, redact_secret
from oncallm.sources.kinds import KINDS, KindInfo
from oncallm.sources.kubernetes import KubernetesSource
from oncallm.sources.snapshot import MANIFEST, SPECIAL_DIRS

__all__ = ["CaptureSummary", "capture_cluster", "capture_snapshot", "unhealthy_containers"]

CLUSTER_KINDS = ("Node", "PersistentVolume", "StorageClass")
LOG_TAIL_LINES = 500
LOG_LIMIT_BYTES = 256 * 1024
# A cluster in a bad way can have thousands of unhealthy pods; the snapshot keeps the logs
# of the first ones (by namespace and name) and says how many it left out.
MAX_LOG_READS = 400


@dataclass
class CaptureSummary:
    """What a capture wrote, and what it had to leave out."""

    directory: Path
    cluster: str | None = None
    objects: int = 0
    events: int = 0
    logs: int = 0
    skipped: list[str] = field(default_factory=list)

    def line(self) -> str:
        name = f" from cluster {self.cluster}" if self.cluster else ""
        skipped = f" ({len(self.skipped)} reads skipped)" if self.skipped else ""
        return (
            f"captured {self.objects} objects, {self.events} events and {self.logs} logs"
            f"{name} into {self.directory}{skipped}"
        )


async def capture_cluster(
    settings: ClusterSettings, output: Path, namespaces: Sequence[str] = ()
) -> CaptureSummary:
    """Capture the live cluster ``settings`` reach (see :func:`capture_snapshot`)."""
    source = KubernetesSource(settings)
    try:
        return await capture_snapshot(source, output, namespaces)
    finally:
        await source.close()


async def capture_snapshot(
    source: ClusterSource, output: Path, namespaces: Sequence[str] = ()
) -> CaptureSummary:
    """Write what ``source`` holds in ``namespaces`` (all when empty) into ``output``,
    which must not exist yet or be empty."""
    _check_empty(output)
    summary = CaptureSummary(directory=output, cluster=source.cluster)
    captured_at = await source.now()
    wanted = list(dict.fromkeys(namespaces))

    namespace_objects = await _namespaces(source, wanted, summary)
    if not wanted:
        wanted = sorted(ns["metadata"]["name"] for ns in namespace_objects)
    everywhere = not namespaces  # one all-namespaces list per kind beats one per namespace

    by_file: dict[Path, list[KubeObject]] = {Path("cluster/namespaces.json"): namespace_objects}
    cluster_reads = [_read(source, KINDS[kind], None, summary) for kind in CLUSTER_KINDS]
    namespaced = [info for info in KINDS.values() if info.namespaced and info.kind != "Event"]
    scopes: list[str | None] = [None] if everywhere else list(wanted)
    namespaced_reads = [_read(source, info, ns, summary) for info in namespaced for ns in scopes]
    event_reads = [_read(source, KINDS["Event"], ns, summary) for ns in scopes]
    results = await asyncio.gather(*cluster_reads, *namespaced_reads, *event_reads)

    keep = set(wanted)
    cluster_results = results[: len(cluster_reads)]
    namespaced_results = results[len(cluster_reads) : len(cluster_reads) + len(namespaced_reads)]
    event_results = results[len(cluster_reads) + len(namespaced_reads) :]
    for kind, objects in zip(CLUSTER_KINDS, cluster_results, strict=True):
        by_file[Path("cluster") / f"{KINDS[kind].plural}.json"] = objects
    for info, objects in zip(
        [i for i in namespaced for _ in scopes], namespaced_results, strict=True
    ):
        for obj in objects:
            namespace = obj["metadata"].get("namespace", "")
            if namespace in keep:
                by_file.setdefault(_folder(namespace) / f"{info.plural}.json", []).append(obj)
    events = [
        e
        for objects in event_results
        for e in objects
        if (e.get("metadata") or {}).get("namespace", "") in keep
    ]

    pods = [obj for path, objs in by_file.items() if path.name == "pods.json" for obj in objs]
    logs = await _logs(source, pods, summary)

    manifest = {
        "cluster": source.cluster or "unnamed",
        "captured_at": captured_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    await asyncio.to_thread(_write, output, by_file, events, logs, manifest)
    summary.objects = sum(len(objects) for objects in by_file.values())
    summary.events = len(events)
    summary.logs = len(logs)
    return summary


async def _namespaces(
    source: ClusterSource, wanted: list[str], summary: CaptureSummary
) -> list[KubeObject]:
    """The Namespace objects to capture; also the first read, so an unreachable cluster
    fails here once rather than once per kind."""
    try:
        found = await source.list_objects("Namespace")
    except SourceError as exc:
        # Namespace-scoped credentials may not list namespaces but can read inside them.
        if wanted and exc.detail.startswith("403"):
            summary.skipped.append(f"Namespaces: {exc.detail}")
            return []
        raise
    names = {ns["metadata"]["name"] for ns in found}
    missing = [n for n in wanted if n not in names]
    if missing:
        raise SnapshotError(f"no namespace {', '.join(map(repr, missing))} in the cluster")
    if wanted:
        found = [ns for ns in found if ns["metadata"]["name"] in wanted]
    return found


async def _read(
    source: ClusterSource, info: KindInfo, namespace: str | None, summary: CaptureSummary
) -> list[KubeObject]:
    try:
        objects = await source.list_objects(info.kind, namespace)
    except SourceError as exc:
        where = f" in {namespace}" if namespace else ""
        summary.skipped.append(f"{info.kind}{where}: {exc.detail}")
        return []
    # The source already empties Secret values; a capture must never depend on that.
    return sorted((redact_secret(o) for o in objects), key=_sort_key)


def _sort_key(obj: KubeObject) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace", "")), str(meta.get("name", "")))


def unhealthy_containers(pod: KubeObject) -> list[tuple[str, bool]]:
    """(container, has a previous instance) for each container of a pod worth reading the
    logs of: the pod is not Ready, or the container restarted or is waiting."""
    status = pod.get("status") or {}
    if status.get("phase") == "Succeeded":
        return []
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    statuses = [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]
    chosen = []
    for s in statuses:
        restarted = int(s.get("restartCount") or 0) > 0
        waiting = "waiting" in (s.get("state") or {})
        if not ready or restarted or waiting:
            previous = restarted or "terminated" in (s.get("lastState") or {})
            chosen.append((str(s["name"]), previous))
    return chosen


@dataclass(frozen=True)
class _LogRead:
    namespace: str
    pod: str
    container: str
    previous: bool

    @property
    def path(self) -> Path:
        suffix = ".previous.log" if self.previous else ".log"
        return Path("logs") / self.namespace / self.pod / f"{self.container}{suffix}"


async def _logs(
    source: ClusterSource, pods: list[KubeObject], summary: CaptureSummary
) -> dict[Path, str]:
    reads: list[_LogRead] = []
    for pod in pods:
        namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        for container, has_previous in unhealthy_containers(pod):
            reads.append(_LogRead(namespace, name, container, previous=False))
            if has_previous:
                reads.append(_LogRead(namespace, name, container, previous=True))

    if len(reads) > MAX_LOG_READS:
        summary.skipped.append(
            f"logs of {len(reads) - MAX_LOG_READS} more unhealthy containers "
            f"(at most {MAX_LOG_READS} log reads per capture)"
        )
        reads = reads[:MAX_LOG_READS]

    async def read(log: _LogRead) -> str | None:
        try:
            return await source.logs(
                log.namespace,
                log.pod,
                log.container,
                previous=log.previous,
                tail_lines=LOG_TAIL_LINES,
                limit_bytes=LOG_LIMIT_BYTES,
            )
        except SourceError as exc:
            which = "previous log" if log.previous else "log"
            summary.skipped.append(
                f"{which} of {log.namespace}/{log.pod}/{log.container}: {exc.detail}"
            )
            return None

    texts = await asyncio.gather(*(read(log) for log in reads))
    return {log.path: text for log, text in zip(reads, texts, strict=True) if text is not None}


def _folder(namespace: str) -> Path:
    # A namespace called "logs" or "metrics" would land in a folder the snapshot reader
    # skips; the objects carry their namespace, so the folder name is only for people.
    return Path(f"namespace-{namespace}" if namespace in SPECIAL_DIRS else namespace)


def _check_empty(output: Path) -> None:
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise SnapshotError(f"{output} exists and is not an empty directory")


def _write(
    output: Path,
    by_file: dict[Path, list[KubeObject]],
    events: list[KubeObject],
    logs: dict[Path, str],
    manifest: dict[str, Any],
) -> None:
    output.mkdir(parents=True, exist_ok=True)
    for path, objects in by_file.items():
        if objects:
            _write_list(output / path, objects)
    if events:
        _write_list(output / "events.json", events)
    for path, text in logs.items():
        (output / path).parent.mkdir(parents=True, exist_ok=True)
        (output / path).write_text(text, encoding="utf-8")
    (output / MANIFEST).write_text(yaml.safe_dump(manifest, sort_keys=False), encoding="utf-8")


def _write_list(path: Path, objects: list[KubeObject]) -> None:
    """A ``List`` as ``kubectl get -o json`` prints one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "apiVersion": "v1",
        "items": objects,
        "kind": "List",
        "metadata": {"resourceVersion": ""},
    }
    path.write_text(json.dumps(document, indent=4, ensure_ascii=False) + "\n", encoding="utf-8")

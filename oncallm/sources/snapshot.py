"""A snapshot directory (DESIGN.md §4.2) answering the same queries as a live cluster.

The directory is read and indexed once — by kind and namespace, by identity, and events
by the object they involve — so each query afterwards is a dictionary lookup and a 20,000
object snapshot answers as fast as a small one. Files are exactly what ``kubectl get -o
json|yaml`` prints; ``events.k8s.io/v1`` events are turned into the ``v1`` shape so
analyzers read one form.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from oncallm.errors import SnapshotError
from oncallm.sources.base import KubeObject, ObjectRef, redact_secret
from oncallm.sources.selectors import (
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)

SPECIAL_DIRS = ("logs", "metrics")
MANIFEST = "snapshot.yaml"
_TIMESTAMP_FIELDS = ("lastTimestamp", "eventTime", "firstTimestamp", "creationTimestamp")

try:  # libyaml is much faster on big snapshots; PyYAML's pure loader is the fallback
    _YamlLoader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _YamlLoader = yaml.SafeLoader


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def event_to_v1(event: Mapping[str, Any]) -> KubeObject:
    """An ``events.k8s.io/v1`` Event in ``v1`` shape (``regarding`` → ``involvedObject``)."""
    if event.get("apiVersion") != "events.k8s.io/v1":
        return dict(event)
    series = event.get("series") or {}
    converted = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": event.get("metadata", {}),
        "involvedObject": event.get("regarding", {}),
        "reason": event.get("reason"),
        "message": event.get("note", ""),
        "type": event.get("type", "Normal"),
        "count": series.get("count", event.get("deprecatedCount") or 1),
        "firstTimestamp": event.get("deprecatedFirstTimestamp") or event.get("eventTime"),
        "lastTimestamp": series.get("lastObservedTime")
        or event.get("deprecatedLastTimestamp")
        or event.get("eventTime"),
        "eventTime": event.get("eventTime"),
        "source": {"component": event.get("reportingController", "")},
    }
    return converted


def involved_ref(event: Mapping[str, Any]) -> ObjectRef | None:
    involved = event.get("involvedObject") or {}
    if not involved.get("kind") or not involved.get("name"):
        return None
    namespace = involved.get("namespace") or None
    return ObjectRef(str(involved["kind"]), namespace, str(involved["name"]))


def _documents(path: Path) -> Iterator[Any]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        yield json.loads(text)
    else:
        yield from yaml.load_all(text, Loader=_YamlLoader)


def _objects(doc: Any, path: Path) -> Iterator[KubeObject]:
    if doc is None:
        return
    if not isinstance(doc, dict) or "kind" not in doc:
        raise SnapshotError(f"{path}: not a Kubernetes object (no 'kind')")
    if doc["kind"] == "List" or (doc["kind"].endswith("List") and "items" in doc):
        for item in doc.get("items") or []:
            yield from _objects(item, path)
        return
    name = (doc.get("metadata") or {}).get("name")
    if not isinstance(name, str) or not name:
        raise SnapshotError(f"{path}: {doc['kind']} without metadata.name")
    if "apiVersion" not in doc:
        raise SnapshotError(f"{path}: {doc['kind']} {name} has no apiVersion")
    yield doc


class SnapshotIndex:
    """Every object of a snapshot directory, indexed for the queries triage makes."""

    def __init__(self, root: Path, *, keep_secret_values: bool = False) -> None:
        """Index ``root``. ``keep_secret_values`` is for the test API fake only, which must
        serve Secrets as an API server does so that the live source's redaction is tested."""
        if not root.is_dir():
            raise SnapshotError(f"snapshot directory {root} does not exist")
        self.root = root
        self._keep_secret_values = keep_secret_values
        self.by_ref: dict[ObjectRef, KubeObject] = {}
        self.by_kind: dict[tuple[str, str | None], list[KubeObject]] = defaultdict(list)
        self.by_kind_all: dict[str, list[KubeObject]] = defaultdict(list)
        self.events: dict[ObjectRef, list[KubeObject]] = defaultdict(list)
        manifest = self._read_manifest()
        self.cluster: str | None = manifest.get("cluster")
        newest: datetime | None = None
        for path in sorted(self._object_files()):
            try:
                docs = list(_documents(path))
            except (json.JSONDecodeError, yaml.YAMLError, UnicodeDecodeError) as exc:
                raise SnapshotError(f"{path}: cannot be parsed: {exc}") from None
            for doc in docs:
                for obj in _objects(doc, path):
                    stamp = self._add(obj)
                    if stamp and (newest is None or stamp > newest):
                        newest = stamp
        captured = parse_time(str(manifest.get("captured_at", "")))
        self.captured_at: datetime = captured or newest or datetime.now(UTC)

    def _read_manifest(self) -> dict[str, Any]:
        path = self.root / MANIFEST
        if not path.exists():
            return {}
        try:
            data = yaml.load(path.read_text(encoding="utf-8"), Loader=_YamlLoader)  # noqa: S506
        except yaml.YAMLError as exc:
            raise SnapshotError(f"{path}: cannot be parsed: {exc}") from None
        if not isinstance(data, dict):
            raise SnapshotError(f"{path}: expected a mapping with cluster and captured_at")
        if "captured_at" in data and not isinstance(data["captured_at"], str):
            data["captured_at"] = (
                data["captured_at"].isoformat()
                if isinstance(data["captured_at"], datetime)
                else str(data["captured_at"])
            )
        return data

    def _object_files(self) -> Iterator[Path]:
        for path in self.root.rglob("*"):
            relative = path.relative_to(self.root)
            if relative.parts[0] in SPECIAL_DIRS or path.name == MANIFEST:
                continue
            if path.suffix in (".json", ".yaml", ".yml") and path.is_file():
                yield path

    def _add(self, obj: KubeObject) -> datetime | None:
        kind = obj["kind"]
        if kind == "Event":
            obj = event_to_v1(obj)
            target = involved_ref(obj)
            if target is not None:
                self.events[target].append(obj)
            stamps = [parse_time(obj.get(f)) for f in _TIMESTAMP_FIELDS]
            return max((s for s in stamps if s), default=None)
        if not self._keep_secret_values:
            obj = redact_secret(obj)
        meta = obj["metadata"]
        namespace = meta.get("namespace") or None
        self.by_ref[ObjectRef(kind, namespace, meta["name"])] = obj
        self.by_kind[(kind, namespace)].append(obj)
        self.by_kind_all[kind].append(obj)
        return parse_time(meta.get("creationTimestamp"))

    def __len__(self) -> int:
        return len(self.by_ref) + sum(len(v) for v in self.events.values())


class SnapshotSource:
    """:class:`~oncallm.sources.base.ClusterSource` over a snapshot directory."""

    def __init__(self, root: Path | str, *, index: SnapshotIndex | None = None) -> None:
        self.index = index or SnapshotIndex(Path(root))

    @property
    def cluster(self) -> str | None:
        return self.index.cluster

    async def now(self) -> datetime:
        return self.index.captured_at

    async def get(self, kind: str, name: str, namespace: str | None = None) -> KubeObject | None:
        return self.index.by_ref.get(ObjectRef(kind, namespace or None, name))

    async def list_objects(
        self,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[KubeObject]:
        if kind == "Event":
            pool = [e for events in self.index.events.values() for e in events]
            if namespace:
                pool = [e for e in pool if (e.get("metadata") or {}).get("namespace") == namespace]
        elif namespace:
            pool = self.index.by_kind.get((kind, namespace), [])
        else:
            pool = self.index.by_kind_all.get(kind, [])
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(field_selector)
        return [
            obj
            for obj in pool
            if labels_match(labels, (obj.get("metadata") or {}).get("labels") or {})
            and fields_match(fields, obj)
        ]

    async def events_for(self, ref: ObjectRef) -> list[KubeObject]:
        return list(self.index.events.get(ref, ()))

    async def logs(
        self,
        namespace: str,
        pod: str,
        container: str,
        *,
        previous: bool = False,
        tail_lines: int = 200,
        limit_bytes: int = 256 * 1024,
    ) -> str | None:
        suffix = ".previous.log" if previous else ".log"
        path = self.index.root / "logs" / namespace / pod / f"{container}{suffix}"
        if not path.is_file():
            return None
        return tail(path.read_bytes(), tail_lines, limit_bytes)

    async def close(self) -> None:
        return None


def tail(data: bytes, tail_lines: int, limit_bytes: int) -> str:
    """The last ``tail_lines`` lines, then at most ``limit_bytes`` from the end."""
    lines = data.decode("utf-8", errors="replace").splitlines(keepends=True)
    text = "".join(lines[-tail_lines:]) if tail_lines >= 0 else "".join(lines)
    encoded = text.encode("utf-8")
    if len(encoded) > limit_bytes:
        text = encoded[-limit_bytes:].decode("utf-8", errors="ignore")
    return text

"""A Kubernetes API server over a snapshot directory, for tests and benchmarks.

A real HTTP server on loopback (stdlib ``ThreadingHTTPServer`` in a background thread, so
sync and async tests start it the same way) speaking the read-only part of the Kubernetes
REST API that OncallM and ``kubectl get/logs`` use: discovery, ``/version``, get, list with
label and field selectors (paged with ``limit``/``continue``), events, and ``pods/log``
with ``container``, ``previous``, ``tailLines`` and ``limitBytes``. Answers are shaped as
the real API server's: list items without ``apiVersion``/``kind``, ``Status`` bodies with
the real messages for errors, a minimal ``Table`` when kubectl asks for one. Writes are
refused with 405: OncallM never writes.

Tests steer it with fault injection (``fail``, ``slow``), an added per-request
``latency`` (the gather benchmark uses 20 ms), and read what it served from ``requests``::

    with KubeApiFake(SMALL) as api:
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
        api.fail(r"/secrets", status=403)
        ...
        assert api.count(r"/events\\?") == 1
"""

from __future__ import annotations

import atexit
import base64
import functools
import json
import re
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import yaml

from oncallm.errors import BadRequest
from oncallm.sources.base import KubeObject, ObjectRef
from oncallm.sources.kinds import KINDS, KindInfo
from oncallm.sources.selectors import (
    FieldRequirement,
    field_text,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)
from oncallm.sources.snapshot import SnapshotIndex, parse_time

DEFAULT_TOKEN = "oncallm-test-token"
DEFAULT_USER = "system:serviceaccount:oncallm:oncallm"
SERVER_VERSION = {
    "major": "1",
    "minor": "30",
    "gitVersion": "v1.30.2",
    "gitCommit": "39683505b630ff2121012f3c5b16215a1449d5ed",
    "gitTreeState": "clean",
    "buildDate": "2024-06-11T20:21:00Z",
    "goVersion": "go1.22.4",
    "compiler": "gc",
    "platform": "linux/amd64",
}

JSON = "application/json"
TEXT = "text/plain"

SHORT_NAMES: dict[str, list[str]] = {
    "pods": ["po"],
    "services": ["svc"],
    "endpoints": ["ep"],
    "nodes": ["no"],
    "namespaces": ["ns"],
    "configmaps": ["cm"],
    "serviceaccounts": ["sa"],
    "persistentvolumeclaims": ["pvc"],
    "persistentvolumes": ["pv"],
    "resourcequotas": ["quota"],
    "limitranges": ["limits"],
    "events": ["ev"],
    "deployments": ["deploy"],
    "replicasets": ["rs"],
    "statefulsets": ["sts"],
    "daemonsets": ["ds"],
    "cronjobs": ["cj"],
    "horizontalpodautoscalers": ["hpa"],
    "networkpolicies": ["netpol"],
    "ingresses": ["ing"],
    "storageclasses": ["sc"],
    "certificates": ["cert", "certs"],
}
CATEGORY_ALL = {
    "pods",
    "services",
    "deployments",
    "replicasets",
    "statefulsets",
    "daemonsets",
    "jobs",
    "cronjobs",
    "horizontalpodautoscalers",
}

# Field selectors the real API server accepts per kind (its GetAttrs functions), beside
# metadata.name and metadata.namespace; anything else is refused with 400, so a client
# that relies on an unsupported field selector fails here as it would on a cluster.
SELECTABLE_FIELDS: dict[str, tuple[str, ...]] = {
    "Pod": (
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ),
    "Event": (
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ),
    "Node": ("spec.unschedulable",),
    "Secret": ("type",),
    "Namespace": ("status.phase",),
    "ReplicaSet": ("status.replicas",),
    "Job": ("status.successful",),
}
# Fields the API server derives rather than reads (a missing boolean is "false").
_DERIVED_FIELDS: dict[tuple[str, str], Any] = {
    ("Pod", "spec.hostNetwork"): lambda o: bool((o.get("spec") or {}).get("hostNetwork")),
    ("Node", "spec.unschedulable"): lambda o: bool((o.get("spec") or {}).get("unschedulable")),
    ("Event", "source"): lambda o: (o.get("source") or {}).get("component", ""),
}


@dataclass(frozen=True)
class ServedRequest:
    """One request the fake answered, as a test inspects it."""

    method: str
    path: str
    params: dict[str, str]
    status: int
    accept: str

    @property
    def target(self) -> str:
        query = "&".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.path}?{query}" if query else self.path


@dataclass
class _Fault:
    pattern: re.Pattern[str]
    status: int | None  # None: only a delay
    delay: float
    times: int | None  # None: for ever


@dataclass(frozen=True)
class _Target:
    """A parsed resource URL: which kind, where, and which sub-resource."""

    info: KindInfo
    namespace: str | None
    name: str | None
    subresource: str | None

    @property
    def verb(self) -> str:
        return "get" if self.name else "list"

    @property
    def resource(self) -> str:
        return f"{self.info.plural}/{self.subresource}" if self.subresource else self.info.plural


@dataclass
class _Response:
    status: int
    body: bytes
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)


def _json(status: int, payload: Any) -> _Response:
    return _Response(status, json.dumps(payload, separators=(",", ":")).encode())


def status_object(
    code: int, reason: str, message: str, details: Mapping[str, Any] | None = None
) -> _Response:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = dict(details)
    return _json(code, body)


def _short_age(seconds: float) -> str:
    """kubectl's short human duration ("42s", "5m", "3h", "12d", "2y")."""
    s = max(int(seconds), 0)
    if s < 120:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 48 * 3600:
        return f"{s // 3600}h"
    if s < 365 * 86400:
        return f"{s // 86400}d"
    return f"{s // (365 * 86400)}y"


class KubeApi:
    """The API's answers over one snapshot, independent of HTTP (thread-safe: read-only)."""

    def __init__(self, snapshot_dir: Path, *, user: str = DEFAULT_USER) -> None:
        self.index = SnapshotIndex(Path(snapshot_dir), keep_secret_values=True)
        self.user = user
        self.now: datetime = self.index.captured_at
        self._kinds = {(i.group, i.version, i.plural): i for i in KINDS.values()}
        self._events_by_ns: dict[str, list[KubeObject]] = defaultdict(list)
        self._events_all: list[KubeObject] = []
        # Events by involved (kind, name): a real API server answers field-selected event
        # lists from its watch cache in microseconds; a linear scan in Python would make the
        # fake, not the client, the cost that grows with the cluster in the gather benchmark.
        self._events_by_involved: dict[tuple[str, str], list[KubeObject]] = defaultdict(list)
        for ref, events in self.index.events.items():
            self._events_by_involved[(ref.kind, ref.name)].extend(events)
            for event in events:
                self._events_all.append(event)
                namespace = (event.get("metadata") or {}).get("namespace") or ""
                self._events_by_ns[namespace].append(event)
        versions = [
            int(rv)
            for obj in [*self.index.by_ref.values(), *self._events_all]
            if str(rv := (obj.get("metadata") or {}).get("resourceVersion", "")).isdigit()
        ]
        self.resource_version = str(max(versions, default=1))

    # --- routing -----------------------------------------------------------------------

    def handle(self, path: str, params: Mapping[str, str], accept: str) -> _Response:
        if path == "/version":
            return _json(200, SERVER_VERSION)
        if path in ("/api", "/api/"):
            return _json(
                200,
                {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [
                        {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}
                    ],
                },
            )
        if path in ("/apis", "/apis/"):
            return _json(200, self._group_list())
        discovery = self._discovery(path)
        if discovery is not None:
            return discovery
        target = self.parse(path)
        if target is None:
            return self.not_found_path()
        if target.subresource == "log" and target.info.kind == "Pod" and target.name:
            return self._pod_log(target.namespace or "", target.name, params)
        if target.subresource is not None:
            return self.not_found_path()
        if target.name is not None:
            return self._get(target, accept, params)
        return self._list(target, params, accept)

    def parse(self, path: str) -> _Target | None:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if len(parts) >= 2 and parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        namespace: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            return None
        info = self._kinds.get((group, version, rest[0]))
        name = rest[1] if len(rest) > 1 else None
        if info is None or (namespace is not None and not info.namespaced):
            return None
        if info.namespaced and namespace is None and name is not None:
            return None  # a namespaced object is only reachable inside its namespace
        sub = rest[2] if len(rest) > 2 else None
        return _Target(info, namespace, name, sub)

    # --- discovery ---------------------------------------------------------------------

    def _group_versions(self) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for info in KINDS.values():
            if info.group and info.version not in groups.setdefault(info.group, []):
                groups[info.group].append(info.version)
        return groups

    def _api_group(self, group: str, versions: list[str]) -> dict[str, Any]:
        entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"name": group, "versions": entries, "preferredVersion": entries[0]}

    def _group_list(self) -> dict[str, Any]:
        groups = [self._api_group(g, vs) for g, vs in sorted(self._group_versions().items())]
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def _discovery(self, path: str) -> _Response | None:
        parts = path.strip("/").split("/")
        if parts[0] == "api" and len(parts) == 2:
            return self._resource_list("", parts[1])
        if parts[0] == "apis" and len(parts) == 2:
            versions = self._group_versions().get(parts[1])
            if versions is None:
                return self.not_found_path()
            return _json(
                200, {"kind": "APIGroup", "apiVersion": "v1", **self._api_group(parts[1], versions)}
            )
        if parts[0] == "apis" and len(parts) == 3:
            return self._resource_list(parts[1], parts[2])
        return None

    def _resource_list(self, group: str, version: str) -> _Response:
        resources: list[dict[str, Any]] = []
        for info in KINDS.values():
            if info.group != group or info.version != version:
                continue
            entry: dict[str, Any] = {
                "name": info.plural,
                "singularName": info.kind.lower(),
                "namespaced": info.namespaced,
                "kind": info.kind,
                "verbs": ["get", "list"],
            }
            if info.plural in SHORT_NAMES:
                entry["shortNames"] = SHORT_NAMES[info.plural]
            if info.plural in CATEGORY_ALL:
                entry["categories"] = ["all"]
            resources.append(entry)
            if info.kind == "Pod":
                resources.append(
                    {
                        "name": "pods/log",
                        "singularName": "",
                        "namespaced": True,
                        "kind": "Pod",
                        "verbs": ["get"],
                    }
                )
        if not resources:
            return self.not_found_path()
        group_version = f"{group}/{version}" if group else version
        return _json(
            200,
            {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": group_version,
                "resources": resources,
            },
        )

    # --- objects -----------------------------------------------------------------------

    def _get(self, target: _Target, accept: str, params: Mapping[str, str]) -> _Response:
        assert target.name is not None
        obj = self.index.by_ref.get(ObjectRef(target.info.kind, target.namespace, target.name))
        if obj is None:
            return self.not_found(target)
        if "as=Table" in accept:
            return _json(200, self._table(target.info, [obj], params))
        return _json(200, obj)

    def _pool(self, target: _Target) -> list[KubeObject]:
        kind = target.info.kind
        if kind == "Event":
            return (
                self._events_by_ns.get(target.namespace or "", [])
                if target.namespace
                else self._events_all
            )
        if target.namespace:
            return self.index.by_kind.get((kind, target.namespace), [])
        return self.index.by_kind_all.get(kind, [])

    def _list(self, target: _Target, params: Mapping[str, str], accept: str) -> _Response:
        if params.get("watch") in ("true", "1"):
            return status_object(405, "MethodNotAllowed", "this fake does not serve watches")
        try:
            labels = parse_label_selector(params.get("labelSelector"))
            fields = parse_field_selector(params.get("fieldSelector"))
        except BadRequest as exc:
            return status_object(400, "BadRequest", f"unable to parse requirement: {exc.detail}")
        refused = self._unsupported_field(target.info.kind, fields)
        if refused is not None:
            return refused
        pool = self._pool(target)
        if target.info.kind == "Event":
            wanted = {".".join(r.path): r.value for r in fields if r.equal}
            if "involvedObject.kind" in wanted and "involvedObject.name" in wanted:
                pool = self._events_by_involved.get(
                    (wanted["involvedObject.kind"], wanted["involvedObject.name"]), []
                )
                if target.namespace:
                    pool = [
                        e
                        for e in pool
                        if (e.get("metadata") or {}).get("namespace") == target.namespace
                    ]
        items = [
            obj
            for obj in pool
            if labels_match(labels, (obj.get("metadata") or {}).get("labels") or {})
            and all(self._field_matches(target.info.kind, req, obj) for req in fields)
        ]
        meta: dict[str, Any] = {"resourceVersion": self.resource_version}
        offset = _decode_continue(params.get("continue"))
        if offset is None:
            return status_object(400, "BadRequest", "continue key is not valid")
        limit = int(params["limit"]) if params.get("limit", "").isdigit() else 0
        if limit > 0 and offset + limit < len(items):
            meta["continue"] = _encode_continue(offset + limit)
            meta["remainingItemCount"] = len(items) - offset - limit
            page = items[offset : offset + limit]
        else:
            page = items[offset:]
        if "as=Table" in accept:
            table = self._table(target.info, page, params)
            table["metadata"] = meta
            return _json(200, table)
        return _json(
            200,
            {
                "kind": f"{target.info.kind}List",
                "apiVersion": target.info.api_version,
                "metadata": meta,
                # The real server omits apiVersion and kind on list items.
                "items": [
                    {k: v for k, v in o.items() if k not in ("apiVersion", "kind")} for o in page
                ],
            },
        )

    def _unsupported_field(
        self, kind: str, fields: tuple[FieldRequirement, ...]
    ) -> _Response | None:
        allowed = ("metadata.name", "metadata.namespace", *SELECTABLE_FIELDS.get(kind, ()))
        for req in fields:
            label = ".".join(req.path)
            if label not in allowed:
                known = ", ".join(f'"{a}"' for a in allowed)
                return status_object(
                    400, "BadRequest", f'"{label}" is not a known field selector: only {known}'
                )
        return None

    def _field_matches(self, kind: str, req: FieldRequirement, obj: KubeObject) -> bool:
        derive = _DERIVED_FIELDS.get((kind, ".".join(req.path)))
        if derive is None:
            return req.matches(obj)
        return (field_text(derive(obj)) == req.value) == req.equal

    # --- tables (kubectl get without -o) -------------------------------------------------

    def _table(
        self, info: KindInfo, objects: list[KubeObject], params: Mapping[str, str]
    ) -> dict[str, Any]:
        include = params.get("includeObject", "Metadata")
        if info.kind == "Pod":
            columns = [
                ("Name", "string", "name", 0),
                ("Ready", "string", "", 0),
                ("Status", "string", "", 0),
                ("Restarts", "string", "", 0),
                ("Age", "string", "", 0),
                ("IP", "string", "", 1),
                ("Node", "string", "", 1),
            ]
        elif info.kind == "Event":
            columns = [
                ("Last Seen", "string", "", 0),
                ("Type", "string", "", 0),
                ("Reason", "string", "", 0),
                ("Object", "string", "", 0),
                ("Message", "string", "", 0),
            ]
        else:
            columns = [("Name", "string", "name", 0), ("Age", "string", "", 0)]
        rows = []
        for obj in objects:
            row: dict[str, Any] = {"cells": self._cells(info, obj)}
            if include == "Object":
                row["object"] = obj
            elif include != "None":
                row["object"] = {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": obj.get("metadata", {}),
                }
            rows.append(row)
        return {
            "kind": "Table",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": self.resource_version},
            "columnDefinitions": [
                {"name": n, "type": t, "format": f, "description": n, "priority": p}
                for n, t, f, p in columns
            ],
            "rows": rows,
        }

    def _age(self, stamp: Any) -> str:
        when = parse_time(stamp)
        return _short_age((self.now - when).total_seconds()) if when else "<unknown>"

    def _cells(self, info: KindInfo, obj: KubeObject) -> list[Any]:
        meta = obj.get("metadata") or {}
        if info.kind == "Event":
            involved = obj.get("involvedObject") or {}
            last = obj.get("lastTimestamp") or obj.get("eventTime")
            return [
                self._age(last),
                obj.get("type", ""),
                obj.get("reason", ""),
                f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}",
                obj.get("message", ""),
            ]
        if info.kind != "Pod":
            return [meta.get("name", ""), self._age(meta.get("creationTimestamp"))]
        status = obj.get("status") or {}
        statuses = status.get("containerStatuses") or []
        containers = (obj.get("spec") or {}).get("containers") or []
        ready = sum(1 for s in statuses if s.get("ready"))
        phase = status.get("reason") or status.get("phase") or "Unknown"
        for s in statuses:
            state = s.get("state") or {}
            if state.get("waiting", {}).get("reason"):
                phase = state["waiting"]["reason"]
            elif state.get("terminated", {}).get("reason"):
                phase = state["terminated"]["reason"]
        if meta.get("deletionTimestamp"):
            phase = "Terminating"
        return [
            meta.get("name", ""),
            f"{ready}/{len(containers)}",
            phase,
            str(sum(int(s.get("restartCount", 0)) for s in statuses)),
            self._age(meta.get("creationTimestamp")),
            status.get("podIP", "<none>"),
            (obj.get("spec") or {}).get("nodeName", "<none>"),
        ]

    # --- logs --------------------------------------------------------------------------

    def _pod_log(self, namespace: str, name: str, params: Mapping[str, str]) -> _Response:
        pod = self.index.by_ref.get(ObjectRef("Pod", namespace, name))
        if pod is None:
            return status_object(
                404, "NotFound", f'pods "{name}" not found', {"name": name, "kind": "pods"}
            )
        spec = pod.get("spec") or {}
        containers = [c["name"] for c in spec.get("containers") or []]
        init = [c["name"] for c in spec.get("initContainers") or []]
        container = params.get("container")
        if not container:
            if len(containers) != 1:
                choice = (
                    f"a container name must be specified for pod {name}, "
                    f"choose one of: [{' '.join(containers)}]"
                )
                if init:
                    choice += f" or one of the init containers: [{' '.join(init)}]"
                return status_object(400, "BadRequest", choice)
            container = containers[0]
        elif container not in containers + init:
            return status_object(
                400, "BadRequest", f"container {container} is not valid for pod {name}"
            )
        try:
            tail = int(params["tailLines"]) if "tailLines" in params else None
            limit = int(params["limitBytes"]) if "limitBytes" in params else None
        except ValueError:
            return status_object(400, "BadRequest", "tailLines and limitBytes must be integers")
        if (tail is not None and tail < 0) or (limit is not None and limit < 1):
            return status_object(400, "BadRequest", "tailLines must be >= 0 and limitBytes >= 1")
        previous = params.get("previous") in ("true", "1")
        folder = self.index.root / "logs" / namespace / name
        path = folder / (f"{container}.previous.log" if previous else f"{container}.log")
        if path.is_file():
            data = path.read_bytes()
        elif previous:
            return status_object(
                400,
                "BadRequest",
                f'previous terminated container "{container}" in pod "{name}" not found',
            )
        else:
            waiting = self._waiting_reason(pod, container)
            if waiting is not None:
                return status_object(
                    400,
                    "BadRequest",
                    f'container "{container}" in pod "{name}" is waiting to start: {waiting}',
                )
            data = b""
        # The kubelet seeks to the start of the last tailLines lines, then stops after
        # limitBytes: the limit cuts the end, not the beginning.
        if tail is not None:
            lines = data.splitlines(keepends=True)
            data = b"".join(lines[-tail:]) if tail else b""
        if limit is not None:
            data = data[:limit]
        return _Response(200, data, TEXT)

    @staticmethod
    def _waiting_reason(pod: KubeObject, container: str) -> str | None:
        status = pod.get("status") or {}
        for s in [
            *(status.get("initContainerStatuses") or []),
            *(status.get("containerStatuses") or []),
        ]:
            if s.get("name") != container:
                continue
            waiting = (s.get("state") or {}).get("waiting")
            if waiting and not (s.get("lastState") or {}).get("terminated"):
                return str(waiting.get("reason") or "ContainerCreating")
        return None

    # --- errors ------------------------------------------------------------------------

    def not_found_path(self) -> _Response:
        return status_object(
            404,
            "NotFound",
            "the server could not find the requested resource",
            {"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]},
        )

    def not_found(self, target: _Target) -> _Response:
        if target.name is None:
            return self.not_found_path()
        return status_object(
            404,
            "NotFound",
            f'{target.info.plural}.{target.info.group} "{target.name}" not found'
            if target.info.group
            else f'{target.info.plural} "{target.name}" not found',
            {"name": target.name, "group": target.info.group, "kind": target.info.plural},
        )

    def forbidden(self, path: str, target: _Target | None) -> _Response:
        if target is None:
            return status_object(
                403, "Forbidden", f'forbidden: User "{self.user}" cannot get path "{path}"'
            )
        subject = f'{target.info.plural} "{target.name}"' if target.name else target.info.plural
        where = (
            f'in the namespace "{target.namespace}"' if target.namespace else "at the cluster scope"
        )
        message = (
            f'{subject} is forbidden: User "{self.user}" cannot {target.verb} resource '
            f'"{target.resource}" in API group "{target.info.group}" {where}'
        )
        details: dict[str, Any] = {"kind": target.info.plural}
        if target.name:
            details["name"] = target.name
        return status_object(403, "Forbidden", message, details)

    def injected(self, status: int, path: str, target: _Target | None) -> _Response:
        if status == 403:
            return self.forbidden(path, target)
        if status == 404:
            return self.not_found(target) if target else self.not_found_path()
        if status == 401:
            return status_object(401, "Unauthorized", "Unauthorized")
        if status == 429:
            return status_object(
                429, "TooManyRequests", "Too many requests, please try again later."
            )
        if status == 503:
            return status_object(
                503, "ServiceUnavailable", "the server is currently unable to handle the request"
            )
        return status_object(
            status,
            "InternalError",
            "Internal error occurred: injected fault",
            {"causes": [{"message": "injected fault"}]},
        )


def _encode_continue(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def _decode_continue(token: str | None) -> int | None:
    """The offset a continue token stands for; 0 without one, None when it is not ours."""
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
    except (ValueError, KeyError, TypeError):
        return None
    return offset if isinstance(offset, int) and offset >= 0 else None


@dataclass(frozen=True)
class _Certificate:
    cert: Path
    key: Path

    @property
    def ca_data(self) -> str:
        return base64.b64encode(self.cert.read_bytes()).decode()


@functools.cache
def _certificate() -> _Certificate:
    """A self-signed certificate for 127.0.0.1, made once per process: client-go sends a
    bearer token only over TLS, so the fake speaks HTTPS as a real API server does."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("openssl not found: install the Debian package openssl")
    folder = Path(tempfile.mkdtemp(prefix="kube-api-fake-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    cert, key = folder / "tls.crt", folder / "tls.key"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "3650",
            "-subj",
            "/CN=kube-api-fake",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return _Certificate(cert, key)


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    fake: KubeApiFake
    tls: ssl.SSLContext | None = None

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake runs here, in the connection's own thread, so a slow or broken
        # client never holds up accepting the others.
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(_Handler.timeout)
        try:
            secure = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            super().finish_request(secure, client_address)
        finally:
            secure.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out and hung up is expected in fault tests; stay quiet.
        return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HttpServer
    # Idle keep-alive connections are closed after this, so handler threads end.
    timeout = 30
    # Headers and body go out in separate writes; with Nagle's algorithm on, each response
    # would wait for the client's delayed ACK (~40 ms), as no real API server does.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        response = self.server.fake.respond(self.command, self.path, self.headers)
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            self.send_header("Cache-Control", "no-cache, private")
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        return None


class KubeApiFake:
    """The fake API server. Use as a context manager (sync or async); ``url`` is its base.

    ``latency`` seconds are added to every request. ``token`` is the bearer token clients
    must send (None accepts any request); ``user`` names the identity in RBAC messages.
    ``tls`` serves HTTPS with a self-signed certificate (its CA goes into the kubeconfig).
    """

    def __init__(
        self,
        snapshot_dir: Path | str,
        *,
        latency: float = 0.0,
        token: str | None = DEFAULT_TOKEN,
        user: str = DEFAULT_USER,
        tls: bool = True,
    ) -> None:
        self.api = KubeApi(Path(snapshot_dir), user=user)
        self.latency = latency
        self.token = token
        self.certificate = _certificate() if tls else None
        self.requests: list[ServedRequest] = []
        self.in_flight = 0
        self.peak_in_flight = 0  # most requests being answered at once, for limit tests
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._server: _HttpServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> KubeApiFake:
        server = _HttpServer(("127.0.0.1", 0), _Handler)
        server.fake = self
        if self.certificate is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.certificate.cert, self.certificate.key)
            context.set_alpn_protocols(["http/1.1"])
            server.tls = context
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> KubeApiFake:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> KubeApiFake:
        return self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake API server is not running")
        scheme = "https" if self.certificate else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    # --- steering ----------------------------------------------------------------------

    def fail(self, path_regex: str, status: int = 403, times: int | None = None) -> None:
        """Answer requests whose target (``/path?query``, decoded) matches with ``status``
        and the real API's ``Status`` body for it; ``times`` None means every time."""
        with self._lock:
            self._faults.append(_Fault(re.compile(path_regex), status, 0.0, times))

    def slow(self, path_regex: str, seconds: float, times: int | None = None) -> None:
        """Delay matching requests by ``seconds`` before they are answered."""
        with self._lock:
            self._faults.append(_Fault(re.compile(path_regex), None, seconds, times))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def count(self, path_regex: str) -> int:
        """How many served requests' targets match ``path_regex``."""
        pattern = re.compile(path_regex)
        with self._lock:
            return sum(1 for r in self.requests if pattern.search(r.target))

    def write_kubeconfig(
        self, path: Path, *, context: str = "fake", namespace: str | None = None
    ) -> Path:
        """A kubeconfig with one context reaching this server; returns ``path``."""
        return write_kubeconfig(path, {context: self}, namespace=namespace)

    # --- serving -----------------------------------------------------------------------

    def _matching_faults(self, target: str) -> tuple[float, int | None]:
        delay, status = self.latency, None
        with self._lock:
            for fault in self._faults:
                if fault.times == 0 or not fault.pattern.search(target):
                    continue
                if fault.status is None:
                    delay += fault.delay
                elif status is None:
                    status = fault.status
                else:
                    continue
                if fault.times is not None:
                    fault.times -= 1
        return delay, status

    def respond(self, method: str, raw_target: str, headers: Mapping[str, str]) -> _Response:
        split = urlsplit(raw_target)
        path = unquote(split.path)
        params = dict(parse_qsl(split.query, keep_blank_values=True))
        accept = headers.get("Accept") or ""
        query = "&".join(f"{k}={v}" for k, v in params.items())
        with self._lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            delay, injected = self._matching_faults(f"{path}?{query}" if query else path)
            if delay > 0:
                time.sleep(delay)
            response = self._answer(method, path, params, accept, headers, injected)
        finally:
            with self._lock:
                self.in_flight -= 1
        with self._lock:
            self.requests.append(ServedRequest(method, path, params, response.status, accept))
        return response

    def _answer(
        self,
        method: str,
        path: str,
        params: Mapping[str, str],
        accept: str,
        headers: Mapping[str, str],
        injected: int | None,
    ) -> _Response:
        if self.token is not None and headers.get("Authorization") != f"Bearer {self.token}":
            return status_object(401, "Unauthorized", "Unauthorized")
        if injected is not None:
            return self.api.injected(injected, path, self.api.parse(path))
        if method not in ("GET", "HEAD"):
            return status_object(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )
        return self.api.handle(path, params, accept)


def write_kubeconfig(
    path: Path,
    contexts: Mapping[str, KubeApiFake],
    *,
    current: str | None = None,
    namespace: str | None = None,
) -> Path:
    """A kubeconfig with one context (cluster and user of the same name) per fake server."""
    config: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [],
        "users": [],
        "contexts": [],
        "current-context": current or next(iter(contexts)),
        "preferences": {},
    }
    for name, fake in contexts.items():
        cluster: dict[str, Any] = {"server": fake.url}
        if fake.certificate is not None:
            cluster["certificate-authority-data"] = fake.certificate.ca_data
        config["clusters"].append({"name": name, "cluster": cluster})
        config["users"].append({"name": name, "user": {"token": fake.token or "unused"}})
        context: dict[str, Any] = {"cluster": name, "user": name}
        if namespace:
            context["namespace"] = namespace
        config["contexts"].append({"name": name, "context": context})
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path

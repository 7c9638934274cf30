"""Pure readers of Kubernetes objects as ``kubectl -o json`` prints them.

Analyzers and the gatherer ask the same questions of raw objects (is this pod ready, who
owns it, which ConfigMaps does it read, what is its memory limit); answering them in one
place keeps the rules — and the corner cases k8sgpt got wrong — consistent.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from oncallm.sources.base import KubeObject, ObjectRef

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicaSet")

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL: dict[str, Decimal] = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$")


def meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def name(obj: Mapping[str, Any]) -> str:
    return str(meta(obj).get("name", ""))


def namespace(obj: Mapping[str, Any]) -> str | None:
    return meta(obj).get("namespace") or None


def labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return meta(obj).get("labels") or {}


def ref(obj: Mapping[str, Any]) -> ObjectRef:
    return ObjectRef(str(obj.get("kind", "")), namespace(obj), name(obj))


def parse_quantity(value: Any) -> Decimal | None:
    """``"512Mi"`` -> 536870912, ``"250m"`` -> 0.25; None when unparseable."""
    if value is None:
        return None
    match = _QUANTITY.match(str(value).strip())
    if not match:
        return None
    try:
        number = Decimal(match.group(1))
    except InvalidOperation:
        return None
    suffix = match.group(2)
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * _DECIMAL[suffix]
    return number if suffix == "" else None


def condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def condition_is(obj: Mapping[str, Any], kind: str, status: str) -> bool:
    cond = condition(obj, kind)
    return cond is not None and cond.get("status") == status


def controller_of(obj: Mapping[str, Any]) -> ObjectRef | None:
    """The owner with ``controller: true`` (or the only owner), in the object's namespace."""
    owners = meta(obj).get("ownerReferences") or []
    chosen = next((o for o in owners if o.get("controller")), owners[0] if owners else None)
    if not chosen:
        return None
    return ObjectRef(str(chosen.get("kind")), namespace(obj), str(chosen.get("name")))


# --- pods ---------------------------------------------------------------------------------


def pod_phase(pod: Mapping[str, Any]) -> str:
    return str((pod.get("status") or {}).get("phase", "Unknown"))


def pod_ready(pod: Mapping[str, Any]) -> bool:
    return condition_is(pod, "Ready", "True")


def pod_finished(pod: Mapping[str, Any]) -> bool:
    """Succeeded pods (finished Jobs) are not broken, whatever their containers say."""
    return pod_phase(pod) == "Succeeded"


@dataclass(frozen=True)
class ContainerState:
    """One container's status, with the spec that runs it."""

    name: str
    init: bool
    spec: Mapping[str, Any]
    status: Mapping[str, Any]

    @property
    def restarts(self) -> int:
        return int(self.status.get("restartCount") or 0)

    @property
    def ready(self) -> bool:
        return bool(self.status.get("ready"))

    @property
    def waiting(self) -> Mapping[str, Any] | None:
        return (self.status.get("state") or {}).get("waiting")

    @property
    def running(self) -> Mapping[str, Any] | None:
        return (self.status.get("state") or {}).get("running")

    @property
    def terminated(self) -> Mapping[str, Any] | None:
        return (self.status.get("state") or {}).get("terminated")

    @property
    def last_terminated(self) -> Mapping[str, Any] | None:
        return (self.status.get("lastState") or {}).get("terminated")

    @property
    def waiting_reason(self) -> str | None:
        waiting = self.waiting
        return str(waiting.get("reason")) if waiting and waiting.get("reason") else None

    def limit(self, resource: str) -> str | None:
        value = ((self.spec.get("resources") or {}).get("limits") or {}).get(resource)
        return str(value) if value is not None else None

    def request(self, resource: str) -> str | None:
        value = ((self.spec.get("resources") or {}).get("requests") or {}).get(resource)
        return str(value) if value is not None else None


def containers(pod: Mapping[str, Any], *, include_init: bool = True) -> list[ContainerState]:
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    result: list[ContainerState] = []
    groups = [("initContainers", "initContainerStatuses", True)] if include_init else []
    groups.append(("containers", "containerStatuses", False))
    for spec_key, status_key, init in groups:
        statuses = {s.get("name"): s for s in status.get(status_key) or []}
        for container in spec.get(spec_key) or []:
            cname = str(container.get("name", ""))
            result.append(ContainerState(cname, init, container, statuses.get(cname) or {}))
    return result


def container(pod: Mapping[str, Any], cname: str) -> ContainerState | None:
    return next((c for c in containers(pod) if c.name == cname), None)


def pod_unhealthy(pod: Mapping[str, Any]) -> bool:
    if pod_finished(pod):
        return False
    if pod_phase(pod) in ("Pending", "Failed", "Unknown") or not pod_ready(pod):
        return True
    return any(c.restarts > 0 or c.waiting for c in containers(pod))


@dataclass(frozen=True)
class ConfigReference:
    """A ConfigMap or Secret a pod reads, and how (``env DATABASE_URL``, ``volume config``)."""

    kind: str  # ConfigMap | Secret
    name: str
    key: str | None  # a single key (env valueFrom, volume items), None for the whole object
    optional: bool
    via: str
    container: str | None


def config_references(pod_spec: Mapping[str, Any]) -> Iterator[ConfigReference]:
    for group in ("initContainers", "containers"):
        for ctr in pod_spec.get(group) or []:
            cname = ctr.get("name")
            for env in ctr.get("env") or []:
                source = env.get("valueFrom") or {}
                for field, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                    key_ref = source.get(field)
                    if key_ref:
                        yield ConfigReference(
                            kind,
                            str(key_ref.get("name", "")),
                            key_ref.get("key"),
                            bool(key_ref.get("optional")),
                            f"env {env.get('name')}",
                            cname,
                        )
            for env_from in ctr.get("envFrom") or []:
                for field, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                    whole = env_from.get(field)
                    if whole:
                        yield ConfigReference(
                            kind,
                            str(whole.get("name", "")),
                            None,
                            bool(whole.get("optional")),
                            "envFrom",
                            cname,
                        )
    for volume in pod_spec.get("volumes") or []:
        if str(volume.get("name", "")).startswith("kube-api-access-"):
            # Injected by the API server for the service account token; its ConfigMap
            # (kube-root-ca.crt) is published by the control plane in every namespace.
            continue
        sources = [volume]
        sources += (volume.get("projected") or {}).get("sources") or []
        for source in sources:
            for field, kind, name_key in (
                ("configMap", "ConfigMap", "name"),
                ("secret", "Secret", "secretName"),
            ):
                vol = source.get(field)
                if not vol:
                    continue
                ref_name = vol.get(name_key) or vol.get("name")
                items = vol.get("items") or []
                optional = bool(vol.get("optional"))
                via = f"volume {volume.get('name')}"
                if items:
                    for item in items:
                        yield ConfigReference(
                            kind, str(ref_name), item.get("key"), optional, via, None
                        )
                else:
                    yield ConfigReference(kind, str(ref_name), None, optional, via, None)
    for secret in pod_spec.get("imagePullSecrets") or []:
        yield ConfigReference(
            "Secret", str(secret.get("name")), None, False, "imagePullSecrets", None
        )


def pvc_names(pod_spec: Mapping[str, Any]) -> list[str]:
    return [
        str(v["persistentVolumeClaim"]["claimName"])
        for v in pod_spec.get("volumes") or []
        if (v.get("persistentVolumeClaim") or {}).get("claimName")
    ]


def object_keys(obj: Mapping[str, Any]) -> set[str]:
    """Key names of a ConfigMap or Secret (values are never needed)."""
    keys: set[str] = set()
    for field in ("data", "binaryData", "stringData"):
        keys.update((obj.get(field) or {}).keys())
    return keys


def env_values(pod_spec: Mapping[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(container, env name, literal value) for env vars set inline."""
    for group in ("initContainers", "containers"):
        for ctr in pod_spec.get(group) or []:
            for env in ctr.get("env") or []:
                if isinstance(env.get("value"), str):
                    yield str(ctr.get("name")), str(env.get("name")), env["value"]


def selects(selector: Mapping[str, str] | None, pod_labels: Mapping[str, str]) -> bool:
    """A Service-style equality selector; an empty or missing one selects nothing."""
    if not selector:
        return False
    return all(pod_labels.get(k) == v for k, v in selector.items())


def format_bytes(value: Decimal | int | None) -> str:
    if value is None:
        return "?"
    number = Decimal(value)
    for unit, size in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if number >= size:
            scaled = number / size
            text = f"{scaled:.1f}".rstrip("0").rstrip(".")
            return f"{text}{unit}"
    return f"{int(number)}B"


def ingress_backends(ingress: KubeObject) -> set[str]:
    spec = ingress.get("spec") or {}
    backends = [spec.get("defaultBackend") or {}]
    for rule in spec.get("rules") or []:
        backends += [p.get("backend") or {} for p in (rule.get("http") or {}).get("paths") or []]
    return {str(b["service"]["name"]) for b in backends if (b.get("service") or {}).get("name")}


def revision(rs: KubeObject) -> int:
    value = (meta(rs).get("annotations") or {}).get("deployment.kubernetes.io/revision")
    try:
        return int(value or 0)
    except ValueError:
        return 0

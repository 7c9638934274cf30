"""What to do about the config analyzer's findings: confirm what is missing, then add it.

Steps name the real ConfigMap/Secret, key and workload; Secret commands print key names
only, never values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from oncallm.sources.base import ObjectRef
from oncallm.triage.analyzers import loopback
from oncallm.triage.analyzers import podfacts as pf
from oncallm.triage.context import TriageContext
from oncallm.triage.findings import Finding
from oncallm.triage.recommendations import Recommendation, kubectl


def _keys_command(kind: str, name: str, ns: str | None) -> str:
    if kind == "Secret":  # key names only: never print a Secret's values
        template = "'{{range $k, $v := .data}}{{$k}}{{\"\\n\"}}{{end}}'"
        return kubectl("get", "secret", name, "-o", f"go-template={template}", namespace=ns)
    return kubectl("get", "configmap", name, "-o", "jsonpath='{.data}'", namespace=ns)


def recommend(finding: Finding, ctx: TriageContext) -> list[Recommendation]:
    f = finding.facts
    if f.get("problem") == loopback.PROBLEM:
        return loopback.recommend(finding)
    ns, pod, kind, name = f.get("namespace"), str(f["pod"]), f["culprit_kind"], f["culprit_name"]
    workload = pf.workload_from_facts(f)
    confirm = [pf.describe_pod(pod, workload.namespace), pf.pod_events(pod, workload.namespace)]
    problem, key, conf = f["problem"], f.get("key"), finding.confidence
    if "exit_code" in f:
        confirm.append(kubectl("logs", pod, "-c", str(f["container"]), "--previous", namespace=ns))
    lower = str(kind).lower()
    if kind in ("ConfigMap", "Secret") and problem == "missing-key":
        confirm.insert(0, _keys_command(kind, name, ns))
        field_name = "stringData" if kind == "Secret" else "data"
        patch = f'\'{{"{field_name}":{{"{key}":"<value>"}}}}\''
        fix = kubectl("patch", lower, name, "--type", "merge", "-p", patch, namespace=ns)
        detail = (
            f"{kind} {ns}/{name} is read by {f.get('via') or 'the pod'} of container "
            f"{f['container']} but has no key {key}"
        )
        if f.get("keys_present"):
            detail += f" (it has: {', '.join(f['keys_present'])})"
        detail += (
            ". Add the key (or fix the key name in the workload); the kubelet retries the "
            "container by itself once the key exists."
        )
        return [
            Recommendation(
                f"Add key {key} to {kind} {ns}/{name}",
                detail,
                pf.unique([*confirm, fix]),
                "low",
                conf,
            )
        ]
    if kind in ("ConfigMap", "Secret") and problem == "missing-object":
        create = (
            kubectl(
                "create", "secret", "generic", name, "--from-literal=<key>=<value>", namespace=ns
            )
            if kind == "Secret"
            else kubectl("create", "configmap", name, "--from-literal=<key>=<value>", namespace=ns)
        )
        confirm.insert(0, kubectl("get", lower, name, namespace=ns))
        return [
            Recommendation(
                f"Create {kind} {ns}/{name}",
                f"Pods of {pf.owner_phrase(workload)} read {kind} {name} "
                f"({f.get('via') or 'referenced in the pod spec'}) but it does not exist in "
                f"namespace {ns}. Apply it from source control (or fix the name the workload "
                "references); the pods start on their own once it exists.",
                pf.unique([*confirm, create]),
                "low",
                conf,
            )
        ]
    if kind in ("ConfigMap", "Secret"):  # a value the application rejects
        confirm.insert(0, _keys_command(kind, name, ns))
        restart = (
            kubectl("rollout", "restart", pf.resource_arg(workload), namespace=workload.namespace)
            if workload.kind in pf.ROLLOUT_KINDS
            else ""
        )
        return [
            Recommendation(
                f"Fix {key or 'the value'} in {kind} {ns}/{name}",
                f"Container {f['container']} rejects the configuration it reads from {kind} "
                f"{name}{' key ' + str(key) if key else ''}: {f.get('message')!r}. Correct it, "
                "then restart the pods so they read the new value.",
                pf.unique([*confirm, kubectl("edit", lower, name, namespace=ns), restart]),
                "medium",
                conf,
            )
        ]
    return [_workload_fix(f, workload, confirm, conf)]


def _workload_fix(
    f: Mapping[str, Any], workload: ObjectRef, confirm: list[str], conf: float
) -> Recommendation:
    problem, container = f["problem"], f["container"]
    owner = pf.owner_phrase(workload)
    commands = list(confirm)
    if problem == "missing-env" and workload.kind in pf.SETTABLE_KINDS:
        commands.append(
            kubectl(
                "set",
                "env",
                pf.resource_arg(workload),
                "-c",
                container,
                f"{f['key']}=<value>",
                namespace=workload.namespace,
            )
        )
        title = f"Set env {f['key']} on container {container} of {owner}"
        detail = (
            f"The application exits because {f['key']} is not set: {f.get('message')!r}. Set it "
            "(from a ConfigMap/Secret with valueFrom if it is sensitive); this rolls the pods."
        )
    else:
        commands.append(pf.edit_command(workload))
        part, what = {
            "bad-args": ("args", f"its args ({f.get('args') or 'none'})"),
            "bad-command": ("command", f"its command {f.get('key')}"),
            "security-context": ("securityContext", "its securityContext or the image's user"),
            "bad-value": ("env", f"its {f.get('via') or 'env'}"),
        }.get(problem, ("configuration", "its configuration"))
        title = f"Fix the {part} of container {container} in {owner}"
        detail = (
            f"Container {container} fails on {what}: {f.get('message')!r}. Correct the spec, "
            "or roll back if a recent change introduced it."
        )
    commands += pf.rollout_undo(workload)
    return Recommendation(title, detail, pf.unique(commands), "medium", conf)

"""What to do about the pods analyzer's findings: the commands to confirm and to fix.

Kept apart from the detection rules so each reads on its own; every step quotes the
finding's facts (the container, its limit, the image, the probe) so it can be pasted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from oncallm.triage.analyzers import podfacts as pf
from oncallm.triage.context import TriageContext
from oncallm.triage.findings import Finding
from oncallm.triage.recommendations import Recommendation, kubectl
from oncallm.triage.taxonomy import Category


def _status_jsonpath(pod: str, container: str, ns: str | None) -> str:
    path = f"'{{.status.containerStatuses[?(@.name==\"{container}\")].lastState}}'"
    return kubectl("get", "pod", pod, "-o", f"jsonpath={path}", namespace=ns)


def _registry(image: str) -> str:
    first = image.split("/", 1)[0]
    if "/" in image and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def recommend(finding: Finding, ctx: TriageContext) -> list[Recommendation]:
    f = finding.facts
    workload = pf.workload_from_facts(f)
    handler = {
        Category.OOMKilled: _oom,
        Category.CrashLoop: _crash,
        Category.ImagePull: _pull,
        Category.ProbeFailure: _probe,
    }.get(finding.category)
    return handler(f, workload, finding.confidence) if handler else []


def _oom(f: Mapping[str, Any], workload: Any, conf: float) -> list[Recommendation]:
    ns, pod, container = workload.namespace, str(f["pod"]), str(f["container"])
    owner = pf.owner_phrase(workload)
    confirm = [
        _status_jsonpath(pod, container, ns),
        kubectl("top", "pod", pod, "--containers", namespace=ns),
        pf.describe_pod(pod, ns),
    ]
    if not f.get("limit"):
        node = f.get("node") or "<node>"
        return [
            Recommendation(
                f"Set a memory request and limit on container {container} of {owner}",
                f"Container {container} has no memory limit and was killed by the kernel when "
                f"node {node} ran out of memory. Give it a request close to its real usage and "
                "a limit, so the scheduler places it where memory exists and a leak kills only "
                "this container.",
                (*confirm, kubectl("describe", "node", node), pf.edit_command(workload)),
                "medium",
                conf,
            )
        ]
    limit, suggested = f["limit"], f.get("suggested_limit") or "<higher>"
    memory = f.get("memory") or {}
    if memory.get("kind") == "leak":
        return [_leak(f, workload, conf, confirm)]
    if workload.kind in pf.SETTABLE_KINDS:
        fix = kubectl(
            "set",
            "resources",
            pf.resource_arg(workload),
            "-c",
            container,
            f"--limits=memory={suggested}",
            namespace=ns,
        )
    else:
        fix = pf.edit_command(workload)
    if memory.get("kind") == "spike":
        # The limit is fine for normal work; one burst is not. Bounding the burst is the fix.
        after = (
            f"Its {memory['sentence']}. Find what allocates at once at that moment (a large "
            "export or upload, an unbounded query or batch) and bound it, or give the limit "
            f"headroom for it (e.g. {suggested}; this rolls the pods)."
        )
    else:
        after = (
            f"Raise the limit (e.g. to {suggested}; this rolls the pods) and keep the request "
            "near real usage. If memory grows without bound after the change, it is a leak: "
            "take a heap profile before the next kill."
        )
    return [
        Recommendation(
            f"Raise the memory limit of container {container} in {owner} above {limit}",
            f"Container {container} reached its {limit} memory limit and was OOMKilled "
            f"({f['restarts']} restarts, last {f['last']}). {_heap_advice(f)}{after}",
            (*confirm, fix),
            "medium",
            conf,
        )
    ]


def _leak(f: Mapping[str, Any], workload: Any, conf: float, confirm: list[str]) -> Recommendation:
    """Memory that climbs until the kill: a bigger limit buys time, a fix ends it."""
    ns, container = workload.namespace, str(f["container"])
    owner = pf.owner_phrase(workload)
    restart = (
        (kubectl("rollout", "restart", pf.resource_arg(workload), namespace=ns),)
        if workload.kind in pf.SETTABLE_KINDS
        else ()
    )
    return Recommendation(
        f"Find the memory leak in container {container} of {owner}",
        f"Container {container} was OOMKilled at its {f['limit']} limit after its "
        f"{f['memory']['sentence']}. Raising the limit only moves the next kill later: "
        "capture a heap profile (or a memory dump) while usage climbs, and compare with the "
        "last release. A rolling restart buys time until the fix ships.",
        (*confirm, *restart),
        "low",
        conf,
    )


def _heap_advice(f: Mapping[str, Any]) -> str:
    heap = f.get("heap")
    if not heap:
        return ""
    return (
        f"Its heap flag {heap['flag']} ({heap['where']}) lets the runtime use the whole limit "
        f"and more: keep the heap near 75% of the limit (about {f.get('suggested_heap')}), "
        "or raise the limit with it. "
    )


def _crash(f: Mapping[str, Any], workload: Any, conf: float) -> list[Recommendation]:
    ns, pod, container = workload.namespace, str(f["pod"]), str(f["container"])
    owner = pf.owner_phrase(workload)
    confirm = [
        kubectl("logs", pod, "-c", container, "--previous", "--tail=100", namespace=ns),
        pf.describe_pod(pod, ns),
        pf.pod_events(pod, ns),
    ]
    which = "init container" if f.get("init") else "container"
    detail = (
        f"{which.capitalize()} {container} exits with code {f['exit_code']} "
        f"({f['exit_meaning']}) and has restarted {f['restarts']} times."
    )
    if f.get("init"):
        # Init containers run to completion before the app starts: fixing this one is all.
        detail += " The pod's other containers do not start until it succeeds."
    if f.get("log_lines"):
        detail += f" Its last log lines: {' | '.join(f['log_lines'][-3:])[:300]!r}."
    detail += (
        " Read the previous instance's log for the first error. If the crashes began with a "
        "new rollout, roll back to the last good revision while the fix is made."
    )
    steps = [
        Recommendation(
            f"Find why {which} {container} of {owner} exits", detail, tuple(confirm), "low", conf
        )
    ]
    undo = pf.rollout_undo(workload)
    if undo:
        steps.append(
            Recommendation(
                f"Roll back {owner} if the crash came with its latest revision",
                "Compare the revisions; undo returns the previous pod template (image, env, "
                "args) and restarts the pods.",
                tuple(undo),
                "medium",
                round(conf * 0.8, 2),
            )
        )
    return steps


def _pull(f: Mapping[str, Any], workload: Any, conf: float) -> list[Recommendation]:
    ns, pod, container, image = workload.namespace, str(f["pod"]), str(f["container"]), f["image"]
    owner = pf.owner_phrase(workload)
    confirm = [pf.pod_events(pod, ns), f"docker manifest inspect {image}"]
    cause = f["cause"]
    if "recovered_at" in f:
        history = [pf.pod_events(pod, ns), *pf.rollout_undo(workload)[:1]]
        return [
            Recommendation(
                f"Publish images before rollouts of {owner} reference them",
                f"{image} could not be pulled from {f['failing_since']} until {f['recovered_at']} "
                f"({f['pull_message'][:160]!r}); the pods run now. Nothing needs fixing in the "
                "cluster: make the release pipeline push the image before it updates the "
                "workload (or gate the rollout on the image existing).",
                tuple(history),
                "low",
                conf,
            )
        ]
    if cause == "auth":
        secret = (f.get("missing_pull_secrets") or f.get("pull_secrets") or ["regcred"])[0]
        sa = f.get("service_account") or "default"
        registry = _registry(str(image))
        patch = f'\'{{"imagePullSecrets":[{{"name":"{secret}"}}]}}\''
        commands = (
            kubectl("get", "secret", secret, namespace=ns),
            kubectl(
                "get", "serviceaccount", sa, "-o", "jsonpath='{.imagePullSecrets}'", namespace=ns
            ),
            kubectl(
                "create",
                "secret",
                "docker-registry",
                secret,
                f"--docker-server={registry}",
                "--docker-username=<user>",
                "--docker-password=<token>",
                namespace=ns,
            ),
            kubectl("patch", "serviceaccount", sa, "-p", patch, namespace=ns),
        )
        return [
            Recommendation(
                f"Give {owner} working credentials for {registry}",
                f"The registry rejects the pull of {image} ({f['pull_message'][:200]!r}). Make "
                f"sure imagePullSecret {secret} exists in {ns} with valid credentials for "
                f"{registry} and is listed in the pod spec or on ServiceAccount {sa}.",
                commands,
                "low",
                conf,
            )
        ]
    if cause in ("not-found", "invalid"):
        fix: list[str] = []
        if workload.kind in pf.SETTABLE_KINDS:
            fix.append(
                kubectl(
                    "set",
                    "image",
                    pf.resource_arg(workload),
                    f"{container}=<image:existing-tag>",
                    namespace=ns,
                )
            )
        fix += pf.rollout_undo(workload)
        return [
            Recommendation(
                f"Point container {container} of {owner} at an image that exists",
                f"{image} cannot be pulled: {f['pull_message'][:200]!r}. Check the tag was "
                "pushed (CI may have failed before the push), then set the right tag or roll "
                "back to the previous revision.",
                (*confirm, *fix),
                "medium",
                conf,
            )
        ]
    node = f.get("node") or "<node>"
    return [
        Recommendation(
            f"Check that node {node} can reach the registry for {image}",
            f"The pull fails on the way to the registry ({f['pull_message'][:200]!r}): check "
            "DNS, egress and proxy settings from the node, registry status and pull rate limits "
            "(a mirror or authenticated pulls lift Docker Hub limits).",
            (*confirm, kubectl("describe", "node", node)),
            "low",
            conf,
        )
    ]


def _probe(f: Mapping[str, Any], workload: Any, conf: float) -> list[Recommendation]:
    ns, pod, container = workload.namespace, str(f["pod"]), str(f["container"])
    owner = pf.owner_phrase(workload)
    spec = f.get("probe_spec") or {}
    confirm = [pf.pod_events(pod, ns), pf.describe_pod(pod, ns)]
    if http := spec.get("httpGet"):
        scheme = str(http.get("scheme") or "http").lower()
        url = f"{scheme}://localhost:{f['port']}{http.get('path') or '/'}"
        confirm.append(
            kubectl(
                "exec",
                pod,
                "-c",
                container,
                "--",
                "wget",
                "-qO-",
                "-T",
                str(f["timeoutSeconds"]),
                url,
                namespace=ns,
            )
        )
    elif spec.get("tcpSocket"):
        confirm.append(kubectl("port-forward", f"pod/{pod}", str(f["port"]), namespace=ns))
    confirm.append(kubectl("logs", pod, "-c", container, "--tail=100", namespace=ns))
    probe = f"{f['probe']} probe {f['probe_text']}"
    detail = (
        f"The {probe} fails ({f['failure'][:200]!r}) with timeout {f['timeoutSeconds']}s, "
        f"period {f['periodSeconds']}s, failureThreshold {f['failureThreshold']}. "
    )
    if f["probe"] == "readiness":
        detail += (
            "Find out whether the endpoint reports a real problem (a dependency it checks) "
            "or the probe is wrong (port, path, too short a timeout)."
        )
    else:
        detail += (
            "A liveness probe that fails on a slow or busy process restarts a healthy "
            "container: raise timeoutSeconds/failureThreshold or add a startupProbe if it is "
            "slow to start, and keep dependency checks out of liveness."
        )
    return [
        Recommendation(
            f"Check the {f['probe']} probe of container {container} in {owner}",
            detail,
            (*confirm, pf.edit_command(workload)),
            "medium",
            conf,
        )
    ]

"""The grounding guard: no claim of the model is shown unchecked, none outranks the evidence.

Every evidence id the model cites must name a fact OncallM gathered (the prompt's context
or a follow-up answer); every object it names as a culprit or in a command must have been
inspected. A citation that fails is dropped, a culprit that fails is dropped, a step whose
command names an object never inspected is dropped (a made-up pod name is worse than no
step at 3 a.m.), and the hypothesis' confidence is lowered in proportion.

Ranking stays with the evidence. When the model agrees with the top deterministic finding,
that finding's confidence rises. When it disagrees, both are kept and the disagreement is
recorded; the model's hypothesis can rank first only when it is fully verified, cites at
least as many verified facts, and the deterministic root is less certain than it — and an
answer backed by no analyzer is capped at ``LLM_ONLY_CAP``.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from oncallm.llm.verdict import Hypothesis, ObjectClaim, SuggestedStep, Verdict
from oncallm.sources.base import ObjectRef
from oncallm.sources.kinds import KINDS

# The most confidence a cause no analyzer found can be shown with.
LLM_ONLY_CAP = 0.6
# How far agreement moves the deterministic root toward certainty (a share of the gap).
AGREEMENT_LIFT = 0.5
MAX_CONFIDENCE = 0.99

# Ids may hold brackets themselves (``object:Pod/shop/x#state.waiting[api]``).
_CITATION = re.compile(
    r"\[((?:object|event|log|alert|metric|runbook):(?:[^\[\]\s]|\[[^\[\]\s]*\])+)\]"
)
# kubectl's short names for the kinds OncallM reads.
_SHORT_NAMES = {
    "po": "Pod", "svc": "Service", "ep": "Endpoints", "no": "Node", "ns": "Namespace",
    "cm": "ConfigMap", "pvc": "PersistentVolumeClaim", "pv": "PersistentVolume",
    "deploy": "Deployment", "rs": "ReplicaSet", "sts": "StatefulSet", "ds": "DaemonSet",
    "cj": "CronJob", "hpa": "HorizontalPodAutoscaler", "netpol": "NetworkPolicy",
    "sa": "ServiceAccount", "quota": "ResourceQuota", "limits": "LimitRange",
    "sc": "StorageClass", "ing": "Ingress", "pdb": "PodDisruptionBudget",
}  # fmt: skip
_KIND_WORDS = {
    **{info.kind.lower(): info.kind for info in KINDS.values()},
    **{info.plural: info.kind for info in KINDS.values()},
    **{short: kind for short, kind in _SHORT_NAMES.items() if kind in KINDS},
}
# `kubectl get pod api-1 -n shop`, `kubectl describe deployment/api`, `kubectl logs api-1`
_KUBECTL_OBJECT = re.compile(
    r"kubectl\s+(?:get|describe|logs|edit|delete|rollout\s+\w+|scale|set\s+\w+|patch|"
    r"label|annotate|cordon|uncordon|drain|top\s+pod|top\s+node)\s+"
    r"(?:(?P<kind>[a-z.]+)(?:/|\s+))?(?P<name>[a-z0-9][a-z0-9.-]*[a-z0-9])(?=\s|$)"
)
_NAMESPACE_FLAG = re.compile(r"(?:-n|--namespace)(?:\s+|=)(?P<ns>[a-z0-9-]+)")
_CONTEXT_FLAG = re.compile(r"--context(?:\s+|=)\S+")


@dataclass(frozen=True)
class CheckedHypothesis:
    hypothesis: Hypothesis
    verified_evidence: tuple[str, ...]
    unverified_evidence: tuple[str, ...]
    culprit_inspected: bool | None  # None: the model named no culprit
    confidence: float  # the model's, lowered for every check that failed

    @property
    def verified(self) -> bool:
        return (
            bool(self.verified_evidence)
            and not self.unverified_evidence
            and self.culprit_inspected is not False
        )

    def as_dict(self) -> dict[str, Any]:
        h = self.hypothesis
        return {
            "category": h.category,
            "summary": h.summary,
            # the canonical reference (``configmap`` → ``ConfigMap``) of an inspected object
            "resource": _ref_of(h.culprit).as_dict()
            if h.culprit and self.culprit_inspected
            else None,
            "named_resource": _claim_dict(h.culprit) if h.culprit else None,
            "confidence": round(self.confidence, 2),
            "stated_confidence": round(h.confidence, 2),
            "evidence": list(self.verified_evidence),
            "unverified_evidence": list(self.unverified_evidence),
            "culprit_inspected": self.culprit_inspected,
            "verified": self.verified,
        }


@dataclass
class GroundedVerdict:
    explanation: str
    root: CheckedHypothesis
    alternatives: list[CheckedHypothesis]
    recommendations: list[SuggestedStep]
    dropped: list[str] = field(default_factory=list)  # what was removed, and why


def _claim_dict(claim: ObjectClaim) -> dict[str, Any]:
    return {"kind": claim.kind, "namespace": claim.namespace, "name": claim.name}


def _ref_of(claim: ObjectClaim) -> ObjectRef:
    info = KINDS.get(claim.kind) or KINDS.get(_KIND_WORDS.get(claim.kind.lower(), ""))
    kind = info.kind if info else claim.kind
    namespace = claim.namespace if info is None or info.namespaced else None
    return ObjectRef(kind, namespace or None, claim.name)


class Grounding:
    """What a triage knows: the citable evidence ids and the inspected objects."""

    def __init__(self, evidence_ids: Collection[str], inspected: Collection[ObjectRef]) -> None:
        self.evidence_ids = frozenset(evidence_ids)
        self.inspected = frozenset(inspected)
        self._names = {(r.namespace, r.name) for r in self.inspected}
        self._bare_names = {r.name for r in self.inspected}

    def knows_object(self, ref: ObjectRef) -> bool:
        return ref in self.inspected

    def check(self, hypothesis: Hypothesis) -> CheckedHypothesis:
        cited = list(dict.fromkeys(hypothesis.evidence))
        verified = tuple(e for e in cited if e in self.evidence_ids)
        unverified = tuple(e for e in cited if e not in self.evidence_ids)
        culprit = (
            None if hypothesis.culprit is None else self.knows_object(_ref_of(hypothesis.culprit))
        )
        confidence = hypothesis.confidence
        if cited:
            confidence *= len(verified) / len(cited)
        if not verified:
            confidence = min(confidence * 0.5, 0.3)
        if culprit is False:
            confidence *= 0.5
        return CheckedHypothesis(hypothesis, verified, unverified, culprit, confidence)

    def _names_in_command(self, command: str) -> list[tuple[str | None, str, str | None]]:
        found: list[tuple[str | None, str, str | None]] = []
        ns_match = _NAMESPACE_FLAG.search(command)
        namespace = ns_match.group("ns") if ns_match else None
        # Flags may come anywhere (`kubectl -n shop get pod x`); drop them to find the verb.
        bare = _CONTEXT_FLAG.sub(" ", _NAMESPACE_FLAG.sub(" ", command))
        for match in _KUBECTL_OBJECT.finditer(" ".join(bare.split())):
            kind_word = match.group("kind")
            kind = _KIND_WORDS.get(kind_word) if kind_word else None
            if kind_word and kind is None:
                continue  # e.g. `kubectl get all`: not an object name we can check
            if kind is None and "logs" not in match.group(0):
                continue  # `kubectl get foo` with no kind: foo is the kind, not a name
            found.append((kind or "Pod", match.group("name"), namespace))
        return found

    def step_unverified(self, step: SuggestedStep) -> list[str]:
        """Objects a step's commands name that no read ever saw."""
        missing = []
        for command in step.commands:
            for kind, name, namespace in self._names_in_command(command):
                known = (
                    (namespace, name) in self._names
                    if namespace is not None
                    else name in self._bare_names
                )
                if not known:
                    missing.append(f"{kind} {namespace + '/' if namespace else ''}{name}")
        return missing

    def mark_citations(self, text: str) -> str:
        """Flag ``[id]`` citations in prose that name no gathered fact."""

        def flag(match: re.Match[str]) -> str:
            if match.group(1) in self.evidence_ids:
                return match.group(0)
            return f"[{match.group(1)} — unverified: not in the gathered evidence]"

        return _CITATION.sub(flag, text)

    def ground(self, verdict: Verdict) -> GroundedVerdict:
        dropped: list[str] = []
        root = self.check(verdict.root_cause)
        alternatives = [self.check(h) for h in verdict.alternatives]
        for checked in (root, *alternatives):
            for evidence_id in checked.unverified_evidence:
                dropped.append(f"citation {evidence_id}: not in the gathered evidence")
            if checked.culprit_inspected is False and checked.hypothesis.culprit:
                c = checked.hypothesis.culprit
                where = f"{c.namespace}/" if c.namespace else ""
                dropped.append(f"culprit {c.kind} {where}{c.name}: never inspected")
        steps = []
        for step in verdict.recommendations:
            missing = self.step_unverified(step)
            if missing:
                dropped.append(f"step {step.title!r}: names {', '.join(missing)}, never inspected")
            else:
                steps.append(step)
        return GroundedVerdict(
            self.mark_citations(verdict.explanation), root, alternatives, steps, dropped
        )


def _names_same_thing(claim: ObjectClaim | None, root: Mapping[str, Any]) -> bool:
    """Whether the model's culprit is the root's culprit or the object it shows on.

    One incident has several right names: the Service whose selector is wrong and the
    Deployment it no longer selects, or a cert-manager Certificate and the Secret of the
    same name it writes. The same category on the culprit, the symptom's subject, or an
    object of the same namespace and name is agreement, not a rival cause.
    """
    if claim is None:
        return True  # nothing to contradict
    ref = _ref_of(claim)
    for resource in (root.get("resource"), root.get("subject")):
        if not resource:
            continue
        if (ref.namespace, ref.name) == (resource.get("namespace"), resource.get("name")):
            return True
    return root.get("resource") is None and root.get("subject") is None


def agrees(root: Mapping[str, Any], hypothesis: Hypothesis) -> bool:
    return root.get("category") == hypothesis.category and _names_same_thing(
        hypothesis.culprit, root
    )


def apply_verdict(result: dict[str, Any], grounded: GroundedVerdict) -> dict[str, Any]:
    """Fold a grounded verdict into the result; returns the ``agreement`` record."""
    det = dict(result["root_cause"])
    llm = grounded.root
    llm_dict = llm.as_dict()
    if det.get("category") == "Unknown":
        if llm.verified and llm.hypothesis.category != "Unknown":
            root = {
                **llm_dict,
                "confidence": round(min(llm.confidence, LLM_ONLY_CAP), 2),
                "analyzer": "llm",
            }
            result["root_cause"] = _finding_shape(root)
            result["findings"] = [result["root_cause"], *result["findings"]]
            return {"verdict": "filled_unknown", "ranked_first": "llm"}
        return {"verdict": "unknown" if llm.hypothesis.category == "Unknown" else "unverified"}
    if agrees(det, llm.hypothesis) and llm.verified_evidence:
        lifted = det["confidence"] + (1 - det["confidence"]) * AGREEMENT_LIFT * llm.confidence
        det["confidence"] = round(min(MAX_CONFIDENCE, lifted), 2)
        det["confirmed_by_llm"] = True
        result["root_cause"] = det
        if result["findings"] and _key(result["findings"][0]) == _key(det):
            result["findings"][0] = {**result["findings"][0], **det}
        return {"verdict": "agrees", "ranked_first": "deterministic"}
    llm_conf = min(llm.confidence, LLM_ONLY_CAP)
    llm_first = (
        llm.verified
        and len(llm.verified_evidence) >= len(det.get("evidence") or [])
        and llm_conf > det["confidence"]
    )
    finding = _finding_shape({**llm_dict, "confidence": round(llm_conf, 2), "analyzer": "llm"})
    if llm_first:
        result["root_cause"] = finding
        result["findings"] = [finding, *result["findings"]]
    else:
        result["findings"] = [*result["findings"], finding]
    reason = (
        "the model's hypothesis is verified, cites as many facts and is more certain"
        if llm_first
        else "the deterministic finding is better supported by the gathered evidence"
    )
    return {
        "verdict": "disagrees",
        "ranked_first": "llm" if llm_first else "deterministic",
        "reason": reason,
        "deterministic": {k: det.get(k) for k in ("category", "resource", "confidence")},
        "llm": llm_dict,
    }


def _key(finding: Mapping[str, Any]) -> tuple[Any, Any]:
    return finding.get("category"), finding.get("resource")


def _finding_shape(values: Mapping[str, Any]) -> dict[str, Any]:
    keep = (
        "category", "summary", "resource", "confidence", "evidence", "analyzer",
        "verified", "unverified_evidence", "named_resource",
    )  # fmt: skip
    return {k: values[k] for k in keep if k in values}

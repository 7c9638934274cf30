"""The grounding guard: what the model claims is checked against what OncallM gathered."""

from __future__ import annotations

import copy
from typing import Any

from oncallm.llm.grounding import LLM_ONLY_CAP, Grounding, agrees, apply_verdict
from oncallm.llm.verdict import Hypothesis, ObjectClaim, SuggestedStep, Verdict
from oncallm.sources.base import ObjectRef

CM = ObjectRef("ConfigMap", "shop", "api-config")
POD = ObjectRef("Pod", "shop", "api-7d9f-x2x4q")
DEPLOY = ObjectRef("Deployment", "shop", "api")
KNOWN = {"event:Pod/shop/api-7d9f-x2x4q/BackOff", "log:shop/api-7d9f-x2x4q/api/previous"}


def grounding() -> Grounding:
    return Grounding(KNOWN | {"object:ConfigMap/shop/api-config#summary"}, {CM, POD, DEPLOY})


def hypothesis(**overrides: Any) -> Hypothesis:
    values: dict[str, Any] = {
        "category": "ConfigError",
        "culprit": ObjectClaim(kind="ConfigMap", namespace="shop", name="api-config"),
        "summary": "ConfigMap shop/api-config lacks DATABASE_URL.",
        "confidence": 0.8,
        "evidence": sorted(KNOWN),
    }
    values.update(overrides)
    return Hypothesis(**values)


def deterministic_result(category: str = "ConfigError", confidence: float = 0.7) -> dict[str, Any]:
    root = {
        "category": category,
        "summary": "ConfigMap shop/api-config has no key DATABASE_URL",
        "resource": CM.as_dict() if category != "Unknown" else None,
        "confidence": confidence if category != "Unknown" else 0.0,
        "evidence": sorted(KNOWN) if category != "Unknown" else [],
    }
    findings = [{**root, "analyzer": "config"}] if category != "Unknown" else []
    return {"root_cause": root, "findings": findings, "evidence": [], "inspected": []}


def test_a_fully_cited_hypothesis_on_an_inspected_culprit_is_verified() -> None:
    checked = grounding().check(hypothesis())
    assert checked.verified
    assert checked.confidence == 0.8
    assert checked.unverified_evidence == ()


def test_a_hallucinated_pod_is_not_accepted_as_culprit() -> None:
    made_up = ObjectClaim(kind="Pod", namespace="shop", name="api-5f7c9-zzzzz")
    checked = grounding().check(hypothesis(category="CrashLoop", culprit=made_up))
    assert not checked.verified
    assert checked.culprit_inspected is False
    assert checked.as_dict()["resource"] is None  # never shown as the culprit
    assert checked.as_dict()["named_resource"]["name"] == "api-5f7c9-zzzzz"
    assert checked.confidence < 0.8


def test_citations_of_facts_never_gathered_are_dropped_and_lower_confidence() -> None:
    checked = grounding().check(hypothesis(evidence=[*sorted(KNOWN), "log:shop/db-0/pg/current"]))
    assert checked.verified_evidence == tuple(sorted(KNOWN))
    assert checked.unverified_evidence == ("log:shop/db-0/pg/current",)
    assert not checked.verified
    assert round(checked.confidence, 3) == round(0.8 * 2 / 3, 3)


def test_a_hypothesis_citing_nothing_real_is_capped_low() -> None:
    checked = grounding().check(hypothesis(evidence=["event:Pod/shop/ghost/Killing"]))
    assert checked.confidence <= 0.3


def test_kubectl_short_names_and_namespaces_are_understood() -> None:
    g = grounding()
    ok = SuggestedStep(
        title="Look",
        commands=[
            "kubectl -n shop get cm api-config -o yaml",
            "kubectl describe deploy/api -n shop",
            "kubectl logs api-7d9f-x2x4q -n shop --previous",
        ],
    )
    bad = SuggestedStep(title="Restart", commands=["kubectl delete pod api-5f7c9-zzzzz -n shop"])
    assert g.step_unverified(ok) == []
    assert g.step_unverified(bad) == ["Pod shop/api-5f7c9-zzzzz"]
    flags_first = SuggestedStep(title="x", commands=["kubectl -n shop get cm api-cfg -o yaml"])
    assert g.step_unverified(flags_first) == ["ConfigMap shop/api-cfg"]


def test_ground_drops_steps_naming_unknown_objects_and_flags_citations_in_prose() -> None:
    verdict = Verdict(
        explanation="The pod crashes [log:shop/api-7d9f-x2x4q/api/previous] because "
        "the database is down [log:shop/db-0/pg/current].",
        root_cause=hypothesis(),
        recommendations=[
            SuggestedStep(title="Add the key", commands=["kubectl -n shop edit cm api-config"]),
            SuggestedStep(title="Kill it", commands=["kubectl -n shop delete pod ghost-1"]),
        ],
    )
    grounded = grounding().ground(verdict)
    assert [s.title for s in grounded.recommendations] == ["Add the key"]
    assert any("ghost-1" in d for d in grounded.dropped)
    assert "[log:shop/api-7d9f-x2x4q/api/previous]" in grounded.explanation
    assert "[log:shop/db-0/pg/current — unverified" in grounded.explanation


def test_agreement_raises_the_deterministic_confidence() -> None:
    result = deterministic_result(confidence=0.7)
    grounded = grounding().ground(Verdict(explanation="x", root_cause=hypothesis()))
    agreement = apply_verdict(result, grounded)
    assert agreement["verdict"] == "agrees"
    assert result["root_cause"]["confidence"] > 0.7
    assert result["root_cause"]["confirmed_by_llm"] is True
    assert result["findings"][0]["confidence"] == result["root_cause"]["confidence"]


def test_a_hallucinated_disagreement_never_outranks_the_evidence() -> None:
    result = deterministic_result(confidence=0.55)
    made_up = ObjectClaim(kind="Pod", namespace="shop", name="api-5f7c9-zzzzz")
    verdict = Verdict(
        explanation="x",
        root_cause=hypothesis(category="OOMKilled", culprit=made_up, confidence=0.99),
    )
    agreement = apply_verdict(result, grounding().ground(verdict))
    assert agreement["verdict"] == "disagrees"
    assert agreement["ranked_first"] == "deterministic"
    assert result["root_cause"]["category"] == "ConfigError"
    assert result["root_cause"]["confidence"] == 0.55
    llm_finding = result["findings"][-1]
    assert llm_finding["analyzer"] == "llm"
    assert llm_finding["verified"] is False
    assert llm_finding["resource"] is None


def test_a_verified_disagreement_ranks_first_only_when_the_evidence_is_weaker() -> None:
    other = ObjectClaim(kind="Deployment", namespace="shop", name="api")
    verdict = Verdict(
        explanation="x",
        root_cause=hypothesis(category="OOMKilled", culprit=other, confidence=0.9),
    )
    strong = deterministic_result(confidence=0.8)
    assert apply_verdict(strong, grounding().ground(verdict))["ranked_first"] == "deterministic"
    weak = deterministic_result(confidence=0.4)
    agreement = apply_verdict(weak, grounding().ground(verdict))
    assert agreement["ranked_first"] == "llm"
    assert weak["root_cause"]["category"] == "OOMKilled"
    assert weak["root_cause"]["confidence"] == LLM_ONLY_CAP
    assert [f["category"] for f in weak["findings"]] == ["OOMKilled", "ConfigError"]


def test_a_verified_answer_fills_an_unknown_but_an_unverified_one_does_not() -> None:
    unknown = deterministic_result("Unknown")
    before = copy.deepcopy(unknown)
    made_up = ObjectClaim(kind="Pod", namespace="shop", name="ghost")
    unverified = Verdict(explanation="x", root_cause=hypothesis(culprit=made_up))
    assert apply_verdict(unknown, grounding().ground(unverified))["verdict"] == "unverified"
    assert unknown == before

    verified = Verdict(explanation="x", root_cause=hypothesis(confidence=0.95))
    assert apply_verdict(unknown, grounding().ground(verified))["verdict"] == "filled_unknown"
    assert unknown["root_cause"]["category"] == "ConfigError"
    assert unknown["root_cause"]["confidence"] == LLM_ONLY_CAP
    assert unknown["root_cause"]["analyzer"] == "llm"


def test_naming_the_symptoms_object_or_its_namesake_is_agreement_not_a_rival() -> None:
    root = {
        "category": "ServiceNoEndpoints",
        "resource": {"kind": "Service", "namespace": "shop", "name": "rates-api"},
        "subject": {"kind": "Deployment", "namespace": "shop", "name": "shipping-quotes"},
    }
    on_subject = ObjectClaim(kind="Deployment", namespace="shop", name="shipping-quotes")
    elsewhere = ObjectClaim(kind="Deployment", namespace="shop", name="cart")
    same = {"category": "ServiceNoEndpoints", "summary": "x", "confidence": 0.8}
    assert agrees(root, Hypothesis(**same, culprit=on_subject))
    assert not agrees(root, Hypothesis(**same, culprit=elsewhere))
    assert not agrees(root, Hypothesis(**{**same, "category": "CrashLoop"}, culprit=on_subject))
    cert_root = {
        "category": "CertificateError",
        "resource": {"kind": "Secret", "namespace": "ledger", "name": "ledger-tls"},
    }
    certificate = ObjectClaim(kind="Certificate", namespace="ledger", name="ledger-tls")
    cert = {"category": "CertificateError", "summary": "x", "confidence": 0.8}
    assert agrees(cert_root, Hypothesis(**cert, culprit=certificate))

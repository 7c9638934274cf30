"""What the model must answer: the structured verdict the reasoner asks for and validates.

The JSON schema of ``Verdict`` is what the provider is told to produce (as a tool, a
native JSON-schema response format or prompted JSON). ``explanation`` comes first so that
a streamed answer shows readable text early. Everything here is a *claim*: the grounding
guard checks it against the gathered evidence before anyone sees it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from oncallm.triage.taxonomy import Category

CategoryName = Literal[
    "OOMKilled",
    "CrashLoop",
    "ConfigError",
    "ImagePull",
    "Unschedulable",
    "ProbeFailure",
    "NodeFailure",
    "VolumeFailure",
    "ServiceNoEndpoints",
    "RolloutStuck",
    "QuotaExceeded",
    "JobFailed",
    "ScalingLimit",
    "CPUThrottling",
    "NetworkBlocked",
    "PermissionDenied",
    "CertificateError",
    "DependencyFailure",
    "Unknown",
]
assert set(CategoryName.__args__) == {c.value for c in Category}  # type: ignore[attr-defined]


class _Claim(BaseModel):
    # Models add stray keys; ignoring them beats failing a whole answer over one.
    model_config = ConfigDict(extra="ignore")


class ObjectClaim(_Claim):
    """A Kubernetes object the model names."""

    kind: str = Field(description="Kubernetes kind, e.g. Deployment, ConfigMap, Pod.")
    namespace: str | None = Field(
        default=None, description="Namespace; null for cluster-scoped objects such as Node."
    )
    name: str


class Hypothesis(_Claim):
    category: CategoryName = Field(description="One category of the root-cause taxonomy.")
    culprit: ObjectClaim | None = Field(
        default=None,
        description="The object whose fix ends the incident (often not the alerted one).",
    )
    summary: str = Field(description="One sentence naming the cause and the culprit.")
    confidence: float = Field(ge=0, le=1, description="How sure, 0 to 1.")
    evidence: list[str] = Field(
        default_factory=list,
        description="Ids of the evidence items that show it, exactly as given in the context.",
    )


class SuggestedStep(_Claim):
    title: str
    detail: str = ""
    commands: list[str] = Field(
        default_factory=list, description="kubectl commands with real names, to confirm or fix."
    )
    risk: Literal["low", "medium", "high"] = "low"


class Verdict(_Claim):
    explanation: str = Field(
        description=(
            "For the on-call engineer: what happened, in causal order, citing evidence ids "
            "in square brackets. A few short paragraphs."
        )
    )
    root_cause: Hypothesis
    alternatives: list[Hypothesis] = Field(
        default_factory=list, max_length=3, description="Other causes still possible."
    )
    recommendations: list[SuggestedStep] = Field(default_factory=list, max_length=5)

"""The ``runbooks`` section of the configuration: where runbooks come from and fetch limits.

Split out of ``config.py`` only for size; ``config.Settings`` owns it like every other
section. Local runbook directories are always read; a ``runbook_url`` annotation is
fetched only from hosts on ``allowed_hosts`` (empty by default, so OncallM makes no
outbound request for runbooks unless told to).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

# The runbooks written for this project, shipped inside the package.
SHIPPED_RUNBOOKS_DIR = Path(__file__).resolve().parent / "runbooks"


class RunbooksSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dirs: list[Path] = Field(
        default_factory=list,
        description=(
            "Directories of Markdown runbooks (YAML front matter: `title`, `alertnames`, "
            "optional `matchers`, `categories`), searched in this order. "
            "`oncallm runbooks check DIR` validates one."
        ),
    )
    include_shipped: bool = Field(
        default=True,
        description=(
            "Also search the runbooks shipped with OncallM (kube-prometheus-stack alerts), "
            "after `dirs`."
        ),
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description=(
            "Hosts whose `runbook_url` annotation may be fetched: `wiki.example.com`, "
            "`*.example.com` (any subdomain), `http://wiki.internal` (also allows plain "
            "http for that host). Empty: runbook URLs are never fetched."
        ),
    )
    fetch_timeout_seconds: float = Field(
        default=5.0, gt=0, le=60, description="Longest one runbook URL fetch may take."
    )
    max_bytes: int = Field(
        default=512 * 1024,
        ge=1024,
        description="Most bytes read from a runbook URL; the rest of the body is not read.",
    )
    cache_ttl_seconds: int = Field(
        default=600, ge=0, description="How long a fetched runbook URL is reused; 0: no cache."
    )
    max_excerpts: int = Field(
        default=3, ge=0, le=20, description="Runbook excerpts attached to one triage."
    )
    recheck_seconds: float = Field(
        default=5.0,
        ge=0,
        description="At most this often a search checks the directories for changed files.",
    )

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts_are_names(cls, hosts: list[str]) -> list[str]:
        for host in hosts:
            bare = host.removeprefix("http://").removeprefix("https://")
            if not bare or "/" in bare or "@" in bare:
                raise ValueError(
                    f"runbooks.allowed_hosts entry {host!r} must be a host name "
                    "(optionally *.domain or http://host), not a URL with a path"
                )
        return hosts

    def directories(self) -> list[Path]:
        """The runbook directories to search, the shipped set last."""
        return [*self.dirs, *([SHIPPED_RUNBOOKS_DIR] if self.include_shipped else [])]

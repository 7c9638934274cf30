"""The Alertmanager integration kit: templates that link each alert to OncallM, and config.

``deploy/alertmanager/oncallm.tmpl`` defines Go templates (``oncallm.link``,
``oncallm.slack.text``, ...) that put ``{base_url}/alerts/{fingerprint}`` into Slack, email
and PagerDuty notifications. Alertmanager templates cannot read the environment, so the
base URL is a second, one-line template file (``oncallm-base-url.tmpl``) generated here.

``render_config`` builds what ``oncallm alertmanager-config`` prints: an ``alertmanager.yml``
(or kube-prometheus-stack Helm values) with the templates, OncallM's webhook receiver, a
route that sends every alert to OncallM and on to the team's receiver, and an example
Slack receiver using the templates. It is built as data and dumped with PyYAML, so values
are always quoted correctly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import yaml

from oncallm.config import Settings, WebhookAuthMode
from oncallm.errors import OncallmError

WEBHOOK_PATH = "/api/v1/alerts/alertmanager"
TEMPLATE_FILE = "oncallm.tmpl"
BASE_URL_FILE = "oncallm-base-url.tmpl"
# Inside an installed wheel (pyproject's force-include), else the repository's deploy/.
TEMPLATE_SOURCES = (
    Path(__file__).resolve().parent / "alertmanager" / TEMPLATE_FILE,
    Path(__file__).resolve().parents[1] / "deploy" / "alertmanager" / TEMPLATE_FILE,
)

# Where Alertmanager finds template files: a plain install, and kube-prometheus-stack
# (its chart mounts `alertmanager.templateFiles` next to the config and loads *.tmpl there).
DEFAULT_TEMPLATES_DIR = "/etc/alertmanager/templates"
HELM_TEMPLATES_DIR = "/etc/alertmanager/config"
# prometheus-operator mounts `alertmanagerSpec.secrets` at /etc/alertmanager/secrets/<name>/.
WEBHOOK_MOUNT = "oncallm-webhook"
SLACK_MOUNT = "alertmanager-slack"
MOUNTS_DIR = "/etc/alertmanager/secrets"

# Characters that would end the Go template the base URL is written into, or split a URL.
_UNSAFE_IN_TEMPLATE = re.compile(r"[\s{}\"'`<>\\|]")


class KitFormat(StrEnum):
    yaml = "yaml"  # alertmanager.yml
    helm = "helm"  # kube-prometheus-stack values


@dataclass(frozen=True)
class KitOptions:
    """What the snippet is generated for."""

    base_url: str
    webhook_url: str
    receiver: str = "oncallm"
    team_receiver: str = "team-slack"
    templates_dir: str = DEFAULT_TEMPLATES_DIR
    auth: WebhookAuthMode = WebhookAuthMode.none
    username: str | None = None
    max_alerts: int = 0


def check_base_url(url: str, what: str = "base URL") -> str:
    """An absolute http(s) URL without query or fragment, trailing slash dropped."""
    if _UNSAFE_IN_TEMPLATE.search(url):
        raise OncallmError(
            f"{what} {url!r} contains a space, quote, brace or similar character; "
            "give the plain URL, e.g. https://oncallm.example.com"
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OncallmError(
            f"{what} {url!r} is not an absolute http(s) URL, e.g. https://oncallm.example.com"
        )
    if parts.query or parts.fragment:
        raise OncallmError(f"{what} {url!r} must not have a query or fragment")
    return url.rstrip("/")


def options_from_settings(
    settings: Settings,
    *,
    base_url: str | None = None,
    webhook_url: str | None = None,
    receiver: str = "oncallm",
    team_receiver: str = "team-slack",
    templates_dir: str | None = None,
    output: KitFormat = KitFormat.yaml,
) -> KitOptions:
    """Options for the configured server: its public URL, its webhook auth mode."""
    base = check_base_url(base_url or settings.server.public_url)
    hook = check_base_url(webhook_url, "webhook URL") if webhook_url else f"{base}{WEBHOOK_PATH}"
    for name, value in (("--receiver", receiver), ("--team-receiver", team_receiver)):
        if not value.strip():
            raise OncallmError(f"{name} must not be empty")
    if receiver == team_receiver:
        raise OncallmError("--receiver and --team-receiver must be different receivers")
    default_dir = HELM_TEMPLATES_DIR if output is KitFormat.helm else DEFAULT_TEMPLATES_DIR
    return KitOptions(
        base_url=base,
        webhook_url=hook,
        receiver=receiver,
        team_receiver=team_receiver,
        templates_dir=(templates_dir or default_dir).rstrip("/") or "/",
        auth=settings.webhook.auth,
        username=settings.webhook.username,
        max_alerts=settings.webhook.max_alerts,
    )


# --- template files ---------------------------------------------------------------------


def template_source() -> str:
    """The shipped oncallm.tmpl (deploy/alertmanager/ in the repository)."""
    found = next((path for path in TEMPLATE_SOURCES if path.is_file()), TEMPLATE_SOURCES[-1])
    try:
        return found.read_text(encoding="utf-8")
    except OSError as exc:
        raise OncallmError(
            f"cannot read the Alertmanager templates {found}: {exc.strerror}; "
            "they ship in the OncallM package and in the repository under deploy/alertmanager/"
        ) from exc


def base_url_template(base_url: str) -> str:
    """The one-line template file that tells oncallm.tmpl where OncallM is."""
    url = check_base_url(base_url)
    return f'{{{{ define "oncallm.base_url" }}}}{url}{{{{ end }}}}\n'


def template_files(options: KitOptions) -> dict[str, str]:
    """File name -> content of both template files, as Alertmanager should load them."""
    return {TEMPLATE_FILE: template_source(), BASE_URL_FILE: base_url_template(options.base_url)}


def write_template_files(options: KitOptions, directory: Path) -> list[Path]:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for name, content in template_files(options).items():
            path = directory / name
            path.write_text(content, encoding="utf-8")
            written.append(path)
    except OSError as exc:
        raise OncallmError(f"cannot write templates to {directory}: {exc.strerror}") from exc
    return written


# --- the configuration -----------------------------------------------------------------


def _tmpl(name: str) -> str:
    return f'{{{{ template "{name}" . }}}}'


def _webhook_config(options: KitOptions) -> dict[str, Any]:
    config: dict[str, Any] = {"url": options.webhook_url, "send_resolved": True}
    secret_dir = f"{MOUNTS_DIR}/{WEBHOOK_MOUNT}"
    if options.auth is WebhookAuthMode.bearer:
        config["http_config"] = {
            "authorization": {"type": "Bearer", "credentials_file": f"{secret_dir}/token"}
        }
    elif options.auth is WebhookAuthMode.basic:
        config["http_config"] = {
            "basic_auth": {
                "username": options.username or "",
                "password_file": f"{secret_dir}/password",
            }
        }
    if options.max_alerts:
        # OncallM refuses a notification with more alerts than webhook.max_alerts; have
        # Alertmanager cut the list instead (it reports the rest as truncatedAlerts).
        config["max_alerts"] = options.max_alerts
    return config


def _slack_receiver(options: KitOptions) -> dict[str, Any]:
    return {
        "name": options.team_receiver,
        "slack_configs": [
            {
                "api_url_file": f"{MOUNTS_DIR}/{SLACK_MOUNT}/api-url",
                "channel": "#oncall",
                "send_resolved": True,
                "title": _tmpl("oncallm.slack.title"),
                "title_link": _tmpl("oncallm.group_link"),
                "text": _tmpl("oncallm.slack.text"),
                "color": _tmpl("oncallm.slack.color"),
            }
        ],
    }


def alertmanager_config(options: KitOptions) -> dict[str, Any]:
    """A complete alertmanager.yml: merge its parts into an existing one."""
    return {
        "templates": [str(PurePosixPath(options.templates_dir) / "oncallm*.tmpl")],
        "route": {
            "receiver": options.team_receiver,
            "group_by": ["alertname", "namespace", "cluster"],
            "routes": [
                # First, and `continue`, so every alert also reaches the routes after it.
                # Without a sibling route below, the team's receiver would get nothing:
                # a parent's receiver only takes alerts that no child route matched.
                {"receiver": options.receiver, "continue": True},
                {"receiver": options.team_receiver},
            ],
        },
        "receivers": [
            {"name": options.receiver, "webhook_configs": [_webhook_config(options)]},
            _slack_receiver(options),
        ],
    }


def helm_values(options: KitOptions) -> dict[str, Any]:
    """kube-prometheus-stack values: the config, both template files, the secrets to mount."""
    config = alertmanager_config(options)
    config["templates"] = [str(PurePosixPath(options.templates_dir) / "*.tmpl")]
    files = {name: _Literal(text) for name, text in template_files(options).items()}
    secrets = [SLACK_MOUNT]
    if options.auth is not WebhookAuthMode.none:
        secrets.insert(0, WEBHOOK_MOUNT)
    return {
        "alertmanager": {
            "config": config,
            "templateFiles": files,
            "alertmanagerSpec": {"secrets": secrets},
        }
    }


class _Literal(str):
    """A multi-line string dumped as a YAML literal block (readable templates)."""


class _Dumper(yaml.SafeDumper):
    pass


def _literal(dumper: yaml.SafeDumper, value: _Literal) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(value), style="|")


_Dumper.add_representer(_Literal, _literal)


def _dump(data: dict[str, Any]) -> str:
    return yaml.dump(
        data,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        width=1000,
        allow_unicode=True,
    )


def _secret_notes(options: KitOptions) -> list[str]:
    if options.auth is WebhookAuthMode.bearer:
        return [
            "webhook.auth is bearer: Alertmanager reads the token (webhook.token) from",
            f"  {MOUNTS_DIR}/{WEBHOOK_MOUNT}/token",
        ]
    if options.auth is WebhookAuthMode.basic:
        return [
            "webhook.auth is basic: Alertmanager reads the password (webhook.password) from",
            f"  {MOUNTS_DIR}/{WEBHOOK_MOUNT}/password",
        ]
    return ["webhook.auth is none: anyone who can reach the webhook can post alerts."]


def render_config(options: KitOptions, output: KitFormat = KitFormat.yaml) -> str:
    """The snippet `oncallm alertmanager-config` prints: comments, then YAML."""
    base_file = base_url_template(options.base_url).rstrip("\n")
    if output is KitFormat.helm:
        notes = [
            "kube-prometheus-stack values for OncallM (helm upgrade ... -f this-file.yaml).",
            "The chart writes templateFiles next to the config and loads them through",
            f"`templates:`. Alerts link to {options.base_url}/alerts/<fingerprint>.",
            *_secret_notes(options),
            f"The Slack webhook URL is read from {MOUNTS_DIR}/{SLACK_MOUNT}/api-url:",
            f"  kubectl -n monitoring create secret generic {SLACK_MOUNT} "
            "--from-literal=api-url=https://hooks.slack.com/services/...",
        ]
        if options.auth is not WebhookAuthMode.none:
            key = "token" if options.auth is WebhookAuthMode.bearer else "password"
            notes.append(
                f"  kubectl -n monitoring create secret generic {WEBHOOK_MOUNT} "
                f"--from-literal={key}=..."
            )
        body = _dump(helm_values(options))
    else:
        notes = [
            "Alertmanager configuration for OncallM; merge it into alertmanager.yml.",
            f"Alerts link to {options.base_url}/alerts/<fingerprint>. Put two files in",
            f"{options.templates_dir}/ (or run this command with --write-templates):",
            f"  {TEMPLATE_FILE}: deploy/alertmanager/{TEMPLATE_FILE} of the OncallM repository",
            f"  {BASE_URL_FILE}: {base_file}",
            *_secret_notes(options),
            f"The Slack webhook URL is read from {MOUNTS_DIR}/{SLACK_MOUNT}/api-url.",
        ]
        body = _dump(alertmanager_config(options))
    header = "".join(f"# {line}\n" for line in notes)
    return f"{header}{body}"

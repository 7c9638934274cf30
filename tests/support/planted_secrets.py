"""A corpus of planted secrets and personal data, each in the place it would really occur.

Every ``Planted`` names the placeholder kind the Redactor must give it, the exact value
that must never reach a model provider, and its *carrier*: a log line (or a few lines), or
a Kubernetes object as kubectl prints it (env values in a Pod template, container args,
ConfigMap data, annotations, Secret data, Event messages). Values are distinctive
(most contain ``Pl4nted``) so that searching request bodies for them cannot hit by chance.

``INNOCENTS`` are texts that must come out of a default Redactor unchanged: the things
triage needs (names, digests, quantities, timestamps, UIDs, error phrases) that look a
little like secrets or numbers.

Helpers: ``all_values()`` (every string, and every encoded form, that must not appear in
a byte sent to a provider), ``encoded_forms(value)``, ``carriers()``, ``log_lines()`` and
``objects()``. Secret carriers are objects for ``Redactor.redact_object``: text alone
cannot tell a Secret's data from a ConfigMap's (and the sources empty Secrets anyway).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

NAMESPACE = "shop"

Carrier = str | dict[str, Any]


@dataclass(frozen=True)
class Planted:
    kind: str  # placeholder kind the Redactor must use, e.g. "PASSWORD" for <PASSWORD_1>
    value: str  # the exact secret; never in a provider request
    carrier: Carrier  # a log text or a Kubernetes object it appears in


def _b64url(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _jwt(payload: dict[str, Any], signature: str) -> str:
    return f"{_b64url({'alg': 'HS256', 'typ': 'JWT'})}.{_b64url(payload)}.{signature}"


def _pem(label: str, tag: str) -> str:
    """A fake PEM block whose base64 lines are unique to ``tag``."""
    lines = [
        f"MIIEv{tag}Line{i}AbCdEfGhIjKlMnOpQrStUvWxYz0123456789+/Pl4nted{tag}{i:02d}"
        for i in range(4)
    ]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"


def _clip(text: str, keep: int) -> str:
    """``text`` cut in the middle as OncallM's digest clips a long line: head, " … ", tail."""
    head = keep * 2 // 3
    return text[:head] + " … " + text[len(text) - (keep - head - 3) :]


def _meta(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": NAMESPACE,
        "uid": "3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b",
        "resourceVersion": "48213",
        "creationTimestamp": "2024-01-15T10:00:00Z",
        **extra,
    }


def _deployment(
    name: str,
    env: list[dict[str, Any]] | None = None,
    args: list[str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "app",
        "image": "registry.example.com/shop/app:v1.28.3",
        "resources": {"limits": {"memory": "512Mi", "cpu": "500m"}},
        "env": [{"name": "LOG_LEVEL", "value": "info"}, *(env or [])],
    }
    if args is not None:
        container["args"] = args
    meta = _meta(name, annotations=annotations) if annotations else _meta(name)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [container]},
            },
        },
    }


def _env_deployment(name: str, env_name: str, value: str) -> dict[str, Any]:
    return _deployment(name, env=[{"name": env_name, "value": value}])


def _configmap(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(name), "data": data}


def _event(name: str, reason: str, message: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": _meta(name),
        "involvedObject": {"kind": "Pod", "namespace": NAMESPACE, "name": "app-7d9f8b6c5-x2x4z"},
        "reason": reason,
        "message": message,
        "type": "Warning",
        "count": 3,
        "lastTimestamp": "2024-01-15T10:23:45Z",
    }


def _secret(name: str, *, data: dict[str, str] | None = None, **fields: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret", "metadata": _meta(name)}
    if data is not None:
        obj["data"] = {k: _b64(v) for k, v in data.items()}
    obj.update(fields)
    return obj


# --- values -----------------------------------------------------------------------------
JWT_LOG = _jwt({"sub": "planted-user-42", "iat": 1700000000}, "Pl4ntedJwtSigA9Zt3KmW8vB2nR5yL0")
JWT_ENV = _jwt(
    {"iss": "planted-issuer", "sub": "system:serviceaccount:shop:api", "exp": 1900000000},
    "Pl4ntedJwtSigB7Xq1LpN4sD6fH8jK0",
)
JWT_BARE = _jwt({"sub": "planted-robot-7", "scope": "orders:write"}, "Pl4ntedJwtSigC5Wm2Rt9")
GCP_KEY = _pem("PRIVATE KEY", "Gcp")
RSA_KEY = _pem("RSA PRIVATE KEY", "Rsa")
SSH_KEY = _pem("OPENSSH PRIVATE KEY", "Ssh")
EC_KEY = _pem("EC PRIVATE KEY", "Ec")
# Private keys as a clip leaves them: cut in the middle (BEGIN and END both kept), cut
# before the END line (a follow-up's budget), and with the BEGIN line cut away.
CLIPPED_KEY = _clip(_pem("RSA PRIVATE KEY", "Clipped"), 200)
HEADLESS_KEY = _pem("RSA PRIVATE KEY", "Headless")[120:]  # BEGIN line and a bit more gone
ENDLESS_KEY = _pem("PRIVATE KEY", "Endless")[:150] + " … (cut to fit the follow-up budget)"
GCP_EMAIL = "planted-sa-31@planted-project.iam.gserviceaccount.com"
GCP_SA = json.dumps(
    {
        "type": "service_account",
        "project_id": "planted-project",
        "private_key_id": "0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c",
        "private_key": GCP_KEY,
        "client_email": GCP_EMAIL,
        "client_id": "100000000000000000001",
        "token_uri": "https://oauth2.googleapis.com/token",
    },
    indent=2,
)
BASIC = _b64("admin:Pl4ntedBasicPw31")
REGISTRY_AUTH = _b64("robot:Pl4ntedRegistryPw77")
DOCKER_CONFIG = json.dumps({"auths": {"registry.example.com": {"auth": REGISTRY_AUTH}}})
SECRET_DATA_PW = "Pl4ntedSecretDataPw8080"
SECRET_STRING_TOKEN = "Pl4ntedStringDataTok3n4141"
LAST_APPLIED_SECRET = json.dumps(
    {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "api-keys", "namespace": NAMESPACE},
        "stringData": {"token": SECRET_STRING_TOKEN},
    },
    separators=(",", ":"),
)
LAST_APPLIED_DEPLOYMENT = json.dumps(
    {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "cache", "namespace": NAMESPACE},
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "env": [
                                {"name": "REDIS_PASSWORD", "value": "Pl4ntedLastAppliedPw3131"}
                            ],
                        }
                    ]
                }
            }
        },
    },
    separators=(",", ":"),
)
GCP_CONFIGMAP = _configmap("gcp-credentials", {"sa.json": GCP_SA})
AZURE_BUS = (
    "Endpoint=sb://planted-ns.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;"
    "SharedAccessKey=Pl4ntedBusKey0123456789abcdefGHIJKLmnop="
)

PLANTED: tuple[Planted, ...] = (
    # bearer and other tokens
    Planted(
        "TOKEN",
        "pl4ntedOpaqueT0ken9d8e7f6a5b4c",
        'level=warn msg="upstream 401" headers={"Authorization": "Bearer '
        'pl4ntedOpaqueT0ken9d8e7f6a5b4c", "Accept": "application/json"}',
    ),
    Planted(
        "TOKEN",
        "Pl4ntedBearerTok3n7c6b5a4d3",
        "2024-01-15T10:23:45Z WARN upstream rejected bearer Pl4ntedBearerTok3n7c6b5a4d3 (expired)",
    ),
    Planted(
        "TOKEN",
        BASIC,
        f"10.244.1.7 - - [15/Jan/2024:10:23:45 +0000] request headers: "
        f"Authorization: Basic {BASIC}",
    ),
    Planted(
        "TOKEN",
        "Pl4ntedAccessTok3n55aa",
        "GET /callback?state=xyz&access_token=Pl4ntedAccessTok3n55aa&user=bob 302",
    ),
    Planted(
        "TOKEN",
        "Pl4ntedFlagToken6262",
        _deployment("sync-agent", args=["--listen=:8080", "--token=Pl4ntedFlagToken6262"]),
    ),
    Planted(
        "TOKEN",
        "Pl4ntedKubeconfigTok3n0a1b2c3d",
        _configmap(
            "ci-kubeconfig",
            {
                "config": (
                    "apiVersion: v1\nkind: Config\nusers:\n- name: ci\n  user:\n"
                    "    token: Pl4ntedKubeconfigTok3n0a1b2c3d\n"
                )
            },
        ),
    ),
    Planted(
        "TOKEN",
        REGISTRY_AUTH,
        _configmap("registry-config", {"config.json": DOCKER_CONFIG}),
    ),
    Planted(
        "TOKEN",
        "ghp_Pl4ntedGithubToken0123456789abcdefAB",
        "fatal: could not read from https://ghp_Pl4ntedGithubToken0123456789abcdefAB@github.com"
        "/shop/deploy.git",
    ),
    Planted(
        "TOKEN",
        "gho_Pl4ntedGithubOauth0123456789abcdefCD",
        _env_deployment("release-bot", "GITHUB_TOKEN", "gho_Pl4ntedGithubOauth0123456789abcdefCD"),
    ),
    Planted(
        "TOKEN",
        "github_pat_11PL4NTED0abcdefghijkl_Pl4ntedFineGrainedPat0123456789",
        _deployment(
            "docs-sync",
            annotations={
                "deploy.example.com/notes": "rotated github_pat_11PL4NTED0abcdefghijkl_"
                "Pl4ntedFineGrainedPat0123456789 on 2024-01-10"
            },
        ),
    ),
    Planted(
        "TOKEN",
        "xoxb-123456789012-1234567890123-Pl4ntedSlackBot0a",
        _configmap(
            "alerts-slack",
            {
                "slack.yaml": "channel: '#oncall'\nbot_token: xoxb-123456789012-1234567890123-"
                "Pl4ntedSlackBot0a\n"
            },
        ),
    ),
    Planted(
        "TOKEN",
        "xoxp-222233334444-Pl4ntedSlackUser9z",
        "notifier: posting to #oncall with xoxp-222233334444-Pl4ntedSlackUser9z failed: "
        "ratelimited",
    ),
    Planted(
        "TOKEN",
        "glpat-Pl4ntedGitlabTok3n0123",
        "remote: HTTP Basic: Access denied for glpat-Pl4ntedGitlabTok3n0123",
    ),
    # JWTs
    Planted("JWT", JWT_LOG, f'level=info msg="session started" token={JWT_LOG} user=planted'),
    Planted("JWT", JWT_ENV, _env_deployment("orders-worker", "SERVICE_TOKEN", JWT_ENV)),
    Planted("JWT", JWT_BARE, f"E0115 10:23:45.000000 1 auth.go:88] jwt rejected: {JWT_BARE}"),
    # cloud keys
    Planted(
        "AWS_KEY",
        "AKIAPL4NTED7EXAMPLE2",
        _env_deployment("uploader", "AWS_ACCESS_KEY_ID", "AKIAPL4NTED7EXAMPLE2"),
    ),
    Planted(
        "AWS_KEY",
        "wJalrPl4ntedSecretKey/K7MDENG+bPxRfiCYEX",
        _env_deployment(
            "backup", "AWS_SECRET_ACCESS_KEY", "wJalrPl4ntedSecretKey/K7MDENG+bPxRfiCYEX"
        ),
    ),
    Planted(
        "AWS_KEY",
        "Pl4ntedAwsSecret0123456789abcdefGHIJKLmn",
        "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\n"
        "aws_secret_access_key = Pl4ntedAwsSecret0123456789abcdefGHIJKLmn\n",
    ),
    Planted(
        "AWS_KEY",
        "ASIAPL4NTED0SESS1ON9",
        "assumed role arn:aws:iam::123456789012:role/uploader, session key ASIAPL4NTED0SESS1ON9",
    ),
    Planted("PRIVATE_KEY", GCP_KEY, GCP_CONFIGMAP),
    Planted("EMAIL", GCP_EMAIL, GCP_CONFIGMAP),
    Planted(
        "SECRET",
        "Pl4ntedAzureAccountKey0123456789abcdefGHIJKLMNOPqrstuvwx+/==",
        _env_deployment(
            "reports",
            "AZURE_STORAGE_CONNECTION_STRING",
            "DefaultEndpointsProtocol=https;AccountName=plantedacct;AccountKey="
            "Pl4ntedAzureAccountKey0123456789abcdefGHIJKLMNOPqrstuvwx+/==;"
            "EndpointSuffix=core.windows.net",
        ),
    ),
    Planted(
        "SECRET",
        "Pl4ntedBusKey0123456789abcdefGHIJKLmnop=",
        _configmap("bus", {"appsettings.json": json.dumps({"ServiceBus": AZURE_BUS})}),
    ),
    Planted(
        "SECRET",
        "Pl4ntedSasSig0123abcdEFGH%2Bxyz%3D",
        "GET https://plantedacct.blob.core.windows.net/backups/db.tar?sv=2022-11-02&ss=b&srt=co"
        "&sp=rl&se=2025-01-01T00:00:00Z&sig=Pl4ntedSasSig0123abcdEFGH%2Bxyz%3D 403",
    ),
    # provider API keys
    Planted(
        "API_KEY",
        "sk-proj-Pl4ntedOpenAIKey0123456789abcdefXYZ",
        _env_deployment(
            "assistant", "OPENAI_API_KEY", "sk-proj-Pl4ntedOpenAIKey0123456789abcdefXYZ"
        ),
    ),
    Planted(
        "API_KEY",
        "sk-ant-api03-Pl4ntedAnthropicKey0123456789-abcdefXYZ_AA",
        "anthropic client init with sk-ant-api03-Pl4ntedAnthropicKey0123456789-abcdefXYZ_AA",
    ),
    Planted(
        "API_KEY",
        "AIzaSyPl4ntedGoogleApiKey0123456789abcd",
        _configmap(
            "maps",
            {"maps.properties": "google.maps.apiKey=AIzaSyPl4ntedGoogleApiKey0123456789abcd\n"},
        ),
    ),
    Planted(
        "API_KEY",
        "Pl4ntedApiKey0d0e0f1a2b",
        '{"ts":"2024-01-15T10:23:45Z","level":"debug","msg":"calling payments",'
        '"api_key":"Pl4ntedApiKey0d0e0f1a2b"}',
    ),
    Planted("API_KEY", "Pl4ntedXApiKey7788aa", "X-Api-Key: Pl4ntedXApiKey7788aa"),
    # ... and the same headers behind a log or event prefix
    Planted(
        "API_KEY",
        "Pl4ntedPrefixedApiKey9f8e7d6c",
        "2026-11-26T03:12:04Z WARN upstream rejected request X-Api-Key: "
        "Pl4ntedPrefixedApiKey9f8e7d6c",
    ),
    Planted(
        "API_KEY",
        "Pl4ntedEventApiKey5b4a3928",
        "Warning FailedCall (x2): X-Api-Key: Pl4ntedEventApiKey5b4a3928",
    ),
    Planted(
        "TOKEN",
        "Pl4ntedXAuthTok3nabcdef0123",
        'level=warn msg="retry" headers="X-Auth-Token: Pl4ntedXAuthTok3nabcdef0123"',
    ),
    Planted(
        "TOKEN",
        "Pl4ntedVaultTok3n4f4f",
        "vault: request failed (X-Vault-Token: Pl4ntedVaultTok3n4f4f): permission denied",
    ),
    # private keys
    Planted("PRIVATE_KEY", RSA_KEY, f'level=debug msg="loaded tls key"\n{RSA_KEY}'),
    Planted("PRIVATE_KEY", CLIPPED_KEY, f'level=debug msg="loaded tls key" {CLIPPED_KEY}'),
    Planted("PRIVATE_KEY", HEADLESS_KEY, f"2026-11-26T03:12:04Z DEBUG … {HEADLESS_KEY}"),
    Planted("PRIVATE_KEY", ENDLESS_KEY, f"tls.key: {ENDLESS_KEY}"),
    Planted("PRIVATE_KEY", SSH_KEY, _configmap("deploy-ssh", {"id_ed25519": SSH_KEY})),
    Planted(
        "PRIVATE_KEY",
        EC_KEY,
        _deployment("edge", annotations={"edge.example.com/signing-material": EC_KEY}),
    ),
    # passwords
    Planted(
        "PASSWORD",
        "Pl4ntedPgPass7731",
        _env_deployment(
            "orders", "DATABASE_URL", "postgres://app:Pl4ntedPgPass7731@db.shop.svc:5432/orders"
        ),
    ),
    Planted(
        "PASSWORD",
        "Pl4ntedAmqpPw4747",
        _event(
            "app.17a2b3c4d5e6f708",
            "BackOff",
            "Failed to connect to amqp://guest:Pl4ntedAmqpPw4747@rabbitmq.shop.svc:5672/: "
            "connection refused",
        ),
    ),
    Planted(
        "PASSWORD",
        "Pl4ntedRedisPw5529",
        "Error 111 connecting to redis://:Pl4ntedRedisPw5529@redis-master:6379/0. "
        "Connection refused.",
    ),
    Planted(
        "PASSWORD",
        "Pl4ntedMongoPw6618",
        _configmap(
            "catalog",
            {
                "MONGO_URI": "mongodb+srv://catalog:Pl4ntedMongoPw6618@cluster0.planted.mongodb.net/db"
            },
        ),
    ),
    Planted(
        "PASSWORD",
        "Pl4nted!Ado#Pw42",
        _configmap(
            "billing",
            {
                "appsettings.json": json.dumps(
                    {
                        "ConnectionStrings": {
                            "Orders": "Server=tcp:sql.planted.test,1433;Database=orders;"
                            "User ID=app;Password=Pl4nted!Ado#Pw42;Encrypt=true;"
                        }
                    },
                    indent=2,
                )
            },
        ),
    ),
    Planted(
        "PASSWORD",
        "Pl4ntedJdbcPw8812",
        "HikariPool-1 - Starting... url=jdbc:postgresql://db:5432/orders?user=app"
        "&password=Pl4ntedJdbcPw8812&ssl=true",
    ),
    Planted(
        "PASSWORD",
        "Pl4ntedMysqlPw3390",
        "[mysql] dial failed dsn=app:Pl4ntedMysqlPw3390@tcp(mysql:3306)/shop?parseTime=true",
    ),
    Planted(
        "PASSWORD",
        "Pl4ntedLogPw0042",
        'level=error msg="login failed" user=app password=Pl4ntedLogPw0042 attempt=3',
    ),
    Planted(
        "PASSWORD",
        "Pl4ntedPrefixedPw2626",
        "2026-11-26T03:12:05Z ERROR connect failed password: Pl4ntedPrefixedPw2626",
    ),
    Planted(
        "PASSWORD",
        "Pl4ntedYamlPasswd77",
        _configmap(
            "legacy",
            {"db.yaml": "db:\n  host: db.shop.svc\n  user: app\n  passwd: Pl4ntedYamlPasswd77\n"},
        ),
    ),
    Planted(
        "PASSWORD",
        "Pl4ntedEnvPw1234",
        "+ env | sort\nDB_HOST=db.shop.svc\nDB_PASSWORD=Pl4ntedEnvPw1234\nDB_USER=app",
    ),
    Planted(
        "PASSWORD",
        "Pl4ntedPodEnvPw9090",
        _env_deployment("postgres-init", "POSTGRES_PASSWORD", "Pl4ntedPodEnvPw9090"),
    ),
    Planted(
        "PASSWORD",
        "Pl4ntedArgPw5151",
        _deployment("migrator", args=["migrate", "--db-password", "Pl4ntedArgPw5151"]),
    ),
    Planted(
        "PASSWORD",
        "Pl4ntedLastAppliedPw3131",
        _deployment(
            "cache",
            annotations={
                "kubectl.kubernetes.io/last-applied-configuration": LAST_APPLIED_DEPLOYMENT
            },
        ),
    ),
    Planted(
        "PASSWORD",
        "Pl4ntedReprPw2323",
        "DEBUG settings: {'user': 'app', 'password': 'Pl4ntedReprPw2323', 'port': 5432}",
    ),
    Planted(
        "PASSWORD",
        "Pl4ntedEscapedPw6060",
        '{"level":"debug","msg":"request body","body":"{\\"user\\":\\"app\\",'
        '\\"password\\":\\"Pl4ntedEscapedPw6060\\"}"}',
    ),
    Planted(
        "SECRET",
        "Pl4ntedClientSecret9f8e7d",
        "POST /oauth/token grant_type=client_credentials&client_id=shop&"
        "client_secret=Pl4ntedClientSecret9f8e7d",
    ),
    # Secret objects (sources empty them; redact_object must anyway)
    Planted("SECRET", SECRET_DATA_PW, _secret("db-creds", data={"password": SECRET_DATA_PW})),
    Planted(
        "SECRET",
        SECRET_STRING_TOKEN,
        _secret(
            "api-keys",
            stringData={"token": SECRET_STRING_TOKEN},
            metadata=_meta(
                "api-keys",
                annotations={
                    "kubectl.kubernetes.io/last-applied-configuration": LAST_APPLIED_SECRET
                },
            ),
        ),
    ),
    Planted(
        "SECRET",
        DOCKER_CONFIG,
        _secret(
            "regcred",
            data={".dockerconfigjson": DOCKER_CONFIG},
            type="kubernetes.io/dockerconfigjson",
        ),
    ),
    # personal data
    Planted(
        "EMAIL",
        "planted.alice.7f3a@example-corp.test",
        "password reset mail sent to planted.alice.7f3a@example-corp.test (template=reset-v2)",
    ),
    Planted(
        "EMAIL",
        "planted.bob+oncall@example-corp.test",
        _deployment("checkout", annotations={"owner": "planted.bob+oncall@example-corp.test"}),
    ),
    Planted(
        "PHONE",
        "+44 20 7946 0958",
        "escalation: paging on-call at +44 20 7946 0958 failed after 3 attempts",
    ),
    Planted(
        "PHONE",
        "(415) 555-0199",
        _configmap("contacts", {"contacts.txt": "Payments on-call: (415) 555-0199\n"}),
    ),
    Planted(
        "PHONE",
        "+1-202-555-0143",
        _deployment("ledger", annotations={"oncall.example.com/phone": "+1-202-555-0143"}),
    ),
    Planted("PHONE", "030 12345678", "Support-Hotline: 030 12345678 (Mo-Fr 9-17 Uhr)"),
    Planted(
        "CARD",
        "4012 8888 8888 1881",
        "2024-01-15 10:23:45,120 WARN charge declined card=4012 8888 8888 1881 reason=insufficient",
    ),
    Planted(
        "CARD",
        "3782 822463 10005",
        '{"level":"error","msg":"tokenization failed","pan":"3782 822463 10005","retry":false}',
    ),
    Planted(
        "CARD",
        "5555-5555-5555-4444",
        _event(
            "payment-worker.17a2b3c4d5e6f709",
            "RetryFailed",
            "payment-worker: retry for card 5555-5555-5555-4444 exhausted",
        ),
    ),
    Planted("CARD", "6011111111111117", "refund queued for pan 6011111111111117 amount=12.50"),
)

INNOCENTS: tuple[str, ...] = (
    'pq: password authentication failed for user "app"',
    'FATAL:  password authentication failed for user "orders" (SQLSTATE 28P01)',
    'Error: secret "db-creds" not found',
    "couldn't find key password in Secret shop/db-creds",
    'MountVolume.SetUp failed for volume "api-token" : secret "api-token" not found',
    "Error: couldn't find key DB_PASSWORD in ConfigMap shop/app-config",
    "failed to refresh token: context deadline exceeded",
    "invalid bearer token",
    'WWW-Authenticate: Bearer realm="kubernetes", error="invalid_token"',
    "password reset requested",
    '{"key": "password", "name": "db-creds", "optional": false}',
    '"secretKeyRef": {"key": "token", "name": "api-keys"}',
    '"secretName": "db-creds"',
    "automountServiceAccountToken: true",
    "tokenExpirationSeconds: 3607",
    "max_tokens=4096 prompt_tokens=812",
    "password: ${DB_PASSWORD}",
    "args: --password=$(DB_PASSWORD)",
    "PWD=/app",
    'kube_secret_info{namespace="shop",secret="db-creds"} 1',
    "DATABASE_URL=postgres://db.shop.svc:5432/orders?sslmode=require",
    "DB_URL=postgres://api@shop-db.c9xk2mq7zt1p.eu-west-1.rds.amazonaws.com:5432/shop",
    "KAFKA_CONTROLLER_QUORUM_VOTERS=0@kafka-0.kafka-headless.kafka.svc.cluster.local:9093",
    "git clone git@github.com:shop/deploy.git",
    '"container.googleapis.com/instance_id": "53407230426758117"',
    '{"remoteRef": {"key": "kafka/orders", "property": "api_key"}, "secretKey": "api-key"}',
    "GOOGLE_APPLICATION_CREDENTIALS=/var/run/secrets/google/sa.json",
    "retrying request_id=4111111111111111",
    "Back-off restarting failed container api in pod api-7d9f8b6c5-x2x4z_shop"
    "(3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b)",
    'Container image "registry.example.com/shop/api:v1.28.3@sha256:9f86d081884c7d659a2feaa0c55ad0'
    '15a3bf4f1b2b0b822cd15d6c15b0f00a08" already present on machine',
    "image nginx@sha256:0d17b565c37bcbd895e9d92315a05c1c3c9a29f762b011a10c54a66cd53c9b31",
    "OOMKilled: memory limit 512Mi exceeded, requests cpu=250m memory=1.5Gi, ephemeral 10Gi",
    "Last State: Terminated, Reason: Error, Exit Code: 137, exit status 1",
    "2024-01-15T10:23:45.123456Z",
    "2024-01-15 10:23:45,123 INFO [main] started in 12.345 seconds (JVM running for 13.2)",
    "I0115 10:23:45.123456       1 controller.go:123] synced 1234567 objects",
    "2024-01-15T10:23:45+05:30 tz offset +0000",
    "listening on 10.0.0.12:8080 and [::]:9090",
    "dial tcp 10.96.0.10:53: i/o timeout",
    'Readiness probe failed: Get "http://10.244.1.7:8080/healthz": context deadline exceeded',
    "read 1048576 bytes in 1m30s (134217728 total, 4294967296 max)",
    "version 1.2.3 build 20240115102345 commit 4f2a9c1",
    "request_id=1700000000123 trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=00f067aa0ba902b7",
    "uid=3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b resourceVersion=123456789 generation=42",
    "node ip-10-0-12-34.ec2.internal NotReady since 2024-01-15",
    "0/3 nodes are available: 3 Insufficient memory. preemption: 0/3 nodes are available",
    "HPA shop/api at max replicas 10/10, cpu 95% (target 80%)",
    "ports 8080 8443 9090 9091 open",
    "duration=1.234567s took 250ms retry in 30s",
    "kubernetes v1.28.3 go1.21.5 linux/amd64",
    "pid 12345 exited with code 143 after 86400 seconds",
    "dates: 15/01/2024 01-15-2024 2024.01.15",
    "Total: 1234 5678 items",
    "ConfigMap shop/app-config keys: application.properties, logback.xml, password-policy.json",
    "secret/db-creds configured",
    "serviceaccount/api-token-reader created",
    "sk-worker-production-01 scaled to 3",
    "task-runner-5f7c9d ready",
)


def encoded_forms(value: str) -> set[str]:
    """The value and the forms it takes on the way to a provider: JSON-escaped (a prompt
    is a JSON string in the request body), escaped twice (JSON inside JSON) and base64."""
    once = json.dumps(value)[1:-1]
    forms = {value, once, json.dumps(once)[1:-1], _b64(value)}
    if "\n" in value:  # a partial leak of a PEM block is a leak
        forms.update(line for line in value.splitlines() if len(line) >= 20 and "-----" not in line)
    return forms


def all_values() -> list[str]:
    """Every string that must never appear in a byte sent to a model provider."""
    values: set[str] = set()
    for planted in PLANTED:
        values |= encoded_forms(planted.value)
    return sorted(values)


def carriers() -> list[Carrier]:
    """Each carrier once (some carry two planted values), in corpus order."""
    seen: list[Carrier] = []
    for planted in PLANTED:
        if not any(planted.carrier is c for c in seen):
            seen.append(planted.carrier)
    return seen


def log_lines() -> list[str]:
    """The carriers that are log text (one or a few lines each)."""
    return [c for c in carriers() if isinstance(c, str)]


def objects() -> list[dict[str, Any]]:
    """The carriers that are Kubernetes objects, as kubectl prints them."""
    return [c for c in carriers() if isinstance(c, dict)]

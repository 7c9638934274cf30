"""Redaction before any byte leaves: what a model provider would see of a triage context.

Every planted secret disappears from its carrier (log text, or a Kubernetes object passed
as an object, as JSON text or as YAML text) and comes back in what users see; the things
triage needs stay readable.
"""

from __future__ import annotations

import copy
import json
import pickle
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oncallm.llm.redaction import KINDS, PLACEHOLDER, Redactor
from oncallm.llm.verdict import Hypothesis, Verdict
from tests.support.planted_secrets import (
    INNOCENTS,
    PLANTED,
    Planted,
    all_values,
    carriers,
    encoded_forms,
    log_lines,
    objects,
)


def _id(planted: Planted) -> str:
    where = planted.carrier if isinstance(planted.carrier, str) else planted.carrier["kind"]
    return f"{planted.kind}:{where[:30]}"


def _renderings(planted: Planted) -> dict[str, tuple[Redactor, str]]:
    """How a carrier may reach a prompt, each through a fresh Redactor."""
    carrier = planted.carrier
    if isinstance(carrier, str):
        r = Redactor()
        return {"text": (r, r.redact(carrier))}
    out: dict[str, tuple[Redactor, str]] = {}
    r = Redactor()
    out["object"] = (r, json.dumps(r.redact_object(carrier)))
    if carrier["kind"] != "Secret":  # Secrets must go through redact_object
        for name, text in (
            ("json", json.dumps(carrier)),
            ("json-indented", json.dumps(carrier, indent=2)),
            ("yaml", yaml.safe_dump(carrier, sort_keys=False)),
        ):
            r = Redactor()
            out[name] = (r, r.redact(text))
    return out


# --- the planted corpus -------------------------------------------------------------------


def test_corpus_covers_every_kind_in_realistic_places() -> None:
    assert len(PLANTED) >= 40
    assert {p.kind for p in PLANTED} == set(KINDS) - {"IP", "NAME"}  # those two are options
    kinds_of_objects = {c["kind"] for c in objects()}
    assert {"Deployment", "ConfigMap", "Secret", "Event"} <= kinds_of_objects
    assert len(log_lines()) >= 20
    assert len(carriers()) == len(log_lines()) + len(objects())
    for card in (p.value for p in PLANTED if p.kind == "CARD"):
        digits = [int(d) for d in card if d.isdigit()][::-1]
        assert sum(sum(divmod(d * (1 + i % 2), 10)) for i, d in enumerate(digits)) % 10 == 0


@pytest.mark.parametrize("planted", PLANTED, ids=_id)
def test_planted_value_is_replaced_by_a_placeholder_of_its_kind(planted: Planted) -> None:
    for rendering, (redactor, out) in _renderings(planted).items():
        leaked = [form for form in encoded_forms(planted.value) if form in out]
        assert not leaked, f"{rendering}: {leaked[0]!r} left in {out!r}"
        assert f"<{planted.kind}_" in out, f"{rendering}: no {planted.kind} in {out!r}"
        assert redactor.counts[planted.kind] >= 1


@pytest.mark.parametrize("carrier", log_lines(), ids=lambda c: c[:30])
def test_log_text_comes_back_exactly(carrier: str) -> None:
    redactor = Redactor()
    assert redactor.restore(redactor.redact(carrier)) == carrier


@pytest.mark.parametrize("obj", objects(), ids=lambda o: f"{o['kind']}/{o['metadata']['name']}")
def test_objects_come_back_exactly_and_are_not_modified(obj: dict[str, Any]) -> None:
    before = copy.deepcopy(obj)
    redactor = Redactor()
    redacted = redactor.redact_object(obj)
    assert obj == before
    assert redactor.restore_value(redacted) == obj
    assert redactor.restore(redactor.redact(json.dumps(obj))) == json.dumps(obj)


def test_no_planted_value_survives_a_whole_context_with_one_redactor() -> None:
    redactor = Redactor()
    prompt = "\n".join(
        [redactor.redact(line) for line in log_lines()]
        + [json.dumps(redactor.redact_object(obj)) for obj in objects()]
    )
    body = json.dumps({"messages": [{"role": "user", "content": prompt}]})
    for value in all_values():
        assert value not in prompt
        assert value not in body


@pytest.mark.parametrize("text", INNOCENTS, ids=lambda t: t[:40])
def test_what_triage_needs_is_left_alone(text: str) -> None:
    redactor = Redactor()
    assert redactor.redact(text) == text
    assert redactor.counts == {}


@pytest.mark.parametrize(
    "text",
    [
        "2024-01-15 10:23:45",  # timestamp
        "10:23:45.123456",
        "v1.28.3 and 1.2.3.4567",  # versions
        "0.0.0.0:8080 :9090 port 30080",  # ports
        "1h30m 250ms 86400s",  # durations
        "1048576 bytes, 134217728 total",  # byte counts
        "512Mi 1.5Gi 250m 2",  # resource quantities
        "uid 3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b",
        "uid 12345678-1234-5678-1234-567812345678",  # an all-digit UID
        "pod api-7d9f8b6c5-x2x4z pod web-5555555555-abcde",  # pod hashes
        "10.244.1.7 192.168.100.200",  # IPs, with ips off
        "resourceVersion 48213 generation 42 exit code 137",
        "epoch 1700000000 millis 1700000000123 build 20240115102345",
        "tz +0000 +05:30 -0800",
        "1234 5678 9012",  # too short for a card, wrong shape for a phone
        "4111 1111 1111 1112",  # card-shaped but fails the Luhn check
        "1234567812345678",  # Luhn-valid, but no card network starts with 1
        "counts 400 500 300 200 100",
        "instance 53407230426758117",  # 17 digits in a row: no card is printed like that
    ],
)
def test_numbers_that_are_not_phone_or_card_numbers_stay(text: str) -> None:
    assert Redactor().redact(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("call +49 30 12345678 now", "call <PHONE_1> now"),
        ("call +14155550199.", "call <PHONE_1>."),
        ("tel: (212) 555-0123", "tel: <PHONE_1>"),
        ("tel 212.555.0123", "tel <PHONE_1>"),
        ("mobile 07700 900123", "mobile <PHONE_1>"),
        ("visa 4111111111111111", "visa <CARD_1>"),
        ("amex 3782-822463-10005", "amex <CARD_1>"),
        ("mc 2221 0000 0000 0009", "mc <CARD_1>"),
        ("visa 4222222222222 and 4111 1111 1111 1111 110", "visa <CARD_1> and <CARD_2>"),
    ],
)
def test_phone_and_card_formats(text: str, expected: str) -> None:
    assert Redactor().redact(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc.def-ghi", "Authorization: Bearer <TOKEN_1>"),
        ('"authorization":"token ghp_x"', '"authorization":"token <TOKEN_1>"'),
        ("PASSWORD=hunter2", "PASSWORD=<PASSWORD_1>"),
        ("Passwd: hunter2", "Passwd: <PASSWORD_1>"),
        ('{"clientSecret": "s3cr3t"}', '{"clientSecret": "<SECRET_1>"}'),
        ("apiKey=abc123", "apiKey=<API_KEY_1>"),
        ("--db-password hunter2 --verbose", "--db-password <PASSWORD_1> --verbose"),
        ("token: Bearer abcdef", "token: Bearer <TOKEN_1>"),
        ("https://user:p%40ss@host/x", "https://user:<PASSWORD_1>@host/x"),
        ("Password=a;b=c", "Password=<PASSWORD_1>;b=c"),
        ("map[password:hunter2 user:app]", "map[password:<PASSWORD_1> user:app]"),
    ],
)
def test_only_the_value_of_a_credential_is_replaced(text: str, expected: str) -> None:
    assert Redactor().redact(text) == expected


# --- placeholders ---------------------------------------------------------------------------


def test_placeholders_are_stable_and_numbered_per_kind() -> None:
    redactor = Redactor()
    first = redactor.redact("from a@example.com to b@example.com, password=x1")
    again = redactor.redact("reply to b@example.com and a@example.com")
    assert first == "from <EMAIL_1> to <EMAIL_2>, password=<PASSWORD_1>"
    assert again == "reply to <EMAIL_2> and <EMAIL_1>"
    assert redactor.counts == {"EMAIL": 4, "PASSWORD": 1}


def test_a_value_keeps_its_own_kind_wherever_it_appears() -> None:
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4eXoifQ.c2lnbmF0dXJlMTIz"
    redactor = Redactor()
    out = redactor.redact(f"token={jwt} Authorization: Bearer {jwt} raw {jwt}")
    assert out == "token=<JWT_1> Authorization: Bearer <JWT_1> raw <JWT_1>"


def test_text_that_already_contains_placeholders_is_not_confused() -> None:
    redactor = Redactor()
    text = "template <EMAIL_1> <PASSWORD_2> sent to bob@example.com password=hunter2"
    out = redactor.redact(text)
    assert out == "template <EMAIL_1> <PASSWORD_2> sent to <EMAIL_2> password=<PASSWORD_1>"
    assert redactor.restore(out) == text
    # A model quoting the lookalike gets the lookalike back, not Bob's address.
    assert redactor.restore("<EMAIL_1> wrote to <EMAIL_2>") == "<EMAIL_1> wrote to bob@example.com"


def test_redacting_twice_changes_nothing_more() -> None:
    redactor = Redactor()
    once = redactor.redact("\n".join(log_lines()))
    assert redactor.redact(once) == once
    counts = dict(redactor.counts)
    assert redactor.redact(once) == once
    assert redactor.counts == counts


def test_unknown_placeholders_and_plain_text_restore_unchanged() -> None:
    redactor = Redactor()
    redactor.redact("password=hunter2")
    assert redactor.restore("<PASSWORD_9> and <FOO_1> and <PASSWORD_1>") == (
        "<PASSWORD_9> and <FOO_1> and hunter2"
    )


_FRAGMENTS = [
    *(p.value for p in PLANTED),
    *log_lines()[:10],
    *INNOCENTS[:10],
    "<EMAIL_1>",
    "<PASSWORD_1>",
    "<NAME_2>",
    "password=",
    '"token": "',
    "Bearer ",
    "://u:",
    "@",
    "\\n",
    "\n",
    " ",
    ";",
    '"',
    "+44 ",
    "4111 1111 ",
    "shop",
    "api",
    "10.0.0.",
]
_TEXTS = st.lists(st.one_of(st.text(max_size=12), st.sampled_from(_FRAGMENTS)), max_size=12).map(
    "".join
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_TEXTS, ips=st.booleans(), named=st.booleans())
def test_restore_inverts_redact(text: str, ips: bool, named: bool) -> None:
    redactor = Redactor(ips=ips, names=["shop", "api", "db-creds"] if named else ())
    redacted = redactor.redact(text)
    assert redactor.restore(redacted) == text
    # Placeholders are never redacted again (they may only be joined by new ones where a
    # secret was glued to a replaced value without any separator).
    again = redactor.redact(redacted)
    for placeholder in set(PLACEHOLDER.findall(redacted)):
        assert again.count(placeholder) >= redacted.count(placeholder)


@settings(max_examples=150, deadline=None)
@given(text=st.text())
def test_restore_inverts_redact_for_any_text(text: str) -> None:
    redactor = Redactor(ips=True, names=["a1", "b-2"])
    assert redactor.restore(redactor.redact(text)) == text


# --- options --------------------------------------------------------------------------------


def test_names_option_replaces_whole_names_longest_first() -> None:
    redactor = Redactor(names=["api", "shop", "db", "db-creds", "x"])
    text = (
        "pod shop/api-7d9f8b6c5-x2x4z of deployment api in namespace shop, "
        "secret db-creds, host api.shop.svc, mail api@example.com, x marks"
    )
    out = redactor.redact(text)
    assert out == (
        "pod <NAME_1>/api-7d9f8b6c5-x2x4z of deployment <NAME_2> in namespace <NAME_1>, "
        "secret <NAME_3>, host <NAME_2>.<NAME_1>.svc, mail <EMAIL_1>, x marks"
    )
    assert redactor.restore(out) == text


def test_names_are_not_replaced_without_the_option() -> None:
    assert Redactor().redact("deployment api in namespace shop") == (
        "deployment api in namespace shop"
    )


def test_ips_option() -> None:
    text = (
        "dial 10.0.0.12:5432 from 2001:db8::1 and [fe80::1ff:fe23:4567:890a]:443; "
        "listen 127.0.0.1 0.0.0.0 ::1 at 10:23:45 mac aa:bb:cc:dd:ee:ff v1.2.3 999.1.1.1 "
        "again 10.0.0.12."
    )
    assert Redactor().redact(text) == text
    redactor = Redactor(ips=True)
    out = redactor.redact(text)
    assert out == (
        "dial <IP_1>:5432 from <IP_2> and [<IP_3>]:443; "
        "listen 127.0.0.1 0.0.0.0 ::1 at 10:23:45 mac aa:bb:cc:dd:ee:ff v1.2.3 999.1.1.1 "
        "again <IP_1>."
    )
    assert redactor.counts == {"IP": 4}


# --- values and objects ---------------------------------------------------------------------


def test_redact_value_is_deep_and_keeps_keys() -> None:
    redactor = Redactor()
    value = {
        "password": "hunter2",
        "pin_password": 123456,
        "enabled_token": True,
        "nested": [{"msg": "mail bob@example.com"}, ("Bearer abcdefghij0123456789",)],
        "env": [{"name": "DB_PASSWORD", "value": "pw1"}, {"name": "MODE", "value": "fast"}],
        "args": ["--password", "pw2", "--token=tok3", "-v"],
        "secretName": "db-creds",
        "count": 3,
        "none": None,
    }
    out = redactor.redact_value(value)
    assert out == {
        "password": "<PASSWORD_1>",
        "pin_password": "<PASSWORD_2>",
        "enabled_token": True,
        "nested": [{"msg": "mail <EMAIL_1>"}, ("Bearer <TOKEN_1>",)],
        "env": [
            {"name": "DB_PASSWORD", "value": "<PASSWORD_3>"},
            {"name": "MODE", "value": "fast"},
        ],
        "args": ["--password", "<PASSWORD_4>", "--token=<TOKEN_2>", "-v"],
        "secretName": "db-creds",
        "count": 3,
        "none": None,
    }
    assert redactor.restore_value(out)["nested"] == value["nested"]
    assert redactor.restore_value(out)["pin_password"] == "123456"  # text on the way back


def test_secret_objects_lose_every_value_but_keep_their_keys() -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "db-creds",
            "namespace": "shop",
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": '{"data":{"x":"eHl6"}}',
                "team": "payments",
            },
        },
        "type": "Opaque",
        "data": {"username": "YXBw", "password": "aHVudGVyMg==", "empty": ""},
        "stringData": {"config.yaml": "mode: fast\n"},
    }
    redactor = Redactor()
    out = redactor.redact_object(secret)
    assert out["data"] == {"username": "<SECRET_1>", "password": "<SECRET_2>", "empty": ""}
    assert out["stringData"] == {"config.yaml": "<SECRET_3>"}
    annotations = out["metadata"]["annotations"]
    assert annotations == {
        "kubectl.kubernetes.io/last-applied-configuration": "<SECRET_4>",
        "team": "payments",
    }
    assert (out["metadata"]["name"], out["type"]) == ("db-creds", "Opaque")
    assert redactor.restore_value(out) == secret
    emptied = {**secret, "data": dict.fromkeys(secret["data"], ""), "stringData": {}}
    emptied["metadata"] = {"name": "db-creds", "namespace": "shop"}
    assert Redactor().redact_object(emptied) == emptied  # as the sources deliver them


def test_a_list_of_objects_is_redacted_item_by_item() -> None:
    secret = {"kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "djE="}}
    pod_env = {"name": "API_TOKEN", "value": "t0k3n-123"}
    pod = {"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"env": [pod_env]}]}}
    out = Redactor().redact_object({"kind": "List", "items": [secret, pod]})
    assert out["items"][0]["data"] == {"k": "<SECRET_1>"}
    assert out["items"][1]["spec"]["containers"][0]["env"][0]["value"] == "<TOKEN_1>"


def test_restore_value_returns_the_same_model_class() -> None:
    redactor = Redactor(names=["orders-db"])
    redactor.redact("orders-db rejected password=hunter2")
    verdict = Verdict(
        explanation="<NAME_1> refused the login: <PASSWORD_1> is stale [ev-1].",
        root_cause=Hypothesis(
            category="ConfigError", summary="<NAME_1> rejects the app", confidence=0.8
        ),
    )
    restored = redactor.restore_value(verdict)
    assert isinstance(restored, Verdict)
    assert restored.explanation == "orders-db refused the login: hunter2 is stale [ev-1]."
    assert restored.root_cause.summary == "orders-db rejects the app"
    assert redactor.restore_value(["<NAME_1>", ("<NAME_1>",)]) == ["orders-db", ("orders-db",)]


# --- the mapping stays inside ---------------------------------------------------------------


def test_the_mapping_never_leaves_the_redactor() -> None:
    redactor = Redactor(names=["orders-db"])
    redactor.redact("orders-db password=hunter2 mail bob@example.com")
    for shown in (repr(redactor), str(redactor)):
        assert "hunter2" not in shown
        assert "bob@example.com" not in shown
        assert "orders-db" not in shown
    with pytest.raises(TypeError):
        pickle.dumps(redactor)
    with pytest.raises(TypeError):
        copy.deepcopy(redactor)
    assert dict(redactor.counts) == {"NAME": 1, "PASSWORD": 1, "EMAIL": 1}
    assert all(PLACEHOLDER.fullmatch(f"<{kind}_1>") for kind in KINDS)


def test_a_large_log_is_redacted_completely() -> None:
    """200 KB of log with planted values spread through it: all of them go. (How fast
    this runs is measured by benchmarks/redaction.py, not asserted here.)"""
    filler = "\n".join(INNOCENTS)
    chunks = []
    while sum(map(len, chunks)) < 200 * 1024:
        chunks += [filler, *log_lines()]
    log = "\n".join(chunks)
    redactor = Redactor(ips=True, names=["shop", "api"])
    out = redactor.redact(log)
    leaked = [p.value for p in PLANTED if isinstance(p.carrier, str) and p.value in out]
    assert not leaked
    assert redactor.restore(out) == log


# --- credentials behind a log prefix, private keys cut by a clip ------------------------------

_RSA_LINES = [
    f"MIIEvCutLine{i}AbCdEfGhIjKlMnOpQrStUvWxYz0123456789+/Pl4ntedCut{i:02d}" for i in range(4)
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "2026-11-26T03:12:04Z WARN upstream rejected request X-Api-Key: "
            "9f8e7d6c5b4a39281706f5e4d3c2b1a0",
            "2026-11-26T03:12:04Z WARN upstream rejected request X-Api-Key: <API_KEY_1>",
        ),
        (
            "Warning FailedCall (x2): X-Api-Key: 9f8e7d6c5b4a39281706f5e4d3c2b1a0",
            "Warning FailedCall (x2): X-Api-Key: <API_KEY_1>",
        ),
        (
            'level=warn msg="retry" headers="X-Auth-Token: abcdef0123456789abcdef"',
            'level=warn msg="retry" headers="X-Auth-Token: <TOKEN_1>"',
        ),
        ("request failed (Api-Key: k3y0123456789abcd)", "request failed (Api-Key: <API_KEY_1>)"),
        (
            "headers [X-Vault-Token: hvs.CAESIabc123]",
            "headers [X-Vault-Token: <TOKEN_1>]",
        ),
        ("hdr={X-Access-Token: Tok3nValue99}", "hdr={X-Access-Token: <TOKEN_1>}"),
        ("a=1;Private-Token: Pr1vTok3n0000", "a=1;Private-Token: <TOKEN_1>"),
        ("sent,apikey: AbC123xyz789", "sent,apikey: <API_KEY_1>"),
        (
            "I0115 client.go:88] x-api-key: Abc123defghij",
            "I0115 client.go:88] x-api-key: <API_KEY_1>",
        ),
        (
            "2026-11-26T03:12:05Z ERROR connect failed password: hunter2xyz",
            "2026-11-26T03:12:05Z ERROR connect failed password: <PASSWORD_1>",
        ),
        (
            "db init (user: app, db_password: S3cr3tPw!)",
            "db init (user: app, db_password: <PASSWORD_1>)",
        ),
    ],
)
def test_a_credential_header_or_password_behind_a_prefix_is_redacted(
    text: str, expected: str
) -> None:
    redactor = Redactor()
    assert redactor.redact(text) == expected
    assert redactor.restore(expected) == text


@pytest.mark.parametrize(
    "text",
    [
        "upstream rejected request: X-Api-Key: missing",
        "401 Unauthorized X-Api-Key: invalid",
        "missing header X-Api-Key: api-key",  # names a key
        "forwarding X-Api-Key: ${API_KEY}",  # unexpanded
        "forwarding X-Auth-Token: ****",  # masked
        "ERROR invalid password: too short",
        "ERROR password: required",
        "login failed, password: Expired",
        "set password: n/a",
        "mounted secret: db-creds",  # generic keys stay line-start only
        "refresh failed token: expired",
        "quota token: 3600",
        "MountVolume.SetUp failed for volume secret: api-token",
        'msg="invalid token": x',
        "authorization: denied",
        "error: passwords: 3 rotated",
        "password: |",
        "sshd: passphrase: (none)",
        "DEBUG settings password: <none>",
        "open /etc/passwd: permission denied",
    ],
)
def test_prose_after_a_prefix_is_left_alone(text: str) -> None:
    redactor = Redactor()
    assert redactor.redact(text) == text
    assert redactor.counts == {}


@pytest.mark.parametrize(
    "text",
    [
        # digest clip: " … " inside a line of the key
        "-----BEGIN RSA PRIVATE KEY-----\n"
        f"{_RSA_LINES[0]}\n{_RSA_LINES[1][:30]} … {_RSA_LINES[2][40:]}\n{_RSA_LINES[3]}\n"
        "-----END RSA PRIVATE KEY-----",
        # a bare cut marker, and a cut note, inside the base64
        f"-----BEGIN PRIVATE KEY-----\n{_RSA_LINES[0]}…{_RSA_LINES[3]}\n-----END PRIVATE KEY-----",
        "-----BEGIN EC PRIVATE KEY-----\n"
        f"{_RSA_LINES[0][:25]} … (cut) … {_RSA_LINES[3][20:]}\n-----END EC PRIVATE KEY-----",
        # lines omitted between BEGIN and END
        "-----BEGIN OPENSSH PRIVATE KEY-----\n"
        f"{_RSA_LINES[0]}\n[… 2 lines omitted]\n{_RSA_LINES[3]}\n-----END OPENSSH PRIVATE KEY-----",
        # JSON-escaped in a log line
        '{"msg":"key","pem":"-----BEGIN RSA PRIVATE KEY-----\\n'
        f"{_RSA_LINES[0]}\\n{_RSA_LINES[1][:9]} … {_RSA_LINES[2][9:]}\\n"
        '-----END RSA PRIVATE KEY-----\\n"}',
    ],
)
def test_a_private_key_cut_by_a_clip_is_redacted_whole(text: str) -> None:
    redactor = Redactor()
    out = redactor.redact(text)
    assert "Pl4ntedCut" not in out, out
    assert "MIIEv" not in out, out
    assert out.count("<PRIVATE_KEY_1>") == 1
    assert redactor.restore(out) == text


def test_a_private_key_whose_end_was_cut_off_loses_its_body() -> None:
    text = (
        'level=debug msg="loaded tls key"\n-----BEGIN RSA PRIVATE KEY-----\n'
        f"{_RSA_LINES[0]}\n{_RSA_LINES[1][:12]} … (cut to fit the follow-up budget)"
    )
    redactor = Redactor()
    out = redactor.redact(text)
    assert out == 'level=debug msg="loaded tls key"\n<PRIVATE_KEY_1>'
    assert redactor.restore(out) == text
    head = f"-----BEGIN RSA PRIVATE KEY-----\n{_RSA_LINES[0]}\n"
    tail = f"{head}{_RSA_LINES[1][:12]} … {_RSA_LINES[1][-6:]}"
    assert Redactor().redact(f"{tail} connection refused") == "<PRIVATE_KEY_1> connection refused"


def test_a_private_key_whose_begin_was_cut_off_loses_the_lines_before_its_end() -> None:
    text = (
        f'2026-11-26T03:12:04Z DEBUG msg="loaded tls key" -----BEGIN RSA PRI … '
        f"{_RSA_LINES[1][30:]}\n{_RSA_LINES[2]}\n{_RSA_LINES[3]}\n"
        "-----END RSA PRIVATE KEY-----\nnext line"
    )
    redactor = Redactor()
    out = redactor.redact(text)
    assert "Pl4ntedCut" not in out, out
    assert out.endswith("<PRIVATE_KEY_1>\nnext line"), out
    assert out.startswith('2026-11-26T03:12:04Z DEBUG msg="loaded tls key" -----BEGIN RSA'), out
    assert redactor.restore(out) == text
    escaped = f"tail: {_RSA_LINES[2]}\\n{_RSA_LINES[3]}\\n-----END PRIVATE KEY-----\\n"
    assert Redactor().redact(escaped) == "tail: <PRIVATE_KEY_1>\\n"
    # an END line alone hides nothing
    assert Redactor().redact("-----END PRIVATE KEY-----") == "-----END PRIVATE KEY-----"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("naïve … password=hunter2", "naïve … password=<PASSWORD_1>"),
        (
            "İstanbul İ password=hunter2 PASSWORD=x1",
            "İstanbul İ password=<PASSWORD_1> PASSWORD=<PASSWORD_2>",
        ),
        ("\u212aelvin password=hunter2", "\u212aelvin password=<PASSWORD_1>"),
    ],
)
def test_offsets_hold_in_text_that_is_not_ascii(text: str, expected: str) -> None:
    """The rules run on a lowercased copy; its offsets must be the text's."""
    redactor = Redactor()
    assert redactor.redact(text) == expected
    assert redactor.restore(expected) == text

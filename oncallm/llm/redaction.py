"""Redaction of everything OncallM sends to an LLM provider, and the way back.

This module owns the ``Redactor``: one per triage, it replaces secrets and personal data
in prompt text, JSON-like values and Kubernetes objects by stable placeholders, and maps
the placeholders in the model's answer back to the originals for what users see. The
mapping lives only in the Redactor's memory: nothing here serialises it, ``repr()`` shows
counts only and pickling is refused.

Placeholder kinds (``<KIND_n>``, numbered per kind from 1, one number per distinct value):

- ``PRIVATE_KEY``: PEM private key blocks (RSA, EC, OpenSSH, PKCS#8, GCP service accounts),
  also when a clip cut them (`` … `` inside, or the BEGIN or END line cut off)
- ``JWT``: JSON Web Tokens (``eyJ...``, three base64url segments)
- ``AWS_KEY``: AWS access key ids (AKIA/ASIA...) and secret access keys
- ``API_KEY``: OpenAI/Anthropic ``sk-`` and Google ``AIza`` keys, ``api_key`` values
- ``TOKEN``: bearer/basic credentials, GitHub/GitLab/Slack tokens, ``token``/``auth`` values
- ``PASSWORD``: passwords in URLs, DSNs and connection strings, ``password=``-style values
- ``SECRET``: other ``secret``/``client_secret``/``AccountKey``/``sig`` values, Secret data
- ``EMAIL``: e-mail addresses
- ``PHONE``: ``+CC`` international, NANP ``(415) 555-0199`` and national ``0...`` numbers
- ``CARD``: payment card numbers (13-19 digits, a card network prefix, Luhn-valid)
- ``IP``: IPv4/IPv6 addresses, only with ``ips=True`` (loopback and ``0.0.0.0`` stay)
- ``NAME``: the object and namespace names given as ``names`` (``llm.redact_object_names``)

For key/value secrets the key stays and only the value is replaced
(``password=<PASSWORD_1>``), so the model still sees *that* a password was set. What
triage needs stays: object names, image digests, quantities, timestamps, UIDs, ConfigMap
keys and error phrases such as ``password authentication failed``.
"""

from __future__ import annotations

import functools
import heapq
import ipaddress
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NoReturn, TypeVar, cast

from pydantic import BaseModel

__all__ = ["KINDS", "PERSONAL_KINDS", "PLACEHOLDER", "SECRET_KINDS", "Redactor"]

SECRET_KINDS = ("PRIVATE_KEY", "JWT", "AWS_KEY", "API_KEY", "TOKEN", "PASSWORD", "SECRET")
PERSONAL_KINDS = ("EMAIL", "PHONE", "CARD", "IP", "NAME")
KINDS: tuple[str, ...] = SECRET_KINDS + PERSONAL_KINDS
PLACEHOLDER = re.compile(r"<(?:%s)_[0-9]+>" % "|".join(KINDS))  # noqa: UP031

_T = TypeVar("_T")

# --- what to look for ------------------------------------------------------------------
# Speed: one regex per rule, each starting with a literal or a small character set so
# that `re` can skip ahead in C; rules about words (password=, Bearer) run over an
# ASCII-lowercased copy of the text (same length, same offsets) because case-insensitive
# alternations are an order of magnitude slower. `_scan` merges the rules' matches
# leftmost-first, as a single alternation would.
_ID = r"a-z0-9_.\-"  # characters of a config key / env var name (lowercased), in a class
# Key words that end a credential key: DB_PASSWORD, client_secret, x-api-key, AccountKey.
# The word must *end* the key, so "secretName" or "tokenExpirationSeconds" never match;
# short words need a separator or the key start before them ("bypass", "oauth").
_KEY_WORDS = ("api", "access", "account", "private", "secret", "signing", "encryption", "master")
_COMPOUND = "|".join(f"(?<={w}key)|(?<={w}[_.\\-]key)" for w in _KEY_WORDS)
_ANCHORS = (  # where a key can end; each starts with a literal for a fast scan
    *(r"pass(?:word|wd|phrase|(?<=[_.\-]pass))", "secret", "token", "credentials?"),
    *(f"key(?:{_COMPOUND})", r"pwd(?<![a-z0-9]pwd)", r"auth(?<![a-z0-9]auth)"),
    r"sig(?<![a-z0-9]sig)",
)
_ENDINGS = (
    *(f"(?<={w})" for w in ("password", "passwd", "passphrase", "secret", "token")),
    "(?<=credential)|(?<=credentials)|(?<=[_.\\-]pass)",
    _COMPOUND,
    *(f"(?<={w})(?<![a-z0-9]{w})" for w in ("pwd", "auth", "sig")),
)
_KEY = rf"[{_ID}]*+(?:{'|'.join(_ENDINGS)})"
_SECRET_KEY = re.compile(_KEY)  # fullmatch on a lowercased key
_SECRET_FLAG = re.compile(rf"--?{_KEY}")
_Q = r"\\?[\"']"  # a quote, possibly escaped once (JSON inside a JSON string)
_SCHEME = r"(?:(?:bearer|basic)[ \t]+(?=[a-z0-9]))?"  # "token: Bearer x" keeps "Bearer"
# A value after a key: double-quoted (JSON), escaped-quoted (JSON in a JSON string),
# single-quoted (Python repr) or bare; only the inside is replaced.
_VALUE = (
    r'(?:"(?P<dq>(?:[^"\\\n]|\\.)+)"'
    r'|\\"(?P<eq>(?:[^"\\\n]|\\\\(?:\\"|\\\\|[^"\\\n]))+)\\"'
    r"|'(?P<sq>[^'\n]+)'"
    r"|(?P<bare>(?![{\[|>])[^\s\"',;&]+))"
)
_KV_SEPARATOR = (
    r"(?:(?P<quoted>\\?[\"']):[ \t]*"  # "password": "x"
    rf"|[ \t]*=[ \t]*{_SCHEME}|:(?=[^\s/]){_SCHEME}"  # password=x, map[token:x]
    rf"|(?P<yaml>[ \t]*:[ \t]+){_SCHEME})"  # a YAML or header line: "  password: x"
)
_FLAG = (  # --password x; in a JSON list "--password", "x"; in a YAML list
    rf"--(?<![{_ID}]--)(?P<key>{_KEY})(?:[ \t]+(?=[^\s\-])|\\?[\"'],\s*(?=\\?[\"'])"
    r"|[ \t]*\n[ \t]*-[ \t]+(?=[^\s\-]))"
)
# PEM labels, tolerant of the line folding YAML applies to long double-quoted strings.
_PEM_LABEL = r"[ a-z0-9\s\\]*?private[\s\\]*key(?:[\s\\]*block)?-----"
_NUM_END = r"(?![A-Za-z0-9]|[.:/_\-][A-Za-z0-9])"
_JWT = r"eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]*"
_AWS_ID = r"(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA|ASCA)[A-Z0-9]{16}"
_VENDORS = (  # (literal start, rest, kind)
    (
        "sk-",
        r"(?:ant-[A-Za-z0-9_\-]{20,}|(?:proj-|svcacct-|admin-)?"
        r"(?=[A-Za-z0-9_\-]*[A-Z])(?=[A-Za-z0-9_\-]*[0-9])[A-Za-z0-9_\-]{20,})",
        "API_KEY",
    ),
    ("AIza", r"[0-9A-Za-z_\-]{35}(?![0-9A-Za-z_\-])", "API_KEY"),
    ("gh", r"[pousr]_[A-Za-z0-9]{36,}", "TOKEN"),
    ("github_pat_", r"[A-Za-z0-9_]{22,}", "TOKEN"),
    ("glpat-", r"[A-Za-z0-9_\-]{20,}", "TOKEN"),
    ("xox", r"[abposr]-[A-Za-z0-9\-]{10,}", "TOKEN"),
    ("xapp-", r"[0-9]-[A-Za-z0-9\-]{10,}", "TOKEN"),
)


_Rule = tuple[str, re.Pattern[str], bool, str]  # handler, regex, on lowered text?, kind


def _rule(handler: str, pattern: str, kind: str, *, lowered: bool = False) -> _Rule:
    return handler, re.compile(pattern), lowered, kind


def _token_start(literal: str, rest: str) -> str:
    """A regex for ``literal + rest`` only where it starts a token; the lookbehind comes
    after the literal so that the regex keeps its fast literal prefix."""
    return f"{literal}(?<![A-Za-z0-9]{'.' * len(literal)}){rest}"


# Private keys as OncallM's clips may leave them: a mark (" … ", "… (cut) …", "[… 3 lines
# omitted]", "… (cut to fit the follow-up budget)", or JSON's \u2026) anywhere inside, the
# END line or the BEGIN line cut away. A base64 run is lines of 20+ base64 characters and
# marks joined to the fragments either side of them, with (escaped) line breaks between.
_MARK = r"(?:…|\\u2026)"
_CUT = (
    rf"(?:{_MARK}(?:[ \t]*\([^()\n]{{0,80}}\)(?:[ \t]*{_MARK})?)?"
    rf"|\[{_MARK}[^\]\n]{{0,40}}\])"
)
_B64 = "[A-Za-z0-9+/=]"
_PEM_SEP = r"(?:\\[nr]|[\s\\])"
_PEM_PIECE = rf"(?>{_B64}*+[ \t]*{_CUT}[ \t]*{_B64}*+|{_B64}{{20,}}+)"
_PEM_RUN = rf"(?>{_PEM_SEP}*+{_PEM_PIECE})*+"
# A whole block spans anything up to its END line (a clip may have put anything inside),
# at most `_PEM_SPAN` characters and never past another BEGIN; without an END line, the
# base64 run after BEGIN goes. Both are found in `_hit`, with str.find, so that a BEGIN or
# END line costs no regex scan ahead or back.
_PEM_SPAN = 20_000
_PEM_BEGIN = rf"-----begin{_PEM_LABEL}"
_PEM_END = rf"-----end{_PEM_LABEL}"
_PEM_END_LINE = re.compile(_PEM_END)
_PEM_BODY = re.compile(_PEM_RUN)
# An END line whose BEGIN was cut off: the base64 run right before it, searched for only
# in the stretch of base64-ish characters before the END (found walking back, reversed).
_PEM_STRETCH = re.compile(r"[A-Za-z0-9+/=\s\\…()\[\]]*")
_CUTS = re.compile(_CUT)
_B64_RUNS = re.compile(f"{_B64}+")
_PEM_TAIL = re.compile(
    rf"(?:(?<![A-Za-z0-9+/=\\])|(?<=\\[nr])){_PEM_PIECE}{_PEM_RUN}{_PEM_SEP}*+\Z"
)
_AUTHZ = (
    r"authorization(?<![a-z0-9]authorization)\\?[\"']?[ \t]*[:=][ \t]*\\?[\"']?"
    r"(?P<scheme>(?:bearer|basic|token|digest|negotiate|apikey)[ \t]+)?(?P<bare>[a-z0-9\-._~+/]+=*)"
)
_ENV = (  # kubectl env entries: {"name": "DB_PASSWORD", "value": "..."} and the YAML form
    rf"name(?<![a-z0-9]name){_Q}?[ \t]*[:=][ \t]*{_Q}?(?P<key>{_KEY}){_Q}?[ \t]*,?\s*"
    rf"{_Q}?value{_Q}?[ \t]*[:=][ \t]*{_VALUE}"
)
_BEARER = (
    r"bearer(?<![a-z0-9]bearer)[ \t]+(?P<bare>(?=[a-z0-9\-._~+/]*[0-9])[a-z0-9\-._~+/]{16,}=*)"
)
_EMAIL = (  # from the @: the local part is found walking back, which keeps the scan fast
    r"@(?<=[A-Za-z0-9._%+\-]@)[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,24}(?![A-Za-z0-9\-])"
)
# Card and phone numbers, never inside versions, IPs, paths or pod hashes; one leading
# character class keeps the scan fast, the lookbehinds then dispatch on that character.
_NUMBER = (
    r"[0-9+(](?<![A-Za-z0-9][0-9+(])(?:"
    r"(?<=\+)(?P<intl>[1-9][0-9]{0,3}(?:[ .\-]?(?:\([0-9]{1,4}\)|[0-9]{1,5})){1,6})"
    r"|(?<=\()(?P<paren>[2-9][0-9]{2}\)[ .\-]?[0-9]{3}[ .\-][0-9]{4}"
    r"|0[1-9][0-9]{0,4}\)(?:[ \-][0-9]{2,8}){1,4})"
    r"|(?<![A-Za-z0-9][./_\-][0-9])(?:(?P<card>(?<=[3-6])[0-9]{3}(?:[ \-]?[0-9]{3,6}){2,4}"
    r"|(?<=2)[2-7][0-9]{2}(?:[ \-]?[0-9]{3,6}){2,4})"
    r"|(?P<nanp>(?<=[2-9])[0-9]{2}[ .\-][0-9]{3}[ .\-][0-9]{4})"
    rf"|(?P<natl>(?<=0)[1-9][0-9]{{0,4}}(?:[ \-][0-9]{{2,8}}){{1,4}}))){_NUM_END}"
)
_RULES: tuple[_Rule, ...] = (  # earlier rules win a tie (same start)
    _rule("pem", _PEM_BEGIN, "PRIVATE_KEY", lowered=True),
    _rule("pem_end", _PEM_END, "PRIVATE_KEY", lowered=True),
    _rule("authz", _AUTHZ, "TOKEN", lowered=True),
    _rule("env", _ENV, "SECRET", lowered=True),
    *(
        _rule("kv", rf"(?P<word>{a})(?![{_ID}]){_KV_SEPARATOR}{_VALUE}", "SECRET", lowered=True)
        for a in _ANCHORS
    ),
    _rule("env", rf"{_FLAG}{_VALUE}", "SECRET", lowered=True),  # a key, then its value
    _rule("url", r"://[^\s:/@?#\"'<>]*:(?P<bare>[^\s/?#\"']+)@", "PASSWORD"),
    _rule("dsn", r"@(?:tcp|unix|udp)\(", "PASSWORD"),  # user:pass@tcp(host) (Go MySQL)
    _rule("bearer", _BEARER, "TOKEN", lowered=True),
    _rule("whole", _token_start("eyJ", _JWT[3:]), "JWT"),
    _rule("whole", rf"{_AWS_ID}(?<![A-Za-z0-9].{{20}})(?![A-Za-z0-9])", "AWS_KEY"),
    *(_rule("whole", _token_start(lit, rest), kind) for lit, rest, kind in _VENDORS),
    _rule("email", _EMAIL, "EMAIL"),
    _rule("number", _NUMBER, "PHONE"),
)
_IP_RULES: tuple[_Rule, ...] = (  # candidates only: _hit checks that they are addresses
    _rule("ip", r"[0-9](?<![A-Za-z0-9.][0-9])[0-9]{0,2}(?:\.[0-9]{1,3}){3}(?![0-9]|\.[0-9])", "IP"),
    _rule(
        "ip",
        r"[0-9A-Fa-f:](?<![A-Za-z0-9.:][0-9A-Fa-f:])(?=[0-9A-Fa-f]{0,3}:[0-9A-Fa-f]{0,4}:)"
        r"[0-9A-Fa-f:.]*+(?![A-Za-z0-9])",
        "IP",
    ),
)
_LOCAL_PART = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-")
_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_DSN_TAIL = re.compile(r"[A-Za-z0-9_.\-]+:(?P<bare>[^\s@/\"']+)\Z")  # user:pass before @tcp(
# A number right after an identifier's key (instance_id, requestId, uid) is not personal.
_ID_VALUE = re.compile(
    r"(?:(?<![A-Za-z])|[_.\-]|(?<=[a-z])(?=I))(?i:u?id)\\?[\"']?[ \t]*[:=][ \t]*\\?[\"']?\Z"
)
_YAML_INDENT = re.compile(r"[ \t]*(?:-[ \t]+)?")
# Behind a prefix, a credential header's key is a token of its own: after a space, a quote
# (handled as before), or the punctuation that opens or separates a list of headers.
_TOKEN_BEFORE = frozenset(" \t,;([{=")
_HEADER_KEY = re.compile(  # on a lowercased key that a kv rule found
    r"x-[a-z0-9_.\-]+"
    r"|[a-z0-9_.\-]*(?:api[_\-]?key|(?:access|client|private|secret)[_\-]?(?:key|secret)"
    r"|(?:access|api|auth|bearer|bot|id|private|refresh|session|vault)[_\-]token)"
)
# Not a credential after a prefix: a word ("X-Api-Key: missing", "password: Expired").
_PROSE = re.compile(r"[(\[<]?(?:[A-Za-z][a-z]{0,15}|n/a|-+)[)\]>]?")
_CLOSERS = {")": "(", "]": "[", "}": "{"}
_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

# Values that reveal nothing and that triage wants to see as they are: booleans, empty
# markers, masks, unexpanded references (an unexpanded $(VAR) is itself a finding) and
# file paths (GOOGLE_APPLICATION_CREDENTIALS=/var/run/secrets/sa.json, PWD=/app).
_INERT = re.compile(
    r"(?i:true|false|null|none|nil|yes|no|\*+|x{3,}|\[?redacted\]?)"
    r"|\$\{[^}]*\}|\$\([^)]*\)|\{\{[^}]*\}\}|(?:/[a-z0-9_.\-]+)+/?"
)
_JWT_FULL = re.compile(_JWT)
_AWS_FULL = re.compile(_AWS_ID)
_VENDOR_FULL = tuple((lit, re.compile(re.escape(lit) + rest), kind) for lit, rest, kind in _VENDORS)
_CLUSTER_TLDS = frozenset({"local", "internal", "svc", "cluster", "localdomain", "lan"})
_SCHEMES = frozenset({"bearer", "basic", "token", "digest", "negotiate", "apikey"})


def _luhn(digits: str) -> bool:
    doubled = (int(d) * (1 + i % 2) for i, d in enumerate(reversed(digits)))
    return sum(d - 9 if d > 9 else d for d in doubled) % 10 == 0


def _is_card(candidate: str) -> bool:
    digits = candidate.replace(" ", "").replace("-", "")
    # Grouped as printed on a card, any length 13-19; a bare run only at the common card
    # lengths, so that 17-digit cloud instance ids and the like stay.
    lengths = (
        range(13, 20) if digits != candidate else (15, 16) if digits[0] != "4" else (13, 16, 19)
    )
    if len(digits) not in lengths:
        return False
    # Card networks start with 3-6, or 2221-2720 (Mastercard): this alone rules out epoch
    # milliseconds and compact 20xx timestamps, which Luhn would pass one time in ten.
    if digits[0] not in "3456" and not (digits[0] == "2" and 2221 <= int(digits[:4]) <= 2720):
        return False
    return _luhn(digits)


def _is_phone(candidate: str) -> bool:
    digits = sum(ch.isdigit() for ch in candidate)
    return (8 if candidate.startswith("+") else 9) <= digits <= 15


# The first group with a word found in a (lowercased) key decides its kind; else SECRET.
_KEY_KINDS = (
    (("pass", "pwd"), "PASSWORD"),
    (("private-token", "private_token", "privatetoken"), "TOKEN"),  # GitLab's header
    (("private",), "PRIVATE_KEY"),
    (("aws", "secret_access", "secretaccess"), "AWS_KEY"),
    (("token", "auth"), "TOKEN"),
    (("api",), "API_KEY"),
)


@functools.lru_cache(maxsize=1024)
def _kind_of_key(key: str) -> str:
    k = key.lower()
    return next((kind for words, kind in _KEY_KINDS if any(w in k for w in words)), "SECRET")


def _kind_of_value(value: str, default: str) -> str:
    """A value whose own format is known keeps that kind wherever it appears, so the same
    JWT is ``<JWT_1>`` after ``token=`` and after ``Bearer``."""
    if value.startswith("eyJ") and _JWT_FULL.fullmatch(value):
        return "JWT"
    if len(value) == 20 and _AWS_FULL.fullmatch(value):
        return "AWS_KEY"
    for literal, pattern, kind in _VENDOR_FULL:
        if value.startswith(literal) and pattern.fullmatch(value):
            return kind
    if value.startswith("-----BEGIN"):
        return "PRIVATE_KEY"
    return default


def _inert(value: str) -> bool:
    return not value or bool(_INERT.fullmatch(value) or PLACEHOLDER.fullmatch(value))


def _names_a_key(value: str) -> bool:
    """``secretKey: api-key`` (an ExternalSecret) names a key; it holds no secret."""
    return len(value) <= 40 and bool(_SECRET_KEY.fullmatch(value.lower()))


def _pem_end(lowered: str, body: int) -> int:
    """Where a private key whose BEGIN line ends at ``body`` ends: after its END line, or
    (no END line within reach) after the base64 run that follows the BEGIN line."""
    limit = min(len(lowered), body + _PEM_SPAN)
    if (begin := lowered.find("-----begin", body, limit)) >= 0:
        limit = begin
    at = lowered.find("-----end", body, limit)
    while at >= 0:
        if (end := _PEM_END_LINE.match(lowered, at)) is not None:
            return end.end()
        at = lowered.find("-----end", at + 8, limit)
    return cast(re.Match[str], _PEM_BODY.match(lowered, body)).end()


def _pem_start(text: str, end_line: int, floor: int) -> int | None:
    """Where the base64 run right before an END line starts, or None without one."""
    span = min(256, end_line - floor)
    while True:  # most END lines have a short stretch: look back 256 characters first
        reach = cast(re.Match[str], _PEM_STRETCH.match(text[end_line - span : end_line][::-1]))
        if reach.end() < span or end_line - span == floor:
            break
        span = min(span * 16, end_line - floor)
    tail = _PEM_TAIL.search(text, end_line - reach.end(), end_line)
    if tail is None or sum(map(len, _B64_RUNS.findall(_CUTS.sub(" ", tail.group())))) < 20:
        return None  # an END line alone, or after a clip's mark alone, hides nothing
    start = tail.start()
    while text[start] in " \t":  # the run may start with the space before a mark
        start += 1
    return start


def _starts_line(text: str, key_start: int) -> bool:
    """Whether only indentation (or a YAML list's dash) comes before the key on its line,
    a line maybe inside a JSON string (an escaped newline)."""
    floor = max(0, key_start - 200)  # indentation is short; never scan far
    newline = text.rfind("\n", floor, key_start)
    escaped = text.rfind("\\n", floor, key_start)
    if newline < 0 and escaped < 0 and floor > 0:
        return False
    line_start = max(newline + 1, escaped + 2 if escaped >= 0 else 0)
    return _YAML_INDENT.fullmatch(text, line_start, key_start) is not None


def _credential_key(key: str) -> bool:
    """A key that says it holds a credential wherever it is (``X-Api-Key``, ``Api-Key``,
    ``X-Auth-Token``, ``Private-Token``, ``db_password``), unlike ``token`` or ``secret``
    (often a Secret's name: "mounted secret: db-creds")."""
    k = key.lower()
    return bool(_HEADER_KEY.fullmatch(k)) or _kind_of_key(k) == "PASSWORD"


def _unclosed(value: str) -> str:
    """The value without the sentence's full stop or the bracket that closes around it:
    "(X-Api-Key: abc)" holds ``abc``."""
    while value and (
        value[-1] in ".:"
        or (value[-1] in _CLOSERS and value.count(_CLOSERS[value[-1]]) < value.count(value[-1]))
    ):
        value = value[:-1]
    return value


def _key_start(text: str, end: int, floor: int) -> int:
    start = end
    while start > floor and text[start - 1] in _KEY_CHARS:
        start -= 1
    return start


def _names_pattern(names: Iterable[str]) -> str:
    """Whole names (not part of a longer name, nor an e-mail's local part) as a trie, so
    that hundreds of names cost little more than a few: one branch per first letter."""
    trie: dict[str, Any] = {}
    for name in names:
        node = trie
        for ch in name:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict[str, Any]) -> str:
        branches = [re.escape(ch) + emit(child) for ch, child in sorted(node.items()) if ch]
        body = branches[0] if len(branches) == 1 else f"(?:{'|'.join(branches)})"
        return "" if not branches else f"(?:{body})?" if "" in node else body

    first = (
        f"{re.escape(ch)}(?<![A-Za-z0-9_\\-].){emit(rest)}" for ch, rest in sorted(trie.items())
    )
    return f"(?:{'|'.join(first)})(?![A-Za-z0-9_\\-@])"


class Redactor:
    """Replaces secrets and personal data by stable placeholders and maps them back.

    One Redactor per triage: the same original always gets the same placeholder (per
    kind), so the model can tell two values apart without seeing either.
    """

    __slots__ = ("_counts", "_ips", "_names", "_next", "_originals", "_ph", "_rules", "_taken")

    def __init__(self, *, ips: bool = False, names: Iterable[str] = ()) -> None:
        self._ips = ips
        # One-character names would shred prose ("a") and identify nothing. The longest
        # name wins ("db-creds" over "db"): the trie tries longer continuations first.
        self._names = sorted({n for n in names if len(n) > 1})
        rules = list(_RULES)
        if self._names:  # before IPs, so that a node named by its address stays one NAME
            rules.append(_rule("whole", _names_pattern(self._names), "NAME"))
        if ips:
            rules += _IP_RULES
        self._rules = tuple(rules)
        self._ph: dict[tuple[str, str], str] = {}
        self._originals: dict[str, str] = {}
        self._next: Counter[str] = Counter()
        self._counts: Counter[str] = Counter()
        # Placeholder-shaped text that was in the input before we issued it: never issued,
        # so restoring cannot turn it into something else.
        self._taken: set[str] = set()

    def __repr__(self) -> str:
        return (
            f"Redactor(ips={self._ips}, names={len(self._names)}, "
            f"placeholders={len(self._originals)})"
        )

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError("a Redactor's mapping never leaves the process it was made in")

    @property
    def counts(self) -> Mapping[str, int]:
        """Replacements made so far, per kind (occurrences, not distinct values)."""
        return dict(self._counts)

    # --- text -------------------------------------------------------------------------
    def redact(self, text: str) -> str:
        if not text:
            return text
        if "<" in text:  # lookalikes already in the input are never issued
            self._taken.update(set(PLACEHOLDER.findall(text)) - self._originals.keys())
        return self._scan(text)

    def restore(self, text: str) -> str:
        """Placeholders issued by this Redactor back to their originals, in one pass."""
        if "<" not in text:
            return text
        return PLACEHOLDER.sub(lambda m: self._originals.get(m.group(0), m.group(0)), text)

    def _placeholder(self, kind: str, original: str) -> str:
        ph = self._ph.get((kind, original))
        if ph is None:
            n = self._next[kind] + 1
            while f"<{kind}_{n}>" in self._taken:
                n += 1
            self._next[kind] = n
            ph = self._ph[(kind, original)] = f"<{kind}_{n}>"
            self._originals[ph] = original
        self._counts[kind] += 1
        return ph

    def _scan(self, text: str) -> str:
        """Every rule's leftmost match, earliest first (ties: rule order), as one big
        alternation would; a replaced span is never looked at again, so placeholders
        cannot overlap. Matches that a replacement overtook are searched again lazily."""
        lowered = text.lower()
        # Offsets must stay those of `text`, and only ASCII may become ASCII: str.lower()
        # keeps both unless a character lengthens (İ) or is the Kelvin sign; translate()
        # is exact but ten times slower, and a clip's "…" makes a whole log non-ASCII.
        if not text.isascii() and (len(lowered) != len(text) or "\u212a" in text):
            lowered = text.translate(_ASCII_LOWER)
        subjects = (text, lowered)
        rules = self._rules
        heap: list[tuple[int, int, re.Match[str]]] = []
        for i, (_, regex, low, _) in enumerate(rules):
            if (m := regex.search(subjects[low])) is not None:
                heap.append((m.start(), i, m))
        heapq.heapify(heap)
        out: list[str] = []
        pos = 0
        while heap:
            start, i, m = heap[0]
            rule, regex, low, kind = rules[i]
            if start < pos:
                nxt = regex.search(subjects[low], pos)
            elif (hit := self._hit(rule, kind, m, text, pos)) is None:
                nxt = regex.search(subjects[low], start + 1)
            else:
                start, end, kind = hit
                out += (text[pos:start], self._placeholder(kind, text[start:end]))
                pos = end
                nxt = regex.search(subjects[low], pos)
            if nxt is None:
                heapq.heappop(heap)
            else:
                heapq.heapreplace(heap, (nxt.start(), i, nxt))
        out.append(text[pos:])
        return "".join(out)

    def _hit(
        self, rule: str, kind: str, m: re.Match[str], text: str, pos: int
    ) -> tuple[int, int, str] | None:
        """The span of ``text`` to replace for a rule's match and its kind, or None."""
        if rule == "whole":
            return m.start(), m.end(), kind
        if rule == "ip":
            end = m.end() - (text[m.end() - 1] == ".")  # a sentence's full stop
            candidate = text[m.start() : end]
            colons = candidate.count(":")
            if 1 < colons < 7 and "::" not in candidate:
                return None  # a time of day or a MAC address; parsing is slow
            try:
                address = ipaddress.ip_address(candidate)
            except ValueError:
                return None
            if address.is_loopback or address.is_unspecified:
                return None
            return m.start(), end, kind
        if rule == "email":
            start = m.start()
            while start > pos and (
                text[start - 1] in _LOCAL_PART
                or (not text[start - 1].isascii() and text[start - 1].isalnum())
            ):
                start -= 1
            # Not addresses: a URL's user (postgres://app@db...), an SSH remote
            # (git@github.com:org/repo), in-cluster host names (0@kafka-0.kafka.svc...).
            tld = text[m.start() : m.end()].rsplit(".", 1)[-1].lower()
            remote = text.startswith(":", m.end()) and text[m.end() + 1 : m.end() + 2].strip()
            if (
                start == m.start()
                or text.endswith("://", 0, start)
                or remote
                or tld in _CLUSTER_TLDS
            ):
                return None
            return start, m.end(), kind
        if rule == "number":
            number = text[m.start() : m.end()]
            if _ID_VALUE.search(text, max(0, m.start() - 24), m.start()):
                return None
            if m.group("card") is not None:
                return (m.start(), m.end(), "CARD") if _is_card(number) else None
            return (m.start(), m.end(), kind) if _is_phone(number) else None
        if rule == "pem":
            return m.start(), _pem_end(m.string, m.end()), kind
        if rule == "pem_end":
            tail = _pem_start(text, m.start(), max(pos, m.start() - _PEM_SPAN))
            return None if tail is None else (tail, m.end(), kind)
        if rule == "dsn":
            window_start = max(pos, m.start() - 256)
            m = _DSN_TAIL.search(text, window_start, m.start())  # type: ignore[assignment]
            if m is None:
                return None
        start, end = m.span(m.lastgroup or 0)  # the value is each pattern's last group
        value = text[start:end]
        if _inert(value) or (rule in ("kv", "env") and _names_a_key(value)):
            return None
        if "<" in value and any(p in self._originals for p in PLACEHOLDER.findall(value)):
            return None  # redacting again: what was left around a placeholder stays
        if rule == "authz":
            if m.group("scheme") is None and len(value) < 16 and not re.search("[0-9]", value):
                return None  # "authorization: denied" is prose, not a credential
            if value.lower() in _SCHEMES:
                return None
        elif rule in ("kv", "env"):
            if rule == "env":
                key = text[m.start("key") : m.end("key")]
            else:
                key_end = m.end("word")
                key_start = _key_start(text, m.start(), pos)
                key = text[key_start:key_end]
                before = text[key_start - 1] if key_start > 0 else ""
                if m.group("quoted") is not None and before not in ("'", '"'):
                    return None  # 'msg="invalid token": x' closes a message, not a key
                # A YAML or header line: the key starts a line (maybe inside a JSON string)
                # or a quoted header ("X-Auth-Token: x"). Behind a log or event prefix
                # ("WARN rejected X-Api-Key: x"), only a key that names a credential
                # header or a password, with a value that is not a word of prose.
                if (
                    m.group("yaml") is not None
                    and before not in ("'", '"')
                    and not _starts_line(text, key_start)
                ):
                    if before not in _TOKEN_BEFORE or not _credential_key(key):
                        return None
                    end = start + len(_unclosed(value))
                    value = text[start:end]
                    if (
                        _inert(value)
                        or _names_a_key(value)
                        or _PROSE.fullmatch(value)
                        or any(c.isspace() for c in value)
                    ):
                        return None
                # kube-state-metrics labels name the Secret they describe: secret="db".
                if key.lower() == "secret" and before in ("{", ","):
                    return None
            kind = _kind_of_key(key)
        return start, end, _kind_of_value(value, kind)

    # --- values -----------------------------------------------------------------------
    def redact_value(self, value: Any) -> Any:
        """Deep over dict/list/tuple/str; keys are kept, values redacted. A value under a
        credential key (``{"password": ...}``, an env entry named ``DB_PASSWORD``, the
        argument after ``--password``) is replaced whole, whatever it looks like."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, Mapping):
            return self._redact_mapping(value)
        if isinstance(value, list):
            return self._redact_sequence(value)
        if isinstance(value, tuple):
            return tuple(self._redact_sequence(value))
        return value

    def _redact_mapping(self, mapping: Mapping[Any, Any]) -> dict[Any, Any]:
        label = mapping.get("name", mapping.get("key"))
        env_key = label if isinstance(label, str) and _SECRET_KEY.fullmatch(label.lower()) else None
        out: dict[Any, Any] = {}
        for key, item in mapping.items():
            if isinstance(key, str) and _SECRET_KEY.fullmatch(key.lower()):
                out[key] = self._whole(key, item)
            elif key == "value" and env_key is not None:
                out[key] = self._whole(env_key, item)
            else:
                out[key] = self.redact_value(item)
        return out

    def _redact_sequence(self, items: Sequence[Any]) -> list[Any]:
        out: list[Any] = []
        flag: str | None = None
        for item in items:
            if flag is not None and isinstance(item, str) and not item.startswith("-"):
                out.append(self._whole(flag, item))
            else:
                out.append(self.redact_value(item))
            is_flag = isinstance(item, str) and _SECRET_FLAG.fullmatch(item.lower())
            flag = item.lstrip("-") if is_flag else None
        return out

    def _whole(self, key: str, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            return self.redact_value(value)
        text = str(value)
        if _inert(text) or _names_a_key(text):
            return value
        return self._placeholder(_kind_of_value(text, _kind_of_key(key)), text)

    def redact_object(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """A Kubernetes object as kubectl prints it (or a ``List`` of them).

        Every ``data``/``stringData`` value of a Secret, and its last-applied annotation
        (which repeats them), becomes a placeholder even when present: the sources
        already empty them, this is belt and braces. The rest goes to ``redact_value``."""
        if obj.get("kind") == "List" and isinstance(items := obj.get("items"), list):
            redacted = [self.redact_object(i) if isinstance(i, Mapping) else i for i in items]
            return {
                **self.redact_value({k: v for k, v in obj.items() if k != "items"}),
                "items": redacted,
            }
        clean = dict(obj)
        if obj.get("kind") == "Secret":
            for field in ("data", "stringData"):
                if isinstance(values := obj.get(field), Mapping):
                    clean[field] = {k: self._secret(v) for k, v in values.items()}
            meta = obj.get("metadata")
            notes = meta.get("annotations") if isinstance(meta, Mapping) else None
            if isinstance(meta, Mapping) and isinstance(notes, Mapping) and _APPLIED in notes:
                notes = {**notes, _APPLIED: self._secret(notes[_APPLIED])}
                clean["metadata"] = {**meta, "annotations": notes}
        return cast(dict[str, Any], self.redact_value(clean))

    def _secret(self, value: Any) -> Any:
        if not isinstance(value, str) or not value or PLACEHOLDER.fullmatch(value):
            return value
        return self._placeholder("SECRET", value)

    def restore_value(self, value: _T) -> _T:
        """Deep ``restore`` over str/list/tuple/dict (keys too) and pydantic models, which
        come back as the same model class, validated again."""
        return cast(_T, self._restore_any(value))

    def _restore_any(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.restore(value)
        if isinstance(value, BaseModel):
            return type(value).model_validate(self._restore_any(value.model_dump()))
        if isinstance(value, Mapping):
            return {self._restore_any(k): self._restore_any(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._restore_any(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self._restore_any(v) for v in value)
        return value

"""Reading one runbook file: YAML front matter, Alertmanager label matchers, ``##`` sections.

A runbook is Markdown with front matter::

    ---
    title: Pod is crash looping
    alertnames: [KubePodCrashLooping]
    matchers: ['namespace!~"kube-.*"']      # optional, Alertmanager syntax
    categories: [OOMKilled, CrashLoop]       # optional, taxonomy names
    ---

Parsing never raises on bad content: it returns the problems it found with their line,
so one broken file cannot hide the rest of a runbook set. Problems that would make the
runbook answer the wrong alerts (no title, bad ``alertnames`` or ``matchers``) drop the
runbook; the rest (an unknown category, a broken link) keep it searchable.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

EXCERPT_MAX_CHARS = 1200

_MATCHER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$", re.S)
_FENCE = re.compile(r"^\s*(```|~~~)")
_LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:|^//")


@dataclass(frozen=True)
class LabelMatcher:
    """One Alertmanager label matcher; regexes are anchored (full match), as there."""

    name: str
    op: str  # "=", "!=", "=~", "!~"
    value: str

    def matches(self, labels: Mapping[str, str]) -> bool:
        # Alertmanager treats a missing label as the empty string.
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = re.fullmatch(self.value, actual) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.name}{self.op}"{escaped}"'


def _unquote(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        body, out, i = raw[1:-1], [], 0
        while i < len(body):
            char = body[i]
            if char == "\\" and i + 1 < len(body):
                nxt = body[i + 1]
                out.append({"n": "\n", "t": "\t"}.get(nxt, nxt))
                i += 2
                continue
            if char == '"':
                raise ValueError("unescaped quote inside the value")
            out.append(char)
            i += 1
        return "".join(out)
    if '"' in raw:
        raise ValueError("unbalanced quotes in the value")
    return raw


def parse_matcher(text: str) -> LabelMatcher:
    """``name="value"``, ``name!=value``, ``name=~"re"``, ``name!~"re"``; raises ValueError."""
    found = _MATCHER.match(text)
    if found is None:
        raise ValueError(f"{text!r} is not a matcher (name=value, !=, =~ or !~)")
    name, op, raw = found.groups()
    value = _unquote(raw)
    if op in ("=~", "!~"):
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"{text!r}: invalid regex: {exc}") from None
    return LabelMatcher(name, op, value)


def _split_outside_quotes(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return [p for p in (part.strip() for part in parts) if p]


def parse_matchers(spec: Any) -> tuple[LabelMatcher, ...]:
    """A list of matcher strings, or one string like ``{a="b", c=~"d|e"}``."""
    if spec is None:
        return ()
    if isinstance(spec, str):
        items: list[Any] = _split_outside_quotes(spec.strip().removeprefix("{").removesuffix("}"))
    elif isinstance(spec, list):
        items = spec
    else:
        raise ValueError("matchers must be a list of strings like 'severity=\"critical\"'")
    matchers = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"matcher {item!r} is not a string")
        matchers.append(parse_matcher(item))
    return tuple(matchers)


def slugify(heading: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


@dataclass(frozen=True)
class RunbookSection:
    heading: str
    anchor: str
    text: str  # Markdown, heading line included
    line: int  # 1-based line of the heading in the file


@dataclass(frozen=True)
class Runbook:
    path: Path
    title: str
    alertnames: tuple[str, ...]
    matchers: tuple[LabelMatcher, ...]
    categories: tuple[str, ...]
    sections: tuple[RunbookSection, ...]
    alertnames_line: int = 1

    def applies_to(self, alertname: str, labels: Mapping[str, str]) -> bool:
        return alertname in self.alertnames and self.labels_match(labels)

    def labels_match(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels) for m in self.matchers)


@dataclass(frozen=True)
class RunbookProblem:
    path: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


def split_sections(
    lines: list[str], first_line: int, title: str
) -> tuple[list[RunbookSection], bool]:
    """Sections by ``##`` headings (not inside code fences); text before the first one is
    an intro section under the title. Returns the sections and whether any ``##`` exists."""
    chunks: list[tuple[str, int, list[str]]] = [(title, first_line, [])]
    fenced = False
    for offset, line in enumerate(lines):
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced and re.match(r"^##\s+\S", line) and not line.startswith("###"):
            chunks.append((line[2:].strip().strip("#").strip(), first_line + offset, []))
        if chunks[-1][2] or line.strip():  # no leading blank lines
            chunks[-1][2].append(line)
    sections, seen = [], dict[str, int]()
    for index, (heading, line_no, body) in enumerate(chunks):
        kept = [ln for ln in body if not (index == 0 and re.match(r"^#\s+\S", ln))]
        if index == 0 and not "\n".join(kept).strip():
            continue
        anchor = slugify(heading)
        if anchor in seen:
            seen[anchor] += 1
            anchor = f"{anchor}-{seen[anchor]}"
        else:
            seen[anchor] = 0
        text = "\n".join(kept).strip("\n")
        if index == 0:
            text = f"# {heading}\n{text}"
        sections.append(RunbookSection(heading, anchor, text, line_no))
    return sections, len(chunks) > 1


def excerpt(text: str, max_chars: int = EXCERPT_MAX_CHARS) -> str:
    """Whole lines up to ``max_chars``; a code fence left open by the cut is closed."""
    out: list[str] = []
    used, fenced = 0, False
    for line in text.strip("\n").splitlines():
        budget = max_chars - used - (4 if fenced else 0)
        if len(line) + 1 > budget:
            if not out:  # one huge line: cut it at a word rather than return nothing
                out.append(line[: max(budget - 1, 0)].rsplit(" ", 1)[0] + "…")
            elif used + 2 <= max_chars:
                out.append("…")
            break
        out.append(line)
        used += len(line) + 1
        if _FENCE.match(line):
            fenced = not fenced
    if fenced:
        out.append("```")
    return "\n".join(out)


def _key_line(front: list[str], key: str, default: int) -> int:
    for index, line in enumerate(front):
        if re.match(rf"^{re.escape(key)}\s*:", line):
            return index + 2  # the opening "---" is line 1
    return default


def parse_runbook(
    path: Path, text: str, categories: Collection[str] | None = None
) -> tuple[Runbook | None, list[RunbookProblem]]:
    """Parse one file; ``categories`` (taxonomy names), when given, are validated."""
    problems: list[RunbookProblem] = []

    def problem(line: int, message: str) -> None:
        problems.append(RunbookProblem(path, line, message))

    lines = text.removeprefix("\ufeff").splitlines()
    if not lines or lines[0].strip() != "---":
        problem(1, "no YAML front matter: the file must start with a '---' line")
        return None, problems
    end = next((i for i in range(1, len(lines)) if lines[i].strip() in ("---", "...")), None)
    if end is None:
        problem(1, "front matter is not closed by a '---' line")
        return None, problems
    front = lines[1:end]
    try:
        meta = yaml.safe_load("\n".join(front))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark is not None else 1
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        problem(line, f"front matter is not valid YAML: {reason}")
        return None, problems
    if not isinstance(meta, dict):
        problem(1, "front matter must be a mapping with title and alertnames")
        return None, problems

    fatal = False
    title = meta.get("title")
    if not isinstance(title, str) or not title.strip():
        problem(_key_line(front, "title", 1), "title is missing or not a non-empty string")
        fatal = True
    names_line = _key_line(front, "alertnames", 1)
    alertnames = meta.get("alertnames")
    if not isinstance(alertnames, list) or not all(
        isinstance(n, str) and n.strip() for n in alertnames
    ):
        problem(names_line, "alertnames must be a list of alert names (strings)")
        fatal, alertnames = True, []
    try:
        matchers = parse_matchers(meta.get("matchers"))
    except ValueError as exc:
        problem(_key_line(front, "matchers", 1), f"matchers: {exc}")
        fatal, matchers = True, ()
    raw_categories = meta.get("categories") or []
    if not isinstance(raw_categories, list) or not all(isinstance(c, str) for c in raw_categories):
        problem(_key_line(front, "categories", 1), "categories must be a list of strings")
        raw_categories = []
    kept_categories = []
    for category in raw_categories:
        if categories is not None and category not in categories:
            problem(
                _key_line(front, "categories", 1),
                f"category {category!r} is not a taxonomy name "
                f"(one of {', '.join(sorted(categories))})",
            )
        else:
            kept_categories.append(category)

    body = lines[end + 1 :]
    sections, has_headings = split_sections(body, end + 2, str(title or path.stem))
    if not has_headings:
        problem(end + 2, "no '## ' section headings: split the runbook into sections")
    problems += _broken_links(path, body, end + 2, {s.anchor for s in sections})
    if fatal:
        return None, problems
    runbook = Runbook(
        path=path,
        title=str(title).strip(),
        alertnames=tuple(n.strip() for n in alertnames),
        matchers=matchers,
        categories=tuple(kept_categories),
        sections=tuple(sections),
        alertnames_line=names_line,
    )
    return runbook, problems


def _anchors_of(path: Path) -> set[str] | None:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    headings = (re.sub(r"^#+\s*", "", ln).strip("# ") for ln in lines if re.match(r"^#+\s", ln))
    return {slugify(h) for h in headings}


def _broken_links(
    path: Path, body: list[str], first_line: int, own_anchors: set[str]
) -> list[RunbookProblem]:
    """Relative links whose file or heading anchor does not exist; URLs are not checked."""
    problems, fenced = [], False
    for offset, line in enumerate(body):
        if _FENCE.match(line):
            fenced = not fenced
        if fenced:
            continue
        for target in _LINK.findall(line):
            if _SCHEME.match(target):
                continue
            file_part, _, anchor = target.partition("#")
            line_no = first_line + offset
            if not file_part:
                if anchor and anchor not in own_anchors:
                    problems.append(RunbookProblem(path, line_no, f"no heading for #{anchor}"))
                continue
            linked = (path.parent / file_part).resolve()
            if not linked.exists():
                problems.append(RunbookProblem(path, line_no, f"broken link: {target}"))
            elif anchor and linked.suffix == ".md":
                anchors = _anchors_of(linked)
                if anchors is not None and anchor not in anchors:
                    problems.append(
                        RunbookProblem(path, line_no, f"broken link: no #{anchor} in {file_part}")
                    )
    return problems

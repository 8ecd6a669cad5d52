"""docs/lab.md as an executable script: its shell blocks, and the outputs it tells the reader to expect.

The guide is written for people; this module reads it the way a student does. Each step heading
(``## Step 4 — …``, ``### 5b. …``) holds code blocks in order: ```` ```bash ```` blocks are
commands, a plain ```` ``` ```` block after them is the output the guide promises, ```` ```sql ````
blocks are the queries pasted into Adminer. tests/e2e/test_lab.py runs the commands verbatim on
the deployed host and matches the promised output against what they print, so the guide and the
platform cannot drift apart.

An expected block is matched line by line, in order, each line against some later line of the
output. The guide's own placeholders are wildcards: ``…`` and ``...`` (anything), the example
image ids ``a1b2c3d4``/``e5f6g7h8`` (eight hex digits), numbers (any number), ``HOST``,
``HOST_NAME`` and ``N``. Everything else (words, emoji markers, punctuation) must be there as
written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "lab.md"

_HEADING = re.compile(r"^(##|###) (?:Steps? )?([0-9][0-9a-z–\- and]*?)(?:\.| —) ", re.M)
_BLOCK = re.compile(r"^```(\w*)\n(.*?)^```\s*$", re.M | re.S)
# The guide's placeholders, numbers, and its two spellings of "anything"; the rest is literal.
_PLACEHOLDER = re.compile(
    r"(?P<any>\.\.\.|…)|(?P<id>a1b2c3d4|e5f6g7h8)|(?P<host>\bHOST(?:_NAME)?\b)|(?P<num>\bN\b|\d+(?:[.,]\d+)*)"
)
_PATTERNS = {"any": r".*?", "id": r"[0-9a-f]{8}", "host": r"\S+", "num": r"\d+(?:[.,]\d+)*"}


@dataclass
class Block:
    lang: str
    text: str

    @property
    def lines(self) -> list[str]:
        return [line for line in self.text.splitlines() if line.strip()]


@dataclass
class Section:
    key: str  # "4", "5b", "8a–8b", "2 and 3"
    title: str
    body: str  # the section's text, prose and blocks
    blocks: list[Block] = field(default_factory=list)

    def runs(self) -> list[tuple[list[str], Block | None]]:
        """Each bash block's command lines, with the plain block that follows it (the promised output)."""
        out: list[tuple[list[str], Block | None]] = []
        for b in self.blocks:
            if b.lang == "bash":
                out.append((b.lines, None))
            elif b.lang == "" and out and out[-1][1] is None:
                out[-1] = (out[-1][0], b)
        return out

    def command(self, index: int = 0) -> str:
        """The one command of the section's index-th bash block."""
        (only,) = self.runs()[index][0]
        return only

    def expected(self, index: int = 0) -> Block:
        block = self.runs()[index][1]
        assert block is not None, f"step {self.key}: the guide shows no output after its command {index}"
        return block

    def sql(self) -> list[str]:
        """The section's SQL, one statement each."""
        text = "\n".join(b.text for b in self.blocks if b.lang == "sql")
        return [" ".join(q.split()) for q in text.split(";") if q.strip()]

    def quoted(self, before: str) -> list[str]:
        """The `code` spans of the sentence that ends in ``before`` (e.g. the tasks that "turn green")."""
        prose = _BLOCK.sub("", self.body)
        sentence = re.search(r"[^.]*" + re.escape(before), prose)
        assert sentence, f"step {self.key}: no sentence with {before!r}"
        return re.findall(r"`([^`]+)`", sentence.group())


@cache
def sections(path: Path = GUIDE) -> dict[str, Section]:
    text = path.read_text()
    heads = list(_HEADING.finditer(text))
    out: dict[str, Section] = {}
    for i, h in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        body = text[h.end() : end]
        title = body.splitlines()[0].strip()
        key = h.group(2).strip()
        out[key] = Section(key, title, body, [Block(m.group(1), m.group(2)) for m in _BLOCK.finditer(body)])
    return out


def section(key: str) -> Section:
    return sections()[key]


def line_pattern(line: str, image: str | None = None) -> re.Pattern[str]:
    """A regex for one expected line: literal text, placeholders as wildcards.

    ``image``: the short id (8 hex digits) that the guide's example id ``a1b2c3d4`` stands for."""
    parts, pos = [], 0
    text = line.strip()
    for m in _PLACEHOLDER.finditer(text):
        wild = _PATTERNS[m.lastgroup or "any"]
        if image and m.group() == "a1b2c3d4":
            wild = re.escape(image)
        parts += [re.escape(text[pos : m.start()]), wild]
        pos = m.end()
    parts.append(re.escape(text[pos:]))
    return re.compile("".join(parts))


def unmatched(expected: Block, output: str, optional: tuple[str, ...] = (), image: str | None = None) -> list[str]:
    """The expected lines that the output does not show, in order (empty: the guide holds).

    ``optional``: substrings of expected lines the guide presents as possible, not certain.
    ``image``: the short id of the image the step is about (see line_pattern)."""
    lines = output.splitlines()
    pos = 0
    missing = []
    for want in expected.lines:
        if re.fullmatch(r"\s*(?:…|\.\.\.)\s*", want):
            continue
        pattern = line_pattern(want, image)
        hit = next((i for i in range(pos, len(lines)) if pattern.search(lines[i])), None)
        if hit is None:
            if not any(o in want for o in optional):
                missing.append(want)
            continue
        pos = hit + 1
    return missing

"""corosync.conf grammar, read line by line as corosync 3.1.7's coroparse reads it.

What the grammar is (each point checked against ``corosync -t`` 3.1.7):

- One statement per line; lines end at ``\\n`` (a ``\\r`` before it is dropped).
  A line may hold at most 510 bytes.
- Trailing spaces and tabs are dropped. A line that is empty, blank or whose first
  non-blank character is ``#`` is a comment. There are no trailing comments:
  ``token: 3000 # ms`` sets token to ``3000 # ms`` (and so fails as an integer).
- No quoting: ``cluster_name: "a b"`` sets cluster_name to ``"a b"`` with the quotes.
- A line holding ``{`` opens a section: the name is what precedes the brace, without
  trailing blanks, colons or braces (``totem {``, ``totem{`` and ``totem: {`` are
  the same); nothing may follow the brace.
- Otherwise a line holding ``:`` is ``key: value``, split at the first colon
  (``key:value`` works; ``ring0_addr: fe80::1`` keeps its colons in the value).
  The value may be empty.
- Otherwise the line must be exactly ``}``.
- There is no ``include``: coroparse has none (the only other files corosync reads
  are ``uidgid.d/*`` beside the config, see :func:`parse_uidgid_file`).
- Repeated keys are all kept here, in order; the schema applies corosync's rule
  (the last one wins). Repeated sections are kept too (``node {}`` repeats).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Union

from .errors import ConfigError

LINE_MAX = 510
"""coroparse reads lines with fgets into 512 bytes: 510 bytes, a newline and the NUL."""
KEYNAME_MAX = 255
"""icmap's ICMAP_KEYNAME_MAXLEN: a section or key path may not reach it."""


@dataclass
class Item:
    """``key: value`` on ``line`` of ``file``, inside the section ``path``."""

    key: str
    value: str
    file: str
    line: int
    path: str = ""

    @property
    def dotted(self) -> str:
        """The key with its section path, as coroparse names it (``totem.token``)."""
        return f"{self.path}.{self.key}" if self.path else self.key


@dataclass
class Section:
    """``name {`` ... ``}``: its items and subsections in file order."""

    name: str
    file: str
    line: int
    path: str = ""
    children: list[Union[Item, "Section"]] = field(default_factory=list)
    end_line: int | None = None

    @property
    def items(self) -> list[Item]:
        return [c for c in self.children if isinstance(c, Item)]

    @property
    def sections(self) -> list["Section"]:
        return [c for c in self.children if isinstance(c, Section)]

    def get(self, key: str) -> Item | None:
        """The item that counts for ``key``: the last one, as in corosync."""
        found = None
        for c in self.children:
            if isinstance(c, Item) and c.key == key:
                found = c
        return found

    def all(self, name: str) -> list["Section"]:
        """Every subsection called ``name``, in order."""
        return [c for c in self.children if isinstance(c, Section) and c.name == name]

    def walk(self) -> Iterator[Union[Item, "Section"]]:
        """Every item and subsection below this one, depth first, in file order."""
        for c in self.children:
            yield c
            if isinstance(c, Section):
                yield from c.walk()


def _strip_name(s: str, colons_and_braces: bool) -> str:
    """coroparse's remove_whitespace: leading blanks, then trailing blanks (and ``:``/``{``
    for names) but never the first character."""
    s = s.lstrip(" \t")
    tail = " \t:{" if colons_and_braces else " \t"
    end = len(s)
    while end > 1 and s[end - 1] in tail:
        end -= 1
    return s[:end]


def split_lines(text: str) -> list[str]:
    """The lines fgets would return, without their newline (and a final ``\\r``)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def parse(text: str, filename: str = "corosync.conf") -> Section:
    """The section tree of a corosync.conf text; ConfigError on a grammar fault.

    The root is a Section with name ``""`` holding the top-level sections (and any
    top-level items, which corosync allows too).
    """
    root = Section("", filename, 0)
    stack = [root]
    lineno = 0
    for lineno, raw in enumerate(split_lines(text), start=1):
        section = stack[-1]

        def fail(message: str, *, key: str | None = section.path or None) -> ConfigError:
            return ConfigError(message, file=filename, line=lineno, key=key)

        if len(raw.encode("utf-8", "surrogateescape")) > LINE_MAX:
            raise fail(f"line too long: expected at most {LINE_MAX} bytes, got "
                       f"{len(raw.encode('utf-8', 'surrogateescape'))} (corosync: Line too long)")
        if "\0" in raw:
            raise fail("expected text, got a NUL byte in the line")
        line = raw.rstrip(" \t")
        stripped = line.lstrip(" \t")
        if not stripped or stripped.startswith("#"):
            continue

        if "{" in line:
            at = line.index("{")
            name = _strip_name(line[:at], True)
            after = line[at + 1:].lstrip(" \t")
            if not name:
                raise fail("expected a section name before '{', got nothing "
                           "(corosync: Missing section name before opening bracket '{')")
            if after:
                raise fail(f"expected nothing after '{{', got '{after}' "
                           "(corosync: Extra characters after opening bracket '{')")
            path = f"{section.path}.{name}" if section.path else name
            if len(path) >= KEYNAME_MAX:
                raise fail(f"expected a section path shorter than {KEYNAME_MAX} characters, "
                           f"got {len(path)} (corosync: Start of section makes total cmap path "
                           "too long)", key=path[:60] + "...")
            new = Section(name, filename, lineno, path)
            section.children.append(new)
            stack.append(new)
            continue

        if ":" in line:
            at = line.index(":")
            key = _strip_name(line[:at], True)
            value = line[at + 1:].lstrip(" \t")
            dotted = f"{section.path}.{key}" if section.path else key
            if len(dotted) >= KEYNAME_MAX:
                raise fail(f"expected a key path shorter than {KEYNAME_MAX} characters, got "
                           f"{len(dotted)} (corosync: New key makes total cmap path too long)",
                           key=dotted[:60] + "...")
            section.children.append(Item(key, value, filename, lineno, section.path))
            continue

        if "}" in line:
            if _strip_name(line, False) != "}":
                raise fail(f"expected '}}' alone on the line, got '{stripped}' "
                           "(corosync: Extra characters before or after closing bracket '}')")
            if len(stack) == 1:
                raise fail("expected no '}' outside a section, got one "
                           "(corosync: Unexpected closing brace)")
            section.end_line = lineno
            stack.pop()
            continue

        raise fail(f"expected 'name {{', 'key: value' or '}}', got '{stripped}' "
                   "(corosync: Line is not opening or closing section or key value)")

    if len(stack) > 1:
        open_section = stack[-1]
        raise ConfigError(
            f"expected '}}' to close the section opened on line {open_section.line}, "
            f"got the end of the file at line {lineno} (corosync: Missing closing brace)",
            file=filename, line=open_section.line, key=open_section.path,
            expected="'}'", got=None)
    root.end_line = lineno
    return root

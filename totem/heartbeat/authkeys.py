"""/etc/ha.d/authkeys read as Heartbeat 3.0.6 reads it (heartbeat/auth.c).

The facts this reader follows:

- Blank lines and lines whose first non-blank character is ``#`` are skipped.
- A line starting with ``a`` must read ``auth N`` (sscanf ``"auth %d"``): N selects the
  key that signs outgoing packets. Heartbeat picks it while reading the key lines, so
  only a key listed *after* the ``auth`` line can be selected.
- Other lines are ``N METHOD [SECRET]`` (sscanf ``"%d%s%s"``): N from 0 to 15, METHOD
  one of ``crc``, ``md5``, ``sha1`` (case matters). md5 and sha1 need a secret, crc
  takes none. The secret is one word: anything after it is ignored.
- md5 and sha1 are HMAC signatures of each (plaintext) packet; crc is a checksum that
  anyone can compute: no authentication at all.
- Heartbeat refuses the file when group or others may read it.
"""

from __future__ import annotations

import re
import stat
from dataclasses import dataclass, field

from .problems import NOTE, Finding, HeartbeatError, Problem

METHODS = ("crc", "md5", "sha1")
MAXAUTH = 16


@dataclass(frozen=True)
class AuthKey:
    """One ``N METHOD SECRET`` line."""

    num: int
    method: str
    secret: str | None
    line: int
    text: str


@dataclass
class AuthKeys:
    """authkeys as Heartbeat understood it: the active key and every key listed."""

    file: str
    active: AuthKey
    auth_line: int
    keys: dict[int, AuthKey] = field(default_factory=dict)
    notes: list[Finding] = field(default_factory=list)

    @property
    def method(self) -> str:
        return self.active.method


def parse_authkeys(text: str, filename: str = "authkeys", mode: int | None = None) -> AuthKeys:
    """Read authkeys ``text``; ``mode`` (st_mode of the file, if known) is checked as
    Heartbeat checks it. Raises :class:`HeartbeatError` naming file and line."""
    problems: list[Problem] = []
    notes: list[Finding] = []
    keys: dict[int, AuthKey] = {}
    authnum = -1
    auth_line: int | None = None
    active: AuthKey | None = None
    for number, raw in enumerate(text.split("\n"), start=1):
        bp = raw.lstrip(" \t\n\r\f")
        if not bp or bp.startswith("#"):
            continue
        shown = bp.rstrip(" \t\n\r\f")
        if bp.startswith("a"):
            m = re.match(r"auth\s*([+-]?[0-9]+)", bp)
            if m is None:
                problems.append(Problem(filename, number, f"expected 'auth N' (N: the key that "
                                        f"signs packets), got '{shown}' (Heartbeat: Invalid auth "
                                        "line)"))
                continue
            authnum, auth_line = int(m.group(1)), number
            continue
        m = re.match(r"\s*([+-]?[0-9]+)\s*(\S+)(?:\s+(\S+))?(.*)", bp, re.S)
        if m is None:
            problems.append(Problem(filename, number, f"expected 'auth N' or 'N METHOD SECRET', "
                                    f"got '{shown}' (Heartbeat: Auth line is invalid)"))
            continue
        num, method, secret, extra = int(m.group(1)), m.group(2), m.group(3), m.group(4).strip()
        if not 0 <= num < MAXAUTH:
            problems.append(Problem(filename, number, f"expected a key number from 0 to 15, got "
                                    f"'{num}' (Heartbeat: Invalid authnum)"))
            continue
        if method not in METHODS:
            problems.append(Problem(filename, number, f"expected a method crc, md5 or sha1, got "
                                    f"'{method}' (Heartbeat: Invalid authtype)"))
            continue
        if method == "crc" and secret is not None:
            problems.append(Problem(filename, number, "expected no secret after crc, got "
                                    f"'{secret}' (Heartbeat: Auth method [crc] doesn't use a key)"))
            continue
        if method != "crc" and secret is None:
            problems.append(Problem(filename, number, f"expected a secret after {method}, got "
                                    f"nothing (Heartbeat: Auth method [{method}] requires a key)"))
            continue
        if extra:
            notes.append(Finding(filename, number, f"{num} {method} ...", NOTE,
                                 f"the secret is one word: Heartbeat used '{_mask(secret)}' and "
                                 f"ignored the {len(extra.split())} word(s) after it"))
        if secret is not None and secret.startswith("(stdin)="):
            notes.append(Finding(filename, number, f"{num} {method} ...", NOTE,
                                 "the secret is the literal '(stdin)=' that `openssl md5` "
                                 "prints before the digest: the digest after the blank was "
                                 "ignored, so the cluster's secret was a publicly known word"))
        key = AuthKey(num, method, secret, number, f"{num} {method}" + (" <secret>" if secret else ""))
        if num in keys:
            notes.append(Finding(filename, number, key.text, NOTE,
                                 f"key {num} was already listed on line {keys[num].line}; this "
                                 "one replaces it"))
        keys[num] = key
        if num == authnum:
            active = key
    if mode is not None and mode & (stat.S_IRGRP | stat.S_IROTH):
        notes.append(Finding(filename, None, "(file mode)", NOTE,
                             f"mode {stat.S_IMODE(mode):04o} lets others read the secret; Heartbeat "
                             "refuses such a file (Bad permissions on keyfile, 600 recommended)"))
    if active is None and not problems:
        if auth_line is None:
            problems.append(Problem(filename, None, "expected an 'auth N' line before the keys "
                                    "(Heartbeat: Missing auth directive in keyfile)"))
        elif authnum in keys:
            problems.append(Problem(filename, auth_line, f"auth {authnum}: key {authnum} is listed "
                                    f"on line {keys[authnum].line}, before the auth line; Heartbeat "
                                    "selects only keys listed after it (Auth Key "
                                    f"[{authnum}] not found)"))
        else:
            problems.append(Problem(filename, auth_line, f"auth {authnum}: expected a line "
                                    f"'{authnum} METHOD SECRET' after it (Heartbeat: Auth Key "
                                    f"[{authnum}] not found)"))
    if problems:
        raise HeartbeatError(problems)
    assert active is not None and auth_line is not None
    return AuthKeys(filename, active, auth_line, keys, notes)


def _mask(secret: str | None) -> str:
    """Never print a secret: its length and first character only."""
    if not secret:
        return ""
    return f"{secret[0]}... ({len(secret)} characters)"

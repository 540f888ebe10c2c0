"""Logging in corosync's format, so that operators' scripts read totemd's logs as corosync's.

corosync prints ``Dec 03 06:21:15 notice  [TOTEM ] A new membership (1.9) was formed.
Members joined: 2``: a timestamp, the level padded to 7, the subsystem padded to 6 in
brackets, then the text.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
import time
from dataclasses import dataclass

NOTICE = 25
logging.addLevelName(NOTICE, "notice")

_LEVEL_NAMES = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    NOTICE: "notice",
    logging.WARNING: "warning",
    logging.ERROR: "error",
    logging.CRITICAL: "crit",
}
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "notice": NOTICE,
          "warning": logging.WARNING, "error": logging.ERROR, "crit": logging.CRITICAL}


class CorosyncFormatter(logging.Formatter):
    """``Mon DD HH:MM:SS[.ffffff] level   [SUBSYS] text``."""

    def __init__(self, timestamp: str = "on") -> None:
        super().__init__()
        self.timestamp = timestamp

    def format(self, record: logging.LogRecord) -> str:
        level = _LEVEL_NAMES.get(record.levelno, record.levelname.lower())
        subsys = getattr(record, "subsys", record.name.rsplit(".", 1)[-1].upper())
        text = record.getMessage()
        line = f"{level:<7} [{subsys[:6]:<6}] {text}"
        if self.timestamp == "off":
            return line
        t = time.localtime(record.created)
        stamp = time.strftime("%b %d %H:%M:%S", t)
        if self.timestamp == "hires":
            stamp += f".{int(record.msecs):03d}"
        return f"{stamp} {line}"


@dataclass
class LogSettings:
    to_stderr: bool = True
    to_logfile: bool = False
    logfile: str | None = None
    to_syslog: bool = False
    syslog_facility: str = "daemon"
    debug: bool = False
    timestamp: str = "on"


def setup(settings: LogSettings, name: str = "totem") -> logging.Logger:
    """Configure the ``totem`` logger tree as ``logging {}`` says."""
    root = logging.getLogger(name)
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    root.setLevel(logging.DEBUG if settings.debug else logging.INFO)
    root.propagate = False
    fmt = CorosyncFormatter(settings.timestamp)
    if settings.to_stderr:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(fmt)
        root.addHandler(h)
    if settings.to_logfile and settings.logfile:
        h = logging.FileHandler(settings.logfile)
        h.setFormatter(fmt)
        root.addHandler(h)
    if settings.to_syslog:
        try:
            h = logging.handlers.SysLogHandler(address="/dev/log", facility=settings.syslog_facility)
        except OSError:
            pass
        else:
            h.setFormatter(CorosyncFormatter("off"))
            root.addHandler(h)
    return root


def subsystem(name: str) -> logging.LoggerAdapter:
    """A logger whose records carry corosync's subsystem tag (TOTEM, MAIN, QUORUM, ...)."""
    return logging.LoggerAdapter(logging.getLogger(f"totem.{name.lower()}"), {"subsys": name.upper()})

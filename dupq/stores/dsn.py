"""Where a store is: a directory, or a PostgreSQL connection string — which is a secret.

A connection string usually carries a password, so dupq never prints or logs one, and it need not be
typed on a command line (where ``ps`` shows it to every user of the host). ``--store`` / ``store=``
accept:

* ``postgresql://…`` or ``postgres://…`` — the connection string itself (fine in a program, or in an
  environment variable: ``dupq serve`` reads ``$DUPQ_STORE`` when ``--store`` is not given);
* ``env:NAME`` — the connection string is the value of the environment variable ``NAME``;
* ``file:PATH`` — the connection string is the first line of the file ``PATH`` (e.g. a mounted secret);
* anything else — a store directory (the embedded file store).

Passwords can also stay out of the string altogether: libpq's ``PGPASSWORD`` and ``~/.pgpass`` work.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from dupq.errors import StoreError

SCHEMES = ("postgresql://", "postgres://")


def is_database(spec: object) -> bool:
    """Whether ``spec`` names a database store (a URL, ``env:``, ``file:``) rather than a directory."""
    return isinstance(spec, str) and spec.startswith((*SCHEMES, "env:", "file:"))


def resolve(spec: str) -> str:
    """The connection string ``spec`` names (see the module docstring); one-line errors, no secrets."""
    if spec.startswith("env:"):
        name = spec[4:]
        value = os.environ.get(name, "").strip()
        if not value:
            raise StoreError(f"--store {spec}: the environment variable {name} is not set or empty")
        where = f"environment variable {name}"
    elif spec.startswith("file:"):
        path = Path(spec[5:]).expanduser()
        try:
            text = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise StoreError(f"--store {spec}: cannot read {path}: {exc.strerror}") from None
        value = text.splitlines()[0].strip() if text else ""
        if not value:
            raise StoreError(f"--store {spec}: {path} is empty")
        where = f"file {path}"
    else:
        return spec
    if not value.startswith(SCHEMES):
        raise StoreError(f"the {where} does not hold a postgresql:// connection string")
    return value


_PASSWORD_IN_URL = re.compile(r"(://[^:/?#@]*:)([^@/?#]*)(@)")
_PASSWORD_KV = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def redact(text: str, dsn: str | None = None) -> str:
    """``text`` with every password removed: in URLs, in ``password=…`` pairs, and — when ``dsn`` is
    given — any verbatim occurrence of that connection string's password (a driver error may quote it)."""
    out = _PASSWORD_IN_URL.sub(r"\1***\3", text)
    out = _PASSWORD_KV.sub(r"\1***", out)
    if dsn:
        secrets = [m.group(2) for m in _PASSWORD_IN_URL.finditer(dsn)]
        secrets += [m.group(2).strip("'") for m in _PASSWORD_KV.finditer(dsn)]
        for s in secrets:
            if len(s) >= 3:
                out = out.replace(s, "***")
    return out

"""Leases: a row held by one process for a while, so that any number of processes share
the work in a table without doing any of it twice, and a process that dies frees what it
held when its lease runs out.

A leased table has two columns: `lease_owner` (who holds the row, a `new_owner()` name)
and `lease_expires_at` (when the hold ends). Source states, digests and outbound mails
are leased this way, all through the functions below:

- `claim`: take free rows in ONE atomic UPDATE whose WHERE re-checks `is_free`; the row
  count says whether this call got them. Of two processes racing, exactly one matches
  (PostgreSQL re-evaluates the WHERE under the row lock; SQLite serialises writers).
- `renew`: push the end of a lease that is still the caller's.
- `free`: give back rows the caller holds; `freed()` and `freed_if_held_by()` are the
  column values for an UPDATE that records an outcome and frees the row at once.

THE free condition (`is_free`): `lease_expires_at IS NULL OR lease_expires_at <= now`.
`lease_expires_at` is the first instant the row is no longer held: a claim at `t` for a
duration `d` holds the row over `[t, t + d)`. The outbox also stores "not before" in the
same column (`freed(not_before=...)`, its retry after a backoff), and a retry due at `t`
goes at `t`, just as a source is due when `next_poll_at <= now`. `is_held` is its exact
complement for a value already read.
"""

from __future__ import annotations

import os
import secrets
import socket
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Table, case, or_, update
from sqlalchemy.orm import Session

from db.base import Base

#: A leased table: a mapped class or a Core `Table` with the two lease columns.
Leased = type[Base] | Table


def new_owner() -> str:
    """A fresh lease owner name, `hostname-pid-random`: readable in leases, heartbeats
    and logs (which host, which process), and unique even for a restarted process that
    got its predecessor's pid (in a container every process is pid 1), thanks to the
    random part. Fits the 128 characters of the owner columns."""
    host = socket.gethostname()[:80] or "host"
    return f"{host}-{os.getpid()}-{secrets.token_hex(3)}"


def _table(leased: Leased) -> Table:
    table = leased if isinstance(leased, Table) else leased.__table__
    assert isinstance(table, Table)
    return table


def is_free(leased: Leased, now: datetime) -> ColumnElement[bool]:
    """Nobody holds the row, or its lease has run out by `now` (see the module doc for
    why the boundary instant counts as run out)."""
    expires = _table(leased).c.lease_expires_at
    return or_(expires.is_(None), expires <= now)


def is_held(expires_at: datetime | None, now: datetime) -> bool:
    """`is_free`'s complement, for a `lease_expires_at` already read."""
    return expires_at is not None and expires_at > now


def is_held_by(leased: Leased, owner: str) -> ColumnElement[bool]:
    """The row is `owner`'s (its lease may have run out without anybody taking it)."""
    return _table(leased).c.lease_owner == owner


def taken(owner: str, *, until: datetime) -> dict[str, Any]:
    """Column values that give the lease to `owner` until `until`."""
    return {"lease_owner": owner, "lease_expires_at": until}


def freed(*, not_before: datetime | None = None) -> dict[str, Any]:
    """Column values that end a lease; with `not_before`, nobody can claim the row
    before that time (a retry's delay)."""
    return {"lease_owner": None, "lease_expires_at": not_before}


def freed_if_held_by(leased: Leased, owner: str) -> dict[str, Any]:
    """Column values that end `owner`'s lease and leave anybody else's alone (a lease
    that ran out while its owner worked may have been taken over since)."""
    table = _table(leased)
    ours = table.c.lease_owner == owner
    return {
        "lease_owner": case((ours, None), else_=table.c.lease_owner),
        "lease_expires_at": case((ours, None), else_=table.c.lease_expires_at),
    }


def claim(
    session: Session,
    leased: Leased,
    *where: ColumnElement[bool],
    owner: str,
    now: datetime,
    until: datetime,
    values: dict[str, Any] | None = None,
) -> int:
    """Lease the free rows matching `where` to `owner` until `until` (setting `values`
    too) in one UPDATE; the number of rows this call got."""
    statement = (
        update(leased)
        .where(*where, is_free(leased, now))
        .values(**taken(owner, until=until), **(values or {}))
        .execution_options(synchronize_session=False)
    )
    return _count(session.execute(statement))


def renew(
    session: Session, leased: Leased, *where: ColumnElement[bool], owner: str,
    until: datetime,
) -> int:
    """Move the end of `owner`'s leases on the rows matching `where` to `until`; the
    number of rows still `owner`'s."""
    statement = (
        update(leased)
        .where(*where, is_held_by(leased, owner))
        .values(lease_expires_at=until)
        .execution_options(synchronize_session=False)
    )
    return _count(session.execute(statement))


def free(session: Session, leased: Leased, *where: ColumnElement[bool], owner: str) -> int:
    """Give back `owner`'s leases on the rows matching `where` (at once, no delay); the
    number of rows freed."""
    statement = (
        update(leased)
        .where(*where, is_held_by(leased, owner))
        .values(**freed())
        .execution_options(synchronize_session=False)
    )
    return _count(session.execute(statement))


def _count(result: Any) -> int:
    return int(result.rowcount or 0)

"""Request dependencies as `Annotated` aliases, so handlers say `session: SessionDep`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from alerts.config import Settings
from alerts.progress.service import DrugNamesCache
from alerts.targets.search import IndexCache
from db.session import transaction


# Plain attribute reads, so `async`: a sync dependency costs a worker-thread round trip.
async def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


async def get_session_factory(request: Request) -> sessionmaker[Session]:
    return request.app.state.session_factory  # type: ignore[no-any-return]


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request: committed when the handler returns, rolled back when
    it raises. Services only flush."""
    with transaction(request.app.state.session_factory) as session:
        yield session


def get_target_index(request: Request) -> IndexCache:
    return request.app.state.target_index  # type: ignore[no-any-return]


def get_drug_names(request: Request) -> DrugNamesCache:
    return request.app.state.drug_names  # type: ignore[no-any-return]


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
SessionFactoryDep = Annotated[sessionmaker[Session], Depends(get_session_factory)]
TargetIndexDep = Annotated[IndexCache, Depends(get_target_index)]
DrugNamesDep = Annotated[DrugNamesCache, Depends(get_drug_names)]

"""The registry: SQLAlchemy tables for submitted jobs and equations (SQLite by default, any URL works)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from sqlalchemy import JSON, DateTime, Float, Integer, String, Text, UniqueConstraint, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Base(DeclarativeBase):
    pass


class JobRow(Base):
    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # Ray's submission id
    kind: Mapped[str] = mapped_column(String(32))
    config: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="PENDING")
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=now)
    started: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ended: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    result: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # the job's last JSON line


class EquationRow(Base):
    __tablename__ = "equations"
    __table_args__ = (UniqueConstraint("text", "source_model", "task", name="one_equation_per_source"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    text: Mapped[str] = mapped_column(Text)
    latex: Mapped[str] = mapped_column(Text)
    complexity: Mapped[int] = mapped_column(Integer)
    r2: Mapped[float | None] = mapped_column(Float, nullable=True)
    source_model: Mapped[str] = mapped_column(String(64), default="")
    task: Mapped[str] = mapped_column(String(64), default="")
    provenance: Mapped[dict] = mapped_column(JSON, default=dict)
    pareto_front: Mapped[list] = mapped_column(JSON, default=list)
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=now)


class Database:
    """The engine and its sessions. ``pool_size`` connections serve at once (as many as the request threads,
    so a request does not wait for a connection another thread holds), and a request waits at most
    ``pool_timeout`` seconds for one. SQLite runs in WAL mode, so readers never wait for a writer, and a
    writer waits up to ``busy_timeout`` seconds for another."""

    def __init__(self, url: str, pool_size: int = 40, pool_timeout: float = 10.0, busy_timeout: float = 10.0):
        sqlite = url.startswith("sqlite")
        args = {"check_same_thread": False, "timeout": busy_timeout} if sqlite else {}
        pooled = {} if url in ("sqlite://", "sqlite:///:memory:") else {
            "pool_size": pool_size, "max_overflow": 0, "pool_timeout": pool_timeout}
        self.engine: Engine = create_engine(url, connect_args=args, **pooled)
        if sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        Base.metadata.create_all(self.engine)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def session(self) -> Iterator[Session]:
        with self.sessions() as session:
            yield session


def _sqlite_pragmas(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # a killed process loses no commit; power loss may lose the last
    cursor.close()

"""Service settings, from environment variables (pydantic-settings)."""

from __future__ import annotations

import os
import secrets
import tempfile
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from l2o.storage import storage_root


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="L2O_", extra="ignore")

    storage: str = Field(default_factory=lambda: str(storage_root()),
                         description="storage root (L2O_STORAGE; default ~/.l2o/storage)")
    database_url: str | None = Field(default=None, description="registry database (L2O_DATABASE_URL); "
                                                               "default: SQLite under <storage>/service")
    api_token: str | None = Field(default=None, description="bearer token of mutating endpoints (L2O_API_TOKEN); "
                                                            "default: generated once, kept in <storage>/service/api_token")
    read_open: bool = Field(default=True, description="read endpoints without the token (L2O_READ_OPEN)")
    ray_address: str | None = Field(default=None, validation_alias="RAY_ADDRESS",
                                    description="Ray dashboard / Jobs API address (RAY_ADDRESS)")
    max_upload_mb: float = Field(default=50.0, description="largest /distill upload (L2O_MAX_UPLOAD_MB)")
    sync_distill_rows: int = Field(default=20_000, description="/distill runs in the request up to this many rows")
    sync_distill_seconds: float = Field(default=60.0, description="time bound of a synchronous /distill")
    sync_distill_concurrency: int = Field(default=1, ge=1, description="synchronous /distill searches at once; "
                                                                      "others wait up to sync_distill_seconds, then 429")
    max_upload_cells: int = Field(default=10_000_000, ge=1, description="rows × columns an upload may hold, once "
                                                                       "decompressed (L2O_MAX_UPLOAD_CELLS)")
    threads: int = Field(default=16, ge=1, description="request threads, and database connections, at once "
                                                       "(L2O_THREADS)")
    db_timeout_s: float = Field(default=10.0, gt=0, description="longest wait for a database connection or lock, "
                                                                "seconds; then 503 (L2O_DB_TIMEOUT_S)")
    ray_timeout_s: float = Field(default=10.0, gt=0, description="timeout of every call to Ray's Jobs API, seconds")
    parse_timeout_s: float = Field(default=5.0, gt=0, description="time limit of parsing one equation, seconds")
    render_timeout_s: float = Field(default=30.0, gt=0, description="time limit of typesetting, drawing or "
                                                                    "exporting one equation, seconds; then 503")
    job_working_dir: str = Field(default_factory=lambda: str(Path(__file__).resolve().parents[2]),
                                 description="working_dir of submitted jobs: the project (L2O_JOB_WORKING_DIR)")

    @property
    def service_dir(self) -> Path:
        path = Path(self.storage).expanduser() / "service"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.service_dir / 'registry.db'}"

    @property
    def dashboard_url(self) -> str | None:
        if not self.ray_address:
            return None
        return self.ray_address if self.ray_address.startswith("http") else None

    def token(self) -> str:
        """The bearer token: the setting, else one generated once and kept (mode 600) in the storage root."""
        if self.api_token:
            return self.api_token
        path = self.service_dir / "api_token"
        if not path.exists():
            # Written to a private temporary file (mode 600 from its creation), then linked into place: the
            # link fails if another worker got there first, and then every worker reads that one token.
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".api_token.")
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(secrets.token_urlsafe(32))
                os.link(tmp, path)
            except FileExistsError:
                pass
            finally:
                os.unlink(tmp)
        token = path.read_text().strip()
        if not token:
            raise RuntimeError(f"{path} is empty; remove it to have a token generated, or set L2O_API_TOKEN")
        return token


@lru_cache
def get_settings() -> Settings:
    return Settings()

"""/healthz while the process runs; /readyz only when the database answers and is migrated."""

from __future__ import annotations

from starlette.testclient import TestClient

from bot.app import build_runtime, create_app
from bot.config import Config
from bot.settings import Settings
from tests.support import LiveService


def test_healthz_and_readyz(service: LiveService) -> None:
    assert service.get("/healthz").json() == {"status": "ok"}
    assert service.get("/readyz").json() == {"status": "ready", "database": "ok"}


def test_readyz_is_503_when_the_database_does_not_answer(config: Config) -> None:
    settings = Settings(database_url="postgresql+psycopg://nobody:x@127.0.0.1:9/none")
    app = create_app(build_runtime(settings, config))
    client = TestClient(app)  # no lifespan: nothing else needs the database here
    assert client.get("/healthz").status_code == 200
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert "database unavailable" in answer.json()["database"]
    assert "nobody:x" not in answer.text


def test_readyz_is_503_when_the_schema_is_missing(config: Config, tmp_path: object) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/empty.db")
    client = TestClient(create_app(build_runtime(settings, config)))
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert "opsbot db upgrade" in answer.json()["database"]

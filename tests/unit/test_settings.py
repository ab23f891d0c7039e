import pytest

from commerce.errors import ConfigurationError
from commerce.settings import Environment, load_settings

REQUIRED = {
    "ENVIRONMENT": "local",
    "GCP_PROJECT": "demo-genx",
    "STOREFRONT_URL": "http://127.0.0.1:8600",
    "PUBLIC_BASE_URL": "http://127.0.0.1:8703",
    "ARTIFACTS_BUCKET": "genx-artifacts-local",
}


@pytest.fixture
def env(monkeypatch):
    for name in REQUIRED:
        monkeypatch.delenv(name, raising=False)
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_settings_load_from_the_environment(env):
    env.setenv("STOREFRONT_ORIGINS", "http://127.0.0.1:8600/, http://localhost:8600")
    settings = load_settings()
    assert settings.environment is Environment.LOCAL
    assert settings.storefront_origins == ("http://127.0.0.1:8600", "http://localhost:8600")
    assert settings.is_local


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_a_missing_variable_is_named_in_the_error(env, missing):
    env.delenv(missing)
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert missing in str(caught.value)


def test_a_malformed_value_is_named_in_the_error(env):
    env.setenv("DOWNLOAD_TOKEN_TTL_HOURS", "soon")
    with pytest.raises(ConfigurationError, match="DOWNLOAD_TOKEN_TTL_HOURS"):
        load_settings()


def test_unknown_environment_is_refused(env):
    env.setenv("ENVIRONMENT", "prod")
    with pytest.raises(ConfigurationError, match="ENVIRONMENT"):
        load_settings()


def test_cloud_environments_must_read_secrets_from_secret_manager(env):
    env.setenv("ENVIRONMENT", "production")
    with pytest.raises(ConfigurationError, match="SECRETS_BACKEND"):
        load_settings()
    env.setenv("SECRETS_BACKEND", "secret-manager")
    assert load_settings().environment is Environment.PRODUCTION


def test_settings_are_frozen(env):
    settings = load_settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.gcp_project = "other"  # type: ignore[misc]

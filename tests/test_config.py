"""Configuration: flags, with environment variables as fallbacks."""

import pytest

from gateway.cli.main import _settings, build_parser
from gateway.config import Settings

pytestmark = pytest.mark.once


def test_serve_flags_reach_the_settings() -> None:
    args = build_parser().parse_args([
        "serve", "--database-url", "sqlite:///x.sqlite3", "--report-delay", "0.5",
        "--unpolled-reversal-seconds", "0", "--auto-pay-after", "1.5",
        "--notification-attempts", "5", "--notification-timeout", "0.25", "--no-simulator",
        "--max-body-bytes", "2048", "--request-read-timeout", "1.5", "--threads", "3",
        "--keep-alive", "7", "--max-connections", "50", "--auth-max-failures", "0",
        "--auth-lockout-seconds", "2.5",
        "--no-admin", "--journal-size", "7",
    ])
    settings = _settings(args, simulator=not args.no_simulator, admin=not args.no_admin)
    assert (settings.database_url, settings.report_delay) == ("sqlite:///x.sqlite3", 0.5)
    assert settings.payment_rules.reversal_seconds == 0
    assert settings.payment_rules.auto_pay_after == 1.5
    assert (settings.notification_attempts, settings.notification_timeout) == (5, 0.25)
    assert settings.simulator is False
    assert (settings.max_body_bytes, settings.request_read_timeout, settings.threads) == (
        2048, 1.5, 3)
    assert (settings.keep_alive, settings.max_connections) == (7, 50)
    assert (settings.auth_max_failures, settings.auth_lockout_seconds) == (0, 2.5)
    assert (settings.admin, settings.journal_size) == (False, 7)


def test_environment_fallbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "SEQR_DATABASE_URL": "sqlite:///env.sqlite3", "SEQR_REPORT_DELAY": "0",
        "SEQR_UNPOLLED_REVERSAL_SECONDS": "7", "SEQR_AUTO_PAY_AFTER": "2",
        "SEQR_NOTIFICATION_ATTEMPTS": "4", "SEQR_NOTIFICATION_TIMEOUT": "1.5",
        "SEQR_SIMULATOR": "0", "SEQR_ADMIN_TOKEN": "s3cret",
        "SEQR_JOB_RETRY_SECONDS": "0.25", "SEQR_WORKER_POLL_SECONDS": "0.5",
        "SEQR_MAX_BODY_BYTES": "4096", "SEQR_REQUEST_READ_TIMEOUT": "2", "SEQR_THREADS": "4",
        "SEQR_KEEP_ALIVE": "3", "SEQR_MAX_CONNECTIONS": "60", "SEQR_AUTH_MAX_FAILURES": "4",
        "SEQR_AUTH_LOCKOUT_SECONDS": "9",
        "SEQR_ADMIN": "0", "SEQR_JOURNAL_SIZE": "0",
    }.items():
        monkeypatch.setenv(name, value)
    from_env = Settings.from_env()
    args = build_parser().parse_args(["serve"])
    from_flags = _settings(args, simulator=not args.no_simulator, admin=not args.no_admin)
    for settings in (from_env, from_flags):
        assert settings.database_url == "sqlite:///env.sqlite3"
        assert settings.report_delay == 0
        assert settings.payment_rules.reversal_seconds == 7
        assert settings.payment_rules.auto_pay_after == 2
        assert (settings.notification_attempts, settings.notification_timeout) == (4, 1.5)
        assert settings.simulator is False and settings.admin_token == "s3cret"
        assert (settings.job_retry_seconds, settings.worker_poll_seconds) == (0.25, 0.5)
        assert (settings.max_body_bytes, settings.request_read_timeout) == (4096, 2)
        assert (settings.threads, settings.keep_alive, settings.max_connections) == (4, 3, 60)
        assert (settings.auth_max_failures, settings.auth_lockout_seconds) == (4, 9)
        assert (settings.admin, settings.journal_size) == (False, 0)
    assert Settings().payment_rules.reversal_seconds == 20  # the real service's rule

"""Runtime settings. Every field has a CLI flag (`gateway.cli.main`) and an environment fallback.

The ground floor of the gateway: this module imports nothing of it.
"""

import os
from dataclasses import dataclass
from datetime import datetime, timedelta

DEFAULT_DATABASE_URL = "sqlite:///seqr-gateway.sqlite3"
#: an emulator's well-known default; SEQR_DEMO_PASSWORD sets another
DEFAULT_DEMO_PASSWORD = "demo-password"


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw not in (None, "") else default


def env_optional_float(name: str) -> float | None:
    raw = os.environ.get(name)
    return float(raw) if raw not in (None, "") else None


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    return raw.strip().lower() not in ("0", "false", "no", "off")


@dataclass(frozen=True)
class PaymentRules:
    """The payment side's two tunable rules, as the domain (`gateway.payments`) reads them."""

    #: a PAID invoice not polled within this many seconds is reversed (the real service's
    #: rule: 20); 0 turns it off
    reversal_seconds: float = 20.0
    #: every new invoice pays itself after this many seconds (None: the buyer does it)
    auto_pay_after: float | None = None

    def reversal_cutoff(self, now: datetime) -> datetime | None:
        """A payment made before this and still unseen by its register is reversed."""
        if self.reversal_seconds <= 0:
            return None
        return now - timedelta(seconds=self.reversal_seconds)

    def reversal_at(self, paid_at: datetime) -> datetime | None:
        """When a payment made at `paid_at` is reversed, if its register has not seen it."""
        if self.reversal_seconds <= 0:
            return None
        return paid_at + timedelta(seconds=self.reversal_seconds)

    def auto_pay_at(self, now: datetime) -> datetime | None:
        """When an invoice sent now pays itself."""
        if self.auto_pay_after is None:
            return None
        return now + timedelta(seconds=self.auto_pay_after)


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    #: least time between queuing a report and it being ready (the real service took a few seconds)
    report_delay: float = 2.0
    #: request bodies above this many bytes are refused before they are parsed
    max_body_bytes: int = 1024 * 1024
    #: a client that has not sent a whole request (headers and body) within this many
    #: seconds is disconnected; until then it holds no thread
    request_read_timeout: float = 5.0
    #: threads per gunicorn worker process: requests answered at once by each process
    threads: int = 8
    #: seconds an idle kept-alive connection stays open for the client's next request
    keep_alive: int = 5
    #: open connections per worker process (idle, arriving or being answered); more wait
    #: in the listen queue
    max_connections: int = 1000
    #: failed password checks for one principal from one address before further attempts
    #: are refused for `auth_lockout_seconds` (five times as many from all addresses lock
    #: it for everyone); 0 switches the throttle off (load tests)
    auth_max_failures: int = 10
    #: how long failures are counted, and how long a lockout lasts
    auth_lockout_seconds: float = 60.0
    #: how long a report worker owns a claimed job before another worker may take it over
    job_lease_seconds: float = 60.0
    #: how often an idle report worker looks for work
    worker_poll_seconds: float = 0.2
    #: how many times a failing render is tried before the job answers SYSTEM_ERROR
    job_max_attempts: int = 3
    #: wait before retrying a failed render: this many seconds, doubled at every attempt
    job_retry_seconds: float = 0.5
    #: run a report worker thread inside each gateway process
    embedded_worker: bool = True
    #: `PaymentRules.reversal_seconds`
    unpolled_reversal_seconds: float = PaymentRules.reversal_seconds
    #: `PaymentRules.auto_pay_after`
    auto_pay_after: float | None = PaymentRules.auto_pay_after
    #: the buyer simulator's HTTP endpoints (/simulator/...)
    simulator: bool = True
    #: the tester's admin API (/admin/...)
    admin: bool = True
    #: when set, the simulator's and the admin API's endpoints demand it as a bearer token
    admin_token: str | None = None
    #: the request journal keeps the newest this many SOAP exchanges; 0 switches it off
    journal_size: int = 10_000
    #: notificationUrl calls: attempts, and seconds each may take
    notification_attempts: int = 3
    notification_timeout: float = 3.0
    #: refuse any request that departs from the WSDL (a Client fault naming the deviations)
    strict: bool = False
    #: the demo shop's password, when `serve` seeds it into an empty database
    demo_password: str = DEFAULT_DEMO_PASSWORD

    @property
    def payment_rules(self) -> PaymentRules:
        """The one place settings become the payment rules."""
        return PaymentRules(self.unpolled_reversal_seconds, self.auto_pay_after)

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(
            database_url=env_str("SEQR_DATABASE_URL", DEFAULT_DATABASE_URL),
            report_delay=env_float("SEQR_REPORT_DELAY", cls.report_delay),
            max_body_bytes=env_int("SEQR_MAX_BODY_BYTES", cls.max_body_bytes),
            request_read_timeout=env_float("SEQR_REQUEST_READ_TIMEOUT",
                                           cls.request_read_timeout),
            threads=env_int("SEQR_THREADS", cls.threads),
            keep_alive=env_int("SEQR_KEEP_ALIVE", cls.keep_alive),
            max_connections=env_int("SEQR_MAX_CONNECTIONS", cls.max_connections),
            auth_max_failures=env_int("SEQR_AUTH_MAX_FAILURES", cls.auth_max_failures),
            auth_lockout_seconds=env_float("SEQR_AUTH_LOCKOUT_SECONDS",
                                           cls.auth_lockout_seconds),
            job_lease_seconds=env_float("SEQR_JOB_LEASE_SECONDS", cls.job_lease_seconds),
            worker_poll_seconds=env_float("SEQR_WORKER_POLL_SECONDS", cls.worker_poll_seconds),
            job_max_attempts=env_int("SEQR_JOB_MAX_ATTEMPTS", cls.job_max_attempts),
            job_retry_seconds=env_float("SEQR_JOB_RETRY_SECONDS", cls.job_retry_seconds),
            embedded_worker=env_str("SEQR_EMBEDDED_WORKER", "1") not in ("0", "false", "no"),
            unpolled_reversal_seconds=env_float(
                "SEQR_UNPOLLED_REVERSAL_SECONDS", cls.unpolled_reversal_seconds
            ),
            auto_pay_after=env_optional_float("SEQR_AUTO_PAY_AFTER"),
            simulator=env_str("SEQR_SIMULATOR", "1") not in ("0", "false", "no"),
            admin=env_str("SEQR_ADMIN", "1") not in ("0", "false", "no"),
            admin_token=os.environ.get("SEQR_ADMIN_TOKEN") or None,
            journal_size=env_int("SEQR_JOURNAL_SIZE", cls.journal_size),
            notification_attempts=env_int(
                "SEQR_NOTIFICATION_ATTEMPTS", cls.notification_attempts),
            notification_timeout=env_float(
                "SEQR_NOTIFICATION_TIMEOUT", cls.notification_timeout),
            strict=env_bool("SEQR_STRICT", cls.strict),
            demo_password=os.environ.get("SEQR_DEMO_PASSWORD") or DEFAULT_DEMO_PASSWORD,
        )

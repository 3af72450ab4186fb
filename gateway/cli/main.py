"""`seqr-gateway serve | worker | simulate | migrate | add-reseller | add-terminal`, and the
admin commands (`requests | notifications | faults | clock | reset | seed | state | invoices`).

Every option has an environment fallback (shown in --help), so the same settings work in
a shell, a service unit or a container.
"""

import argparse
import dataclasses
import errno
import logging
import os
import signal
import socket
import sys
import threading
from importlib import metadata
from pathlib import Path
from typing import Any

from gateway import shops
from gateway.cli import control
from gateway.config import Settings
from storage.database import Database
from wsdl import redact

log = logging.getLogger("seqr-gateway")

DEMO_RESELLER_ID = shops.DEMO_RESELLER_ID
DEMO_USER_ID = shops.DEMO_USER_ID


def _env(name: str, default: Any) -> Any:
    value = os.environ.get(name)
    return default if value in (None, "") else value


def _add_database(parser: argparse.ArgumentParser, env: Settings) -> None:
    parser.add_argument(
        "--database-url", default=env.database_url,
        help="SQLAlchemy URL [SEQR_DATABASE_URL, default %(default)s]",
    )


def _add_payment_options(parser: argparse.ArgumentParser, env: Settings) -> None:
    parser.add_argument(
        "--unpolled-reversal-seconds", type=float,
        default=env.unpolled_reversal_seconds,
        help="reverse a PAID invoice the register has not polled within this many seconds; "
        "0 turns it off [SEQR_UNPOLLED_REVERSAL_SECONDS, default %(default)s]",
    )
    parser.add_argument(
        "--notification-attempts", type=int,
        default=env.notification_attempts,
        help="calls of an invoice's notificationUrl before giving up "
        "[SEQR_NOTIFICATION_ATTEMPTS, default %(default)s]",
    )
    parser.add_argument(
        "--notification-timeout", type=float,
        default=env.notification_timeout,
        help="seconds each notificationUrl call may take [SEQR_NOTIFICATION_TIMEOUT, "
        "default %(default)s]",
    )
    parser.add_argument(
        "--auto-pay-after", type=float, default=env.auto_pay_after,
        help="every new invoice pays itself after this many seconds [SEQR_AUTO_PAY_AFTER, "
        "default: never]",
    )


def _add_worker_options(parser: argparse.ArgumentParser, env: Settings) -> None:
    parser.add_argument(
        "--report-delay", type=float, default=env.report_delay,
        help="least seconds before a report is ready [SEQR_REPORT_DELAY, default %(default)s]",
    )
    parser.add_argument(
        "--job-lease", type=float, default=env.job_lease_seconds,
        help="seconds a worker owns a claimed report job [SEQR_JOB_LEASE_SECONDS, "
        "default %(default)s]",
    )
    parser.add_argument(
        "--job-attempts", type=int, default=env.job_max_attempts,
        help="tries before a report answers SYSTEM_ERROR [SEQR_JOB_MAX_ATTEMPTS, "
        "default %(default)s]",
    )


_FLAGS = {  # Settings field: the argparse destination of its flag
    "database_url": "database_url", "report_delay": "report_delay",
    "job_lease_seconds": "job_lease", "job_max_attempts": "job_attempts",
    "unpolled_reversal_seconds": "unpolled_reversal_seconds",
    "auto_pay_after": "auto_pay_after", "notification_attempts": "notification_attempts",
    "notification_timeout": "notification_timeout", "max_body_bytes": "max_body_bytes",
    "request_read_timeout": "request_read_timeout", "threads": "threads",
    "keep_alive": "keep_alive", "max_connections": "max_connections",
    "auth_max_failures": "auth_max_failures", "auth_lockout_seconds": "auth_lockout_seconds",
    "strict": "strict",
    "journal_size": "journal_size",
}


def _settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    """The environment's settings (`Settings.from_env`), with the command's flags over them."""
    given = {field: getattr(args, dest) for field, dest in _FLAGS.items() if hasattr(args, dest)}
    return dataclasses.replace(Settings.from_env(), **given, **overrides)


def build_parser() -> argparse.ArgumentParser:
    env = Settings.from_env()  # each flag's default: its environment variable, or the default
    parser = argparse.ArgumentParser(
        prog="seqr-gateway",
        description="The SEQR emulator's gateway: serve it, run its report workers, act as "
                    "the buyer (simulate), migrate its database, add shops.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("--log-level", default=_env("SEQR_LOG_LEVEL", "INFO"),
                        type=str.upper, choices=LOG_LEVELS,
                        help="least level logged: DEBUG, INFO, WARNING or ERROR (passwords "
                        "are masked at every level) [SEQR_LOG_LEVEL, default %(default)s]")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the SOAP gateway under gunicorn")
    _add_database(serve, env)
    _add_worker_options(serve, env)
    serve.add_argument("--host", default=_env("SEQR_HOST", "127.0.0.1"),
                       help="[SEQR_HOST, default %(default)s]")
    serve.add_argument("--port", type=int, default=int(_env("SEQR_PORT", 8080)),
                       help="[SEQR_PORT, default %(default)s]")
    serve.add_argument("--workers", type=int, default=int(_env("SEQR_WORKERS", 1)),
                       help="gunicorn worker processes [SEQR_WORKERS, default %(default)s]")
    serve.add_argument("--max-body-bytes", type=int,
                       default=env.max_body_bytes,
                       help="largest request body accepted [SEQR_MAX_BODY_BYTES, "
                       "default %(default)s]")
    serve.add_argument("--request-read-timeout", type=float,
                       default=env.request_read_timeout,
                       help="seconds a client has to send a whole request before it is "
                       "disconnected [SEQR_REQUEST_READ_TIMEOUT, default %(default)s]")
    serve.add_argument("--threads", type=int, default=env.threads,
                       help="threads per worker process [SEQR_THREADS, default %(default)s]")
    serve.add_argument("--keep-alive", type=int, default=env.keep_alive,
                       help="seconds an idle connection is kept open [SEQR_KEEP_ALIVE, "
                       "default %(default)s]")
    serve.add_argument("--max-connections", type=int, default=env.max_connections,
                       help="open connections per worker process [SEQR_MAX_CONNECTIONS, "
                       "default %(default)s]")
    serve.add_argument("--auth-max-failures", type=int, default=env.auth_max_failures,
                       help="failed password checks of a principal from one address before "
                       "it is refused for --auth-lockout-seconds; 0 turns the throttle off "
                       "[SEQR_AUTH_MAX_FAILURES, default %(default)s]")
    serve.add_argument("--auth-lockout-seconds", type=float, default=env.auth_lockout_seconds,
                       help="how long failures count and a lockout lasts "
                       "[SEQR_AUTH_LOCKOUT_SECONDS, default %(default)s]")
    serve.add_argument("--no-worker", action="store_true",
                       default=not env.embedded_worker,
                       help="do not render reports in the gateway processes (run "
                       "`seqr-gateway worker` instead) [SEQR_EMBEDDED_WORKER=0]")
    serve.add_argument("--no-demo", action="store_true",
                       help="do not seed a demo shop into an empty database")
    serve.add_argument("--no-simulator", action="store_true",
                       default=not env.simulator,
                       help="switch off the buyer simulator's /simulator endpoints "
                       "[SEQR_SIMULATOR=0]; with SEQR_ADMIN_TOKEN set they demand it as a "
                       "bearer token")
    serve.add_argument("--strict", action="store_true", default=env.strict,
                       help="refuse every request that departs from the WSDL (elements out "
                       "of order or missing, unknown elements, ...) with a Client fault "
                       "naming the deviations, instead of accepting it as the real SEQR "
                       "did [SEQR_STRICT=1]")
    serve.add_argument("--no-admin", action="store_true", default=not env.admin,
                       help="switch off the admin API's /admin endpoints [SEQR_ADMIN=0]; "
                       "with SEQR_ADMIN_TOKEN set they demand it as a bearer token")
    serve.add_argument("--journal-size", type=int, default=env.journal_size,
                       help="SOAP exchanges the request journal keeps; 0 switches it off "
                       "[SEQR_JOURNAL_SIZE, default %(default)s]")
    serve.add_argument("--seed", type=Path, metavar="FILE",
                       help="load this YAML or JSON fixture before serving (see `seed`)")
    _add_payment_options(serve, env)

    worker = commands.add_parser(
        "worker", help="run report workers (and the payments' housekeeping) as a process")
    _add_database(worker, env)
    worker.add_argument("--concurrency", type=int,
                        default=int(_env("SEQR_WORKER_CONCURRENCY", 1)),
                        help="reports rendered at once by this process "
                        "[SEQR_WORKER_CONCURRENCY, default %(default)s]")
    _add_worker_options(worker, env)
    _add_payment_options(worker, env)

    simulate = commands.add_parser(
        "simulate", help="act as the buyer on a running gateway (its /simulator endpoints)")
    simulate.add_argument("action", choices=["pay", "fail", "reserve", "scan"])
    simulate.add_argument("invoice_reference", nargs="?", metavar="INVOICE_REF",
                          help="the invoice to act on")
    simulate.add_argument("--seqr-id", help="act on the newest open invoice of the till with "
                          "this SEQR ID (as scanning its sticker)")
    simulate.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                          help="with --seqr-id: give a till with no invoice open this long "
                          "to send one (default 0)")
    simulate.add_argument("--gateway-url", default=_env("SEQR_GATEWAY_URL",
                                                        "http://127.0.0.1:8080"),
                          help="[SEQR_GATEWAY_URL, default %(default)s]; the admin token "
                          "comes from SEQR_ADMIN_TOKEN")

    migrate = commands.add_parser("migrate", help="create or upgrade the database schema")
    _add_database(migrate, env)

    add = commands.add_parser("add-reseller", help="create a shop and a user in it")
    _add_database(add, env)
    add.add_argument("--id", required=True, help="reseller id")
    add.add_argument("--user-id", default="9900", help="user within the shop (default 9900)")
    add.add_argument("--password", required=True)
    add.add_argument("--name", help="the shop's name")
    add.add_argument("--update", action="store_true",
                     help="if the user exists, set its password (and the shop's name)")

    terminal = commands.add_parser(
        "add-terminal", help="create a terminal of a shop and print its terminalId: a cash "
        "register (as registerTerminal makes), or with --webshop a webshop's terminal")
    _add_database(terminal, env)
    terminal.add_argument("--reseller-id", required=True, help="the shop it belongs to")
    terminal.add_argument("--password", required=True,
                          help="the terminal's password (at least 4 characters)")
    terminal.add_argument("--name", help="the name buyers see (default: --external-id)")
    terminal.add_argument("--external-id", help="the shop's own label for it")
    terminal.add_argument("--webshop", action="store_true",
                          help="a webshop's terminal, which keeps many open invoices (a cash "
                          "register keeps one: a new sendInvoice cancels its unpaid one)")
    control.add_commands(commands, env, _add_database)
    return parser


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _version() -> str:
    try:
        return metadata.version("seqr-emulator")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "(not installed)"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    redact.install(*logging.getLogger().handlers)
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.root.level))
    handler = {
        "serve": _serve, "worker": _worker, "migrate": _migrate, "add-reseller": _add_reseller,
        "add-terminal": _add_terminal, "simulate": _simulate,
        **{name: _control for name in control.COMMANDS},
    }[args.command]
    return handler(args)


def _control(args: argparse.Namespace) -> int:
    settings = _settings(args)
    db = _ready_database(settings.database_url)
    if db is None:
        return 2
    return control.run(args, db, settings)


def _migrate(args: argparse.Namespace) -> int:
    from storage import migrations

    db = Database(args.database_url)
    db.migrate()
    print(f"schema at revision {migrations.current(db.engine)} (newest) in {_safe(db)}")
    return 0


def _safe(db: Database) -> str:
    return db.engine.url.render_as_string(hide_password=True)


def _ready_database(url: str) -> Database | None:
    """The database, its schema this gateway's: the embedded SQLite default is migrated in
    place; any other database must have been migrated (`seqr-gateway migrate`) before."""
    from storage.migrations import SchemaOutOfDateError

    db = Database(url)
    try:
        db.check_schema(upgrade_if_behind=db.is_sqlite)
    except SchemaOutOfDateError as error:
        print(f"seqr-gateway: {_safe(db)}: {error}", file=sys.stderr)
        return None
    return db


def _add_reseller(args: argparse.Namespace) -> int:
    from gateway.passwords import password_rule_broken

    broken = password_rule_broken(args.password)
    if broken is not None:
        print(f"seqr-gateway: add-reseller: --password refused: {broken}", file=sys.stderr)
        return 2
    db = _ready_database(args.database_url)
    if db is None:
        return 2
    with db.write() as session:
        existed = shops.user_exists(session, args.id, args.user_id)
        if existed and not args.update:
            print(f"seqr-gateway: reseller {args.id} user {args.user_id} exists already: "
                  "nothing changed (--update sets its password and the shop's name)",
                  file=sys.stderr)
            return 1
        shops.add_reseller(session, args.id, args.user_id, args.password, args.name)
    changed = "new password" + (", shop name" if args.name else "")
    print(f"reseller {args.id} user {args.user_id} "
          + (f"updated ({changed})" if existed else "ready"))
    return 0


def _add_terminal(args: argparse.Namespace) -> int:
    from gateway import terminals
    from gateway.errors import SeqrError
    from storage.models import Reseller, Terminal

    db = _ready_database(args.database_url)
    if db is None:
        return 2
    kind = Terminal.WEBSHOP if args.webshop else Terminal.CASH_REGISTER
    try:
        with db.write() as session:
            if session.get(Reseller, args.reseller_id) is None:
                print(f"seqr-gateway: add-terminal: no reseller {args.reseller_id}: create it "
                      "first with add-reseller", file=sys.stderr)
                return 2
            terminal_id = terminals.add_terminal(session, args.reseller_id, args.external_id,
                                                 args.password, args.name, kind)
    except SeqrError as error:
        print(f"seqr-gateway: add-terminal: {error.detail}", file=sys.stderr)
        return 2
    print(terminal_id)
    return 0


def seed_demo_shop(db: Database, password: str) -> str | None:
    """A demo shop on an empty database. Returns its password while it is still the demo one."""
    with db.write() as session:
        return password if shops.seed_demo(session, password) else None


def _metrics_directory() -> None:
    """prometheus-client's multiprocess mode, so /metrics sums every gunicorn worker: a fresh
    directory unless PROMETHEUS_MULTIPROC_DIR names one (set before the client is imported)."""
    import atexit
    import shutil
    import tempfile

    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        for stale in Path(directory).glob("*.db"):
            stale.unlink()
    else:
        directory = tempfile.mkdtemp(prefix="seqr-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        creator = os.getpid()

        def remove() -> None:  # gunicorn's forked workers inherit this, and must not run it
            if os.getpid() == creator:
                shutil.rmtree(directory, ignore_errors=True)

        atexit.register(remove)


def _serve(args: argparse.Namespace) -> int:
    _metrics_directory()
    from gateway.cli.server import run_gunicorn

    settings = _settings(args, embedded_worker=not args.no_worker,
                         simulator=not args.no_simulator, admin=not args.no_admin)
    problem = _cannot_listen(args.host, args.port)
    if problem:
        print(f"seqr-gateway: {problem}", file=sys.stderr)
        return 2
    db = _ready_database(settings.database_url)
    if db is None:
        return 2
    if args.seed is not None:
        try:
            seeded = control.seed_file(db, settings, args.seed)
        except (OSError, ValueError) as error:
            print(f"seqr-gateway: --seed {args.seed}: {error}", file=sys.stderr)
            return 2
        print(f"Seeded {args.seed}: shops {', '.join(seeded['shops']) or '-'}; "
              f"{len(seeded['terminals'])} terminal(s), {len(seeded['invoices'])} invoice(s)",
              flush=True)
    endpoint = f"http://{args.host}:{args.port}/extclientproxy/service/v2"
    if not args.no_demo:
        try:
            password = seed_demo_shop(db, settings.demo_password)
        except ValueError as error:  # SEQR_DEMO_PASSWORD breaks the password rules
            print(f"seqr-gateway: SEQR_DEMO_PASSWORD refused: {error}", file=sys.stderr)
            return 2
        if password is not None:
            print(
                "Demo shop:\n"
                f"  reseller id (initiatorPrincipalId/id): {DEMO_RESELLER_ID}\n"
                f"  user id     (initiatorPrincipalId/userId): {DEMO_USER_ID}\n"
                f"  password: {password}\n"
                "  principal type: RESELLERUSER",
                flush=True,
            )
    db.dispose()
    print(f"SEQR gateway on {endpoint} (WSDL at {endpoint}?wsdl)", flush=True)
    run_gunicorn(settings, args.host, args.port, args.workers)
    return 0


def _cannot_listen(host: str, port: int) -> str | None:
    """Why the gateway could not listen on host:port (a port taken, a host unknown), or None.

    Asked before anything is printed, so that a busy port is said once, plainly, instead of
    after the banner by gunicorn's five seconds of retries. (A program that takes the port
    in the moment between this check and gunicorn's bind still meets gunicorn's message.)"""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as error:
        return f"cannot listen on {host}:{port}: unknown host ({error.strerror}); check --host"
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return (f"port {port} on {host} is taken: another program (another gateway?) "
                        "listens there; stop it, or choose another port with --port "
                        "(SEQR_PORT)")
            return f"cannot listen on {host}:{port}: {error.strerror or error}"
    return None


def _worker(args: argparse.Namespace) -> int:
    from gateway.background.housekeeping import Housekeeper
    from gateway.background.worker import ReportWorker

    settings = _settings(args)
    db = _ready_database(settings.database_url)
    if db is None:
        return 2
    workers = [ReportWorker(db, settings) for _ in range(max(1, args.concurrency))]
    housekeeper = Housekeeper(db, settings)
    stopping = threading.Event()

    def stop(*_: Any) -> None:
        stopping.set()
        housekeeper.stop()
        for worker in workers:
            worker.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    threads = [housekeeper.start_thread()] + [worker.start_thread() for worker in workers]
    stopping.wait()
    for thread in threads:  # each worker finishes the job in hand, then returns
        thread.join()
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from gateway.cli.simulate import simulate

    return simulate(args.gateway_url, args.action, args.invoice_reference, args.seqr_id,
                    os.environ.get("SEQR_ADMIN_TOKEN"), wait=args.wait)


if __name__ == "__main__":
    sys.exit(main())

"""The daily verify timer (``VERIFY_SCHEDULE``; off by default): wiring only.

When ``VERIFY_SCHEDULE`` is set, function_app.py registers :func:`verify_blueprint` beside the
export timer. Each tick audits the live export of the destination (shared/verify.py, the
``verify`` command without flags), sets the ``exporter.verify.problems`` gauge per kind, logs the
first problems and one summary line (an ERROR when there is a problem).
"""

from __future__ import annotations

import logging

import azure.functions as func

from shared.clients import build_clients, close_clients
from shared.etl_client import Destination
from shared.redact import install_log_redaction
from shared.sequence import LIVE_DEFAULT
from shared.settings import Settings
from shared.telemetry import configure_azure_monitor, quiet_sdk_loggers
from shared.verify import Problem, VerifyResult, verify

log = logging.getLogger(__name__)
#: Problems logged one by one per tick (all are counted in the gauge and the summary).
MAX_LOGGED = 50


def run_verify_tick(settings: Settings | None = None) -> VerifyResult:
    """Audit the live export once, as ``python -m shared.cli verify`` does."""
    install_log_redaction()
    quiet_sdk_loggers()
    settings = settings or Settings.from_env()
    configure_azure_monitor(settings.appinsights_connection_string)
    clients = build_clients(settings)
    logged = 0

    def report(problem: Problem) -> None:
        nonlocal logged
        logged += 1
        if logged <= MAX_LOGGED:
            log.warning("verify: %s", problem.line())

    try:
        pin = clients.state.get_pin(LIVE_DEFAULT.destination)
        dest = Destination(pin.integration_id, pin.action_id) if pin else clients.etl.destination()
        folder = LIVE_DEFAULT.folder(settings.blob_path)
        result = verify(clients.blobs, clients.state, dest, LIVE_DEFAULT, folder, report)
    finally:
        close_clients(clients)
    (log.info if result.ok else log.error)("%s", result.summary(LIVE_DEFAULT.label(), folder))
    return result


def verify_blueprint(schedule: str) -> func.Blueprint:
    """A blueprint with the verify timer on ``schedule`` (a checked NCRONTAB)."""
    blueprint = func.Blueprint()

    @blueprint.timer_trigger(schedule=schedule, arg_name="timer", run_on_startup=False, use_monitor=True)
    def verify_destination(timer: func.TimerRequest) -> None:
        run_verify_tick()

    return blueprint

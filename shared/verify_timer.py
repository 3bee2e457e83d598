"""The daily verify timer (``VERIFY_SCHEDULE``; off by default): wiring only.

When ``VERIFY_SCHEDULE`` is set, function_app.py registers :func:`verify_blueprint` beside the
export timer. Each tick audits the live export of every enabled destination (shared/verify.py, the
``verify [--destination NAME]`` command without flags), sets the ``exporter.verify.problems``
gauge per destination and kind, logs the first problems and one summary line per destination (an
ERROR when there is a problem, or when a destination's settings cannot be read).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import azure.functions as func

from shared.clients import build_clients, close_clients
from shared.destinations import NamedDestination, load_destinations
from shared.errors import ExportError
from shared.etl_client import Destination
from shared.redact import install_log_redaction
from shared.sequence import DEFAULT_DESTINATION, LIVE_DEFAULT, Sequence
from shared.settings import Settings
from shared.telemetry import configure_azure_monitor, quiet_sdk_loggers, record_verify_tick
from shared.verify import Problem, VerifyResult, verify

log = logging.getLogger(__name__)
#: Problems logged one by one per destination and tick (all are counted in the gauge and the summary).
MAX_LOGGED = 50


def run_verify_tick(settings: Settings | None = None, *, env: Mapping[str, str] | None = None,
                    ) -> dict[str, VerifyResult | None]:
    """Audit the live export of every enabled destination once, as ``python -m shared.cli verify
    [--destination NAME]`` does: name -> its result (None: not audited, the error is logged)."""
    install_log_redaction()
    quiet_sdk_loggers()
    settings = settings or Settings.from_env()
    configure_azure_monitor(settings.appinsights_connection_string)
    unknown = False
    try:
        destinations = load_destinations(settings, env=env)
    except ExportError as exc:  # the destinations table: default is still audited
        log.error("verify: the named destinations were not read (%s); default alone is audited", exc)
        destinations = [NamedDestination(DEFAULT_DESTINATION, LIVE_DEFAULT, True, settings)]
        unknown = True
    results: dict[str, VerifyResult | None] = {}
    for named in destinations:
        if named.settings is None:
            log.error("verify %s: not audited: %s", named.name, named.error)
            results[named.name] = None
            continue
        try:
            results[named.name] = _audit(named.settings, named.sequence)
        except ExportError as exc:  # one destination's storage or ETL API: the others are audited
            log.error("verify %s: not audited: %s", named.name, exc)
            results[named.name] = None
    # The gauge: these destinations alone (a disabled or removed one is dropped), one not audited
    # as not_audited 1 rather than the count of its last audit.
    record_verify_tick({name: result is not None for name, result in results.items()}, others_unknown=unknown)
    return results


def _audit(settings: Settings, sequence: Sequence) -> VerifyResult:
    clients = build_clients(settings)
    logged = 0

    def report(problem: Problem) -> None:
        nonlocal logged
        logged += 1
        if logged <= MAX_LOGGED:
            log.warning("verify %s: %s", sequence.label(), problem.line())

    try:
        pin = clients.state.get_pin(sequence.destination)
        dest = Destination(pin.integration_id, pin.action_id) if pin else clients.etl.destination()
        folder = sequence.folder(settings.blob_path)
        result = verify(clients.blobs, clients.state, dest, sequence, folder, report)
    finally:
        close_clients(clients)
    (log.info if result.ok else log.error)("%s", result.summary(sequence.label(), folder))
    return result


def verify_blueprint(schedule: str) -> func.Blueprint:
    """A blueprint with the verify timer on ``schedule`` (a checked NCRONTAB)."""
    blueprint = func.Blueprint()

    @blueprint.timer_trigger(schedule=schedule, arg_name="timer", run_on_startup=False, use_monitor=True)
    def verify_destination(timer: func.TimerRequest) -> None:
        run_verify_tick()

    return blueprint

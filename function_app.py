"""Azure Functions entry point: wiring only. The export itself lives in shared/.

Telemetry is set up here, at load, from APPLICATIONINSIGHTS_CONNECTION_STRING (nothing when it is
empty) so that even a tick that fails on its settings is logged to Application Insights.
"""

from __future__ import annotations

import azure.functions as func

from shared.redact import install_log_redaction
from shared.settings import verify_schedule
from shared.telemetry import configure_from_env, quiet_sdk_loggers
from shared.timer import export_blueprint
from shared.verify_timer import verify_blueprint

install_log_redaction()
configure_from_env()
quiet_sdk_loggers()

app = func.FunctionApp()
app.register_functions(export_blueprint)
if schedule := verify_schedule():  # VERIFY_SCHEDULE: the daily audit, off by default
    app.register_functions(verify_blueprint(schedule))

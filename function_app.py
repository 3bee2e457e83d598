"""Azure Functions entry point: wiring only. The export itself lives in shared/."""

from __future__ import annotations

import logging

import azure.functions as func

from shared.timer import export_blueprint

app = func.FunctionApp()
app.register_functions(export_blueprint)
logging.getLogger(__name__).debug("function app loaded")

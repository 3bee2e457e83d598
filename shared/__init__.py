"""CDP calls -> Azure Blob exporter: the package the function app and the CLI share."""

__version__ = "0.1.0"

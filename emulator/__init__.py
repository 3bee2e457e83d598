"""Local emulator of the ETL API v1 (see docs/etl-api.md).

    from emulator.server import EmulatorServer
    from emulator.sources import StaticSource, SyntheticSource, FileSource
    from emulator.faults import Fault
"""

__version__ = "1.0.0"

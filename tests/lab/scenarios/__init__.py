"""The scenario families, one module per group of #13's shapes; importing this package
registers every scenario (tests.lab.scenario.REGISTRY)."""

from tests.lab.scenarios import (  # noqa: F401
    calls,
    features,
    groups,
    pickup,
    queues,
    transfers,
)

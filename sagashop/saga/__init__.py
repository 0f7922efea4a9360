"""The saga runtime the six services share: how a service is declared (`declare`), the actor
that runs it (`actor`) on the process's event loop (`loop`), when a step is taken again
(`retry`), the step log that makes each step take effect once (`steplog`) and the outbox relay
that publishes what the steps emitted (`outbox`)."""

from sagashop.saga.declare import Service, Step, inject, step
from sagashop.saga.steplog import StepLog

__all__ = ["Service", "Step", "StepLog", "inject", "step"]

"""Task executors, at TaskFlow's path (``taskflow.engines.action_engine.executor``).

ferroflow's serial engine calls tasks on the engine's thread; its parallel engine submits them to a
`concurrent.futures.Executor` (the ``executor`` option: an executor instance, or one of
`THREAD_KINDS`). There is no green-thread or process executor (TaskFlow deprecated green threads
and removed processes).
"""

from ferroflow.engines.engine import THREAD_KINDS

__all__ = ["THREAD_KINDS"]

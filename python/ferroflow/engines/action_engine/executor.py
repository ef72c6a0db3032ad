"""Task executors, at TaskFlow's path (``taskflow.engines.action_engine.executor``).

ferroflow's serial engine calls tasks on the engine's thread; its parallel engine submits them to a
`concurrent.futures.Executor` (the ``executor`` option: an executor instance, or one of
`THREAD_KINDS`, or one of `PROCESS_KINDS` for a process pool: see
`ferroflow.engines.engine.ParallelActionEngine`). There is no green-thread executor (TaskFlow
deprecated green threads).
"""

from ferroflow.engines.engine import PROCESS_KINDS, THREAD_KINDS

__all__ = ["PROCESS_KINDS", "THREAD_KINDS"]

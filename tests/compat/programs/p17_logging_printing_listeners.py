"""The text listeners: LoggingListener (to a given logger) and PrintingListener (to stdout) report every
flow and task transition, with results and failures, in TaskFlow's wording.

Only the engine's repr and the uuids are normalised away; the sentences themselves are compared, as
programs and operators grep them.
"""

import contextlib
import io
import logging
import re

from taskflow import engines, task
from taskflow.listeners import logging as logging_listener
from taskflow.listeners import printing
from taskflow.patterns import linear_flow as lf

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class RecordList(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class Resize(task.Task):
    def execute(self, image, width):
        if width <= 0:
            raise ValueError(f"bad width {width}")
        return f"{image}@{width}px"


def normalise(line: str) -> str:
    """Drop the engine repr that starts each message and every uuid."""
    return UUID.sub("<uuid>", line.split(" has moved ", 1)[-1])


def build() -> lf.Flow:
    return lf.Flow("thumbnails").add(
        Resize("small", provides="small_image", inject={"width": 64}),
        Resize("broken", provides="broken_image", inject={"width": 0}),
    )


def main() -> dict:
    logger = logging.getLogger("compat.p17.thumbnails")
    logger.propagate = False
    handler = RecordList()
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    engine = engines.load(build(), store={"image": "cat.png"})
    logged_error = printed_error = None
    try:
        with logging_listener.LoggingListener(engine, log=logger, level=logging.INFO):
            engine.run()
    except ValueError as exc:
        logged_error = str(exc)
    finally:
        logger.removeHandler(handler)

    printed = io.StringIO()
    engine = engines.load(build(), store={"image": "dog.png"})
    with contextlib.redirect_stdout(printed):
        try:
            with printing.PrintingListener(engine):
                engine.run()
        except ValueError as exc:
            printed_error = str(exc)
    lines = printed.getvalue().splitlines()
    return {
        "logged_error": logged_error,
        "log_messages": [normalise(record.getMessage()) for record in handler.records],
        "log_levels": sorted({record.levelname for record in handler.records}),
        "log_with_exc_info": [
            normalise(record.getMessage()) for record in handler.records if record.exc_info
        ],
        "printed_error": printed_error,
        # The traceback printed after a failure holds engine-internal frames: keep its last line only.
        "printed_messages": [normalise(line) for line in lines if " has moved " in line],
        "printed_traceback_ends_with": [line for line in lines if line.startswith("ValueError")],
    }


EXPECTED = {
    "logged_error": "bad width 0",
    "log_levels": ["INFO"],
    "log_messages": [
        "flow 'thumbnails' (<uuid>) into state 'RUNNING' from state 'PENDING'",
        "task 'small' (<uuid>) into state 'RUNNING' from state 'PENDING'",
        "task 'small' (<uuid>) into state 'SUCCESS' from state 'RUNNING' with result 'cat.png@64px' "
        "(failure=False)",
        "task 'broken' (<uuid>) into state 'RUNNING' from state 'PENDING'",
        "task 'broken' (<uuid>) into state 'FAILURE' from state 'RUNNING' with result "
        "'Failure: ValueError: bad width 0' (failure=True)",
        "task 'broken' (<uuid>) into state 'REVERTING' from state 'FAILURE'",
        "task 'broken' (<uuid>) into state 'REVERTED' from state 'REVERTING' with result 'None' "
        "(failure=False)",
        "task 'small' (<uuid>) into state 'REVERTING' from state 'SUCCESS'",
        "task 'small' (<uuid>) into state 'REVERTED' from state 'REVERTING' with result 'None' "
        "(failure=False)",
        "flow 'thumbnails' (<uuid>) into state 'REVERTED' from state 'RUNNING'",
    ],
    "log_with_exc_info": [
        "task 'broken' (<uuid>) into state 'FAILURE' from state 'RUNNING' with result "
        "'Failure: ValueError: bad width 0' (failure=True)",
    ],
    "printed_error": "bad width 0",
    "printed_traceback_ends_with": ["ValueError: bad width 0"],
}

"""``weightlab show RUN --follow``: a running run's new history rows as they are committed.

Like ``tail -f`` on ``history.jsonl``: each poll reads only the bytes added since the last one,
hands on the complete lines (a line being written waits for the next poll) and stops once the run
is no longer running (it ended, or its process died). No TensorFlow, no numpy.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from weightlab import jsonio, lifecycle
from weightlab.store import Store

POLL_SECONDS = 0.5
_sleep = time.sleep  # tests put their own here


def follow(
    store: Store,
    run_id: str,
    *,
    after_epoch: int = -1,
    poll: float = POLL_SECONDS,
    sleep: Callable[[float], None] | None = None,
) -> Iterator[tuple[list[dict[str, Any]], dict[str, Any]]]:
    """Yield ``(new history rows, record)`` whenever the run's history grows, then once more
    with the final record when the run stops running.

    Args:
        store: the run store.
        run_id: the run to follow.
        after_epoch: rows up to this epoch were already shown.
        poll: seconds between looks at the files.
        sleep: how to wait (default: ``time.sleep``).
    """
    path = store.run_dir(run_id) / "history.jsonl"
    offset, pending = 0, b""
    while True:
        # Read the record first: rows committed before the run ended are then read below.
        record = lifecycle.derive(store.progress(store.stored_record(run_id)))
        rows: list[dict[str, Any]] = []
        try:
            with open(path, "rb", buffering=0) as fh:
                fh.seek(offset)
                chunk = fh.read()
        except FileNotFoundError:
            chunk = b""
        offset += len(chunk)
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            try:
                row = jsonio.loads(line.decode("utf-8")) if line.strip() else None
            except ValueError:
                row = None  # a damaged line; `weightlab check` names it
            epoch = row.get("epoch") if isinstance(row, dict) else None
            if isinstance(row, dict) and isinstance(epoch, int) and epoch > after_epoch:
                rows.append(row)
                after_epoch = epoch
        running = record["status"] == "running"
        if rows or not running:
            yield rows, record
        if not running:
            return
        (sleep or _sleep)(poll)

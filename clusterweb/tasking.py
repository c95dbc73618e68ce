"""Enqueueing Celery tasks from web requests and services."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task
from django.db import transaction

logger = logging.getLogger(__name__)


def enqueue(task: Task, *args: Any, **kwargs: Any) -> bool:
    """Send ``task`` now. An unreachable broker is logged and reported as False, never raised:
    the row the task works on is the truth, and a sweeper re-enqueues what never started."""
    return enqueue_in(0, task, *args, **kwargs)


def enqueue_in(seconds: float, task: Task, *args: Any, **kwargs: Any) -> bool:
    """:func:`enqueue`, to run ``seconds`` from now (a task re-scheduling its next look). Keep
    ``seconds`` far below the broker's visibility timeout: Redis redelivers a message that is not
    acknowledged within it, countdown or not."""
    try:
        if seconds > 0:
            task.apply_async(args=args, kwargs=kwargs, countdown=seconds)
        else:
            task.apply_async(args=args, kwargs=kwargs)
    except Exception as exc:  # kombu/redis raise many types for one outage
        logger.error("could not enqueue %s: %s: %s", task.name, type(exc).__name__, exc)
        return False
    return True


def enqueue_on_commit(task: Task, *args: Any, **kwargs: Any) -> None:
    """Send ``task`` once the current transaction commits (at once outside one). Pass ids, never
    objects: the task loads the row itself."""
    transaction.on_commit(lambda: enqueue(task, *args, **kwargs), robust=True)

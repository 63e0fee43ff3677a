"""Capturing what the configured log handlers really write (after their filters), for leak checks."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager


@contextmanager
def handlers_writing_to_buffer(handlers: list[logging.Handler], logger_names: Iterable[str]) -> Iterator[io.StringIO]:
    """Point ``handlers`` (stream handlers) at one buffer and put the root logger and ``logger_names`` at
    DEBUG for the block; everything is put back afterwards."""
    assert handlers, "no stream handler to capture"
    buffer = io.StringIO()
    streams = [h for h in handlers if isinstance(h, logging.StreamHandler)]
    saved_streams = [h.setStream(buffer) for h in streams]
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in logger_names)]
    saved_levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    try:
        yield buffer
    finally:
        for handler, stream in zip(streams, saved_streams, strict=True):
            handler.setStream(stream)  # type: ignore[arg-type]
        for logger, level in zip(loggers, saved_levels, strict=True):
            logger.setLevel(level)

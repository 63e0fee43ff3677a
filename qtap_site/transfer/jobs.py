"""Imports that report their progress: the upload is stored, an ``ImportJob`` row made, and the import runs
in a background thread while the page polls ``GET /import/<id>/`` (``status``).

Where progress is kept while the import's one transaction is open — that transaction is what makes an
import all or nothing, and its writes are invisible until it commits:

- in this process's ``_live`` table, always (the poll of a single-process server reads it first);
- in the job's row: outside the transaction by the import's own connection; inside it, on PostgreSQL, by
  a second connection of the job's own, so a poll served by another process sees it too. SQLite allows
  one writer at a time (the import is it), so there the row waits for the end; the embedded deployment
  is a single process, whose ``_live`` table every poll reads.

One unfinished import per user (a partial unique constraint): a second one is refused with a message
naming the first, not queued — the user sees the first one's progress and can start the next after it.
A job whose heartbeat stopped (its process died; its transaction died with it, so nothing was saved) is
marked failed the next time it is read or the user starts another import.

May import: ``importing``, ``models``, ``records``.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files import File
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone

from qtap_site.transfer import importing
from qtap_site.transfer.models import ImportJob
from qtap_site.transfer.records import ImportProblem

logger = logging.getLogger(__name__)

REPORT_EVERY_S = 0.25  # at most this often to the row: a 100 MB export reports thousands of ticks
STALE_AFTER = timedelta(minutes=2)
Status = ImportJob.Status


@dataclass
class Live:
    status: str
    done: int
    total: int | None


_live: dict[uuid.UUID, Live] = {}
_live_lock = threading.Lock()


class Busy(Exception):
    """The user has an unfinished import; ``job`` is it."""

    def __init__(self, job: ImportJob) -> None:
        super().__init__(f"import {job.pk} is still running")
        self.job = job

    @property
    def detail(self) -> str:
        return (
            f"your import of {self.job.filename} (started {self.job.created_at:%H:%M:%S} UTC) is still running; "
            "start the next one when it has finished"
        )


def uploads_dir() -> Path:
    return Path(settings.DATA_DIR) / "imports"


def _stored(job: ImportJob) -> Path:
    return uploads_dir() / f"{job.pk}.upload"


def create(*, user: Any, upload: Any) -> ImportJob:
    """A queued job for ``upload``, or ``Busy`` when ``user`` has an import running."""
    expire_stale(user=user)
    # Read before writing: on SQLite the insert would wait for a running import's transaction to end.
    if (running := ImportJob.objects.filter(user=user, finished_at__isnull=True).first()) is not None:
        raise Busy(running)
    name = str(getattr(upload, "name", "") or "upload").rsplit("/", 1)[-1][:255]
    try:
        with transaction.atomic():
            return ImportJob.objects.create(user=user, filename=name, size=getattr(upload, "size", 0) or 0)
    except IntegrityError:
        running = ImportJob.objects.filter(user=user, finished_at__isnull=True).first()
        if running is None:  # it finished in between
            return create(user=user, upload=upload)
        raise Busy(running) from None


def start(*, user: Any, upload: Any) -> ImportJob:
    """Store ``upload`` and import it in a background thread; the job answers how far it has got."""
    job = create(user=user, upload=upload)
    path = _stored(job)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        upload.seek(0)
        with open(path, "wb") as out:
            shutil.copyfileobj(upload, out, 1024 * 1024)
    except OSError as exc:
        path.unlink(missing_ok=True)
        _finish(job, error="not_stored", detail=f"{job.filename}: the upload could not be stored ({exc.strerror})")
        return job
    with _live_lock:
        _live[job.pk] = Live(job.status, 0, None)
    threading.Thread(target=_run_stored, args=(job.pk,), name=f"import-{job.pk}", daemon=True).start()
    return job


def run_now(*, user: Any, upload: Any) -> ImportJob:
    """Import ``upload`` in this thread (API clients that wait for the answer); the finished job."""
    job = create(user=user, upload=upload)
    with _live_lock:
        _live[job.pk] = Live(job.status, 0, None)
    try:
        _run(job, upload, side_connection=False)
    finally:
        with _live_lock:
            _live.pop(job.pk, None)
    return job


def _run_stored(job_id: uuid.UUID) -> None:
    try:
        job = ImportJob.objects.select_related("user").get(pk=job_id)
        path = _stored(job)
        try:
            with open(path, "rb") as handle:
                _run(job, File(handle, name=job.filename), side_connection=connection.vendor == "postgresql")
        finally:
            path.unlink(missing_ok=True)
    except Exception:
        logger.exception("import %s failed outside the import itself", job_id)
    finally:
        with _live_lock:
            _live.pop(job_id, None)
        connection.close()  # this thread's own connection; nothing else will close it


def _run(job: ImportJob, upload: Any, *, side_connection: bool) -> None:
    reporter = _Reporter(job, side_connection)
    try:
        result = importing.import_file(user=job.user, upload=upload, report=reporter)
    except ImportProblem as problem:
        job.done, job.total = reporter.done, reporter.total  # how far it got, for the page to say
        _finish(job, error=problem.error, detail=problem.detail)
    except Exception as exc:
        logger.exception("import %s of %s failed", job.pk, job.filename)
        where = reporter.where()
        job.done, job.total = reporter.done, reporter.total
        _finish(job, error="internal", detail=f"{job.filename}: failed while {where} ({type(exc).__name__})")
    else:
        job.source, job.imported, job.skipped = result.source, result.imported, result.skipped
        job.messages, job.chats = result.messages, result.chats
        _finish(job, done=len(result.chats) + result.skipped)
    finally:
        reporter.close()


def _finish(job: ImportJob, *, error: str = "", detail: str = "", done: int | None = None) -> None:
    job.status = Status.FAILED if error else Status.DONE
    job.error, job.detail = error, detail
    if done is not None:
        job.done = job.total = done
    job.finished_at = job.heartbeat_at = timezone.now()
    job.save()


class _Reporter:
    """``importing.Report`` for one job: the live table at every tick, the row at most every
    ``REPORT_EVERY_S`` and at each change of stage."""

    def __init__(self, job: ImportJob, side_connection: bool) -> None:
        self.job = job
        self.side = connection.copy() if side_connection else None
        self.sent_at = 0.0
        self.stage: str = job.status
        self.done: int = 0
        self.total: int | None = None

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        changed = stage != self.stage
        self.stage, self.done, self.total = stage, done, total
        with _live_lock:
            if self.job.pk in _live:
                _live[self.job.pk] = Live(stage, done, total)
        now = time.monotonic()
        if not changed and now - self.sent_at < REPORT_EVERY_S:
            return
        self.sent_at = now
        try:
            self._write(stage, done, total)
        except DatabaseError:
            # A progress report that cannot be written must not fail the import it reports on; the
            # live table still has it, and the next report tries again.
            logger.warning("import %s: progress not written", self.job.pk, exc_info=True)

    def _write(self, stage: str, done: int, total: int | None) -> None:
        beat = timezone.now()
        if not connection.in_atomic_block:
            ImportJob.objects.filter(pk=self.job.pk).update(status=stage, done=done, total=total, heartbeat_at=beat)
        elif self.side is not None:
            table = ImportJob._meta.db_table
            with self.side.cursor() as cursor:  # autocommit: visible to every process at once
                cursor.execute(
                    f"UPDATE {table} SET status = %s, done = %s, total = %s, heartbeat_at = %s WHERE id = %s",  # noqa: S608 -- our table
                    [stage, done, total, beat, self.job.pk],
                )

    def where(self) -> str:
        if self.stage == Status.SAVING:
            return f"saving chat {self.done + 1} of {self.total}; nothing was imported"
        if self.stage == Status.PARSING:
            return f"reading conversation {self.done + 1} of {self.total}; nothing was imported"
        return "reading the file; nothing was imported"

    def close(self) -> None:
        if self.side is not None:
            self.side.close()


def expire_stale(*, user: Any) -> None:
    """Mark failed ``user``'s unfinished jobs whose heartbeat stopped and that no thread here runs."""
    with _live_lock:
        running_here = list(_live)
    stale = list(
        ImportJob.objects.filter(user=user, finished_at__isnull=True, heartbeat_at__lt=timezone.now() - STALE_AFTER)
        .exclude(pk__in=running_here)
        .values_list("pk", flat=True)
    )
    if not stale:
        return  # a poll only reads: on SQLite a write would wait for the running import's transaction
    for job_id in stale:
        (uploads_dir() / f"{job_id}.upload").unlink(missing_ok=True)  # its process died before removing it
    ImportJob.objects.filter(pk__in=stale, finished_at__isnull=True).update(
        status=Status.FAILED,
        error="interrupted",
        detail="the server stopped while importing this file; nothing of it was saved: import it again",
        finished_at=timezone.now(),
    )


def status(job: ImportJob) -> dict[str, Any]:
    """What ``GET /import/<id>/`` answers: the stage, ``done`` of ``total``, and once finished the result
    (``imported``, ``skipped``, ``chats``) or the refusal (``error``, ``detail``)."""
    with _live_lock:
        live = _live.get(job.pk)
    stage, done, total = (live.status, live.done, live.total) if live else (job.status, job.done, job.total)
    answer: dict[str, Any] = {
        "id": str(job.pk),
        "filename": job.filename,
        "size": job.size,
        "status": stage,
        "done": done,
        "total": total,
        "finished": stage in (Status.DONE, Status.FAILED) and live is None,
    }
    if answer["finished"] and job.status == Status.DONE:
        answer.update(imported=job.imported, skipped=job.skipped, chats=job.chats, messages=job.messages)
        answer["source"] = importing.SOURCES.get(job.source, job.source)
    elif answer["finished"]:
        answer.update(error=job.error, detail=job.detail)
    return answer

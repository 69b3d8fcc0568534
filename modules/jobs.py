"""The job queue: one worker thread runs generations in order; callers get a Job to watch.

UI clicks, API calls and the CLI all submit here (DESIGN §3), so two requests
never run on the device at once. A Job carries progress (step counts and an
ETA from the measured step rate), a queue position, and the user's interrupt
("stop now, keep what is done") and skip ("end the current image") requests,
which the generation checks between sampling steps.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Progress:
    step: int = 0
    total_steps: int = 0
    image: int = 0
    images: int = 0
    started: float | None = None  # time.monotonic() when the job started running
    preview: Any = None  # the latest live preview image, when previews are on

    def fraction(self) -> float:
        """Done fraction over the whole job (every image's steps)."""
        if not self.total_steps or not self.images:
            return 0.0
        return min(1.0, (self.image * self.total_steps + self.step) / (self.images * self.total_steps))

    def eta_seconds(self, now: float) -> float | None:
        done = self.fraction()
        if self.started is None or done <= 0:
            return None
        return (now - self.started) * (1 - done) / done


class Job:
    """A submitted piece of work: its result (a Future), progress, and stop requests."""

    def __init__(self, job_id: str, work: Callable[["Job"], Any], description: str = "job"):
        self.id = job_id
        self.work = work
        self.description = description  # what the console line says it is, e.g. "txt2img 512x512 ..."
        self.future: Future = Future()
        self.progress = Progress()
        self._interrupt = threading.Event()
        self._skip = threading.Event()
        self._lock = threading.Lock()

    def interrupt(self) -> None:
        self._interrupt.set()

    def skip(self) -> None:
        self._skip.set()

    @property
    def interrupted(self) -> bool:
        return self._interrupt.is_set()

    @property
    def skip_requested(self) -> bool:
        """A skip is pending (not yet taken by the generation)."""
        return self._skip.is_set()

    def take_skip(self) -> bool:
        """Whether a skip was requested since the last call (a skip ends one image only)."""
        with self._lock:
            requested = self._skip.is_set()
            self._skip.clear()
            return requested

    def report(self, **changes: Any) -> None:
        with self._lock:
            self.progress = Progress(**{**self.progress.__dict__, **changes})


RECENT_JOBS = 16  # finished jobs keep their images: enough for reloads, bounded in memory


class QueueFullError(RuntimeError):
    """The queue already holds as many waiting jobs as allowed; the caller should try again later."""

    def __init__(self, waiting: int, retry_after: int):
        super().__init__(f"the queue is full ({waiting} jobs waiting); try again in about {retry_after} s")
        self.waiting = waiting
        self.retry_after = retry_after


class JobQueue:
    """FIFO of jobs run by one worker thread, started on the first submit (not at import)."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._waiting: list[Job] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._durations: deque[float] = deque(maxlen=8)  # seconds the last jobs ran
        self._recent: dict[str, Job] = {}  # by id, the last RECENT_JOBS submitted (a reloaded page finds its job)
        self._worker: threading.Thread | None = None
        self._closed = False
        self.current: Job | None = None

    def submit(self, work: Callable[[Job], Any], max_waiting: int | None = None, description: str = "job") -> Job:
        """Queue ``work``; QueueFullError (nothing queued) when ``max_waiting`` jobs already wait.
        ``description`` (kind, size, steps) goes into the job's console line."""
        with self._lock:
            if self._closed:  # nothing would ever run it: answer now rather than wait forever
                raise RuntimeError("the job queue is shut down")
            if max_waiting is not None and len(self._waiting) >= max_waiting:
                raise QueueFullError(len(self._waiting), self._seconds_per_job())
            job = Job(f"job-{next(self._ids)}", work, description)
            self._waiting.append(job)
            self._recent[job.id] = job
            while len(self._recent) > RECENT_JOBS:
                del self._recent[next(iter(self._recent))]
            if self._worker is None:
                self._worker = threading.Thread(target=self._run, name="generation-worker", daemon=True)
                self._worker.start()
        self._queue.put(job)
        return job

    def _seconds_per_job(self) -> int:
        """About how long one job runs now (the median of the last few; 10 s before any ran)."""
        durations = sorted(self._durations)
        return max(1, round(durations[len(durations) // 2])) if durations else 10

    def check_room(self, max_waiting: int) -> None:
        """QueueFullError when ``max_waiting`` jobs already wait (for callers that queue later)."""
        with self._lock:
            if len(self._waiting) >= max_waiting:
                raise QueueFullError(len(self._waiting), self._seconds_per_job())

    def cancel(self, job: Job) -> bool:
        """The caller is gone: a waiting job is dropped (its future cancelled; True), a running one
        is interrupted at its next step (False)."""
        with self._lock:
            if job in self._waiting and job.future.cancel():
                self._waiting.remove(job)
                self._recent.pop(job.id, None)
                return True
        job.interrupt()
        return False

    def forget(self, job: Job) -> None:
        """The caller has taken the job's result: stop keeping it for reloads."""
        with self._lock:
            self._recent.pop(job.id, None)

    def find(self, job_id: str) -> Job | None:
        """A recent job by its id (None when unknown or long gone)."""
        with self._lock:
            return self._recent.get(job_id)

    def waiting(self) -> int:
        """How many jobs are queued behind the running one."""
        with self._lock:
            return len(self._waiting)

    def position(self, job: Job) -> int:
        """0 when running or done; n when n-1 jobs wait ahead of it."""
        with self._lock:
            return self._waiting.index(job) + 1 if job in self._waiting else 0

    def shutdown(self, timeout: float | None = None) -> None:
        with self._lock:
            self._closed = True
            worker = self._worker
        if worker is not None:
            self._queue.put(None)
            worker.join(timeout)

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            with self._lock:
                if job not in self._waiting:  # cancelled while it waited
                    continue
                self._waiting.remove(job)
                self.current = job
            started = time.monotonic()
            job.report(started=started)
            outcome = "cancelled"
            if job.future.set_running_or_notify_cancel():
                try:
                    job.future.set_result(job.work(job))
                    outcome = "interrupted" if job.interrupted else "done"
                except Exception as error:  # the job's own error goes to its caller, the worker lives on
                    job.future.set_exception(error)
                    outcome = f"failed: {error}"
            # One line per job, so an operator can see what the server does and how long it takes.
            log.info("%s %s: %s in %.1f s", job.id, job.description, outcome, time.monotonic() - started)
            # The work closure holds the job's inputs (init images, masks): a finished job keeps
            # only its result, so the recent jobs kept for reloads stay small.
            job.work = None
            with self._lock:
                self.current = None
                self._durations.append(time.monotonic() - started)

"""The job queue: order, results and errors, positions, interrupt/skip flags, progress and ETA."""

from __future__ import annotations

import logging
import re
import threading

import pytest

from modules.jobs import JobQueue, Progress


@pytest.fixture()
def jobs():
    queue = JobQueue()
    yield queue
    queue.shutdown(timeout=5)


def test_jobs_run_one_at_a_time_in_order(jobs: JobQueue) -> None:
    order: list[int] = []
    running = threading.Lock()

    def work(n: int):
        def run(job):
            assert running.acquire(blocking=False), "two jobs ran at once"
            order.append(n)
            running.release()
            return n * 10
        return run

    submitted = [jobs.submit(work(n)) for n in range(5)]
    assert [job.future.result(timeout=5) for job in submitted] == [0, 10, 20, 30, 40]
    assert order == [0, 1, 2, 3, 4]


def test_an_error_reaches_its_caller_and_the_worker_goes_on(jobs: JobQueue) -> None:
    def fail(job):
        raise ValueError("bad input")

    failed = jobs.submit(fail)
    after = jobs.submit(lambda job: "still working")
    with pytest.raises(ValueError, match="bad input"):
        failed.future.result(timeout=5)
    assert after.future.result(timeout=5) == "still working"


def test_queue_position_while_another_job_runs(jobs: JobQueue) -> None:
    release = threading.Event()
    started = threading.Event()

    def block(job):
        started.set()
        release.wait(5)

    first = jobs.submit(block)
    started.wait(5)
    second, third = jobs.submit(lambda job: None), jobs.submit(lambda job: None)
    assert (jobs.position(first), jobs.position(second), jobs.position(third)) == (0, 1, 2)
    release.set()
    third.future.result(timeout=5)
    assert jobs.position(third) == 0


def test_interrupt_and_skip_are_seen_by_the_work(jobs: JobQueue) -> None:
    go = threading.Event()

    def work(job):
        go.wait(5)
        return job.interrupted, job.take_skip(), job.take_skip()

    job = jobs.submit(work)
    job.interrupt()
    job.skip()
    go.set()
    # A skip is consumed once (it ends one image); an interrupt stays.
    assert job.future.result(timeout=5) == (True, True, False)


def test_progress_fraction_and_eta() -> None:
    progress = Progress(step=5, total_steps=10, image=1, images=2, started=100.0)
    assert progress.fraction() == pytest.approx(0.75)
    assert progress.eta_seconds(now=130.0) == pytest.approx(10.0)  # 30 s for 3/4 -> 10 s left
    assert Progress().eta_seconds(now=1.0) is None


def test_each_job_leaves_one_console_line_with_what_it_was_and_how_it_ended(
        jobs: JobQueue, caplog: pytest.LogCaptureFixture) -> None:
    def fail(job):
        raise ValueError("out of memory")

    def interrupted(job):
        job.interrupt()
        return []

    caplog.set_level(logging.INFO, logger="modules.jobs")
    done = jobs.submit(lambda job: [1], description="txt2img 64x64 batch 1x1 steps 4 Euler")
    failed = jobs.submit(fail, description="img2img 64x64 batch 2x1 steps 8 DDIM")
    stopped = jobs.submit(interrupted, description="txt2img 128x64 batch 1x1 steps 20 Euler a")
    done.future.result(timeout=5)
    with pytest.raises(ValueError):
        failed.future.result(timeout=5)
    stopped.future.result(timeout=5)
    jobs.shutdown(timeout=5)
    lines = [r.getMessage() for r in caplog.records if r.name == "modules.jobs"]
    assert len(lines) == 3
    assert re.fullmatch(rf"{done.id} txt2img 64x64 batch 1x1 steps 4 Euler: done in \d+\.\d s", lines[0])
    assert lines[1].startswith(f"{failed.id} img2img 64x64 batch 2x1 steps 8 DDIM: failed: out of memory in ")
    assert lines[2].startswith(f"{stopped.id} txt2img 128x64 batch 1x1 steps 20 Euler a: interrupted in ")

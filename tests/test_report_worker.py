"""The ingest stage's Evidently reports, drawn by a worker process started before the stage's own imports: the same
report as drawn in-process, and whatever happens to the worker, the caller still gets the report, or Evidently's own
error. (Slow tier: Evidently is imported, about 9 s of CPU, in a worker and here.)"""

from __future__ import annotations
import os
import re
import signal
import time
import numpy as np
import pandas as pd
import pytest
from lifecycle.data import report_worker
from lifecycle.data.drift import evidently_report

pytestmark = pytest.mark.slow


@pytest.fixture
def frames():
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({'age': rng.normal(30, 5, 400), 'plan': rng.choice(['a', 'b'], 400)})
    cur = pd.DataFrame({'age': rng.normal(36, 5, 300), 'plan': rng.choice(['a', 'b', 'c'], 300)})
    return ref, cur


@pytest.fixture(autouse=True)
def no_worker_left():
    yield
    report_worker.stop()


def _ids_out(html: str) -> str:
    "The page without what Evidently makes new on every draw (element and snapshot IDs)."
    html = re.sub(r'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', '<uuid>', html)
    return re.sub(r'[0-9a-f]{32}', '<id>', html)


def test_the_worker_draws_evidentlys_report_and_one_it_cannot_draw_fails_with_evidentlys_own_error(frames):
    worker = report_worker.start()
    drawn = report_worker.report_html(*frames, sample_rows=250)
    assert report_worker._worker is worker and worker.alive()  # drawn there: a failure would have stopped it
    here = evidently_report(*frames, sample_rows=250).get_html_str(as_iframe=True)
    assert '&quot;column_name&quot;: &quot;plan&quot;' in drawn
    assert _ids_out(drawn) == _ids_out(report_worker._fit_frame(here))

    ref, _ = frames
    with pytest.raises(RuntimeError, match=r'could not draw the report \(ValueError\)'):  # its type only
        worker.draw(ref, ref.iloc[:0], 250, True)
    assert not worker.alive()  # stopped: nothing of the exchange is left in its pipes
    with pytest.raises(ValueError, match="empty column 'age'"):  # Evidently's message, raised where it is drawn here
        report_worker.report_html(ref, ref.iloc[:0], sample_rows=250)
    assert report_worker._worker is None


def test_each_report_iframe_sizes_itself_drawn_by_the_worker_or_here(frames):
    "Evidently's sizing script found only the report iframes parsed before it: the second of two stayed 150 px tall."
    report_worker.start()
    for drawn in (report_worker.report_html(*frames, sample_rows=250), evidently_frame(*frames)):
        (frame,) = re.findall(r'<iframe [^>]*?class=.evidently-ui-iframe.', drawn)
        assert frame.startswith('<iframe onload="const f = this; new ResizeObserver(function')
        assert 'evidentlyResizeObserver' not in drawn  # its script is gone
    assert 'onload' not in report_worker.report_html(*frames, sample_rows=250, as_iframe=False)[:200]


def evidently_frame(ref, cur) -> str:
    "The report as an iframe, drawn in this process."
    report_worker.stop()
    return report_worker.report_html(ref, cur, sample_rows=250)


def test_an_interrupted_report_leaves_nothing_behind_for_the_next_one(frames, monkeypatch):
    ref, cur = frames
    report_worker.start()
    assert 'age' in report_worker.report_html(ref[['age']], cur[['age']], sample_rows=250)
    receive = report_worker._receive

    def interrupted(*a, **k):  # Ctrl-C while the worker draws: its reply is never read
        monkeypatch.setattr(report_worker, '_receive', receive)
        raise KeyboardInterrupt

    monkeypatch.setattr(report_worker, '_receive', interrupted)
    with pytest.raises(KeyboardInterrupt):
        report_worker.report_html(ref[['plan']], cur[['plan']], sample_rows=250)
    html = report_worker.report_html(ref[['plan']], cur[['plan']], sample_rows=250)  # not the reply left unread
    names = re.findall(r'&quot;column_name&quot;: &quot;(\w+)&quot;', html)
    assert 'plan' in names and 'age' not in names


def test_a_worker_killed_while_it_imports_leaves_the_report_drawn_here(frames):
    worker = report_worker.start()
    os.kill(worker.proc.pid, signal.SIGKILL)
    worker.proc.wait(timeout=10)
    html = report_worker.report_html(*frames, sample_rows=250)
    assert '&quot;column_name&quot;: &quot;age&quot;' in html
    assert report_worker._worker is None  # the dead worker was let go: the next `start` starts another
    assert report_worker.start() is not worker


def test_a_stuck_worker_times_out_within_its_wait_even_while_the_frames_are_sent(frames):
    worker = report_worker.ReportWorker()
    os.kill(worker.proc.pid, signal.SIGSTOP)  # reads nothing: the frames are far more than a pipe holds
    big = pd.concat([frames[0]] * 200, ignore_index=True)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        worker.draw(big, big, 250, True, wait_s=1)
    assert time.monotonic() - started < 10 and not worker.alive()

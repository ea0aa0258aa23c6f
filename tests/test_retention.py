"""Retention purges the data of expired snapshots only: an object another live snapshot shares stays, and the same
content ingested again after a purge is a loadable snapshot. In-process, on three-row frames."""

from __future__ import annotations
from datetime import datetime, timedelta, timezone
import pandas as pd
import pytest
from lifecycle.core.params import IngestParams, ColumnRule
from lifecycle.core.workspace import Workspace
from lifecycle.data import ingest as ing
from lifecycle.data.retention import purge_expired


def params(dataset: str, days: int | None) -> IngestParams:
    return IngestParams(
        dataset=dataset,
        source='b.csv',
        target='label',
        retention_days=days,
        columns={
            'label': ColumnRule(dtype='str', personal=False, allowed=['Yes', 'No']),
            'age': ColumnRule(dtype='int', personal=False),
        },
    )


ROWS = pd.DataFrame({'label': ['Yes', 'No', 'Yes'], 'age': [30, 41, 52]})
LATER = datetime.now(timezone.utc) + timedelta(days=2)


@pytest.fixture
def ws(tmp_path, monkeypatch):
    monkeypatch.setenv('LIFECYCLE_KEYS_DIR', str(tmp_path / 'keys'))
    (tmp_path / 'settings.ini').write_text('[workspace]\n')
    return Workspace.open(tmp_path)


@pytest.mark.parametrize('other_days', [30, None])
def test_a_purge_keeps_an_object_a_live_snapshot_still_shares(ws, other_days):
    short = ing.ingest_batch([ROWS], params('short', 1), ws, source='b.csv', fingerprint='fp')
    long = ing.ingest_batch([ROWS], params('long', other_days), ws, source='b.csv', fingerprint='fp')
    assert short.snapshot['object'] == long.snapshot['object']  # same bytes, one object
    purged = purge_expired(ws, LATER)
    assert [e['version'] for e in purged] == [short.snapshot['version']]
    assert ws.store.has(long.snapshot['object'])
    pd.testing.assert_frame_equal(ing.load_snapshot(ws.store, long.snapshot['version']), ROWS)
    with pytest.raises(ing.SnapshotPurged):
        ing.load_snapshot(ws.store, short.snapshot['version'])


def test_status_says_which_dataset_versions_were_purged_and_when_each_expires(ws):
    """Review HH: `lifecycle status` listed a purged version as `(batch, 60 rows)`, as if its rows were there; `drift`
    on it then said its data was gone. Status now says it was purged, and when each version's retention ends."""
    from lifecycle.app.status import workspace_status

    gone = ing.ingest_batch([ROWS], params('short', 1), ws, source='b.csv', fingerprint='fp')
    kept = ing.ingest_batch([ROWS.head(2)], params('long', None), ws, source='b.csv', fingerprint='fp')
    (done,) = purge_expired(ws, LATER)
    listed = {d['version']: d for d in workspace_status(ws)['datasets']}
    said = ws.store.get_record('purges', done['version'])['purged']
    assert listed[gone.snapshot['version']]['purged'] == said and said is not None
    assert listed[gone.snapshot['version']]['retention_until'] == gone.snapshot['retention_until']
    assert listed[kept.snapshot['version']]['purged'] is None
    assert listed[kept.snapshot['version']]['retention_until'] is None


def test_two_expired_snapshots_sharing_an_object_both_lose_it(ws):
    a = ing.ingest_batch([ROWS], params('a', 1), ws, source='b.csv', fingerprint='fp')
    ing.ingest_batch([ROWS], params('b', 1), ws, source='b.csv', fingerprint='fp')
    assert len(purge_expired(ws, LATER)) == 2 and not ws.store.has(a.snapshot['object'])


def test_a_purge_killed_mid_way_leaves_no_snapshot_purged_unaudited(ws, monkeypatch):
    """Review U: a purge killed after deleting a snapshot's data and writing its purge record, before its audit
    entry, left that purge out of the audit log for good (the next purge skips it). It is audited first now: a purge
    killed after its entry is done, and audited, again by the next."""
    from lifecycle.core import audit

    a = ing.ingest_batch([ROWS], params('a', 1), ws, source='b.csv', fingerprint='fp')
    real = ws.store.delete_object

    def killed(obj):
        raise KeyboardInterrupt  # (the purge killed at its deletion)

    monkeypatch.setattr(ws.store, 'delete_object', killed)
    with pytest.raises(KeyboardInterrupt):
        purge_expired(ws, LATER)
    monkeypatch.setattr(ws.store, 'delete_object', real)
    assert [e['version'] for e in purge_expired(ws, LATER)] == [a.snapshot['version']]
    purges = [e for e in audit.read(ws.audit_path) if e['action'] == 'store.purge']
    assert len(purges) == 2 and not ws.store.has(a.snapshot['object']) and purge_expired(ws, LATER) == []


def test_the_same_content_ingested_after_a_purge_is_a_loadable_snapshot(ws):
    p = params('short', 1)
    first = ing.ingest_batch([ROWS], p, ws, source='b.csv', fingerprint='fp')
    purge_expired(ws, LATER)
    again = ing.ingest_batch([ROWS], p, ws, source='b.csv', fingerprint='fp')
    assert again.status == 'accepted' and 'replayed_batch' not in set(again.violations.rule)
    assert again.snapshot['version'] == first.snapshot['version'] + '.r1'
    pd.testing.assert_frame_equal(ing.load_snapshot(ws.store, again.snapshot['version']), ROWS)
    assert datetime.fromisoformat(again.snapshot['retention_until']) > datetime.now(timezone.utc)
    with pytest.raises(ing.SnapshotPurged):  # the purged version stays purged; its lineage record remains
        ing.load_snapshot(ws.store, first.snapshot['version'])
    replay = ing.ingest_batch([ROWS], p, ws, source='b.csv', fingerprint='fp')
    assert replay.snapshot['version'] == again.snapshot['version'] and 'replayed_batch' in set(replay.violations.rule)


def test_the_same_content_ingested_after_its_snapshot_expired_is_kept_past_the_next_purge(ws, monkeypatch):
    """Review DM: content ingested again once its snapshot was past its retention date, not yet purged, was logged as
    a replay of that snapshot, keeping its old retention date, and the next purge deleted the data just ingested. It is
    a new version now (`.r1`), retained from its own ingestion; the purge takes the expired one and keeps the object."""
    p = params('short', 1)
    first = ing.ingest_batch([ROWS], p, ws, source='b.csv', fingerprint='fp')

    class TwoDaysOn(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.now(tz) + timedelta(days=2)

    monkeypatch.setattr(ing, 'datetime', TwoDaysOn)
    again = ing.ingest_batch([ROWS], p, ws, source='b.csv', fingerprint='fp')
    assert again.snapshot['version'] == first.snapshot['version'] + '.r1'
    assert 'replayed_batch' not in set(again.violations.rule)
    assert [e['version'] for e in purge_expired(ws, TwoDaysOn.now(timezone.utc))] == [first.snapshot['version']]
    pd.testing.assert_frame_equal(ing.load_snapshot(ws.store, again.snapshot['version']), ROWS)


def test_a_purge_and_an_ingest_of_the_same_content_never_interleave(ws, monkeypatch):
    """Review DM: a purge, which held no lock, could find no live snapshot sharing an expired one's object, and delete
    it just after an ingest of the same content into another dataset found the object stored and kept no copy: the
    new snapshot's data was gone. Two purges at once could delete one object twice (a traceback). Both steps hold the
    `snapshots` lock now: each looks at the store and writes it with no other between."""
    from lifecycle.core.locks import holds
    from lifecycle.core.store import Store

    seen = []

    def watched(name):
        real = getattr(Store, name)

        def call(self, *a, **k):
            seen.append((name, holds(ws.state_dir, 'snapshots')))
            return real(self, *a, **k)

        return call

    for name in ('has', 'put_file', 'delete_object'):
        monkeypatch.setattr(Store, name, watched(name))
    ing.ingest_batch([ROWS], params('short', 1), ws, source='b.csv', fingerprint='fp')
    ing.ingest_batch([ROWS], params('long', 1), ws, source='b.csv', fingerprint='fp')
    assert len(purge_expired(ws, LATER)) == 2
    assert {n for n, _ in seen} >= {'has', 'put_file', 'delete_object'} and all(h for _, h in seen), seen


def test_a_fail_open_batch_wholly_quarantined_is_refused_and_nothing_is_stored(ws, recwarn):
    """Under fail-open, a batch every row of which goes to quarantine was stored as accepted with an empty clean
    snapshot, on which training failed later (review AA); it is refused, as no row passed, and nothing is stored.
    A batch with one clean row is still stored, its other rows quarantined."""
    base = params('q', None)
    age = ColumnRule(dtype='int', personal=False, max=120)
    p = base.model_copy(update={'policy': 'fail_open', 'columns': {**base.columns, 'age': age}})
    with pytest.raises(ing.BatchRejected) as e:
        ing.ingest_batch([ROWS.assign(age=[300, 301, 302])], p, ws, source='a.csv', fingerprint='a')
    assert e.value.result.status == 'rejected' and 'no_clean_row' in set(e.value.result.violations.rule)
    assert 'all 3 rows broke one' in str(e.value) and ws.store.records('datasets') == []
    kept = ing.ingest_batch([ROWS.assign(age=[400, 401, 40])], p, ws, source='b.csv', fingerprint='b')
    assert (kept.status, kept.accepted_rows, kept.quarantined_rows) == ('accepted_with_quarantine', 1, 2)
    assert 'no_clean_row' not in set(kept.violations.rule)
    again = ing.ingest_batch([ROWS.assign(age=[400, 401, 40])], p, ws, source='b.csv', fingerprint='b')
    assert 'replayed_batch' in set(again.violations.rule) and '_existed' not in again.quarantine
    assert not [w for w in recwarn if issubclass(w.category, FutureWarning)], [str(w.message) for w in recwarn]


def test_a_failure_under_the_snapshots_lock_is_not_said_to_be_the_locks(ws, monkeypatch):
    """Review DS: an ingest stored its snapshots under `_storing('the snapshots lock')`, so any OSError there (a
    temporary file or a record that could not be read) was said to be the lock's: 'the snapshots lock: could not
    write to the store'. Only taking the lock is said so; what fails under it is its own error."""
    from lifecycle.core import locks

    def unreadable(path):
        raise PermissionError(13, 'Permission denied', str(path))

    monkeypatch.setattr(ing, 'file_sha256', unreadable)
    with pytest.raises(OSError, match='Permission denied') as e:
        ing.ingest_batch([ROWS], params('short', 1), ws, source='b.csv', fingerprint='fp')
    assert 'snapshots lock' not in str(e.value)
    monkeypatch.undo()

    def no_lock(*a, **k):
        raise PermissionError(13, 'Permission denied', 'locks/snapshots.lock')

    monkeypatch.setattr(locks, 'hold', no_lock)
    with pytest.raises(ing.IngestError, match='the snapshots lock: could not write to the store: Permission denied'):
        ing.ingest_batch([ROWS], params('short', 1), ws, source='b.csv', fingerprint='fp')

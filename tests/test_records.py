"""Dataset, drift-profile, feature-set and purge records are sealed with the workspace's key (kept in `keys_dir`) and
checked on every read: a record edited by hand is refused, naming its file and what failed, never silently used. A
workspace written before records were sealed is brought up to date by `lifecycle migrate`."""

from __future__ import annotations
import json
import numpy as np
import pandas as pd
import pytest
from lifecycle.core.cli_support import invoke
from lifecycle.core.params import ColumnRule, FeaturesParams, FeatureDef, IngestParams
from lifecycle.core.store import RecordError, SEALED_KINDS, Store
from lifecycle.core.workspace import FORMAT_FILE, Workspace, WorkspaceFormatError, migrate
from lifecycle.data import ingest as ing
from lifecycle.data.drift import compare
from lifecycle.data.features import check_feature_set, register_feature_set

P = IngestParams(
    dataset='people',
    source='b.csv',
    target='label',
    max_duplicate_rate=1.0,
    columns={
        'label': ColumnRule(dtype='str', personal=False, allowed=['Yes', 'No']),
        'age': ColumnRule(dtype='int', personal=False),
    },
)
FP = FeaturesParams(target='label', positive_class='Yes', features=[FeatureDef(name='age', kind='numeric')])


def rows(n: int, shift: int = 0) -> pd.DataFrame:
    return pd.DataFrame({'label': ['Yes', 'No'] * (n // 2), 'age': np.arange(n) % 40 + 20 + shift})


@pytest.fixture
def ws(tmp_path, monkeypatch):
    monkeypatch.setenv('LIFECYCLE_KEYS_DIR', str(tmp_path / 'keys'))
    (tmp_path / 'settings.ini').write_text('[workspace]\n')
    return Workspace.open(tmp_path)


def edit(path, change) -> None:
    rec = json.loads(path.read_text())
    change(rec)
    path.write_text(json.dumps(rec, indent=1))


def test_a_dataset_record_edited_by_hand_is_refused_naming_the_file(ws):
    v = ing.ingest_batch([rows(4)], P, ws, source='b.csv', fingerprint='fp').snapshot['version']
    assert ing.load_snapshot(ws.store, v).shape == (4, 2)
    path = ws.store.record_path('datasets', v)
    edit(path, lambda r: r.update(rows=400))
    with pytest.raises(RecordError, match='does not match its seal') as e:
        ing.load_snapshot(Workspace.open(ws.root).store, v)
    assert str(path) in str(e.value)
    with pytest.raises(RecordError):
        Workspace.open(ws.root).store.records('datasets')


def test_an_edited_drift_profile_is_refused_before_it_changes_a_verdict(ws):
    ref = ing.ingest_batch([rows(200)], P, ws, source='a.csv', fingerprint='a').snapshot['version']
    prof = ing.reference_profile(ws.store, ref)
    cur = rows(200, shift=15)
    assert compare(prof, cur).set_index('column').loc['age', 'drifted']
    path = ws.store.record_path('profiles', ref)

    def hide_the_shift(r):  # the reference's age distribution moved onto the current one's
        r['columns']['age']['cdf']['values'] = [x + 15 for x in r['columns']['age']['cdf']['values']]

    edit(path, hide_the_shift)
    with pytest.raises(RecordError, match='does not match its seal') as e:
        ing.reference_profile(Workspace.open(ws.root).store, ref)
    assert str(path) in str(e.value)


def test_drift_command_refuses_an_edited_profile_with_exit_4(ws, tmp_path, monkeypatch):
    "A record failing its seal is damaged state: exit 4, as every command says it (drift said 2, status a traceback)."
    from lifecycle.data import commands
    from conftest import make_workspace, set_yaml

    w = make_workspace(tmp_path / 'w')
    set_yaml(w / 'params/ingest.yaml', dataset=P.dataset)  # (drift refuses the params of another dataset)
    monkeypatch.chdir(w)
    s = Workspace.open(w)
    a = ing.ingest_batch([rows(60)], P, s, source='a.csv', fingerprint='a').snapshot['version']
    b = ing.ingest_batch([rows(60, 3)], P, s, source='b.csv', fingerprint='b').snapshot['version']
    ing.reference_profile(s.store, a)
    edit(s.store.record_path('profiles', a), lambda r: r['columns']['age'].update(mean=0.0))
    r = invoke(commands.drift, ['--reference', a, '--current', b], env={'LIFECYCLE_WORKSPACE': str(w)})
    assert r.exit_code == 4 and 'does not match its seal' in r.stderr and f'profiles/{a}.json' in r.stderr


def test_drift_command_uses_a_stored_reference_profile_without_reading_its_data(ws, tmp_path, monkeypatch):
    "`lifecycle drift --reference VERSION` reads the version's stored profile: its data is not read again."
    from lifecycle.data import commands
    from conftest import make_workspace, set_yaml

    w = make_workspace(tmp_path / 'w')
    set_yaml(w / 'params/ingest.yaml', dataset=P.dataset)  # (drift refuses the params of another dataset)
    monkeypatch.chdir(w)
    s = Workspace.open(w)
    a = ing.ingest_batch([rows(60)], P, s, source='a.csv', fingerprint='a').snapshot['version']
    b = ing.ingest_batch([rows(60, 3)], P, s, source='b.csv', fingerprint='b').snapshot['version']
    prof, load = ing.reference_profile(s.store, a), ing.load_snapshot

    def only_current(store, version):
        assert version != a, 'the reference data was read'
        return load(store, version)

    monkeypatch.setattr(ing, 'load_snapshot', only_current)
    r = invoke(commands.drift, ['--reference', a, '--current', b, '--json'], env={'LIFECYCLE_WORKSPACE': str(w)})
    assert r.exit_code == 0, r.output
    got = {c['column']: c['score'] for c in json.loads(r.stdout)['columns']}
    assert got == compare(prof, load(s.store, b)).set_index('column').score.to_dict() and 'age' in got


def test_an_edited_feature_set_record_is_refused(ws):
    fs = register_feature_set(ws.store, FP)
    assert check_feature_set(ws.store, FP, fs['version'])['inputs'] == ['age']
    edit(ws.store.record_path('features', fs['version']), lambda r: r.update(inputs=['age', 'salary']))
    with pytest.raises(RecordError, match='features'):
        check_feature_set(Workspace.open(ws.root).store, FP, fs['version'])


def test_a_record_moved_to_another_id_or_stripped_of_its_seal_is_refused(ws):
    v1 = ing.ingest_batch([rows(4)], P, ws, source='a.csv', fingerprint='a').snapshot['version']
    v2 = ing.ingest_batch([rows(6)], P, ws, source='b.csv', fingerprint='b').snapshot['version']
    p1, p2 = ws.store.record_path('datasets', v1), ws.store.record_path('datasets', v2)
    p2.write_text(p1.read_text())  # a valid record under another name
    with pytest.raises(RecordError, match='does not match its seal'):
        ws.store.get_record('datasets', v2)
    edit(p1, lambda r: r.pop('_seal'))
    with pytest.raises(RecordError, match='carries no seal.*lifecycle migrate'):
        ws.store.get_record('datasets', v1)


def test_a_store_without_a_key_keeps_plain_records(tmp_path):
    s = Store(tmp_path / 'store')
    s.put_record('datasets', 'x', {'a': 1})
    assert s.get_record('datasets', 'x') == {'a': 1} and '_seal' not in s.record_path('datasets', 'x').read_text()


def test_migrate_seals_the_records_of_a_workspace_written_before_seals(ws):
    v = ing.ingest_batch([rows(4)], P, ws, source='a.csv', fingerprint='a').snapshot['version']
    ing.reference_profile(ws.store, v)
    fs = register_feature_set(ws.store, FP)
    for kind in SEALED_KINDS:  # the state as the previous format (1) wrote it: the same records, no seals
        for p in (ws.store_dir / 'records' / kind).glob('*.json'):
            edit(p, lambda r: r.pop('_seal'))
    (ws.state_dir / FORMAT_FILE).write_text('1\n')
    with pytest.raises(WorkspaceFormatError, match='lifecycle migrate'):
        Workspace.open(ws.root)
    out = migrate(Workspace.open(ws.root, migrating=True))
    assert out['from_format'] == 1 and [s['step'] for s in out['steps']] == [
        'seal_records',
        'move_signing_key',
        'canonical_content',
        'one_alias_family',
    ]
    assert '1 datasets, 1 profiles, 1 features' in out['steps'][0]['did']
    again = Workspace.open(ws.root)
    assert ing.load_snapshot(again.store, v).shape == (4, 2)
    assert check_feature_set(again.store, FP, fs['version'])['version'] == fs['version']
    assert migrate(Workspace.open(ws.root, migrating=True))['steps'] == []  # safe to run again


def test_the_same_data_in_another_column_order_is_the_same_version_and_older_versions_keep_their_ids(ws, monkeypatch):
    from lifecycle.core.store import ContentHash

    data = rows(6)
    new_ws = ing.ingest_batch([data], P, ws, source='a.csv', fingerprint='a').snapshot['version']
    swapped = ing.ingest_batch([data[['age', 'label']]], P, ws, source='b.csv', fingerprint='b')
    assert swapped.snapshot['version'] == new_ws and 'replayed_batch' in set(swapped.violations.rule)
    # a workspace made before format 4: its snapshots were named by their content with the columns as given
    monkeypatch.setattr(ing, 'ContentHash', lambda: ContentHash(canonical=False))
    old = [ing.ingest_batch([rows(8, s)], P, ws, source=f'o{s}.csv', fingerprint=f'o{s}') for s in (1, 2)]
    ids = [r.snapshot['version'] for r in old]
    monkeypatch.undo()
    monkeypatch.setenv('LIFECYCLE_KEYS_DIR', str(ws.root / 'keys'))
    assert ing.ingest_batch([rows(8, 1)], P, ws, source='x.csv', fingerprint='x').snapshot['version'] != ids[0]
    (ws.state_dir / FORMAT_FILE).write_text('3\n')
    for f in ws.store.record_path('datasets', 'x').parent.glob('*.json'):  # forget the probe stored just now
        if json.loads(f.read_text())['version'] not in (new_ws, *ids):
            f.unlink()
    out = migrate(Workspace.open(ws.root, migrating=True))
    assert [s['step'] for s in out['steps']] == ['canonical_content', 'one_alias_family']
    assert '2 existing version(s) found again through an alias, 1 already the same' in out['steps'][0]['did']
    again = Workspace.open(ws.root)
    for s, vid in zip((1, 2), ids):
        for order in (['label', 'age'], ['age', 'label']):
            r = ing.ingest_batch([rows(8, s)[order]], P, again, source='r.csv', fingerprint=f'r{s}{order[0]}')
            assert r.snapshot['version'] == vid and 'replayed_batch' in set(r.violations.rule), (order, r.snapshot)
    assert ing.load_snapshot(again.store, ids[0]).shape == (8, 2)
    assert migrate(Workspace.open(ws.root, migrating=True))['steps'] == []


def test_migrating_the_same_data_stored_in_two_column_orders_keeps_the_version_that_already_has_the_canonical_id(
    ws, monkeypatch
):
    from lifecycle.core.store import ContentHash

    monkeypatch.setattr(ing, 'ContentHash', lambda: ContentHash(canonical=False))  # stored before format 4
    data = rows(8, 3)
    named = {
        tuple(order): ing.ingest_batch([data[order]], P, ws, source=f'{order[0]}.csv', fingerprint=order[0]).snapshot[
            'version'
        ]
        for order in (['label', 'age'], ['age', 'label'])
    }
    assert len(set(named.values())) == 2  # two versions of the same data under the old rule
    monkeypatch.undo()
    monkeypatch.setenv('LIFECYCLE_KEYS_DIR', str(ws.root / 'keys'))
    (ws.state_dir / FORMAT_FILE).write_text('3\n')
    out = migrate(Workspace.open(ws.root, migrating=True))
    did = out['steps'][0]['did']
    assert '0 existing version(s) found again through an alias' in did and '1 holding the same data' in did, did
    again = Workspace.open(ws.root)
    for order in (['label', 'age'], ['age', 'label']):  # either order finds the version whose ID is canonical
        r = ing.ingest_batch([data[order]], P, again, source='r.csv', fingerprint=f'r{order[0]}')
        assert r.snapshot['version'] == named[('age', 'label')], (order, r.snapshot['version'], named)
    assert migrate(Workspace.open(ws.root, migrating=True))['steps'] == []


def test_migrate_with_its_format_set_back_does_not_seal_an_edited_record_again(ws):
    """Review AH: a dataset record edited by hand was refused on read; setting FORMAT back to 1 and running `migrate`
    sealed it again as it stood, and the edit passed. Only a record with no seal is sealed; an edited one is left,
    refused as before, and `migrate` says so."""
    v = ing.ingest_batch([rows(4)], P, ws, source='a.csv', fingerprint='a').snapshot['version']
    edit(ws.store.record_path('datasets', v), lambda r: r.update(rows=9999))
    (ws.state_dir / FORMAT_FILE).write_text('1\n')
    from lifecycle.core.workspace import seal_records

    said = seal_records(Workspace.open(ws.root, migrating=True))
    assert 'left unsealed, as their seal does not match' in said and said.endswith('1 datasets'), said
    with pytest.raises(RecordError, match='does not match its seal'):  # (the next step reads it: refused, named)
        migrate(Workspace.open(ws.root, migrating=True))
    with pytest.raises(RecordError, match='does not match its seal'):
        ws.store.get_record('datasets', v)


def test_a_record_that_is_a_folder_or_json_null_is_named_as_such(tmp_path):
    """Found by review DD: a folder among the trust records made every release command fail with a bare '[Errno 21]
    Is a directory', and a record holding `null` was said to be 'NoneType'."""
    from lifecycle.core.store import StoreError

    s = Store(tmp_path / 'store')
    s.put_record('trust', 'trust-00001', {'a': 1})
    s.record_path('trust', 'trust-00002').mkdir()
    with pytest.raises(StoreError, match=r"trust-00002\.json: expected a record file, found a folder"):
        s.records('trust')
    s.record_path('trust', 'trust-00002').rmdir()
    s.record_path('trust', 'trust-00002').write_text('null')
    with pytest.raises(StoreError, match=r"trust-00002\.json: expected a JSON object, found null; it was damaged"):
        s.records('trust')


def test_a_rerun_of_the_content_hash_step_killed_midway_says_its_aliases_are_its_own(ws, monkeypatch):
    """Migration step 4 killed after storing one alias (before its audit entry): its rerun said that version held
    "the same data as an earlier version in another column order", which was untrue (the alias was its own). It
    counts it as found again through an alias, made by the run cut short."""
    from lifecycle.core.store import ContentHash
    from lifecycle.core.workspace import canonical_content

    monkeypatch.setattr(ing, 'ContentHash', lambda: ContentHash(canonical=False))  # stored before format 4
    ids = [ing.ingest_batch([rows(8, s)], P, ws, source=f'o{s}.csv', fingerprint=f'o{s}') for s in (1, 2)]
    ids = [r.snapshot['version'] for r in ids]
    monkeypatch.undo()
    monkeypatch.setenv('LIFECYCLE_KEYS_DIR', str(ws.root / 'keys'))
    (ws.state_dir / FORMAT_FILE).write_text('3\n')
    old = Workspace.open(ws.root, migrating=True)
    put, made = old.store.put_record, []

    def killed_after_one(kind, rid, rec):
        if kind == 'aliases' and made:
            raise KeyboardInterrupt  # (the kill, after the first alias)
        made.append(rid)
        return put(kind, rid, rec)

    with monkeypatch.context() as m, pytest.raises(KeyboardInterrupt):
        m.setattr(old.store, 'put_record', killed_after_one)
        canonical_content(old)
    assert len(made) == 1
    out = migrate(Workspace.open(ws.root, migrating=True))
    did = out['steps'][0]['did']
    assert '2 existing version(s) found again through an alias (1 of them aliased by an earlier run' in did, did
    assert 'holding the same data' not in did, did
    again = Workspace.open(ws.root)
    for s, vid in zip((1, 2), ids):
        r = ing.ingest_batch([rows(8, s)[['age', 'label']]], P, again, source='r.csv', fingerprint=f'r{s}')
        assert r.snapshot['version'] == vid


def test_a_category_first_feature_set_registered_before_layouts_were_hashed_is_still_its_definitions(ws, monkeypatch):
    """Review HG: since a category-first definition hashes with its layout (c77dfe6b), the feature set such a workspace
    registered before, which its champion was trained on and the retraining loop trains its challenger on, was refused
    for features.yaml's own definitions ('features.yaml defines feature set fs-..., but this run's upstream stage
    registered fs-...: re-run the features stage'): `retrain run` failed until a new champion went through every
    promotion. That version's stored transformation is the champion's own: it is accepted; another is refused."""
    from lifecycle.core.store import hash_obj
    from lifecycle.data import features

    fp = FeaturesParams(
        target='label',
        positive_class='Yes',
        features=[
            FeatureDef(name='city', kind='categorical', transform='onehot'),
            FeatureDef(name='age', kind='numeric'),
        ],
    )
    with monkeypatch.context() as m:  # (registered as lifecycle did before: the definitions' hash alone)
        m.setattr(features, 'definition_hash', lambda p: hash_obj(p.model_dump(exclude={'tolerance'})))
        old = register_feature_set(ws.store, fp)
    assert old['version'] != features.feature_set_version(fp)
    assert check_feature_set(ws.store, fp, old['version'])['version'] == old['version']
    assert check_feature_set(ws.store, fp, register_feature_set(ws.store, fp)['version'])['inputs'] == ['city', 'age']
    with pytest.raises(ValueError, match='re-run the features stage'):
        check_feature_set(ws.store, FP, old['version'])  # (other definitions: refused as before)

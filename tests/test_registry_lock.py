"""Issue #13, item 5: registering a version and moving aliases hold the named `registry` lock, so two writers never
interleave; the kill switch and the guard's rollback take only the flags lock, not the pipeline's or registry's."""

from __future__ import annotations
import threading
import time
from conftest import copy_workspace, toy_validation
from lifecycle.core import audit, locks
from lifecycle.core.workspace import Workspace
from lifecycle.model.registry import (
    alias_mismatches,
    audited_aliases,
    register_version,
)
from lifecycle.serve import flags as fl

KW = dict(alias='dev', tags={}, reason='lock test')


def test_register_waits_for_the_registry_lock_and_two_writers_never_interleave(tmp_path):
    (tmp_path / 'settings.ini').write_text('[workspace]\n')
    ws = Workspace.open(tmp_path)
    vids = [toy_validation(ws), toy_validation(ws)]  # (two validations: the same one twice is one version)
    done, errors = [], []

    def writer(vid):
        try:
            done.append(register_version(Workspace.open(tmp_path), vid, 'toy', **KW)['model_version'])
        except Exception as e:  # surfaced by the assert below
            errors.append(e)

    with locks.hold(ws.state_dir, 'registry'):  # another writer holds the registry
        threads = [threading.Thread(target=writer, args=(vid,)) for vid in vids]
        for t in threads:
            t.start()
        time.sleep(1.5)
        assert done == [] and ws.client.search_model_versions("name='toy'") == []  # both wait, nothing written
    for t in threads:
        t.join(60)
    assert errors == [] and sorted(done) == ['1', '2']
    assert [e['subject'] for e in audit.read(ws.audit_path) if e['action'] == 'model.register'] == ['toy/1', 'toy/2']
    assert audited_aliases(ws.audit_path, 'toy') == {'dev': '1'}  # the second found dev taken
    assert alias_mismatches(ws.client, ws.audit_path, 'toy') == []
    assert register_version(ws, vids[0], 'toy', **KW)['model_version'] in done  # (again: the version it made)


def test_kill_switch_and_rollback_never_wait_behind_a_pipeline_run_or_a_registry_writer(tiny_template, tmp_path):
    ws = Workspace.open(copy_workspace(tiny_template, tmp_path / 'ws'))  # (the session's tiny workspace, a copy)
    fl.change_flags(ws, {'challenger': '2', 'percentage': 10}, actor='test', reason='a canary')
    with locks.hold(ws.state_dir, 'pipeline'), locks.hold(ws.state_dir, 'registry'):
        started = time.monotonic()
        fl.kill(ws, actor='test', reason='kill while a pipeline run and a registry writer hold their locks')
        fl.change_flags(ws, {'challenger': None, 'percentage': 0, 'shadow': False}, actor='guard', reason='rollback')
        assert time.monotonic() - started < 5
    spec, _ = fl.load_spec(ws)
    assert spec.kill and spec.challenger is None

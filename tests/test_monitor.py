"""The monitor end to end on a prediction log written through its public API (a replay's labels in one transaction,
each row as `add_feedback` writes it: `give_feedback`): shifted inputs and flipped labels raise the drift and
performance alerts with their severities within two windows, silence and a dead watcher raise theirs, and each sink
(ticket file, webhook, SMTP on 127.0.0.1) receives exactly the alerts routed to it; bad monitor params are refused
naming the key; an unreachable webhook keeps its alerts until it answers."""

from __future__ import annotations
import json
import os
import re
import socket
import subprocess
import threading
import time
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import set_yaml
from lifecycle.core.cli_support import EXIT_INPUT, invoke
from lifecycle.core.store import read_jsonl
from lifecycle.core.workspace import Workspace
from lifecycle.data import drift
from lifecycle.operate.commands import monitor_run
from lifecycle.operate.monitor import beat, run_once, status
from lifecycle.operate.schema import load_monitor_params
from lifecycle.operate.windows import Baseline
from lifecycle.serve.predlog import PredictionLog, add_feedback, default_url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class Webhook:
    "A webhook receiver on 127.0.0.1 that can be down (connection refused) or up."

    def __init__(self):
        self.port, self.got, self.srv = free_port(), [], None

    @property
    def url(self) -> str:
        return f'http://127.0.0.1:{self.port}/alerts'

    def up(self):
        got = self.got

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                got.append(json.loads(self.rfile.read(int(self.headers['Content-Length']))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = ThreadingHTTPServer(('127.0.0.1', self.port), H)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        return self

    def down(self):
        if self.srv:
            self.srv.shutdown()
            self.srv.server_close()
            self.srv = None


@pytest.fixture
def webhook():
    w = Webhook().up()
    yield w
    w.down()


@pytest.fixture
def smtp():
    from aiosmtpd.controller import Controller

    class Handler:
        def __init__(self):
            self.got = []

        async def handle_DATA(self, server, session, envelope):
            self.got.append(message_from_bytes(envelope.content))
            return '250 OK'

    h = Handler()
    c = Controller(h, hostname='127.0.0.1', port=free_port())
    c.start()
    yield c, h
    c.stop()


def baseline(rng) -> Baseline:
    "A training profile of age and employment, and calibrated holdout scores with labels drawn from them."
    n = 3000
    s = rng.uniform(size=n)
    prof = drift.profile(pd.DataFrame({'age': rng.normal(30, 8, n).round(1), 'employed': rng.choice(['Yes', 'No'], n)}))
    return Baseline.from_holdout(prof, s, (rng.uniform(size=n) < s).astype(int))


def two_windows(ws, rng, t0: float) -> None:
    "Two windows of 200 of v1 in the log: the second's ages shifted and its outcomes flipped (drift, accuracy drop)."
    log = PredictionLog(default_url(ws))
    replay(log, rng, t0, 0, 200)
    replay(log, rng, t0, 200, 200, shift=15, flip=True)
    log.close()


def replay(log: PredictionLog, rng, t0: float, start: int, n: int, shift: float = 0.0, flip: bool = False, model=None):
    "Log n one-row requests (ages shifted by `shift`) answered by `model`, then their feedback (flipped if `flip`)."
    truth = {}
    for i in range(start, start + n):
        s = float(rng.uniform())
        y = rng.uniform() < s
        rid = f'r{i}'
        log.log(
            request_id=rid,
            ts=t0 + i,
            route='predict',
            targeting_key=None,
            variant='control',
            model_version='1',
            model=model,
            inputs={'age': [round(float(rng.normal(30 + shift, 8)), 1)], 'employed': [str(rng.choice(['Yes', 'No']))]},
            output=[s],
            decision=[int(s >= 0.5)],
            threshold=0.5,
            latency_ms=2.0,
            status=200,
        )
        truth[rid] = 'Yes' if y != flip else 'No'
    assert log.flush()
    give_feedback(log, truth)


def give_feedback(log: PredictionLog, outcomes: dict) -> None:
    """The outcomes of requests just logged (request ID -> outcome), each recorded as `add_feedback` records one (the
    request, the time it came, the outcome as JSON, no actor), all in one transaction. One `add_feedback` a label cost
    a transaction and a synced commit each, 0.65 ms of CPU: the module's windows of 200 labels took 7 of its 23 s of
    CPU with it. Its checks are tested where it is the subject (test_serving_inprocess.py); here every request is in
    the log, or the set-up fails."""
    from sqlalchemy import select

    p = log.predictions.c
    with log.engine.connect() as c:
        logged = set(c.execute(select(p.request_id).where(p.request_id.in_(list(outcomes)))).scalars())
    assert logged == set(outcomes), sorted(set(outcomes) - logged)[:5]
    rows = [dict(request_id=rid, ts=time.time(), outcome=json.dumps(o), actor=None) for rid, o in outcomes.items()]
    with log.engine.begin() as c:
        c.execute(log.feedback_table.insert(), rows)


def configure(ws_dir: Path, webhook: Webhook, smtp_port: int, **extra) -> None:
    set_yaml(
        ws_dir / 'params' / 'monitor.yaml',
        window={'rows': 200, 'seconds': None},
        sinks__webhook__url=webhook.url,
        sinks__webhook__backoff_s=0.01,
        sinks__email={'host': '127.0.0.1', 'port': smtp_port, 'sender': 'monitor@test', 'to': ['oncall@test']},
        **extra,
    )


def test_shift_and_flip_raise_drift_and_performance_alerts_to_their_sinks(workspace, webhook, smtp):
    controller, mail = smtp
    configure(workspace, webhook, controller.port)
    ws = Workspace.open(workspace)
    mp = load_monitor_params(ws.params_dir)
    rng = np.random.default_rng(7)
    base = {'1': baseline(rng)}
    t0 = time.time() - 3000
    log = PredictionLog(default_url(ws))
    replay(log, rng, t0, 0, 400)  # two windows as trained
    first = run_once(ws, mp, baselines=base, now=t0 + 400)
    assert first.windows == 2 and first.alerts == [] and first.new_windows == 2
    again = run_once(ws, mp, baselines=base, now=t0 + 400)
    other = mp.model_copy(update={'window': mp.window.model_copy(update={'rows': 100})})
    cut = run_once(ws, other, baselines=base, now=t0 + 400)  # (cut otherwise: windows it never saw, review P)
    assert again.new_windows == 0 and cut.windows == cut.new_windows == 4 and cut.alerts == [], (again, cut)
    replay(log, rng, t0, 400, 400, shift=15, flip=True)  # then inputs shift and labels flip
    alerts = []
    for k, end in enumerate((600, 800)):  # a look after each of the next two windows closes
        run = run_once(ws, mp, baselines=base, now=t0 + end)
        alerts += run.alerts
    log.close()
    by_rule = {a['rule']: a for a in alerts}
    assert by_rule['input_drift']['severity'] == 'high' and by_rule['input_drift']['window'] == 2
    assert by_rule['accuracy_drop']['severity'] == 'critical' and by_rule['accuracy_drop']['window'] == 2
    assert 'input_drift_some' not in by_rule  # the ladder: the high rule on the same metric wins
    # silence: nothing for two hours
    quiet = run_once(ws, mp, baselines=base, now=t0 + 800 + 7200)
    assert [(a['rule'], a['severity']) for a in quiet.alerts] == [('no_traffic', 'high')]
    alerts += quiet.alerts
    # each sink has exactly the alerts routed to it
    paging = sorted(a['id'] for a in alerts if a['severity'] in ('high', 'critical'))
    tickets = sorted(a['id'] for a in alerts if a['severity'] in ('low', 'medium'))
    assert sorted(a['id'] for a in webhook.got) == paging
    deadline = time.time() + 5
    while len(mail.got) < len(paging) and time.time() < deadline:
        time.sleep(0.05)
    assert sorted(m['Subject'] for m in mail.got) == sorted(
        f"[lifecycle {a['severity']}] {a['rule']} on {a['model'] + ' ' if a.get('model') else ''}{a['series']}"
        for a in alerts
        if a['id'] in paging
    )
    assert sorted(t['id'] for t in read_jsonl(ws.state_dir / 'monitor' / 'tickets.jsonl')) == tickets
    # every alert is in the audit log with its window's evidence, and no input value
    from lifecycle.core.audit import read

    entries = [e for e in read(ws.audit_path) if e['action'] == 'monitor.alert']
    assert sorted(e['details']['evidence']['id'] for e in entries) == sorted(a['id'] for a in alerts)
    keys = {
        'id',
        'rule',
        'severity',
        'metric',
        'value',
        'condition',
        'sample',
        'series',
        'window',
        'window_start',
        'window_end',
        'ts',
        'model',
    }
    assert all(set(e['details']['evidence']) == keys and e['actor'] == 'monitor' for e in entries)
    drift_entry = next(e for e in entries if e['subject'] == 'input_drift')
    assert drift_entry['details']['evidence']['value'] > 0.25 and drift_entry['details']['evidence']['sample'] == 200
    shown = status(ws)['series']  # (an accuracy with the labels it rests on: review P)
    assert shown and all('labels' in x for x in shown), shown


def test_a_dead_watcher_raises_the_heartbeat_alert(workspace, webhook, smtp):
    controller, _ = smtp
    configure(workspace, webhook, controller.port, watchers=['monitor', 'guard'])
    ws = Workspace.open(workspace)
    beat(ws.state_dir, 'guard', now=time.time() - 3600)
    run = run_once(ws, load_monitor_params(ws.params_dir), baselines={})
    assert [(a['rule'], a['series'], a['severity']) for a in run.alerts] == [
        ('watcher_dead', 'watcher/guard', 'critical')
    ]
    assert [a['rule'] for a in webhook.got] == ['watcher_dead']


def test_an_unreachable_webhook_keeps_its_alerts_until_delivered(workspace, smtp):
    controller, _ = smtp
    hook = Webhook()  # down: nothing listens on its port
    configure(workspace, hook, controller.port, watchers=['monitor', 'guard'])
    ws = Workspace.open(workspace)
    beat(ws.state_dir, 'guard', now=time.time() - 3600)
    mp = load_monitor_params(ws.params_dir)
    run = run_once(ws, mp, baselines={})
    assert run.alerts and run.pending == 1 and run.delivered['webhook'] == 0
    kept = json.loads((ws.state_dir / 'monitor' / 'outbox' / 'webhook.json').read_text())
    assert kept[0]['attempts'] == mp.sinks.webhook.attempts and 'ConnectError' in kept[0]['error']
    hook.up()
    try:
        time.sleep(0.2)  # past the backoff (0.01 s doubled per attempt); the rule's cooldown holds a new alert back
        later = run_once(ws, mp, baselines={})
        assert later.alerts == [] and later.delivered['webhook'] == 1 and later.pending == 0
        assert [a['rule'] for a in hook.got] == ['watcher_dead']
    finally:
        hook.down()


def test_alerts_waiting_on_a_dead_sink_are_said_with_why_its_last_delivery_failed(workspace, smtp, monkeypatch, capsys):
    """A high alert for a webhook that refused every attempt was said as "1 waiting in the outbox" by `monitor run`
    and `monitor status`, and why only in the outbox's file (found by QA). Both say why now, the path left out."""
    from lifecycle.operate.commands import _show_look, monitor_status

    controller, _ = smtp
    configure(workspace, Webhook(), controller.port, watchers=['monitor', 'guard'])  # down: nothing listens there
    url = yaml.safe_load((workspace / 'params' / 'monitor.yaml').read_text())['sinks']['webhook']['url']
    set_yaml(workspace / 'params' / 'monitor.yaml', sinks__webhook__url=f'{url}/services/T0/B0/s3cretT0ken')
    ws = Workspace.open(workspace)
    beat(ws.state_dir, 'guard', now=time.time() - 3600)
    run = run_once(ws, load_monitor_params(ws.params_dir), baselines={})
    assert run.pending == 1 and set(run.undelivered) == {'webhook'} and 'ConnectError' in run.undelivered['webhook']
    _show_look(run, as_json=False)
    said = capsys.readouterr().out
    assert 'webhook: its last delivery failed (ConnectError' in said and 's3cretT0ken' not in said, said
    monkeypatch.chdir(workspace)
    r = invoke(monitor_status, [])
    assert 'webhook 1 (its last delivery failed: ConnectError' in r.stdout and 's3cretT0ken' not in r.stdout, r.stdout
    r = invoke(monitor_status, ['--json'])
    assert 'ConnectError' in json.loads(r.stdout)['undelivered']['webhook']


def test_why_an_email_sink_failed_is_said_without_the_addresses_it_quotes():
    """Review HG: since `monitor run` and `monitor status` say why alerts wait (44a48c86), the SMTP server's refusal
    kept for it reached their output, and logs, as smtplib words it: each refused recipient's e-mail address, the
    sender's. Its addresses are withheld as in every driver's error a message quotes; the rest is kept."""
    import smtplib
    from types import SimpleNamespace
    from lifecycle.operate.alerts import _failure

    mp = SimpleNamespace(sinks=SimpleNamespace(webhook=SimpleNamespace(url=None)))
    to = 'anna.smith@corp.example'
    refused = smtplib.SMTPRecipientsRefused({to: (550, f'5.1.1 <{to}>: Recipient address rejected'.encode())})
    said = _failure(refused, mp)
    assert said.startswith('SMTPRecipientsRefused: ') and '550' in said and 'Recipient address rejected' in said
    assert to not in said and 'anna.smith' not in said, said
    said = _failure(smtplib.SMTPSenderRefused(553, b'sender rejected', 'alerts.bob@corp.example'), mp)
    assert '553' in said and 'bob@' not in said, said


def test_a_look_killed_while_delivering_and_two_looks_at_once_raise_each_alert_once(workspace, smtp, monkeypatch):
    """Found by review: the judged state was written after the delivery (a look killed while a sink waited raised the
    same alerts again), and two looks at once (cron beside `--every`) each raised them; and a look that failed still
    beat, so a monitor failing every look read as alive."""
    from lifecycle.operate import alerts as al, monitor

    controller, _ = smtp
    configure(workspace, Webhook(), controller.port, watchers=['monitor', 'guard'])
    ws = Workspace.open(workspace)
    beat(ws.state_dir, 'guard', now=time.time() - 3600)  # a dead watcher: one alert to raise
    mp = load_monitor_params(ws.params_dir)

    def killed(self, mp, sleep=None):
        raise KeyboardInterrupt  # (as a kill while a sink waits: nothing after the delivery runs)

    with monkeypatch.context() as m:
        m.setattr(al.Outbox, 'deliver', killed)
        with pytest.raises(KeyboardInterrupt):
            run_once(ws, mp, baselines={})
    raised = ws.state_dir / 'monitor' / 'alerts.jsonl'
    assert [a['rule'] for a in read_jsonl(raised)] == ['watcher_dead']
    assert run_once(ws, mp, baselines={}).alerts == [] and len(read_jsonl(raised)) == 1  # not raised again
    for f in (ws.state_dir / 'monitor').glob('state.json'):
        f.unlink()  # judged afresh: the next looks raise it again, once between them
    looks = [threading.Thread(target=run_once, args=(ws, mp), kwargs={'baselines': {}}) for _ in range(3)]
    for look in looks:
        look.start()
    for look in looks:
        look.join()
    assert [a['rule'] for a in read_jsonl(raised)] == ['watcher_dead'] * 2
    hb = ws.state_dir / 'heartbeats' / 'monitor.json'
    before = hb.read_bytes()
    with monkeypatch.context() as m:
        m.setattr(monitor, 'kept_records', lambda *a, **k: (_ for _ in ()).throw(OSError('log unreadable')))
        with pytest.raises(OSError):
            run_once(ws, mp, baselines={})
    assert hb.read_bytes() == before  # (a look that failed does not beat)


@pytest.mark.parametrize(
    'change, key',
    [
        (dict(rules=[dict(name='x', metric='drift', condition='> 1', severity='high')]), "rules.0.metric"),
        (dict(window={'rows': 0}), 'window.rows'),
        (dict(rules=[dict(name='x', metric='drift_psi_max', condition='> 1', severity='urgent')]), 'rules.0.severity'),
        (dict(watchers=['monitor', 'gaurd']), 'watchers.1'),  # (no such watcher beats: it would be dead at once)
        (dict(rules=[dict(name='x', metric='drift_psi_max', condition='over 1', severity='low')]), 'rules.0.condition'),
        # (1e400 is infinity: a threshold nothing crosses, written into dashboard.json as Infinity, not JSON)
        (dict(rules=[dict(name='x', metric='error_rate', condition='> 1e400', severity='low')]), 'rules.0.condition'),
        # (1e-400 is 0 to a float: a threshold other than the one written, review DG)
        (dict(rules=[dict(name='x', metric='error_rate', condition='> 1e-400', severity='low')]), 'rules.0.condition'),
        (dict(sinks={'webhook': {'url': 'hooks/T0/s3cret'}}), 'sinks.webhook.url'),  # (no URL: alerts undeliverable)
        (dict(sinks={'webhook': {'url': 'https://h:99999999/s3cret'}}), 'sinks.webhook.url'),  # (no port there)
        (dict(sinks={'webhook': {'url': 'https://h:0/s3cret'}}), 'sinks.webhook.url'),
    ],
)
def test_bad_monitor_params_are_refused_naming_the_key(workspace, monkeypatch, change, key):
    set_yaml(workspace / 'params' / 'monitor.yaml', **change)
    monkeypatch.chdir(workspace)
    r = invoke(monitor_run, ['--json'])
    assert r.exit_code == EXIT_INPUT
    out = json.loads(r.stdout)
    assert out['ok'] is False and 'monitor.yaml' in out['error'] and f"key '{key}'" in out['error']
    assert out['error'].count('found') <= 1  # (a message that says what it found is not followed by it again)
    assert 'Traceback' not in r.output and 's3cret' not in r.output  # (a webhook's path may be its secret)


def test_generated_prometheus_rules_pass_promtool(workspace, tmp_path):
    import shutil
    import subprocess

    import codecs
    import fnmatch
    import re
    from lifecycle.operate.prometheus import _regex, monitor_alone, prometheus_rules

    promtool = shutil.which('promtool')
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package 'prometheus')")
    mp = load_monitor_params(workspace / 'params')
    globs = ('*/[z-a]', '*/[z-ab]', '*/chal"lenger', '[!12]/[cC]ontrol', '*/[]x]', '*/chal\nlenger', '*/chal\ufffdl',
             '*challenger', '2[/]challenger')  # fmt: skip  (review: Prometheus refused the whole file for some)
    for glob in globs:
        mp.rules.append(mp.rules[0].model_copy(update={'name': f'scoped_{len(mp.rules)}', 'series': glob}))
    assert monitor_alone(mp)[-2:] == [r.name for r in mp.rules[-2:]]  # (no label matchers say these: the monitor's)
    names = ['2/challenger', '1/control', '2/Control', '3/x', '3/]', 'server/z', '2/b', '2/chal"lenger']
    for glob in globs[:-2]:  # each side's regex matches what fnmatch matches, as the PromQL string unescapes it
        for side in glob.split('/'):
            pattern = codecs.decode(_regex(side), 'unicode_escape')
            for name in (n for s in names for n in s.split('/')):
                assert bool(re.fullmatch(pattern, name)) == fnmatch.fnmatchcase(name, side), (side, name, pattern)
    f = tmp_path / 'rules.yml'
    f.write_text(yaml.safe_dump(prometheus_rules(mp), sort_keys=False))
    r = subprocess.run([promtool, 'check', 'rules', str(f)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'SUCCESS' in r.stdout + r.stderr


def test_rule_names_and_descriptions_with_template_braces_reach_prometheus_as_written(workspace, tmp_path):
    """Prometheus reads an alerting rule's labels and annotations as Go templates: a rule named `rate {{` made
    `promtool check rules` refuse the whole file, and one named `{{ $value }}` was labelled with the breaching value.
    Checked with `promtool test rules`: the alert fired carries the rule's name and description as monitor.yaml says."""
    import shutil

    from lifecycle.operate.prometheus import _alert_name, prometheus_rules

    promtool = shutil.which('promtool')
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package 'prometheus')")
    rules = [
        dict(name='rate {{', metric='error_rate', condition='> 0.5', severity='high'),
        dict(name='{{ $value }}', metric='score_mean', condition='> 0.5', severity='low',
             description='see {{ .Labels.x }} {{{ and }} {{{{'),
    ]  # fmt: skip
    set_yaml(workspace / 'params' / 'monitor.yaml', rules=rules)
    mp = load_monitor_params(workspace / 'params')
    (tmp_path / 'rules.yml').write_text(yaml.safe_dump(prometheus_rules(mp), sort_keys=False))
    r = subprocess.run([promtool, 'check', 'rules', 'rules.yml'], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    lab = 'model="m", model_version="1", variant="control"'
    series = [{'series': f'lifecycle_monitor_metric{{metric="{m}", {lab}}}', 'values': '0.9x5'} for m in
              ('error_rate', 'score_mean')]  # fmt: skip
    tests = [
        {'eval_time': '2m', 'alertname': _alert_name(r.name), 'exp_alerts': [{
            'exp_labels': {'severity': r.severity, 'rule': r.name, 'metric': r.metric, 'model': 'm',
                           'model_version': '1', 'variant': 'control'},
            'exp_annotations': {'summary': f'{r.name}: {r.metric} {r.condition}',
                                'description': r.description or 'share of requests that failed (status >= 500)'}}]}
        for r in mp.rules
    ]  # fmt: skip
    unit = {'rule_files': ['rules.yml'], 'evaluation_interval': '1m',
            'tests': [{'interval': '1m', 'input_series': series, 'alert_rule_test': tests}]}  # fmt: skip
    (tmp_path / 'test.yml').write_text(yaml.safe_dump(unit, sort_keys=False))
    r = subprocess.run([promtool, 'test', 'rules', 'test.yml'], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


def test_prometheus_fires_only_the_top_rung_of_a_ladder_as_the_monitor_does(workspace, tmp_path):
    """Rules on one metric form a ladder: the monitor raises only the most severe one breached (with its sample), but
    the generated alerting rules fired every rung breached (review); and a rung scoped to some series (`*/challenger`)
    fired on every series. Checked against Prometheus itself: `promtool test rules` evaluates the generated rules on
    gauges of the monitor's text file, and what it fires must be what the monitor's own `judge` raises on the same
    figures, rung by rung and series by series."""
    import shutil

    from lifecycle.operate.alerts import judge
    from lifecycle.operate.prometheus import _alert_name, prometheus_rules
    from lifecycle.operate.schema import METRICS, parse_condition

    promtool = shutil.which('promtool')
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package 'prometheus')")
    mp = load_monitor_params(workspace / 'params')
    drift = mp.rules[0]  # input_drift: > 0.25, high
    mp.rules += [
        drift.model_copy(update={'name': 'input_drift_same', 'condition': '> 0.2'}),  # a tie: the first one wins
        drift.model_copy(update={'name': 'drift_challenger', 'condition': '> 0.15', 'series': '*/challenger',
                                 'severity': 'critical'}),  # above them all, on challengers only
        drift.model_copy(update={'name': 'drift_control', 'condition': '> 0.3', 'series': '*/control',
                                 'severity': 'low', 'min_sample': 100}),  # below, on controls, with less sample
    ]  # fmt: skip
    gauges = {r.metric for r in mp.rules} - {
        'silence_s', 'label_silence_s', 'heartbeat_age_s', 'server_alerts', 'guard_alerts', 'rows_set_aside',
        'unreadable'}  # fmt: skip
    obs, series = [], []
    for m in sorted(gauges):
        cuts = sorted({parse_condition(r.condition)[1] for r in mp.rules if r.metric == m})
        values = sorted({x * f for x in cuts for f in (0.5, 1.5)} | {cuts[-1] + 1} | {(a + b) / 2 for a, b in
                        zip(cuts, cuts[1:])})  # fmt: skip
        for v in values:
            for n in (10**6, 150):  # a sample every rule's least meets, and one some rules' do not
                for variant in ('control', 'challenger'):
                    k = len(obs) + 1
                    obs.append({'series': f'{k}/{variant}', m: v, METRICS[m][0]: n})
                    lab = f'model_version="{k}", variant="{variant}"'
                    series.append({'series': f'lifecycle_monitor_metric{{metric="{m}", {lab}}}', 'values': f'{v}x5'})
                    if METRICS[m][0] != 'none':
                        sample = f'lifecycle_monitor_sample{{metric="{m}", {lab}}}'
                        series.append({'series': sample, 'values': f'{n}x5'})
    fired = judge(obs, mp.rules, {}, now=1e9)
    for rung in ('input_drift', 'input_drift_some', 'drift_challenger', 'drift_control'):
        assert any(a.rule == rung for a in fired), rung  # (each rung fires somewhere: the test can tell them apart)
    tests = []
    for r in mp.rules:
        if r.metric not in gauges:
            continue
        exp = [
            {'exp_labels': {'severity': r.severity, 'rule': r.name, 'metric': r.metric,
                            'model_version': a.series.split('/')[0], 'variant': a.series.split('/')[1]},
             'exp_annotations': {'summary': f'{r.name}: {r.metric} {r.condition}',
                                 'description': r.description or METRICS[r.metric][1]}}
            for a in fired if a.rule == r.name
        ]  # fmt: skip
        tests.append({'eval_time': '2m', 'alertname': _alert_name(r.name), 'exp_alerts': exp})
    (tmp_path / 'rules.yml').write_text(yaml.safe_dump(prometheus_rules(mp), sort_keys=False))
    unit = {'rule_files': ['rules.yml'], 'evaluation_interval': '1m',
            'tests': [{'interval': '1m', 'input_series': series, 'alert_rule_test': tests}]}  # fmt: skip
    (tmp_path / 'test.yml').write_text(yaml.safe_dump(unit, sort_keys=False))
    r = subprocess.run([promtool, 'test', 'rules', 'test.yml'], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


@pytest.mark.slow
def test_the_monitoring_report_executes_into_the_site(workspace, monkeypatch):
    from lifecycle.app.cli import app

    ws = Workspace.open(workspace)
    rng = np.random.default_rng(3)
    t0 = time.time() - 1000
    two_windows(ws, rng, t0)
    set_yaml(workspace / 'params' / 'monitor.yaml', window={'rows': 200, 'seconds': None})
    run = run_once(ws, load_monitor_params(ws.params_dir), baselines={'1': baseline(rng)}, now=t0 + 400)
    assert run.windows == 2 and run.alerts
    set_yaml(workspace / 'params' / 'monitor.yaml', window={'rows': 500, 'seconds': None})  # (after the look)
    monkeypatch.chdir(workspace)
    r = invoke(app, ['monitor', 'report', '--json'])
    assert r.exit_code == 0, r.output
    html = Path(json.loads(r.stdout)['html'])
    assert html.is_file() and 'Monitoring report' in html.read_text()
    assert html.with_suffix('.ipynb').is_file()
    text = html.read_text()
    # the window the tables were measured with, not the one monitor.yaml names now
    assert 'window: 200 rows (monitor.yaml now says 500 rows: the next look measures with that)' in text
    iso = re.compile(r'>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ<')  # a series' last window end, alert times: ISO UTC
    assert len(iso.findall(text)) >= 1 + len(run.alerts) and not re.search(r'>1\.\d+e\+09<', text)


def test_another_models_rows_in_the_log_are_not_this_models_windows(workspace):
    """A workspace serves one dataset's model at a time, and its log keeps every model's rows, whose version numbers
    overlap: the monitor reads the rows of the model its params register (and rows from before the log named models)."""
    from lifecycle.operate.monitor import WindowClock

    set_yaml(workspace / 'params' / 'monitor.yaml', window={'rows': 200, 'seconds': None})
    ws = Workspace.open(workspace)
    mp = load_monitor_params(ws.params_dir)
    name = ws.params['register'].model_name
    rng = np.random.default_rng(7)
    t0 = time.time() - 3000
    log = PredictionLog(default_url(ws))
    replay(log, rng, t0, 0, 200, model=name)  # one window as trained, this model's
    replay(log, rng, t0, 200, 200)  # one more, logged before rows named their model
    replay(log, rng, t0, 400, 600, shift=15, flip=True, model='customers')  # another model's v1: far off
    summary = {'rows': 5000, 'output': 'scored.csv', 'input_sha256': '0' * 64}  # `lifecycle score`'s row: no answer
    log.log(
        request_id='b' * 32, ts=t0 + 900, route='batch', variant='batch', model_version='1', model=name,
        shadow=False, inputs=None, output=summary, threshold=0.5, latency_ms=9.0, status=200,
    )  # fmt: skip
    run = run_once(ws, mp, baselines={'1': baseline(rng)}, now=t0 + 1000)
    assert run.windows == 2 and run.alerts == [], run.alerts
    assert WindowClock(default_url(ws), mp.window, model=name).position() == {('1', 'control'): 2}
    assert WindowClock(default_url(ws), mp.window).position() == {('1', 'control'): 5}  # (all of them)
    log.close()


def test_two_models_looked_at_in_turn_keep_each_others_windows_drift_open_alerts_and_gauges(workspace):
    """Review: a workspace may serve several models, each looked at with its own params, and a look rewrote the
    windows, the drift, which alerts are open and the Prometheus gauges with its own model's alone: a clean look at
    one model's v1 closed the other's alerts on its v1, and its status showed no windows."""
    import shutil

    from lifecycle.operate.monitor import alert_log, open_alerts, status

    set_yaml(workspace / 'params' / 'monitor.yaml', window={'rows': 200, 'seconds': None})
    shutil.copytree(workspace / 'params', workspace / 'params-b')
    set_yaml(workspace / 'params-b' / 'register.yaml', model_name='customers')
    a, b = (Workspace.open(workspace, params_dir=workspace / d) for d in ('params', 'params-b'))
    name, mp = a.params['register'].model_name, load_monitor_params(a.params_dir)
    rng = np.random.default_rng(5)
    t0 = time.time() - 3000
    log = PredictionLog(default_url(a))
    replay(log, rng, t0, 0, 200, model=name)
    replay(log, rng, t0, 200, 200, shift=15, flip=True, model=name)  # this model's v1 drifts in its second window
    replay(log, rng, t0, 400, 400, model='customers')  # the other's v1, as trained
    log.close()
    base = {'1': baseline(rng)}
    assert 'input_drift' in [x['rule'] for x in run_once(a, mp, baselines=base, now=t0 + 1000, sample=False).alerts]
    assert run_once(b, mp, baselines=base, now=t0 + 1001, sample=False).alerts == []

    assert 'input_drift' in [x['rule'] for x in open_alerts(a.state_dir, alert_log(a.state_dir, model=name))]
    assert [s['window'] for s in status(a, mp)['series']] == [1] == [s['window'] for s in status(b, mp)['series']]
    assert status(a, mp)['last_run']['ts'] == t0 + 1000 and status(b, mp)['last_run']['ts'] == t0 + 1001
    from lifecycle.operate.monitor import health  # (the site's: each model's section from its own, whichever params)

    verdicts = {n: [x.verdict for x in health(a, mp, t0 + 1002, model=n).of_version('1')] for n in (name, 'customers')}
    assert verdicts == {name: ['alerting'], 'customers': ['ok']}, verdicts
    out = a.state_dir / 'monitor'
    assert set(pd.read_parquet(out / 'drift.parquet')['model']) == {name, 'customers'}
    gauges = [x for x in (out / 'metrics.prom').read_text().splitlines() if x.startswith('lifecycle_monitor_metric{')]
    assert {x.split('model="')[1].split('"')[0] for x in gauges} == {name, 'customers'}
    assert run_once(a, mp, baselines=base, now=t0 + 1002, sample=False).new_windows == 0  # its own, kept as they were
    assert len(status(b, mp)['series']) == 1


def test_open_alerts_kept_before_they_named_their_model_stay_open_and_become_the_next_looks_models(workspace):
    "A workspace's `breaching.json` from before its pairs named their model: the one model's then."
    from lifecycle.operate.monitor import open_alerts

    ws = Workspace.open(workspace)
    name, mp = ws.params['register'].model_name, load_monitor_params(ws.params_dir)
    out = ws.state_dir / 'monitor'
    out.mkdir(parents=True)
    (out / 'breaching.json').write_text(json.dumps(['input_drift|1/control']))
    was = dict(id='x', rule='input_drift', series='1/control', severity='high', ts=1.0)
    (out / 'alerts.jsonl').write_text(json.dumps(was | {'model': name}) + '\n' + json.dumps(was | {'id': 'y'}) + '\n')
    assert [x['id'] for x in open_alerts(ws.state_dir)] == ['y', 'x']  # (newest first; one named its model)
    run_once(ws, mp, baselines={}, now=time.time(), sample=False)  # no window can judge it: the verdict stands
    assert json.loads((out / 'breaching.json').read_text()) == [f'{name}|input_drift|1/control']
    assert [x['id'] for x in open_alerts(ws.state_dir)] == ['y', 'x']
    assert open_alerts(ws.state_dir, [was | {'model': 'other'}]) == []  # another model's v1 holds nothing
    (out / 'breaching.json').write_text(json.dumps(['input_drift|1/control']))  # (kept before, as a look at
    (out / 'alerts.jsonl').write_text(json.dumps(was | {'model': 'customers'}) + '\n')  # customers left it: review V)
    run_once(ws, mp, baselines={}, now=time.time(), sample=False)  # (a look at this model: not its pair)
    assert json.loads((out / 'breaching.json').read_text()) == ['customers|input_drift|1/control']
    assert [x['id'] for x in open_alerts(ws.state_dir)] == ['x']


def test_flipped_labels_on_stable_inputs_are_concept_drift(workspace):
    rule = dict(name='concept', metric='concept_drift', condition='> 0.1', min_sample=100, severity='high')
    set_yaml(workspace / 'params' / 'monitor.yaml', window={'rows': 200, 'seconds': None}, rules=[rule])
    ws = Workspace.open(workspace)
    rng = np.random.default_rng(11)
    base = {'1': baseline(rng)}
    t0 = time.time() - 1000
    log = PredictionLog(default_url(ws))
    replay(log, rng, t0, 0, 200)
    replay(log, rng, t0, 200, 200, flip=True)  # inputs as trained, labels flipped
    log.close()
    run = run_once(ws, load_monitor_params(ws.params_dir), baselines=base, now=t0 + 400)
    assert [(a['rule'], a['window'], a['severity']) for a in run.alerts] == [('concept', 1, 'high')]
    assert run.alerts[0]['value'] > 0.3


def test_rules_go_to_the_workspaces_monitoring_folder_from_a_subfolder_too(workspace, monkeypatch):
    from lifecycle.operate.commands import monitor_rules

    (workspace / 'sub' / 'deeper').mkdir(parents=True)
    monkeypatch.chdir(workspace / 'sub' / 'deeper')
    r = invoke(monitor_rules, ['--json'])
    assert r.exit_code == 0, r.output
    assert (workspace / 'monitoring' / 'rules.yml').is_file() and not (
        workspace / 'sub' / 'deeper' / 'monitoring'
    ).exists()


def test_rules_written_over_a_file_are_refused_naming_it(workspace, monkeypatch):
    from lifecycle.operate.commands import monitor_rules

    monkeypatch.chdir(workspace)
    (workspace / 'monitoring').write_text('not a folder')
    r = invoke(monitor_rules, ['--out', 'monitoring', '--json'])
    assert r.exit_code == EXIT_INPUT and 'Traceback' not in r.output
    assert 'expected a folder' in json.loads(r.stdout)['error']


def _log_variant(ws, variant: str, rows: int, start: float) -> None:
    "Log `rows` answers of version 1 served as `variant` (a flagd file written by hand names its variants as it likes)."
    log = PredictionLog(default_url(ws))
    for i in range(rows):
        log.log(request_id=f'r{i}', ts=start + i, route='predict', targeting_key=None, variant=variant,
                model_version='1', model=None, inputs={'age': [30.0], 'employed': ['Yes']}, output=[0.3],
                decision=[0], threshold=0.5, latency_ms=2.0, status=200)  # fmt: skip
    assert log.flush()
    log.close()


def test_a_variant_with_quotes_backslashes_and_a_newline_is_escaped_in_metrics_prom(workspace):
    """A flagd file written by hand may name its variants as it likes, and the log keeps them as served: metrics.prom
    wrote the version and variant labels unescaped (the model's only was), so a `"` or a newline made node_exporter's
    textfile collector refuse the whole file. Each label reads back as the log holds it."""
    from prometheus_client.parser import text_string_to_metric_families

    set_yaml(workspace / 'params' / 'monitor.yaml', window={'rows': 200, 'seconds': None})
    ws = Workspace.open(workspace)
    odd = 'x"y\\z [/b]\nnl'
    _log_variant(ws, odd, 200, time.time() - 1000)
    run_once(ws, load_monitor_params(ws.params_dir), baselines={}, sample=False)
    text = (ws.state_dir / 'monitor' / 'metrics.prom').read_text()
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    gauges = [s for s in samples if s.name == 'lifecycle_monitor_metric']
    assert gauges and {(s.labels['model_version'], s.labels['variant']) for s in gauges} == {('1', odd)}


def test_a_version_its_arm_no_longer_names_closes_its_alerts_and_leaves_prometheus(workspace):
    """Review: a rolled-back or replaced version's last windows stay the last ones measured, so its alerts stayed open
    and its gauges in metrics.prom fired in Prometheus for good. The kill switch retires no one."""
    from lifecycle.core.params import FlagsParams
    from lifecycle.operate.monitor import open_alerts
    from lifecycle.serve import flags as fl

    set_yaml(workspace / 'params' / 'monitor.yaml', window={'rows': 200, 'seconds': None})
    ws = Workspace.open(workspace)
    name, mp = ws.params['register'].model_name, load_monitor_params(workspace / 'params')
    fl._write(ws, FlagsParams(control='1', safe='1'), name)
    rng = np.random.default_rng(3)
    t0 = time.time() - 1000
    two_windows(ws, rng, t0)
    base = {'1': baseline(rng)}
    prom = ws.state_dir / 'monitor' / 'metrics.prom'

    def v1_open(now):
        run_once(ws, mp, baselines=base, now=now, sample=False)
        return [a['rule'] for a in open_alerts(ws.state_dir) if a['series'] == '1/control']

    assert 'input_drift' in v1_open(t0 + 400) and 'model_version="1"' in prom.read_text()
    on_file = json.loads(fl.spec_path(ws).read_text())  # edited by hand: the server refuses it and serves v1 on
    fl.spec_path(ws).write_text(json.dumps(on_file | {'control': '2', 'safe': '2'}))
    assert 'input_drift' in v1_open(t0 + 400.5) and 'model_version="1"' in prom.read_text()
    fl._write(ws, FlagsParams(control='1', safe='1', kill=True), name)  # killed: v1 is still the control
    assert 'input_drift' in v1_open(t0 + 401) and 'model_version="1"' in prom.read_text()
    fl._write(ws, FlagsParams(control='2', safe='2'), name)  # v1 replaced (a rollback or a promotion alike)
    assert v1_open(t0 + 402) == [] and 'model_version="1"' not in prom.read_text()
    log = PredictionLog(default_url(ws))  # a window of v1's that closes after it was replaced: not raised either
    replay(log, rng, t0, 400, 200, shift=15, flip=True)
    log.close()
    late = run_once(ws, mp, baselines=base, now=t0 + 5000, sample=False).alerts  # (past the rules' cooldowns)
    assert [a for a in late if a['series'] == '1/control'] == []
    fl._write(ws, FlagsParams(control='1', safe='1'), name)  # back in its arm: its last verdict stands again
    assert 'input_drift' in v1_open(t0 + 5003)


def test_input_columns_named_like_the_logs_own_are_monitored_not_a_crash(workspace):
    "Features called score, label, decision, ts, variant: the monitor keeps them apart from its own columns."
    set_yaml(workspace / 'params' / 'monitor.yaml', window={'rows': 200, 'seconds': None})
    ws = Workspace.open(workspace)
    rng = np.random.default_rng(5)
    clash = ['score', 'label', 'decision', 'ts', 'variant', 'model_version', 'status', 'first']
    n = 3000
    train = pd.DataFrame({c: rng.normal(50, 10, n).round(1) for c in clash})
    s = rng.uniform(size=n)
    base = {'1': Baseline.from_holdout(drift.profile(train), s, (rng.uniform(size=n) < s).astype(int))}
    t0 = time.time() - 1000
    log = PredictionLog(default_url(ws))
    for i in range(400):
        shift = 30 if i >= 200 else 0  # the second window's input `score` moves; the model's scores do not
        p = float(rng.uniform())
        row = {c: [round(float(rng.normal(50 + (shift if c == 'score' else 0), 10)), 1)] for c in clash}
        log.log(
            request_id=f'r{i}', ts=t0 + i, route='predict', targeting_key=None, variant='control', model_version='1',
            inputs=row, output=[p], decision=[int(p >= 0.5)], threshold=0.5, latency_ms=2.0, status=200,
        )  # fmt: skip
    assert log.flush()
    log.close()
    run = run_once(ws, load_monitor_params(ws.params_dir), baselines=base, sample=False)
    assert run.windows == 2
    m = pd.read_parquet(ws.state_dir / 'monitor' / 'windows.parquet').set_index('window')
    assert m.loc[0, 'drift_psi_max'] < 0.1 and m.loc[1, 'drift_psi_max'] > 1  # the input `score` drifted ...
    assert m.loc[1, 'score_psi'] < 0.1 and m['variant'].eq('control').all()  # ... the served scores did not
    heat = pd.read_parquet(ws.state_dir / 'monitor' / 'drift.parquet')
    assert set(heat['column']) == set(clash)
    moved = heat[(heat['window'] == 1) & heat['drifted']]
    assert moved['column'].tolist() == ['score']
    assert [(a['rule'], a['window']) for a in run.alerts] == [('input_drift', 1)]


def test_the_servers_and_the_guards_alerts_go_through_the_rules_and_sinks(workspace, webhook, smtp):
    "Read from the audit log at the next look: routed by the rules' severities, delivered once, then closed."
    from types import SimpleNamespace
    from lifecycle.operate.monitor import health, open_alerts
    from lifecycle.serve.metrics import Metrics
    from lifecycle.serve.server import Server

    controller, mail = smtp
    configure(workspace, webhook, controller.port)
    ws = Workspace.open(workspace)
    server = SimpleNamespace(metrics=Metrics(), s=ws)
    Server.alert(server, 'flags_tampered', 'flags.json: the signature does not verify')  # the server's own alert()
    Server.alert(server, 'roles_refused', 'settings.ini: unknown role; the last good roles stay in force')
    Server.alert(server, 'roles_refused', 'settings.ini: unknown role; the last good roles stay in force')
    ws.audit('alert', 'rollout.regression', 'challenger worse', actor='guard', rollout_id='r1')  # as the guard does
    mp = load_monitor_params(ws.params_dir)
    run = run_once(ws, mp, baselines={}, sample=False)
    got = {(a['rule'], a['series'], a['severity'], a['value']) for a in run.alerts}
    assert got == {
        ('flags_tampered', 'server/flags_tampered', 'critical', 1),
        ('server_alert', 'server/roles_refused', 'high', 2),
        ('rollout_rolled_back', 'guard/rollout.regression', 'high', 1),
    }
    assert sorted(a['rule'] for a in webhook.got) == ['flags_tampered', 'rollout_rolled_back', 'server_alert']
    deadline = time.time() + 5
    while len(mail.got) < 3 and time.time() < deadline:
        time.sleep(0.05)
    assert sorted(m['Subject'] for m in mail.got) == [
        '[lifecycle critical] flags_tampered on server/flags_tampered',
        '[lifecycle high] rollout_rolled_back on guard/rollout.regression',
        '[lifecycle high] server_alert on server/roles_refused',
    ]
    assert all('signature' not in json.dumps(a) for a in webhook.got)  # counts and kinds, not the messages
    assert len(open_alerts(ws.state_dir)) == 3
    assert {(o.model_version, o.variant, o.verdict) for o in health(ws, mp).others} == {
        ('server', 'flags_tampered', 'alerting'),
        ('server', 'roles_refused', 'alerting'),
        ('guard', 'rollout.regression', 'alerting'),
    } and health(ws, mp).series == []  # not taken for model versions
    again = run_once(ws, mp, baselines={}, sample=False)  # nothing new in the audit log: nothing again, all closed
    assert again.alerts == [] and len(webhook.got) == 3 and open_alerts(ws.state_dir) == []
    Server.alert(server, 'flags_tampered', 'flags.json: the signature does not verify')
    assert [a['rule'] for a in run_once(ws, mp, baselines={}, sample=False).alerts] == ['flags_tampered']


def _serve_rows(http, rows, inputs: list[str], prefix: str) -> list[str]:
    "POST each row alone to the running server's /predict; the request ids, in order."
    ids = []
    for i, rec in enumerate(rows[inputs].to_dict('records')):
        r = http.post('/predict', json={'records': [rec], 'context': {'targetingKey': f'{prefix}-{i}'}})
        assert r.status_code == 200, r.text
        ids.append(r.json()['request_id'])
    return ids


def _give_feedback(http, ids: list[str], outcomes: list, flip: bool = False) -> None:
    "POST the true outcomes of `ids` (the opposite one if `flip`) to /feedback."
    for rid, y in zip(ids, outcomes):
        r = http.post('/feedback', json={'request_id': rid, 'outcome': ({'Yes': 'No', 'No': 'Yes'}[y] if flip else y)})
        assert r.status_code == 200, r.text


def _logged(ws: Workspace, n: int, timeout: float = 30) -> None:
    "Wait until the server's prediction log holds `n` rows (it writes in the background)."
    from lifecycle.serve.predlog import read_log

    end = time.monotonic() + timeout
    while len(read_log(default_url(ws))) < n:
        assert time.monotonic() < end, f'the prediction log did not reach {n} rows within {timeout} s'
        time.sleep(0.1)


@pytest.mark.slow
def test_replaying_the_later_years_through_a_running_server_raises_each_alert_to_its_sinks(
    trained, webhook, smtp, monkeypatch
):
    """The default dataset's years after the training cut, through `lifecycle serve`, with feedback one window late:
    as they are, nothing fires; with age shifted by 20 years, the high drift alert fires within two windows; with
    labels flipped, the critical performance alert and the concept drift one; then two quiet hours, the silence
    alert. Each sink (webhook and SMTP on 127.0.0.1, ticket file) receives exactly the alerts routed to it, and every
    one is in the audit log."""
    import httpx

    from conftest import cli, clean_env
    from lifecycle.core.audit import read
    from lifecycle.deliver.simulate import later_rows
    from lifecycle.serve.local import LocalServer

    assert cli(trained, 'flags', 'init').returncode == 0
    controller, mail = smtp
    rules = yaml.safe_load((trained / 'params' / 'monitor.yaml').read_text())['rules']
    concept = dict(name='concept', metric='target_correlation_shift', condition='> 0.35', min_sample=150)
    configure(trained, webhook, controller.port, rules=[*rules, dict(concept, cooldown_s=3600, severity='medium')])
    ws = Workspace.open(trained)
    mp = load_monitor_params(ws.params_dir)
    rows = later_rows(ws).sample(frac=1, random_state=0).reset_index(drop=True)
    inputs, target = [f.name for f in ws.params['features'].features], ws.params['features'].target
    assert len(rows) >= 1200
    phases = [  # two windows (rows: 200) each: as they are, inputs shifted, labels flipped
        ('stable', rows.iloc[0:400], False),
        ('shifted', rows.iloc[400:800].assign(age=rows['age'].iloc[400:800] + 20), False),
        ('flipped', rows.iloc[800:1200], True),
    ]
    alerts, late, sent = [], None, 0
    with (
        LocalServer(trained, env=clean_env(), log=subprocess.DEVNULL) as srv,
        httpx.Client(base_url=srv.url, timeout=10) as http,
    ):
        for name, part, flip in phases:
            for half in (part.iloc[:200], part.iloc[200:]):  # one window at a time
                ids = _serve_rows(http, half, inputs, name)
                if late:  # the previous window's outcomes arrive now, one window late
                    _give_feedback(http, *late)
                late = (ids, half[target].tolist(), flip)
                sent += len(ids)
                _logged(ws, sent)
                run = run_once(ws, mp, sample=False)  # a look after each window closes
                alerts += [dict(a, phase=name) for a in run.alerts]
        _give_feedback(http, *late)
        alerts += [dict(a, phase='flipped') for a in run_once(ws, mp, sample=False).alerts]
    print([(a['phase'], a['rule'], a['severity'], a['window']) for a in alerts])  # shown when an assert fails
    by_phase = {p: {(a['rule'], a['severity']) for a in alerts if a['phase'] == p} for p, _, _ in phases}
    assert by_phase['stable'] == set()  # the later years as they are: no alert
    drift_alert = [a for a in alerts if a['rule'] == 'input_drift']
    assert drift_alert and drift_alert[0]['severity'] == 'high' and drift_alert[0]['phase'] == 'shifted'
    assert drift_alert[0]['window'] in (2, 3) and drift_alert[0]['series'] == '1/control'
    flipped = [a for a in alerts if a['rule'] == 'accuracy_drop']
    assert [(a['severity'], a['window'], a['phase']) for a in flipped][:1] == [('critical', 4, 'flipped')]
    assert not {a['rule'] for a in alerts if a['window'] in (0, 1)}
    # concept drift: the shifted ages keep their relationship with the outcome, the flipped labels do not
    assert [(a['severity'], a['phase']) for a in alerts if a['rule'] == 'concept'] == [('medium', 'flipped')]
    # two quiet hours: the silence alert, and nothing else
    quiet = run_once(ws, mp, now=time.time() + 7200, sample=False)
    assert [(a['rule'], a['severity'], a['series']) for a in quiet.alerts] == [('no_traffic', 'high', '1/control')]
    alerts += quiet.alerts
    # each sink has exactly the alerts routed to it
    paging = sorted(a['id'] for a in alerts if a['severity'] in ('high', 'critical'))
    tickets = sorted(a['id'] for a in alerts if a['severity'] in ('low', 'medium'))
    assert sorted(a['id'] for a in webhook.got) == paging
    deadline = time.time() + 5
    while len(mail.got) < len(paging) and time.time() < deadline:
        time.sleep(0.05)
    assert sorted(m['Subject'] for m in mail.got) == sorted(
        f"[lifecycle {a['severity']}] {a['rule']} on {a['model'] + ' ' if a.get('model') else ''}{a['series']}"
        for a in alerts
        if a['id'] in paging
    )
    assert sorted(t['id'] for t in read_jsonl(ws.state_dir / 'monitor' / 'tickets.jsonl')) == tickets
    audited = [e['details']['evidence']['id'] for e in read(ws.audit_path) if e['action'] == 'monitor.alert']
    assert sorted(audited) == sorted(a['id'] for a in alerts)
    # investigation: the flipped window explained against the holdout, with scikit-learn's numbers
    monkeypatch.chdir(trained)
    _explained_as_sklearn_says(ws, window=4)


def _explained_as_sklearn_says(ws: Workspace, window: int) -> None:
    "`monitor explain` on a window: the holdout's permutation importance and the contributions are scikit-learn's."
    from sklearn.inspection import permutation_importance

    from lifecycle.model.signing import verified_sklearn
    from lifecycle.model.train import xy
    from lifecycle.operate.commands import monitor_explain
    from lifecycle.operate.explain import window_rows
    from lifecycle.operate.windows import inputs

    r = invoke(monitor_explain, ['--version', '1', '--window', str(window), '--repeats', '3', '--json'])
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)
    assert got['records'] == 200 and got['labelled'] == 200 and got['scoring'] == 'roc_auc'
    fp, rp = ws.params['features'], ws.params['register']
    model = verified_sklearn(ws.mlflow, ws.store, rp.model_name, '1', ws.key_dir)
    val = ws.store.get_record('validations', ws.client.get_model_version(rp.model_name, '1').tags['validation_id'])
    cols = list(model.feature_names_in_)
    sk = permutation_importance(
        model, *xy(ws.store.get_frame(val['holdout_id']), cols, fp), scoring='roc_auc', n_repeats=3, random_state=0
    )
    imp = {i['feature']: i for i in got['importance']}
    assert list(imp) == cols and np.allclose([imp[c]['reference'] for c in cols], sk.importances_mean)
    x = inputs(window_rows(ws, '1', 'control', window))[cols]
    z = model[:-1].transform(x) * model[-1].coef_[0]  # coefficient x transformed value, per transformed column
    groups = model.steps[-2][1].output_indices_  # the ColumnTransformer: input feature -> its columns
    mean_abs = {c: float(np.abs(z[:, groups[c]].sum(axis=1)).mean()) for c in cols}
    assert {c['feature']: round(c['mean_abs'], 9) for c in got['contributions']} == {
        c: round(v, 9) for c, v in mean_abs.items()
    }
    r = invoke(monitor_explain, ['--version', '1', '--window', '99', '--json'])
    err = json.loads(r.stdout)['error']
    assert r.exit_code == EXIT_INPUT and 'no window 99' in err and 'found windows 0-' in err and 'np.' not in err
    r = invoke(monitor_explain, ['--version', '1', '--variant', 'challengr', '--window', '1', '--json'])
    assert r.exit_code == EXIT_INPUT and "it holds version 1 variant 'control'" in json.loads(r.stdout)['error']


def test_monitor_run_every_wakes_when_a_window_closes(workspace, monkeypatch):
    "With --every 120, the look after a window closes comes within seconds, not two minutes later."
    set_yaml(workspace / 'params' / 'monitor.yaml', window={'rows': 100, 'seconds': None})
    ws = Workspace.open(workspace)
    monkeypatch.chdir(workspace)
    rng, t0 = np.random.default_rng(2), time.time() - 500
    log = PredictionLog(default_url(ws))
    replay(log, rng, t0, 0, 50)  # half a window: the first look finds none closed
    looked = ws.state_dir / 'monitor' / 'state.json'

    def second_half():
        end = time.monotonic() + 60
        while not looked.is_file() and time.monotonic() < end:  # after the first look
            time.sleep(0.05)
        time.sleep(0.5)
        replay(log, rng, t0, 50, 50)

    writer = threading.Thread(target=second_half)
    writer.start()
    start = time.monotonic()
    r = invoke(monitor_run, ['--every', '120', '--times', '2', '--json'])
    took = time.monotonic() - start
    writer.join()
    log.close()
    assert r.exit_code == 0, r.output
    looks = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x['windows'] for x in looks] == [0, 1] and all(x['ok'] is True for x in looks)
    assert took < 60  # woken by the closed window, not by --every 120


def test_rows_the_logs_database_refused_raise_a_high_alert_once_with_counts_not_values(workspace, webhook, smtp):
    "Rows the log's writer set aside are missing from every window: the next look says how many, to the sinks."
    import sqlite3
    from lifecycle.operate.monitor import health, open_alerts

    controller, _ = smtp
    configure(workspace, webhook, controller.port)
    ws = Workspace.open(workspace)
    mp, url = load_monitor_params(ws.params_dir), default_url(ws)
    row = dict(ts=time.time(), route='predict', variant='control', model_version='1', inputs={'age': [30]}, status=200)
    log = PredictionLog(url, process=True, probe_s=0.1)  # durable: journaled by its writer process
    try:
        log.log(**dict(row, request_id='ok0')).wait(10)
        assert log.flush(30)
        assert run_once(ws, mp, baselines={}, sample=False).alerts == []  # nothing set aside
        with sqlite3.connect(url[len('sqlite:///') :]) as c:  # the table's owner adds a rule against some rows
            c.execute(
                "CREATE TRIGGER no_secret BEFORE INSERT ON predictions WHEN NEW.inputs LIKE '%4242%' "
                "BEGIN SELECT RAISE(ABORT, 'no such ages'); END"
            )
        for rid, age in [('s1', 4242), ('ok1', 31), ('s2', 4242)]:
            log.log(**dict(row, request_id=rid, inputs={'age': [age]})).wait(10)
        assert log.flush(30) and log.errors == 2
    finally:
        log.close()
    (got,) = run_once(ws, mp, baselines={}, sample=False).alerts
    assert (got['rule'], got['series'], got['severity'], got['value']) == ('rows_set_aside', 'log/set_aside', 'high', 2)
    assert [a['rule'] for a in webhook.got] == ['rows_set_aside']
    told = [{k: v for k, v in a.items() if k not in ('id', 'ts')} for a in [*webhook.got, got]]  # (digits of their own)
    assert told and '4242' not in json.dumps(told)  # a count, never a row's value
    assert [(o.model_version, o.variant, o.verdict) for o in health(ws, mp).others] == [
        ('log', 'set_aside', 'alerting')
    ] and health(ws, mp).series == []  # not taken for a model version
    assert run_once(ws, mp, baselines={}, sample=False).alerts == [] and open_alerts(ws.state_dir) == []  # told once


def test_a_set_aside_file_the_monitor_cannot_read_raises_a_high_alert_and_its_rows_are_counted_once_it_can(
    workspace, webhook, smtp, monkeypatch
):
    "Rows set aside that the monitor cannot count (the file not readable to it) are not silence: a rule says so."
    from lifecycle.app.status import set_aside_rows
    from lifecycle.operate.monitor import health
    from lifecycle.serve.predlog import journal_dir
    from lifecycle.serve.writer import set_aside_path

    controller, _ = smtp
    configure(workspace, webhook, controller.port)
    ws = Workspace.open(workspace)
    mp = load_monitor_params(ws.params_dir)
    path = set_aside_path(journal_dir(default_url(ws)))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b'{"set_aside_at": 1, "why": "refused", "request_id": "a"}\n')
    (got,) = run_once(ws, mp, baselines={}, sample=False).alerts
    assert (got['rule'], got['value']) == ('rows_set_aside', 1)

    opened = Path.open

    def denied(self, *a, **k):  # (as the server's user's private file is to another user; root reads any file)
        if self == path or Path(self).absolute() == path.absolute():
            raise PermissionError(13, 'Permission denied', str(self))
        return opened(self, *a, **k)

    monkeypatch.setattr(Path, 'open', denied)
    with opened(path, "ab") as f:  # a row set aside meanwhile
        f.write(b'{"set_aside_at": 2, "why": "refused", "request_id": "b"}\n')
    (got,) = run_once(ws, mp, baselines={}, sample=False).alerts
    assert (got['rule'], got['series'], got['severity'], got['value']) == (
        'set_aside_unreadable',
        'log/set_aside',
        'high',
        1,
    )
    assert [a['rule'] for a in webhook.got][-1] == 'set_aside_unreadable'
    assert set_aside_rows(ws)['error'] == 'Permission denied'  # status says why
    assert ('log', 'set_aside', 'alerting') in [(o.model_version, o.variant, o.verdict) for o in health(ws, mp).others]
    assert run_once(ws, mp, baselines={}, sample=False).alerts == []  # told once an hour, not each look
    monkeypatch.setattr(Path, 'open', opened)
    (got,) = run_once(ws, mp, baselines={}, sample=False).alerts  # readable again: the row set aside meanwhile
    assert (got['rule'], got['value']) == ('rows_set_aside', 1)
    assert run_once(ws, mp, baselines={}, sample=False).alerts == []


@pytest.mark.parametrize(
    'file, bad, says',
    [
        ('monitor/state.json', b'{"windows_seen": [', 'expected an object of state, found damaged JSON'),
        ('monitor/breaching.json', b'{"a": 1}', 'expected a list of state, found a JSON dict'),
        ('monitor/outbox/tickets.json', b'', 'expected a list of state, found an empty file'),
        ('monitor/alerts.jsonl', b'{"rule": "x", "series": "s", "severity": "high"}\n[1]\n', 'line 2 is not an entry'),
        ('monitor/alerts.jsonl', b'{"x": 1}\n', "line 1 is not an entry of this log (no 'rule', 'series', 'severity')"),
        ('monitor/windows.parquet', b'PAR1 not a table', 'not a readable table of windows (ArrowInvalid); remove it'),
    ],
    ids=[
        'state-torn',
        'breaching-wrong-shape',
        'outbox-emptied',
        'alerts-line-not-an-entry',
        'alerts-line-of-another-shape',
        'windows-damaged',
    ],
)
def test_a_damaged_monitor_file_is_named_with_exit_4_and_strict_json_never_a_traceback(workspace, file, bad, says):
    from conftest import cli_json

    ws = Workspace.open(workspace)
    assert run_once(ws, load_monitor_params(ws.params_dir), baselines={}, sample=False).windows == 0
    p = ws.state_dir / file
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(bad)
    r, out = cli_json(workspace, 'monitor', 'status')
    assert r.returncode == 4 and out['ok'] is False and 'Traceback' not in r.stderr, r.stderr
    assert out['error'].startswith(str(p)) and says in out['error'], out['error']


@pytest.mark.parametrize('file', ['monitor/metrics.prom', 'heartbeats/monitor.json'])
def test_a_folder_where_the_monitor_writes_a_file_is_named(workspace, file):
    """A folder in place of a file a look writes failed the look with "[Errno 21] Is a directory:
    '.../.metrics.prom.x1y2.tmp' -> '.../metrics.prom'", naming a temporary file; it is now named, with the fix, as a
    file that could not be written (exit 1)."""
    from conftest import cli_json

    ws = Workspace.open(workspace)
    (ws.state_dir / file).mkdir(parents=True)
    r, out = cli_json(workspace, 'monitor', 'run')
    assert r.returncode == 1 and out['ok'] is False and 'Traceback' not in r.stderr, r.stderr
    assert out['error'] == f"{ws.state_dir / file}: expected a file to write, found a folder; move it aside"


def test_a_damaged_heartbeat_is_a_watcher_that_never_beat(workspace):
    from lifecycle.operate.monitor import status

    ws = Workspace.open(workspace)
    beat(ws.state_dir, 'monitor')
    (ws.state_dir / 'heartbeats' / 'monitor.json').write_text('[1, 2, 3]')
    assert status(ws)['watchers']['monitor'] == {'age_s': None, 'alive': False}


def _flip_feedback(log: PredictionLog, ids: list[str]) -> None:
    "Correct the recorded outcome of `ids` in the log's database (an operator's fix: as many labels, other values)."
    t = log.feedback_table
    with log.engine.begin() as c:
        for rid, outcome in c.execute(t.select().with_only_columns(t.c.request_id, t.c.outcome)).all():
            if rid in ids:
                flipped = json.dumps('No' if json.loads(outcome) == 'Yes' else 'Yes')
                c.execute(t.update().where(t.c.request_id == rid).values(outcome=flipped))


def _measuring(monkeypatch) -> list:
    "The records each look's `each_window_metrics` calls measure, as the monitor calls it."
    from lifecycle.operate import monitor

    measured, real = [], monitor.each_window_metrics
    monkeypatch.setattr(
        monitor, 'each_window_metrics', lambda rec, *a, **k: measured.append(len(rec)) or real(rec, *a, **k)
    )
    return measured


def _found(ws: Workspace) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    out = ws.state_dir / 'monitor'
    return pd.read_parquet(out / 'windows.parquet'), (
        pd.read_parquet(out / 'drift.parquet') if (out / 'drift.parquet').exists() else None
    )


def _as_measured_afresh(ws: Workspace, look, afresh=None) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """What `look()` found (its windows and drift), checked against what `afresh()` (a look with no cache of its own;
    by default `look`) finds when nothing was kept."""
    look()
    kept = _found(ws)
    for name in ('measured.json', 'windows.parquet', 'drift.parquet'):  # (a look finding no drift writes none)
        (ws.state_dir / 'monitor' / name).unlink(missing_ok=True)
    (afresh or look)()
    for a, b in zip(kept, _found(ws)):
        pd.testing.assert_frame_equal(a, b)
    return kept


def _signed(ws: Workspace, body: bytes) -> bytes:
    import hashlib
    import hmac
    from lifecycle.data.pii import finding_salt

    mac = hmac.new(finding_salt(ws.digest_salt_path), b'measured\0' + body, hashlib.sha256).hexdigest().encode()
    return mac + b'\n' + body


@pytest.mark.slow  # (a fast-tier test of 11-19 s: its many looks or draws belong with the full suite)
def test_a_look_from_cron_measures_only_what_changed_since_the_last_and_finds_what_measuring_all_finds(
    workspace, monkeypatch
):
    """Each look keeps the windows it measured (`measured.json`, signed with the workspace's salt), so that a look in
    another process (cron) measures only the windows closed since, those whose labels changed and those of a version
    whose baseline is another; with other monitor params, or a damaged or unsigned file, it measures all. What it
    finds is what a look that measures every window finds."""
    from lifecycle.data.pii import finding_salt

    set_yaml(workspace / 'params' / 'monitor.yaml', window={'rows': 200, 'seconds': None})
    ws = Workspace.open(workspace)
    finding_salt(ws.digest_salt_path)  # (the server makes it as it starts; the monitor keeps nothing without it)
    mp = load_monitor_params(ws.params_dir)
    rng = np.random.default_rng(3)
    base = {'1': baseline(rng)}
    t0 = time.time() - 5000
    log = PredictionLog(default_url(ws))
    replay(log, rng, t0, 0, 400)
    measured = _measuring(monkeypatch)

    def look(now, b=base, params=mp) -> tuple[int, pd.DataFrame]:
        "Records measured by a look with no cache of its own, after checking it found what measuring every window does."
        measured.clear()
        run_once(ws, params, baselines=b, now=now, sample=False)
        n = sum(measured)
        windows, _ = _as_measured_afresh(ws, lambda: run_once(ws, params, baselines=b, now=now, sample=False))
        return n, windows

    assert look(t0 + 400)[0] == 400  # none kept: both windows
    replay(log, rng, t0, 400, 200)
    assert look(t0 + 600)[0] == 200  # the window closed since
    n, before = look(t0 + 600)
    assert n == 0
    _flip_feedback(log, [f'r{i}' for i in range(100)])  # half of window 0's labels corrected
    n, after = look(t0 + 600)
    assert n == 200 and after['accuracy'][0] < before['accuracy'][0] - 0.1 and after['labels'][0] == 200
    assert look(t0 + 600, b={'1': baseline(np.random.default_rng(4))})[0] == 600  # another baseline
    assert look(t0 + 600, params=mp.model_copy(update={'drift_share': 0.9}))[0] == 600  # other params
    assert look(t0 + 600)[0] == 600  # (and back)
    p = ws.state_dir / 'monitor' / 'measured.json'
    mac, _, body = p.read_bytes().partition(b'\n')
    kept = json.loads(body)
    kept['windows'][1]['row']['window'] = 0  # measurements of another window
    other = json.dumps(kept).encode()
    edited = json.loads(body)
    edited['windows'][0]['row']['requests'] += 1  # (well formed, not as signed)
    damaged = [mac + b'\n' + other, _signed(ws, other), body, b'[' * 200_000, _signed(ws, b'[' * 200_000), b'']
    damaged.append(mac + b'\n' + json.dumps(edited).encode())
    for data in damaged:
        p.write_bytes(data)
        assert look(t0 + 600)[0] == 600, data[:40]  # a cache: none, every window measured
    log.close()


def _request(log: PredictionLog, i: int, t0: float, inputs: dict, scores: list) -> None:
    log.log(
        request_id=f'q{i}', ts=t0 + i, route='predict', targeting_key=None, variant='control', model_version='1',
        inputs=inputs, output=scores, decision=[int(s >= 0.5) for s in scores], threshold=0.5, latency_ms=2.0,
        status=200,
    )  # fmt: skip


@pytest.mark.parametrize(
    'change', ['batch_labels_swapped', 'input_sent_later', 'labelled_window_left', 'params', 'time_windows']
)
def test_windows_kept_between_looks_are_those_measured_afresh_whatever_changed(workspace, monkeypatch, change):
    """A batch request's labels corrected in place; an input column first sent in a later window (the earlier windows
    are measured with it, null); the one labelled window leaving the lookback (its metrics' columns with it); a caller
    keeping its cache across looks with other params: each look finds what measuring every window finds."""
    from lifecycle.data.pii import finding_salt
    from lifecycle.operate.monitor import MeasuredWindows

    rows = 4 if change == 'batch_labels_swapped' else 50
    window = {'rows': None, 'seconds': 30} if change == 'time_windows' else {'rows': rows, 'seconds': None}
    set_yaml(workspace / 'params' / 'monitor.yaml', window=window, lookback_windows=2)
    ws = Workspace.open(workspace)
    finding_salt(ws.digest_salt_path)
    mp = load_monitor_params(ws.params_dir)
    base = {'1': baseline(np.random.default_rng(1))}
    rng, t0 = np.random.default_rng(2), time.time() - 1000
    log = PredictionLog(default_url(ws))
    cache = MeasuredWindows()

    def look(params=mp, kept=True, now=t0 + 500):
        return run_once(ws, params, baselines=base, now=now, sample=False, window_cache=cache if kept else None)

    def requests(start, n, **more):
        for i in range(start, start + n):
            _request(log, i, t0, {'age': [round(float(rng.normal(30, 8)), 1)], **more}, [float(rng.uniform())])
        assert log.flush()

    if change == 'batch_labels_swapped':
        for i in range(2):
            _request(log, i, t0, {'age': [30.0, 31.0], 'employed': ['Yes', 'No']}, [0.9, 0.1])
        assert log.flush()
        for i in range(2):
            add_feedback(log, f'q{i}', ['Yes', 'No'])
        look()
        with log.engine.begin() as c:
            c.execute(log.feedback_table.update().values(outcome=json.dumps(['No', 'Yes'])))
        cache = MeasuredWindows()  # (a look from cron)
        windows, _ = _as_measured_afresh(ws, look, lambda: look(kept=False))
        assert windows['accuracy'].tolist() == [0.0]
    elif change == 'input_sent_later':
        requests(0, 50)
        look()
        requests(50, 50, employed=['Yes'])
        windows, drift = _as_measured_afresh(ws, look, lambda: look(kept=False))
        assert set(drift[drift['window'] == 0]['column']) == {'age', 'employed'}
    elif change == 'labelled_window_left':
        requests(0, 100, employed=['Yes'])
        for i in range(50):
            add_feedback(log, f'q{i}', 'Yes')
        look()  # windows 0 (labelled) and 1, measured together
        requests(100, 50, employed=['Yes'])
        windows, _ = _as_measured_afresh(ws, look, lambda: look(kept=False))  # windows 1 and 2
        assert windows['window'].tolist() == [1, 2] and 'accuracy' not in windows
    elif change == 'time_windows':  # (windows of 30 s, one request a second: looks as they close)
        requests(0, 100, employed=['Yes'])
        for now in (t0 + 61, t0 + 95, t0 + 125):
            windows, _ = _as_measured_afresh(ws, lambda: look(now=now), lambda: look(kept=False, now=now))
        assert len(windows) == 2 and windows['closed'].all() and windows['records'].max() == 30
    else:
        requests(0, 100, employed=['Yes'])
        look()
        assert pd.read_parquet(ws.state_dir / 'monitor' / 'windows.parquet')['dataset_drift'].all()  # (share 0.5)
        other = mp.model_copy(update={'drift_share': 0.99})
        windows, _ = _as_measured_afresh(ws, lambda: look(other), lambda: look(other, kept=False))
        assert windows['dataset_drift'].tolist() == [True, False]  # (shares 1.0 and 0.5)
    log.close()


def test_monitor_run_every_starts_from_the_windows_a_look_from_cron_kept(workspace, monkeypatch):
    "`monitor run --every` takes the windows the last look kept, then keeps its own in memory and on disk."
    from lifecycle.data.pii import finding_salt

    set_yaml(workspace / 'params' / 'monitor.yaml', window={'rows': 100, 'seconds': None})
    ws = Workspace.open(workspace)
    finding_salt(ws.digest_salt_path)
    monkeypatch.chdir(workspace)
    log = PredictionLog(default_url(ws))
    replay(log, np.random.default_rng(5), time.time() - 500, 0, 300)
    log.close()
    measured = _measuring(monkeypatch)
    for args, want in ([], [300]), (['--every', '0.01', '--times', '2'], []), ([], []):
        measured.clear()
        r = invoke(monitor_run, args + ['--json'])
        assert r.exit_code == 0, r.output
        assert measured == want and all(json.loads(x)['windows'] == 3 for x in r.stdout.splitlines()), args
    (ws.state_dir / 'monitor' / 'measured.json').unlink()
    measured.clear()
    assert invoke(monitor_run, ['--every', '0.01', '--times', '2', '--json']).exit_code == 0
    assert measured == [300]  # none kept: measured by its first look, its second reused them
    kept = (ws.state_dir / 'monitor' / 'measured.json').read_bytes()
    ws.digest_salt_path.unlink()  # no salt (a monitor running as another user than the server): none kept
    measured.clear()
    assert invoke(monitor_run, ['--json']).exit_code == 0 and measured == [300]
    assert (ws.state_dir / 'monitor' / 'measured.json').read_bytes() == kept  # (neither read nor written)
    ws.digest_salt_path.write_bytes(b'')  # a salt cut short (a crash as it was made): as none, and the look goes on
    ws.digest_salt_path.chmod(0o600)
    measured.clear()
    assert invoke(monitor_run, ['--json']).exit_code == 0 and measured == [300]
    assert (ws.state_dir / 'monitor' / 'measured.json').read_bytes() == kept


def test_a_null_input_in_the_open_window_does_not_make_the_kept_windows_measured_again(workspace, monkeypatch):
    "A null makes a column of whole numbers floats: the same numbers to every metric, so nothing is measured again."
    from lifecycle.data.pii import finding_salt

    set_yaml(workspace / 'params' / 'monitor.yaml', window={'rows': 50, 'seconds': None})
    ws = Workspace.open(workspace)
    finding_salt(ws.digest_salt_path)
    mp, base, t0 = load_monitor_params(ws.params_dir), {'1': baseline(np.random.default_rng(1))}, time.time() - 1000
    log = PredictionLog(default_url(ws))
    for i in range(160):
        _request(log, i, t0, {'age': [20 + i % 30], 'employed': ['Yes']}, [0.5])
    assert log.flush()
    measured = _measuring(monkeypatch)
    run_once(ws, mp, baselines=base, now=t0 + 500, sample=False)
    _request(log, 160, t0, {'age': [None], 'employed': ['Yes']}, [0.5])  # (in the window still open)
    assert log.flush()
    run_once(ws, mp, baselines=base, now=t0 + 500, sample=False)
    log.close()
    assert measured == [150]  # the three closed windows, by the first look only


def test_a_versions_baseline_asks_the_registry_once_and_a_damaged_record_of_it_is_not_trusted(trained, monkeypatch):
    """A look from cron imports no MLflow once a version's lineage (its validation and dataset) is in the store's
    sealed record: the same baseline comes with the registry out of reach. An edited record is not used (the registry
    answers), and a version the registry does not know has no baseline and leaves no record."""
    from lifecycle.operate.monitor import baseline_for

    ws, mp = Workspace.open(trained), None
    lineage = ws.store.record_path('monitor-lineage', 'arrests-release-1')
    lineage.unlink(missing_ok=True)
    first = baseline_for(ws, '1', mp)
    assert first is not None and lineage.is_file()
    assert (
        baseline_for(ws, '99', mp) is None
        and not ws.store.record_path('monitor-lineage', 'arrests-release-99').exists()
    )

    def no_registry(self):
        raise AssertionError('the registry was asked')

    monkeypatch.setattr(Workspace, 'client', property(no_registry))
    assert baseline_for(Workspace.open(trained), '1', mp).digest() == first.digest()
    monkeypatch.undo()
    rec = json.loads(lineage.read_text())
    lineage.write_text(json.dumps({**rec, 'validation_id': 'val-0000000000000000'}))  # its seal left as it was
    assert baseline_for(Workspace.open(trained), '1', mp).digest() == first.digest()  # (the record: no baseline)


def test_a_version_whose_training_snapshot_was_purged_unprofiled_takes_its_holdout_as_the_reference(
    tiny_template, tmp_path
):
    """Found by review DM: a champion whose training snapshot a retention purge deleted before its drift profile was
    taken made every look end in `SnapshotPurged`. Its validation holdout is the reference then, as for a version
    registered without a training snapshot."""
    from conftest import copy_workspace
    from lifecycle.core.manifest import now_iso
    from lifecycle.operate.monitor import _lineage, baseline_for

    ws = Workspace.open(copy_workspace(tiny_template, tmp_path / 'ws'))
    name = ws.params['register'].model_name
    before = baseline_for(ws, '1')
    tags = _lineage(ws, name, '1')
    assert 'dataset_version' not in tags  # (a tiny workspace's versions have none)
    ws.store.put_record('datasets', 'gone-0000000000000000', {'version': 'gone-0000000000000000', 'object': 'x' * 64})
    ws.store.put_record('purges', 'gone-0000000000000000', {'version': 'gone-0000000000000000', 'purged': now_iso()})
    ws.store.record_path('monitor-lineage', f'{name}-1').unlink()
    ws.store.put_record('monitor-lineage', f'{name}-1', {**tags, 'dataset_version': 'gone-0000000000000000'})
    ws.store.record_path('monitor-baselines', f'{name}-1').unlink(missing_ok=True)
    assert _lineage(ws, name, '1')['dataset_version'] == 'gone-0000000000000000'
    assert baseline_for(ws, '1').digest() == before.digest()


def _two_silent_controls(ws, now: float) -> None:
    "One answer of version 1's control 9,000 s before `now` and one of version 2's 7,200 s before: both silent since."
    log = PredictionLog(default_url(ws))
    for i, (version, variant, ts) in enumerate([('1', 'control', now - 9000), ('2', 'control', now - 7200)]):
        log.log(
            request_id=f'q{i}',
            ts=ts,
            route='predict',
            variant=variant,
            model_version=version,
            inputs={'age': [30.0]},
            output=[0.4],
            decision=[0],
            threshold=0.5,
            latency_ms=1.0,
            status=200,
        )
    assert log.flush()
    log.close()


def test_the_monitor_forgets_a_retired_versions_cooldowns_a_day_after_it_was_last_judged(workspace):
    """Review AT: what the judge keeps per rule and series (when it last fired, breaches, held-back breaches, judged
    windows) stayed in the state the monitor rewrites each look, and in `monitor status`, for every version ever
    retired. A series no look judges goes a day after (`alerts.forget_series`); a served one stays."""
    from lifecycle.core.params import FlagsParams
    from lifecycle.serve import flags as fl

    ws, now = Workspace.open(workspace), time.time()
    _two_silent_controls(ws, now)
    mp, name = load_monitor_params(ws.params_dir), ws.params['register'].model_name
    state = ws.state_dir / 'monitor' / 'state.json'

    def look(at: float) -> set[str]:
        run_once(ws, mp, baselines={}, sample=False, now=at)
        kept = json.loads(state.read_text())
        return {k.split('|')[2] for d in ('last_fired', 'breached', 'held_back') for k in kept.get(d, {})
                if k.startswith(f'{name}|')}  # fmt: skip

    assert look(now) == {'1/control', '2/control'}  # no flags yet: both judged silent
    fl._write(ws, FlagsParams(control='2', safe='1'), name)  # version 1 retired: its control is version 2 now
    assert look(now + 60) == {'1/control', '2/control'}  # (kept a while: a version put back is judged as it was)
    assert look(now + 86_300) == {'1/control', '2/control'}  # (not a day since its last alert yet)
    assert look(now + 86_460) == {'2/control'}  # a day after: forgotten; the served one kept
    assert look(now + 200_000) == {'2/control'}


def test_silence_is_judged_only_for_the_versions_the_flags_route_traffic_to(workspace):
    """A version retired by a promotion or a rollback is silent for good: `no_traffic` (and `no_labels`) fired for
    each one ever logged, once an hour for ever (found by review). Only the series the served flags route to are
    judged (`flags.served_spec`: not a spec edited by hand); with no flags to read, every series, as before."""
    from lifecycle.core.params import FlagsParams
    from lifecycle.serve import flags as fl

    ws, now = Workspace.open(workspace), time.time()
    _two_silent_controls(ws, now)
    mp = load_monitor_params(ws.params_dir)

    def silent():
        run = run_once(ws, mp, baselines={}, sample=False, now=now)
        return sorted(a['series'] for a in run.alerts if a['rule'] == 'no_traffic')

    assert silent() == ['1/control', '2/control']  # no flags yet: every series
    name = ws.params['register'].model_name

    def put(spec: dict, age: float = 0) -> dict:
        "Flags as lifecycle writes them (what the server serves: `flags.served_spec`), routed `age` seconds ago."
        fl._write(ws, FlagsParams.model_validate(spec), name)
        os.utime(fl.flagd_path(ws), (now - age, now - age))
        (ws.state_dir / 'monitor' / 'state.json').unlink(missing_ok=True)  # (the cooldown: judged afresh)
        return spec

    body = put(FlagsParams(control='2', safe='1').model_dump(mode='json', by_alias=True))
    assert silent() == ['2/control']
    put({**body, 'kill': True})  # killed: the safe version answers everyone
    assert silent() == []  # no answer of the safe version's yet, and killed a moment ago: not silent yet
    put({**body, 'kill': True}, age=7200)  # killed two hours ago, and still no answer logged
    assert silent() == ['1/safe']  # (a server answering no one is told, though its arm has no series)
    at_full = put({**body, 'challenger': '3', 'percentage': 100.0})  # blue-green switched: the control answers no one
    assert silent() == []  # (3/challenger routed a moment ago; 2/control is not routed to)
    eu = {'attribute': 'region', 'equals': 'EU', 'in': None, 'variant': 'control'}
    internal = {'attribute': 'internal', 'equals': True, 'in': None, 'variant': 'challenger'}
    for spec_now, want in (
        ({**at_full, 'cohorts': [eu]}, ['2/control', '3/challenger']),  # the control still answers the EU cohort
        ({**body, 'challenger': '3', 'percentage': 0.0, 'cohorts': [internal]}, ['2/control']),  # a cohort alone
    ):  # (may rightly hear nothing: no series of its own is made up for it)
        put(spec_now, age=7200)
        assert silent() == want, spec_now
    on_file = json.loads(fl.spec_path(ws).read_text())  # a spec edited by hand, which the server refuses: the served
    fl.spec_path(ws).write_text(json.dumps(on_file | {'control': '1'}))  # flags' routes are still judged
    (ws.state_dir / 'monitor' / 'state.json').unlink()
    assert silent() == ['2/control']


def test_a_window_not_in_the_log_is_refused_naming_the_windows_there_as_runs():
    "`[0, 1, 2, '...', 4, 5, 6]` stood for one missing window and read as a list with a window called '...'."
    from lifecycle.operate.windows import _no_window

    said = _no_window('5', 'control', 99, [6, 0, 1, 2, 4, 5])
    assert said.endswith('no window 99 in the prediction log; found windows 0-2, 4-6'), said
    assert _no_window('5', 'control', 1, range(0, 40, 2)).endswith('found windows 0, 2, 4, …, 34, 36, 38')


def test_drift_columns_no_model_reads_are_refused_and_a_rule_no_window_can_meet_is_said(workspace, monkeypatch):
    """Found by review: `drift_columns: [agee]` crashed the look with a traceback (or was dropped unsaid), and a window
    shrunk below a rule's `min_sample` left that rule silent for good without a word."""
    monkeypatch.chdir(workspace)
    set_yaml(workspace / 'params' / 'monitor.yaml', drift_columns=['age', 'agee'])
    r = invoke(monitor_run, ['--json'])
    out = json.loads(r.stdout)
    assert r.exit_code == EXIT_INPUT and "drift_columns: ['agee'] are not model inputs" in out['error'], r.output
    assert 'Traceback' not in r.output
    set_yaml(workspace / 'params' / 'monitor.yaml', drift_columns=None, window={'rows': 100, 'seconds': None})
    r = invoke(monitor_run, ['--json'])
    assert r.exit_code == 0 and json.loads(r.stdout.splitlines()[0])['ok'], r.output
    assert 'warning: monitor.yaml rules.' in r.stderr and 'min_sample 200 is more than window.rows 100' in r.stderr


def test_a_clock_set_back_does_not_hold_alerts_back_for_the_jump():
    "Found by review: `now - last < cooldown` held every alert back for as long as the clock had been set back."
    from lifecycle.operate.alerts import judge
    from lifecycle.operate.schema import Rule

    rules = [Rule(name='bad', metric='accuracy', condition='< 0.5', severity='critical', cooldown_s=3600)]
    state, t = {}, 1_800_000_000.0
    obs = [dict(series='1/control', window=i, accuracy=0.1, labels=500) for i in range(3)]
    assert [a.window for a in judge(obs[:1], rules, state, now=t)] == [0]
    assert judge(obs[1:2], rules, state, now=t + 60) == []  # (the cooldown)
    assert [a.window for a in judge(obs[2:], rules, state, now=t - 22 * 3600)] == [2]  # set back 22 hours


def test_only_a_healthy_observation_after_a_breach_ends_it_for_the_cooldown():
    """Review: the cooldown held back a new breach after the last one had cleared. A look judges its lookback's windows
    again, labels arrive late, a state may be from before breaches were kept: only a healthy observation later than
    the rule's last breach on its series ends that breach, and a breach after it is a new alert."""
    from lifecycle.operate.alerts import held_by_rule, judge
    from lifecycle.operate.schema import Rule

    rules = [Rule(name='bad', metric='accuracy', condition='< 0.5', severity='critical', cooldown_s=3600)]
    t = 1_800_000_000.0

    def w(i, acc, labels=500, model='m'):
        return dict(series='1/control', model=model, window=i, window_end=t + 100 * i, accuracy=acc, labels=labels)

    state, look = {}, [w(0, 0.9), w(1, 0.3)]
    assert [a.window for a in judge(look, rules, state, now=t + 150)] == [1]
    look += [w(2, 0.2), w(3, 0.8, labels=10)]  # (window 0 healthy again, but before the breach; 3: too few labels)
    held = {}
    assert judge(look, rules, state, now=t + 350, held=held) == []  # (the same breach going on)
    assert held_by_rule(held) == dict(bad=dict(severity='critical', condition='< 0.5', count=1, worst=0.2,
                                               series='1/control', window=2))  # fmt: skip
    look[3] = w(3, 0.8)  # its labels arrived: healthy
    assert [a.window for a in judge(look + [w(4, 0.1)], rules, state, now=t + 450)] == [4]  # (a new breach)
    assert state['held_back'] == {}  # (counted since the latest alert)
    look = look[1:] + [w(4, 0.1), w(5, 0.4), w(6, 0.3)]
    assert judge(look, rules, state, now=t + 650) == []
    assert held_by_rule(state['held_back'], 'm')['bad']['count'] == 2 and held_by_rule(state['held_back'], 'x') == {}
    late = [w(5, 0.4), w(7, 0.2)]  # (window 5's breach judged already; 7's comes)
    assert judge(late, rules, state, now=t + 750) == [] and held_by_rule(state['held_back'])['bad']['worst'] == 0.2
    old = {'last_fired': {'m|bad|1/control': t + 150}, 'held_back': {'bad': 3}, 'keyed_by_model': True}
    assert [a.window for a in judge([w(2, 0.9), w(3, 0.1)], rules, old, now=t + 350)] == [3]  # (kept before: see
    assert old['held_back'] == {}  # its last fire, a count per rule set aside)
    quiet = [Rule(name='quiet', metric='silence_s', condition='> 60', severity='high', cooldown_s=3600)]
    st = {}  # (no window: the look's time; `never` is the worst silence)
    silent = [dict(series='1/control', silence_s=s) for s in (120, float('inf'), 5, 90)]
    assert [a.value for a in judge(silent[:1], quiet, st, now=t)] == [120]
    assert judge(silent[1:2], quiet, st, now=t + 60) == [] and st['held_back']['quiet|1/control']['worst'] is None
    assert judge(silent[2:3], quiet, st, now=t + 120) == []  # (a request came: the silence is broken)
    assert [a.value for a in judge(silent[3:], quiet, st, now=t + 180)] == [90]  # (silent again: a new alert)


def test_a_dead_webhook_is_tried_once_a_look_and_its_secret_path_is_not_kept(workspace, smtp):
    """Found by review: every pending alert was tried `attempts` times a look (a listening, silent webhook held a look
    67 s, the e-mail after it waiting), and the outbox kept the webhook's URL, whose path is its secret, in a file
    others could read."""
    from lifecycle.operate.alerts import Alert, Outbox

    controller, _ = smtp
    configure(workspace, Webhook(), controller.port)  # down: nothing listens on its port
    url = yaml.safe_load((workspace / 'params' / 'monitor.yaml').read_text())['sinks']['webhook']['url']
    set_yaml(workspace / 'params' / 'monitor.yaml', sinks__webhook__url=f'{url}/services/T0/B0/s3cretT0ken')
    ws = Workspace.open(workspace)
    mp = load_monitor_params(ws.params_dir)
    box = Outbox(ws.state_dir)
    for i in range(4):
        a = Alert(
            id=f'a{i}',
            rule='r',
            severity='high',
            metric='accuracy',
            value=0.1,
            condition='< 0.5',
            sample=500,
            series='1/control',
            window=i,
            window_start=i,
            window_end=i,
            ts=time.time(),
            message=f'alert {i}',
        )
        a.sinks = ['webhook', 'email']
        box.put(a)
    out = box.deliver(mp, sleep=lambda s: None)
    assert out['webhook'] == (0, 4) and out['email'] == (4, 0)
    kept = json.loads((ws.state_dir / 'monitor' / 'outbox' / 'webhook.json').read_text())
    assert [k['attempts'] for k in kept] == [mp.sinks.webhook.attempts, 0, 0, 0]  # the rest wait for the next look
    assert 's3cretT0ken' not in json.dumps(kept) and 'ConnectError' in kept[0]['error']
    assert (ws.state_dir / 'monitor' / 'outbox' / 'webhook.json').stat().st_mode & 0o077 == 0


class Trickle:
    "A receiver on 127.0.0.1 that answers one byte every 0.2 s for ever: never silent for a read's timeout."

    def __init__(self, first: bytes):
        self.first, self.stop = first, threading.Event()
        self.srv = socket.create_server(('127.0.0.1', 0))
        self.port = self.srv.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stop.is_set():
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self._drip, args=(c,), daemon=True).start()

    def _drip(self, c):
        with c:
            try:
                c.sendall(self.first)
                while not self.stop.wait(0.2):
                    c.sendall(b'X')
            except OSError:
                return

    def close(self):
        self.stop.set()
        self.srv.close()


def test_a_webhook_or_mail_server_that_trickles_its_answer_holds_a_look_no_longer_than_its_timeout(tmp_path):
    """Found by review GQ: `timeout_s` bounded each read, so a receiver that sent a byte within each (a webhook's
    status line then its headers a byte at a time, an SMTP greeting never ended) held the look, and the monitor's lock,
    for good. Each attempt now has `timeout_s` in all; the alert waits in the outbox for the next look."""
    from lifecycle.operate.alerts import Alert, Outbox
    from lifecycle.operate.schema import MonitorParams

    web, mail = Trickle(b'HTTP/1.1 200 OK\r\n'), Trickle(b'2')
    try:
        quick = {'timeout_s': 0.5, 'attempts': 2}
        webhook = {'url': f'http://127.0.0.1:{web.port}/alerts', **quick}
        email = {'host': '127.0.0.1', 'port': mail.port, 'to': ['oncall@test'], **quick}
        mp = MonitorParams.model_validate({'sinks': {'webhook': webhook, 'email': email}})
        box = Outbox(tmp_path)
        a = Alert(
            id='a0', rule='r', severity='high', metric='accuracy', value=0.1, condition='< 0.5', sample=500,
            series='1/control', window=0, window_start=0, window_end=1, ts=time.time(), message='alert 0',
        )  # fmt: skip
        a.sinks = ['webhook', 'email']
        box.put(a)
        out, t0 = {}, time.monotonic()
        look = threading.Thread(target=lambda: out.update(box.deliver(mp, sleep=lambda s: None)), daemon=True)
        look.start()
        look.join(15)
        assert not look.is_alive(), 'the delivery still waits on a trickling receiver'
        assert time.monotonic() - t0 < 6  # (two attempts of 0.5 s per sink, and the threads' start)
        assert out['webhook'] == (0, 1) and out['email'] == (0, 1)
        for sink in ('webhook', 'email'):
            kept = box.pending(sink)
            assert [k['alert']['id'] for k in kept] == ['a0'] and kept[0]['attempts'] == 2
            assert kept[0]['error'].startswith('TimeoutError')
    finally:
        web.close()
        mail.close()


def test_the_judged_windows_kept_are_those_the_monitor_can_see_again():
    "Found by review: the judge's `seen` map grew by an entry per rule and window for good (60,000 for 20,000 windows)."
    from lifecycle.operate.alerts import forget_windows, judge
    from lifecycle.operate.schema import Rule

    rules = [Rule(name='bad', metric='accuracy', condition='< 0.5', severity='low', cooldown_s=0)]
    state = {}
    for i in range(1000):
        obs = [dict(series='1/control', window=np.int64(i), accuracy=0.1, labels=500, model='m')]
        judge(obs, rules, state, now=float(i))
        forget_windows(state, 200, obs)
    assert len(state['seen']) == 200 and 'm|bad|1/control|999' in state['seen']
    later = [dict(series='1/control', window=950, accuracy=0.1, labels=500, model='m')]
    assert judge(later, rules, state, now=2e3) == []
    again = [dict(series='1/control', window=5, accuracy=0.1, labels=500, model='m')]  # numbered anew (rows changed)
    for look in range(3):  # raised once, then remembered (found by the review of the first cut: raised every look)
        raised = judge(again, rules, state, now=3e3 + look)
        forget_windows(state, 200, again)
        assert [a.window for a in raised] == ([5] if look == 0 else [])
    assert list(state['seen']) == ['m|bad|1/control|5']  # (the old numbering's windows forgotten)


def test_a_failed_delivery_keeps_no_part_of_the_webhooks_path_and_a_retry_set_by_a_clock_since_set_back_is_due(
    workspace,
):
    "Found by the review of the mends: httpx quotes the URL as it normalises it (`LOCALHOST` → `localhost`)."
    import httpx
    from lifecycle.operate.alerts import Outbox, _failure

    url = 'http://LOCALHOST:9/services/T0/B0/s3cr%C3%A9t?x=a b'
    set_yaml(workspace / 'params' / 'monitor.yaml', sinks__webhook__url=url)
    ws = Workspace.open(workspace)
    mp = load_monitor_params(ws.params_dir)
    request = httpx.Request('POST', url)
    try:
        httpx.Response(404, request=request).raise_for_status()
    except httpx.HTTPStatusError as e:
        said = _failure(e, mp)
    assert said == 'HTTPStatusError: the webhook answered 404 Not Found'
    said = _failure(httpx.ConnectError(f'cannot reach {request.url}'), mp)
    assert 's3cr' not in said and 'T0' not in said and 'http://LOCALHOST:9/...' in said, said
    box = Outbox(ws.state_dir)
    box._save(
        'tickets',
        [
            dict(
                alert=dict(id='a', rule='r', severity='low', series='1/control', message='m'),
                attempts=3,
                next_try=time.time() + 365 * 86400,
                error=None,
            )
        ],
    )
    assert box.deliver(mp)['tickets'] == (1, 0)  # (set a year ahead by a clock since set back: due now)


def test_an_alert_delivered_leaves_the_outbox_at_once(workspace, monkeypatch):
    """The outbox was saved once a sink's whole list was tried: a look killed while a later alert waited on its sink
    sent the ones delivered before it a second time, on the next look (review P)."""
    from lifecycle.operate import alerts as al

    ws = Workspace.open(workspace)
    mp = load_monitor_params(ws.params_dir)
    box = al.Outbox(ws.state_dir)
    for i in range(3):
        a = al.Alert(f'a{i}', 'r', 'high', 'accuracy', 0.1, '< 0.5', 500, '1/control', i, i, i, time.time(), 'x')
        a.sinks = ['tickets']
        box.put(a)
    sent = []

    def send(sink, alert, mp, state_dir):
        if alert['id'] == 'a1':
            raise KeyboardInterrupt  # (the look killed while this one waits on its sink)
        sent.append(alert['id'])

    monkeypatch.setattr(al, 'send', send)
    with pytest.raises(KeyboardInterrupt):
        box.deliver(mp)
    assert sent == ['a0'] and [it['alert']['id'] for it in box.pending('tickets')] == ['a1', 'a2']
    journal = box.dir / 'tickets.sent.jsonl'
    with journal.open('a') as f:
        f.write('{"id": "a')  # (a crash tore the journal's last line: set aside by the next read)
    assert [it['alert']['id'] for it in box.pending('tickets')] == ['a1', 'a2']
    monkeypatch.setattr(al, 'send', lambda *a: sent.append(a[1]['id']))
    box.deliver(mp)
    assert sent == ['a0', 'a1', 'a2'] and box.pending('tickets') == []
    assert sorted(p.name for p in box.dir.iterdir()) == ['tickets.json']  # (no journal left, nor its torn line)


def monitored(workspace: Path, ago: float):
    """A look's makings: the workspace's handle and monitor params, a seeded generator, version 1's baseline drawn from
    it, a start `ago` seconds back, and the prediction log."""
    ws, rng = Workspace.open(workspace), np.random.default_rng(7)
    mp, base, log = load_monitor_params(ws.params_dir), {'1': baseline(rng)}, PredictionLog(default_url(ws))
    return ws, mp, rng, base, time.time() - ago, log


def test_a_look_killed_before_it_saved_what_it_judged_raises_no_alert_again(workspace, webhook, smtp):
    """A look killed after raising its alerts (audited, queued, recorded) but before saving what it had judged raised
    them all again on the next look, under new ids: twice in the audit log and at every sink (review P). A window's
    alert has an id naming what it is about; one recorded already is not raised again."""
    from lifecycle.core.audit import read

    controller, _ = smtp
    configure(workspace, webhook, controller.port)
    ws, mp, rng, base, t0, log = monitored(workspace, 3000)
    replay(log, rng, t0, 0, 400)
    run_once(ws, mp, baselines=base, now=t0 + 400)
    replay(log, rng, t0, 400, 200, shift=15, flip=True)
    state = ws.state_dir / 'monitor' / 'state.json'
    judged = state.read_bytes()  # (what a look killed after raising, before saving, leaves)
    first = run_once(ws, mp, baselines=base, now=t0 + 600)
    assert first.alerts and all(a['window'] is not None for a in first.alerts)
    state.write_bytes(judged)
    again = run_once(ws, mp, baselines=base, now=t0 + 600)
    assert again.alerts == [], again.alerts
    audited = [e['details']['evidence']['id'] for e in read(ws.audit_path) if e['action'] == 'monitor.alert']
    assert sorted(audited) == sorted(a['id'] for a in first.alerts)


@pytest.mark.parametrize('at', ['queued', 'recorded'])
def test_a_look_killed_between_auditing_its_alerts_and_recording_them_audits_none_twice(workspace, monkeypatch, at):
    """A look killed after it audited its alerts but before it queued them, or before it appended them to
    `alerts.jsonl`, raised them again on the next look, as it must (they were never recorded nor delivered), and
    audited each a second time."""
    from lifecycle.core.audit import read
    from lifecycle.operate import alerts as al, monitor

    ws, mp, rng, base, t0, log = monitored(workspace, 3000)
    replay(log, rng, t0, 0, 400)
    run_once(ws, mp, baselines=base, now=t0 + 400)
    replay(log, rng, t0, 400, 200, shift=15, flip=True)
    real = monitor.append_jsonl

    def killed(path, *a, **k):
        if Path(path).name == 'alerts.jsonl':
            raise KeyboardInterrupt  # (the look killed before it recorded what it raised)
        return real(path, *a, **k)

    with monkeypatch.context() as m:
        if at == 'queued':
            m.setattr(al.Outbox, 'put', lambda *a: killed('alerts.jsonl'))
        else:
            m.setattr(monitor, 'append_jsonl', killed)
        with pytest.raises(KeyboardInterrupt):
            run_once(ws, mp, baselines=base, now=t0 + 600)
    again = run_once(ws, mp, baselines=base, now=t0 + 600)
    assert again.alerts and all(a['window'] is not None for a in again.alerts)
    audited = [e['details']['evidence']['id'] for e in read(ws.audit_path) if e['action'] == 'monitor.alert']
    assert sorted(audited) == sorted(a['id'] for a in again.alerts)
    tickets = read_jsonl(ws.state_dir / 'monitor' / 'tickets.jsonl')
    assert sorted(t['id'] for t in tickets) == sorted(a['id'] for a in again.alerts if 'tickets' in a['sinks'])


def test_windows_cut_otherwise_are_judged_afresh_and_their_alerts_raised(workspace):
    """After `window.rows` changed, windows are numbered afresh: a number judged under the old cut kept the new window
    of that number from being judged, and an alert id made of the number alone was taken for one raised already, so
    genuine alerts were dropped (reviews P and Q). The cut is remembered per model; an id names its window's end."""
    set_yaml(workspace / 'params' / 'monitor.yaml', window={'rows': 200, 'seconds': None})
    ws, mp, rng, base, t0, log = monitored(workspace, 9000)
    mp = mp.model_copy(update={'rules': [r.model_copy(update={'cooldown_s': 0}) for r in mp.rules]})
    replay(log, rng, t0, 0, 200)
    replay(log, rng, t0, 200, 1000, shift=15)
    first = run_once(ws, mp, baselines=base, now=t0 + 1300)
    assert {a['window'] for a in first.alerts if a['rule'] == 'input_drift'} == {1, 2, 3, 4, 5}
    wider = mp.model_copy(update={'window': mp.window.model_copy(update={'rows': 400})})
    replay(log, rng, t0, 1200, 1200, shift=15)
    later = run_once(ws, wider, baselines=base, now=t0 + 5000)
    drift = {a['window'] for a in later.alerts if a['rule'] == 'input_drift'}
    assert {1, 2, 3, 4, 5} <= drift, later.alerts  # (each window of the new cut, shifted: judged and raised)
    ids = [a['id'] for a in read_jsonl(ws.state_dir / 'monitor' / 'alerts.jsonl')]
    assert len(ids) == len(set(ids))


def test_a_window_cut_changed_and_back_holds_back_no_alert_of_a_new_window(workspace):
    """Changing the window cut and back (a simulation's window on the workspace's state, an edit undone) had every
    window judged again: an old one's alert, recorded already, was dropped, but started its rule's cooldown first, and
    the new window breaching in the same look was held back for good (review R)."""
    set_yaml(workspace / 'params' / 'monitor.yaml', window={'rows': 200, 'seconds': None})
    ws, mp, rng, base, t0, log = monitored(workspace, 20000)
    replay(log, rng, t0, 0, 200)
    replay(log, rng, t0, 200, 400, shift=15)
    first = run_once(ws, mp, baselines=base, now=t0 + 1000)
    assert ('input_drift', 1) in {(a['rule'], a['window']) for a in first.alerts}
    other = mp.model_copy(update={'window': mp.window.model_copy(update={'rows': 400})})
    run_once(ws, other, baselines=base, now=t0 + 1100)
    replay(log, rng, t0, 600, 200, shift=15)
    later = run_once(ws, mp, baselines=base, now=t0 + 9000)
    assert ('input_drift', 3) in {(a['rule'], a['window']) for a in later.alerts}, later.alerts


def test_the_outboxs_journal_of_sent_ids_survives_a_torn_line_and_is_emptied_once_saved(workspace):
    """Each alert delivered is journalled (`<sink>.sent.jsonl`) instead of the list rewritten (review Q): a journal cut
    short in its last line holds the ids before it; the list saved, the journal is gone (review R asked for tests)."""
    from lifecycle.operate import alerts as al

    box = al.Outbox(Workspace.open(workspace).state_dir)
    for i in range(3):
        a = al.Alert(f'a{i}', 'r', 'high', 'accuracy', 0.1, '< 0.5', 500, '1/control', i, i, i, time.time(), 'x')
        a.sinks = ['tickets']
        box.put(a)
    box._sent('tickets').write_text('{"id": "a0"}\n{"id": "a1"')  # (a0 sent; a1's line torn by a crash)
    assert [it['alert']['id'] for it in box.pending('tickets')] == ['a1', 'a2']
    box._save('tickets', box.pending('tickets'))
    assert not box._sent('tickets').exists() and [it['alert']['id'] for it in box.pending('tickets')] == ['a1', 'a2']



@pytest.mark.parametrize('items', [[5], [{'alert': 5}], [{'alert': {'id': 'a'}, 'attempts': 'x', 'next_try': 0}]])
def test_an_outbox_damaged_into_other_json_is_named_not_a_traceback(workspace, items):
    """An outbox file edited or damaged into a list of other things ended `monitor status` and `monitor run` with an
    AttributeError's traceback, exit 1 (review GQ); now refused naming the file and the item, exit 4, as a file that
    is no list at all already was."""
    from conftest import cli

    from lifecycle.operate import alerts as al

    box = al.Outbox(Workspace.open(workspace).state_dir).dir
    box.mkdir(parents=True)
    (box / 'email.json').write_text(json.dumps(items))
    for args in (('monitor', 'status'), ('monitor', 'run')):
        r = cli(workspace, *args)
        said = r.stdout + r.stderr
        assert r.returncode == 4 and 'email.json: item 0' in said and 'Traceback' not in said, said

def _regression_workspace(workspace: Path) -> Workspace:
    "The workspace with the diabetes regression params, its monitor.yaml as `lifecycle init` proposes for regression."
    from lifecycle.data.init_command import for_regression
    from test_regression import diabetes_params

    diabetes_params(workspace)
    p = workspace / 'params' / 'monitor.yaml'
    p.write_text(for_regression(p.read_text())[0])
    set_yaml(p, window={'rows': 200, 'seconds': None})
    return Workspace.open(workspace)


def _prices(log: PredictionLog, rng, t0: float, start: int, n: int, times: float = 1.0) -> None:
    "Log n one-row regression requests, then their outcomes: the score plus noise (sd 10), times `times`."
    truth = {}
    for i in range(start, start + n):
        bmi = round(float(rng.normal(26, 4)), 1)
        s = 100 + 8 * (bmi - 26)
        log.log(request_id=f'p{i}', ts=t0 + i, route='predict', targeting_key=None, variant='control',
                model_version='1', inputs={'bmi': [bmi]}, output=[s], decision=[None], threshold=None,
                latency_ms=2.0, status=200)  # fmt: skip
        truth[f'p{i}'] = round((s + float(rng.normal(0, 10))) * times, 2)
    assert log.flush()
    give_feedback(log, truth)


def test_a_regression_models_error_growing_past_its_holdouts_raises_the_error_rule_and_is_shown(workspace):
    ws = _regression_workspace(workspace)
    rng = np.random.default_rng(5)
    bmi = rng.normal(26, 4, 2000).round(1)
    s = 100 + 8 * (bmi - 26)
    x = pd.DataFrame({'bmi': bmi})
    base = {'1': Baseline.from_holdout(drift.profile(x), s, s + rng.normal(0, 10, 2000), 'regression', inputs=x)}
    assert 9 < base['1'].rmse < 11 and 7 < base['1'].mae < 9  # the holdout's errors, the ratios' yardstick
    t0 = time.time() - 1000
    log = PredictionLog(default_url(ws))
    _prices(log, rng, t0, 0, 200)  # as validated
    _prices(log, rng, t0, 200, 200, times=5)  # then the outcomes are five times what was predicted
    log.close()
    run = run_once(ws, load_monitor_params(ws.params_dir), baselines=base, now=t0 + 400)
    assert [(a['rule'], a['metric'], a['window'], a['severity']) for a in run.alerts] == [
        ('error_growth', 'rmse_ratio', 1, 'critical')
    ]
    assert run.alerts[0]['value'] > 20 and run.alerts[0]['sample'] == 200
    m = pd.read_parquet(ws.state_dir / 'monitor' / 'windows.parquet').sort_values('window')
    assert 0.8 < m['rmse_ratio'].iloc[0] < 1.2 and 0.8 < m['mae_ratio'].iloc[0] < 1.2
    assert 0.8 < m['estimated_rmse_ratio'].iloc[1] < 1.2  # (the inputs are as trained: no estimate of the collapse)
    shown = status(ws)['series'][0]
    assert shown['window'] == 1 and shown['rmse'] > 20 * base['1'].rmse and shown['mae'] > 20 * base['1'].mae
    assert shown['rmse_ratio'] > 20 and 'accuracy' not in shown and 'estimated_accuracy' not in shown, shown
    prom = (ws.state_dir / 'monitor' / 'metrics.prom').read_text()
    assert 'metric="rmse_ratio",model="diabetes-progression",model_version="1",variant="control"} ' in prom


def test_a_classification_models_status_shows_accuracy_as_before(workspace):
    ws = Workspace.open(workspace)
    set_yaml(workspace / 'params' / 'monitor.yaml', window={'rows': 200, 'seconds': None})
    rng = np.random.default_rng(3)
    two_windows(ws, rng, time.time() - 1000)
    run_once(ws, load_monitor_params(ws.params_dir), baselines={'1': baseline(rng)}, now=time.time())
    shown = status(ws)['series'][0]
    assert list(shown)[4:] == [
        'requests', 'error_rate', 'latency_p95_ms', 'drift_psi_max', 'score_psi', 'accuracy', 'labels',
        'estimated_accuracy', 'label_coverage',
    ]  # fmt: skip
    assert not any('rmse' in k or 'mae' in k for k in pd.read_parquet(ws.state_dir / 'monitor' / 'windows.parquet'))


def test_a_rule_on_accuracy_in_a_regression_workspace_is_said_never_to_fire(workspace, monkeypatch):
    """Review AG: a regression workspace whose monitor.yaml was copied before init proposed the error rules watched its
    quality by accuracy, which it never has, and nothing said so."""
    from lifecycle.data.init_command import for_regression
    from lifecycle.operate.schema import never_firing
    from test_regression import diabetes_params

    mp = load_monitor_params(workspace / 'params')
    assert never_firing(mp, 'classification') == [] == never_firing(mp)
    said = never_firing(mp, 'regression')
    assert [s.split(':')[0] for s in said] == ['monitor.yaml rules.3 (accuracy_drop)',
                                               'monitor.yaml rules.4 (estimated_accuracy_drop)']  # fmt: skip
    assert 'for a classification model only' in said[0] and 'error_growth on rmse_ratio' in said[0]
    p = workspace / 'params' / 'monitor.yaml'
    p.write_text(for_regression(p.read_text())[0])
    assert never_firing(load_monitor_params(p.parent), 'regression') == []
    assert [s.split(':')[0] for s in never_firing(load_monitor_params(p.parent), 'classification')] == [
        'monitor.yaml rules.3 (error_growth)', 'monitor.yaml rules.4 (estimated_error_growth)'
    ]  # fmt: skip
    diabetes_params(workspace)
    set_yaml(p, rules=[dict(name='acc', metric='accuracy_drop', condition='> 0.1', severity='high')])
    monkeypatch.chdir(workspace)
    r = invoke(monitor_run, ['--json'])
    assert r.exit_code == 0 and 'warning: monitor.yaml rules.0 (acc): accuracy_drop is measured for a' in r.stderr


def _accuracy_windows(log: PredictionLog, rng, t0: float, start: int, flipped: list[bool]) -> None:
    "Windows of 200 of v1 from row `start`, as trained or with their outcomes flipped (an accuracy drop of about 0.5)."
    for i, flip in enumerate(flipped):
        replay(log, rng, t0, start + 200 * i, 200, flip=flip)


def test_a_breach_after_its_alert_resolved_is_a_new_alert_within_the_cooldown(workspace):
    """Review: `accuracy_drop` fired on window 1, healthy windows closed it, and a window of flipped labels within the
    rule's 3600 s cooldown was held back: no alert, no ticket, nothing audited, and `monitor status` showed the old
    window's alert open again with its old value; the retraining's trigger saw no new alert. The cooldown holds back
    repeats of one ongoing breach; a breach after a healthy window is a new one."""
    from lifecycle.core.audit import read
    from lifecycle.loop import triggers
    from lifecycle.loop.schema import load_retrain_params
    from lifecycle.operate.monitor import open_alerts

    set_yaml(workspace / 'params' / 'monitor.yaml', window={'rows': 200, 'seconds': None})
    ws, mp, rng, base, t0, log = monitored(workspace, 1200)
    _accuracy_windows(log, rng, t0, 0, [False, True])
    first = run_once(ws, mp, baselines=base, now=t0 + 400, sample=False).alerts
    assert [(a['rule'], a['window']) for a in first if a['rule'] == 'accuracy_drop'] == [('accuracy_drop', 1)]
    _accuracy_windows(log, rng, t0, 400, [False, False])
    assert run_once(ws, mp, baselines=base, now=t0 + 800, sample=False).alerts == []
    assert status(ws, mp, now=t0 + 800)['open']['critical'] == 0  # (resolved)
    _accuracy_windows(log, rng, t0, 800, [True])
    log.close()
    again = run_once(ws, mp, baselines=base, now=t0 + 1000, sample=False).alerts  # (within the 3600 s cooldown)
    new = [a for a in again if a['rule'] == 'accuracy_drop']
    assert [a['window'] for a in new] == [4], again
    shown = [a for a in open_alerts(ws.state_dir) if a['rule'] == 'accuracy_drop']
    assert [a['id'] for a in shown] == [new[0]['id']] and shown[0]['value'] > 0.4  # (the new one, its own value)
    assert status(ws, mp, now=t0 + 1000)['open']['critical'] == 1
    tickets = read_jsonl(ws.state_dir / 'monitor' / 'tickets.jsonl')
    assert sorted(t['window'] for t in tickets if t['rule'] == 'accuracy_drop') == [1, 4]
    audited = [e['details']['evidence'] for e in read(ws.audit_path) if e['action'] == 'monitor.alert']
    assert sorted(e['window'] for e in audited if e['rule'] == 'accuracy_drop') == [1, 4]
    rp = load_retrain_params(ws.params_dir)
    st = {'last_fired': {'performance_alert': t0 + 400}, 'started': [t0 + 400]}  # (retrained on the first alert)
    verdict = triggers.evaluate(rp, triggers.facts(ws, st), st, t0 + 1000 + rp.triggers.performance_alert.debounce_s)
    hit = next(h for h in verdict.hits if h.name == 'performance_alert')
    assert hit.fired and [a['series'] for a in hit.evidence['alerts']] == ['1/control'], hit


def test_breaches_the_cooldown_holds_back_are_said_by_monitor_run_status_and_alerts(workspace, monkeypatch, capsys):
    """Review: the cooldown's held-back breaches were counted in state.json, per rule and for ever, and no command
    printed them. One ongoing breach is still held back; `monitor run`, `monitor status` and `monitor alerts` (text
    and JSON) say how many per rule since its latest alert, with the worst value held back and where."""
    from lifecycle.operate.commands import _show_look, monitor_alerts, monitor_status

    set_yaml(workspace / 'params' / 'monitor.yaml', window={'rows': 200, 'seconds': None})
    ws, mp, rng, base, t0, log = monitored(workspace, 1200)
    _accuracy_windows(log, rng, t0, 0, [False, True])
    assert 'accuracy_drop' in [a['rule'] for a in run_once(ws, mp, baselines=base, now=t0 + 400, sample=False).alerts]
    state = ws.state_dir / 'monitor' / 'state.json'
    was = json.loads(state.read_text())
    was['held_back'] = {'accuracy_drop': 3}  # (as looks before this kept it: a count per rule, whose no one can tell)
    state.write_text(json.dumps(was))
    _accuracy_windows(log, rng, t0, 400, [True, True])  # the same breach going on: held back
    log.close()
    run = run_once(ws, mp, baselines=base, now=t0 + 800, sample=False)
    assert [a for a in run.alerts if a['rule'] == 'accuracy_drop'] == []
    m = pd.read_parquet(ws.state_dir / 'monitor' / 'windows.parquet').set_index('window')
    worst = max(m.loc[2, 'accuracy_drop'], m.loc[3, 'accuracy_drop'])
    held = run.held_back['accuracy_drop']
    assert (held['count'], held['worst'], held['series']) == (2, worst, '1/control'), run.held_back
    assert held['window'] == m['accuracy_drop'].loc[[2, 3]].idxmax() and held['severity'] == 'critical'
    _show_look(run, False)
    said = capsys.readouterr().out
    assert '0 alert(s); 2 held back by a cooldown;' in said
    assert f"held back by the cooldown: accuracy_drop (critical) 2, worst {worst:.4g} (> 0.1) on 1/control" in said
    _show_look(run, True)
    assert json.loads(capsys.readouterr().out)['held_back']['accuracy_drop']['count'] == 2

    monkeypatch.chdir(workspace)
    for cmd, args in [(monitor_status, []), (monitor_alerts, []), (monitor_alerts, ['--severity', 'critical'])]:
        shown = json.loads(invoke(cmd, [*args, '--json']).stdout)['held_back']
        assert shown == {'accuracy_drop': held}, (cmd, shown)  # (since its latest alert; the old count set aside)
        said = invoke(cmd, args).stdout
        assert f'held back by the cooldown: accuracy_drop (critical) 2, worst {worst:.4g}' in said, said
        assert 'since its latest alert' in said
    assert json.loads(invoke(monitor_alerts, ['--severity', 'low', '--json']).stdout)['held_back'] == {}
    assert status(ws, mp)['last_run']['held_back'] == run.held_back


def test_an_alert_whose_series_holds_a_newline_is_mailed_and_holds_no_other_back(workspace, smtp):
    """A variant a hand-written flagd file names with a newline (the log keeps it as served) went into the e-mail's
    Subject as it was: the header refused it on every attempt, the alert stayed first in the outbox, and a sink that
    failed an alert is not tried again in that look, so no e-mail was sent again, every look. The Subject now shows
    control characters escaped; the body keeps the alert as raised."""
    from lifecycle.operate.alerts import Alert, Outbox

    controller, mail = smtp
    set_yaml(workspace / 'params' / 'monitor.yaml', sinks__email={'host': '127.0.0.1', 'port': controller.port,
             'sender': 'monitor@test', 'to': ['oncall@test']}, sinks__email__backoff_s=0)  # fmt: skip
    ws = Workspace.open(workspace)
    mp = load_monitor_params(ws.params_dir)
    odd, plain = ('1/x\nBcc: all@test', 'rule\r\none'), ('1/control', 'errors')
    alerts = [
        Alert(f'a{i}', rule, 'high', 'error_rate', 0.5, '> 0.05', 100, series, 0, 0.0, 1.0, time.time(),
              f'[high] {rule} on {series}', sinks=['email'])
        for i, (series, rule) in enumerate((odd, plain))
    ]  # fmt: skip
    box = Outbox(ws.state_dir)
    box.put(*alerts)
    assert box.deliver(mp, sleep=lambda s: None)['email'] == (2, 0)
    deadline = time.time() + 5
    while len(mail.got) < 2 and time.time() < deadline:
        time.sleep(0.05)
    subjects = sorted(m['Subject'] for m in mail.got)
    assert subjects == ['[lifecycle high] errors on 1/control', '[lifecycle high] rule\\r\\none on 1/x\\nBcc: all@test']
    assert all(m['Bcc'] is None for m in mail.got)


def test_a_variant_with_a_terminal_escape_is_shown_escaped_by_monitor_run_status_and_alerts(workspace):
    """The series an alert names (a variant a hand-written flagd file names, as the log keeps it) and the rules' names
    reached the terminal as they were: an ANSI escape in one cleared the screen or recoloured what followed, a line
    break began a line of its own. `monitor run`, `status` and `alerts` now show them escaped (`\\x1b`, `\\n`)."""
    from conftest import cli

    ws = Workspace.open(workspace)
    odd = 'x\x1b[2J\nnl'
    _log_variant(ws, odd, 500, time.time() - 9000)
    for args in (('monitor', 'run'), ('monitor', 'run'), ('monitor', 'status'), ('monitor', 'alerts')):
        r = cli(workspace, *args)
        assert r.returncode == 0 and 'Traceback' not in r.stderr, r.stderr
        assert '\x1b' not in r.stdout and '\nnl' not in r.stdout, (args, r.stdout)
        assert 'x\\x1b[2J\\nnl' in r.stdout, (args, r.stdout)


def test_text_in_an_input_the_profile_has_numbers_in_is_missing_not_a_dead_monitor(workspace):
    """A log holding text where the version's training profile has numbers (written through the log's API by another
    writer, or under another contract) failed every look with a ValueError from the drift comparison, a traceback
    from `monitor run`, and so the monitor measured and alerted on nothing more. Such text is now left out of the
    drift measures, as the PSI left it out; the other values are measured, and no value is quoted anywhere. They are
    counted (review DG: nothing said them): `input_text_share`, a metric a rule alerts on, and each column's `text` in
    drift.parquet."""
    rule = dict(name='text', metric='input_text_share', condition='> 0.1', severity='high', min_sample=1)
    set_yaml(workspace / 'params' / 'monitor.yaml', window={'rows': 200, 'seconds': None}, rules=[rule])
    ws = Workspace.open(workspace)
    rng = np.random.default_rng(5)
    log = PredictionLog(default_url(ws))
    for i in range(200):
        age = 'alice.secret@example.com' if i % 3 == 0 else round(float(rng.normal(30, 8)), 1)
        sent = {'age': [age]} if i % 3 != 1 else {}  # (a third of the requests send no age: review DL)
        log.log(request_id=f'r{i}', ts=time.time() - 1000 + i, route='predict', targeting_key=None, variant='control',
                model_version='1', model=None, inputs={**sent, 'employed': ['Yes']}, output=[0.3],
                decision=[0], threshold=0.5, latency_ms=2.0, status=200)  # fmt: skip
    assert log.flush()
    log.close()
    run = run_once(ws, load_monitor_params(ws.params_dir), baselines={'1': baseline(rng)}, sample=False)
    assert run.windows == 1
    found = pd.read_parquet(ws.state_dir / 'monitor' / 'drift.parquet').set_index('column')
    assert np.isfinite(found.loc['age', 'psi']) and found.loc['age', 'kind'] == 'numeric'
    assert found.loc['age', 'text'] == 67 and found.loc['employed', 'text'] == 0  # (every third of 200 rows)
    windows = pd.read_parquet(ws.state_dir / 'monitor' / 'windows.parquet')
    assert windows['input_text_share'].tolist() == [67 / 133]  # (of the 133 rows that sent an age, not of 200: DK)
    assert [(a['rule'], a['series']) for a in run.alerts] == [('text', '1/control')], run.alerts
    assert 'metric="input_text_share"' in (ws.state_dir / 'monitor' / 'metrics.prom').read_text()
    for p in (ws.state_dir / 'monitor').rglob('*'):
        assert not p.is_file() or b'secret' not in p.read_bytes(), p


def test_a_series_glob_no_series_of_its_metric_can_match_is_said_never_to_fire(workspace, monkeypatch):
    """A rule's `series` glob that matches none of its metric's series (a typo, `sever/flags_tampered`; a variant
    alone, `control`, where series are `<version>/<variant>`; a watcher not watched) made a rule that never fires, said
    nowhere. `monitor run` now says so on stderr, as for a rule no window can meet; a glob that can match is not
    said."""
    rules = [
        dict(name='typo', metric='server_alerts', series='sever/flags_tampered', condition='> 0', severity='high'),
        dict(name='ok', metric='server_alerts', series='server/flags_tampered', condition='> 0', severity='high'),
        dict(name='bare', metric='drift_psi_max', series='control', condition='> 0.2', severity='high'),
        dict(name='ok2', metric='drift_psi_max', series='*/control', condition='> 0.2', severity='high'),
        dict(name='unwatched', metric='heartbeat_age_s', series='watcher/retrain', condition='> 1', severity='high'),
        dict(name='ok3', metric='heartbeat_age_s', series='watcher/g*', condition='> 1', severity='high'),
    ]
    set_yaml(workspace / 'params' / 'monitor.yaml', rules=rules, watchers=['monitor', 'guard'])
    monkeypatch.chdir(workspace)
    r = invoke(monitor_run, ['--json'])
    assert r.exit_code == 0, r.output
    said = [x for x in r.stderr.splitlines() if 'never fires' in x]
    assert [x.split(' (')[0] for x in said] == ['warning: monitor.yaml rules.0', 'warning: monitor.yaml rules.2',
                                                'warning: monitor.yaml rules.4'], said  # fmt: skip
    assert "series 'sever/flags_tampered' matches none of server_alerts's series (written server/<kind>)" in said[0]


def test_a_server_on_an_ipv6_host_is_sampled_and_named_by_a_valid_url():
    "Found by review (DW): host ::1 made `http://::1:8000/metrics`, which httpx refuses (InvalidURL: a crash)."
    from types import SimpleNamespace
    from lifecycle.core.commands import server_url
    from lifecycle.operate.monitor import sample_server

    assert server_url('::1', 8000) == 'http://[::1]:8000' and server_url('127.0.0.1', 80) == 'http://127.0.0.1:80'
    assert sample_server(SimpleNamespace(host='::1', port=29629), timeout=0.2) is None  # (no server there)

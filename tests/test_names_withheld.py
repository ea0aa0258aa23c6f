"""A file or folder name holding an e-mail address or a phone number is never printed whole by core's own refusals:
`--params DIR` and an OSError that reaches the `command` decorator (`[Errno 36] File name too long`, EACCES ...)."""

import pytest
import typer

from lifecycle.core.cli_support import Result, command, invoke, with_params_option
from lifecycle.core.params import ParamsError, load_params

ADDRESS = 'bob@corp.example'


def test_os_error_reaching_the_decorator_withholds_the_name(tmp_path):
    "An OSError escaping a command printed `str(e)`, the file's name whole; now its name is withheld, its cause kept."
    path = f"{tmp_path}/{ADDRESS}/{'x' * 300}.csv"

    @command()
    def cmd(as_json: bool = typer.Option(False, '--json')) -> Result:
        raise OSError(36, 'File name too long', path)

    for args in ([], ['--json']):
        r = invoke(cmd, args)
        assert r.exit_code == 1, r.output
        assert ADDRESS not in r.output and 'File name too long' in r.output and 'withheld' in r.output


def test_params_option_withholds_the_folder_name(tmp_path):
    "`--params bob@corp.example` (no such folder) was refused naming the folder twice, whole."

    @command()
    @with_params_option
    def cmd(as_json: bool = typer.Option(False, '--json')) -> Result:
        return Result()

    r = invoke(cmd, ['--params', str(tmp_path / ADDRESS), '--json'])
    assert r.exit_code == 2 and ADDRESS not in r.output and 'params folder not found' in r.output, r.output


@pytest.mark.parametrize('inside', [False, True])
def test_load_params_withholds_the_folder_name(tmp_path, inside):
    "A params folder not found (by `load_params`, or by a file of it) was named whole in `params refused`."
    from lifecycle.core.params import STAGE_SCHEMAS, load_file

    d = tmp_path / ADDRESS
    with pytest.raises(ParamsError) as e:
        load_file(d / 'ingest.yaml', STAGE_SCHEMAS['ingest']) if inside else load_params(d)
    assert ADDRESS not in str(e.value) and 'params folder not found' in str(e.value)


def test_params_refused_in_a_folder_named_with_an_address(tmp_path):
    "A params folder there, named `bob@corp.example`: each refusal of its files named the folder whole."
    d = tmp_path / ADDRESS
    d.mkdir()
    (d / 'ingest.yaml').write_text('columns: 5\ncolumns: 6\n')
    with pytest.raises(ParamsError) as e:
        load_params(d)
    assert ADDRESS not in str(e.value) and 'ingest.yaml' in str(e.value) and 'withheld' in str(e.value)


def test_refusal_naming_the_params_folder_withholds_it(tmp_path):
    "A command's refusal naming a file of its `--params bob@corp.example` folder (`{params_dir}/ingest.yaml: ...`)."
    d = tmp_path / ADDRESS
    d.mkdir()

    @command()
    def cmd(as_json: bool = typer.Option(False, '--json')) -> Result:
        from lifecycle.core.cli_support import CommandError

        raise CommandError(f"{d}/ingest.yaml: key 'source': no file at x.csv")

    for args in ([], ['--json']):
        r = invoke(with_params_option(cmd), ['--params', str(d), *args])
        assert r.exit_code == 2 and ADDRESS not in r.output and "ingest.yaml: key 'source'" in r.output, r.output


def test_status_withholds_the_params_folder_name(tmp_path):
    "`lifecycle status --params bob@corp.example` printed (and --json gave) `params_dir` whole."
    from lifecycle.app.status import workspace_status
    from lifecycle.core.cli_support import scratch_workspace
    from lifecycle.core.workspace import Workspace

    root = scratch_workspace(tmp_path / 'ws')
    ws = Workspace.open(root, params_dir=root / ADDRESS)
    st = workspace_status(ws)
    assert ADDRESS not in st['params_dir'] and 'withheld' in st['params_dir'] and not st['params_dir_found']


def test_holds_contact_reads_a_hidden_file_and_a_dated_name():
    "A phone number after a hidden file's leading '.' was none; `+1` before a dash-written date was one (false alarm)."
    from lifecycle.data.pii import holds_contact

    assert holds_contact('.+44 7911 123456.csv') and holds_contact('.bob@corp.example.csv')
    assert not holds_contact('x_+1-2024-01-05.csv') and not holds_contact('x_+1 2024-01-05.csv')
    assert holds_contact('+44 7911 123456.csv') and not holds_contact('.hidden.csv')


def test_params_folder_set_aside_by_init_withholds_its_name(tmp_path):
    "A params folder `init --force` set aside (`.bob@corp.example.<8>.old`) was named whole, in a `mv` hint too."
    from lifecycle.core.params import not_a_folder

    (tmp_path / f'.{ADDRESS}.abcdefgh.old').mkdir()
    said = not_a_folder(tmp_path / ADDRESS)
    assert ADDRESS not in said and 'kept at' in said and 'withheld' in said


def test_store_writes_in_the_way_withhold_the_name(tmp_path):
    "`atomic_write` refusing a folder in the way of a file or a file in the way of a folder named `bob@...` whole."
    from lifecycle.core.store import atomic_write

    (tmp_path / ADDRESS / 'rules.yml').mkdir(parents=True)
    (tmp_path / 'f').write_text('x')
    for target in (tmp_path / ADDRESS / 'rules.yml', tmp_path / 'f' / ADDRESS / 'rules.yml'):
        with pytest.raises(OSError) as e:
            atomic_write(target, 'x')
        assert ADDRESS not in str(e.value) and 'withheld' in str(e.value) and 'move it aside' in str(e.value)


def test_os_error_naming_a_descriptor_or_two_files_says_what_python_says(tmp_path):
    "An OSError naming a file descriptor (`os.stat(fd)`: its filename is an int) ended in a TypeError traceback."
    import os

    def raised(f):
        try:
            f()
        except OSError as e:
            return e

    for e, said in (
        (raised(lambda: os.stat(987654)), '[Errno 9] Bad file descriptor: 987654'),
        (OSError(18, 'Invalid cross-device link', 'a', None, 'b'), "[Errno 18] Invalid cross-device link: 'a' -> 'b'"),
    ):

        @command()
        def cmd(as_json: bool = typer.Option(False, '--json'), e=e) -> Result:
            raise e

        for args in ([], ['--json']):
            r = invoke(cmd, args)
            assert r.exit_code == 1 and said in r.output and 'Traceback' not in r.output, r.output


def _params_named_with_an_address(tmp_path, source='missing.csv'):
    "A scratch workspace whose params folder is `bob@corp.example`, its ingest source `source`."
    import shutil

    from lifecycle.core.cli_support import scratch_workspace
    from lifecycle.core.workspace import Workspace

    root = scratch_workspace(tmp_path / 'ws')
    shutil.copytree(root / 'params', root / ADDRESS)
    text = (root / ADDRESS / 'ingest.yaml').read_text()
    (root / ADDRESS / 'ingest.yaml').write_text(text.replace('source: "sklego:arrests"', f'source: "{source}"'))
    return Workspace.open(root, params_dir=root / ADDRESS)


@pytest.mark.parametrize('source', ['missing.csv', 'nosuch:arrests', 'sklego:nosuch'])
def test_run_refusing_its_source_withholds_the_params_folder(tmp_path, source):
    "`lifecycle run --params bob@corp.example` refusing its source named the folder whole (`{params_dir}/...`)."
    from lifecycle.app.commands import _inputs_or_refuse
    from lifecycle.core.cli_support import CommandError

    ws = _params_named_with_an_address(tmp_path, source)
    with pytest.raises(CommandError) as e:
        _inputs_or_refuse(ws)
    assert ADDRESS not in str(e.value) and "ingest.yaml: key 'source'" in str(e.value) and 'withheld' in str(e.value)


def test_run_records_the_params_folder_withheld(tmp_path, monkeypatch):
    "A run from `--params bob@corp.example` recorded `params_dir` whole in its manifest and `run.start` audit entry."
    import lifecycle.app.pipeline as pipeline

    class Refused(Exception):
        pass

    class NoKernel:
        def __init__(self, *a, **k):
            raise Refused()

    ws = _params_named_with_an_address(tmp_path)
    monkeypatch.setattr(pipeline, 'StageKernel', NoKernel)
    for name in ('LIFECYCLE_PARAMS_DIR', 'LIFECYCLE_WORKSPACE'):  # (set by the run: put back as they were after it)
        monkeypatch.setenv(name, '')
        monkeypatch.delenv(name)
    with pytest.raises(Refused):
        pipeline._run_stages(ws, {}, False, None)
    written = [p.read_text() for p in (*ws.runs_dir.rglob('*.json'), ws.audit_path)]
    assert written and all(ADDRESS not in t for t in written) and any('withheld' in t for t in written)


def test_holds_contact_reads_a_phone_number_after_a_dot():
    "`export.+44 7911 123456.csv` (words joined by '.', as `export_+44 ...` by '_') was no phone number: named whole."
    from lifecycle.core.names import holds_contact, shown_path

    assert holds_contact('export.+44 7911 123456.csv') and holds_contact('calls.+447911123456')
    assert 'withheld' in shown_path('d/export.+44 7911 123456.csv')
    assert not any(holds_contact(n) for n in ('v1.+2.csv', 'x.+1.2024-01-05.csv', 'score.+0.935072', '.5', '..'))


def test_refusal_naming_the_remembered_params_folder_withholds_it(tmp_path):
    """After `lifecycle run --params bob@corp.example`, later commands read that folder with no --params (so no
    LIFECYCLE_PARAMS_DIR): their refusals (`{ws.params_dir}/flags.yaml ...`, review.py, container.py) named it whole."""
    import shutil

    from lifecycle.core.cli_support import CommandError, scratch_workspace
    from lifecycle.core.workspace import PARAMS_FILE, Workspace

    root = scratch_workspace(tmp_path / 'ws')
    shutil.copytree(root / 'params', root / ADDRESS)
    state = Workspace.open(root).state_dir
    state.mkdir(parents=True, exist_ok=True)
    (state / PARAMS_FILE).write_text(f"{root / ADDRESS}\n")

    @command()
    def cmd(as_json: bool = typer.Option(False, '--json')) -> Result:
        ws = Workspace.open(root)
        raise CommandError(f"--role 'x': the admin_role of {ws.params_dir}/flags.yaml; the params ({ws.params_dir})")

    for args in ([], ['--json']):
        r = invoke(cmd, args)
        assert r.exit_code == 2 and ADDRESS not in r.output and 'flags.yaml' in r.output, r.output
        assert r.output.count('withheld') == 2, r.output


def test_other_model_routed_withholds_the_params_folder(tmp_path, monkeypatch):
    "A rollout or retraining refused for flags routing another model named the params folder whole (twice)."
    from lifecycle.serve import flags as fl

    monkeypatch.setattr(fl, 'spec_path', lambda s: tmp_path)  # (exists: flags routing model 'other')
    monkeypatch.setattr(fl, 'load_spec', lambda s: (None, 'other'))
    why = fl.other_model_routed(None, 'mine', tmp_path / ADDRESS)
    assert ADDRESS not in why and why.count('withheld') == 2 and "'other'" in why


@pytest.mark.parametrize('source', [f'{ADDRESS}.csv', f'data/{ADDRESS}/x.csv', f'sklego:{ADDRESS}'])
def test_run_refusing_its_source_withholds_the_source_name(tmp_path, source):
    "ingest.yaml's `source: bob@corp.example.csv`, missing: `no file at <root>/bob@corp.example.csv (from '...')`."
    from lifecycle.app.commands import _inputs_or_refuse
    from lifecycle.core.cli_support import CommandError, scratch_workspace
    from lifecycle.core.workspace import Workspace

    root = scratch_workspace(tmp_path / 'ws')
    p = root / 'params' / 'ingest.yaml'
    p.write_text(p.read_text().replace('source: "sklego:arrests"', f'source: "{source}"'))
    with pytest.raises(CommandError) as e:
        _inputs_or_refuse(Workspace.open(root))
    assert ADDRESS not in str(e.value) and "ingest.yaml: key 'source'" in str(e.value) and 'withheld' in str(e.value)


@pytest.mark.parametrize('there', ['', 'not a key', 'folder'])
def test_trust_add_withholds_the_key_file_name(tmp_path, monkeypatch, there):
    "`trust add alice --key bob@corp.example.pub.pem`, missing or no key: `no public key for alice at .../bob@...`."
    from lifecycle.release import trust

    monkeypatch.setattr(trust, '_complete', lambda ws: None)
    monkeypatch.setattr(trust, 'require_roster', lambda ws: {})
    monkeypatch.setattr(trust, '_admin', lambda ws, people, by: (by, None))
    key = tmp_path / f'{ADDRESS}.pub.pem'
    if there == 'folder':
        key.mkdir()
    elif there:
        key.write_text(there)
    with pytest.raises(Exception) as e:
        trust.trust_add(None, 'alice', 'ml_engineer', 'admin', public_key_file=key)
    assert ADDRESS not in str(e.value) and 'withheld' in str(e.value) and 'key' in str(e.value), str(e.value)


def test_admin_role_unheld_withholds_the_params_folder(tmp_path):
    "The server's start-up warning and /ready (`no registered person holds admin_role ... (<params>/flags.yaml)`)."
    from lifecycle.serve.tokens import role_unheld

    why = role_unheld({}, 'admin', tmp_path / ADDRESS / 'flags.yaml')
    assert ADDRESS not in why and 'withheld' in why and 'flags.yaml' in why, why


def test_retraining_record_withholds_the_params_folder(tmp_path):
    "A retraining started from params `bob@corp.example` recorded (and `retrain status` showed) the folder whole."
    from lifecycle.loop.iteration import _shown

    for folder in (tmp_path / 'ws' / ADDRESS, tmp_path / ADDRESS):
        said = _shown(folder, tmp_path / 'ws')
        assert ADDRESS not in said and 'withheld' in said, said
    assert _shown(tmp_path / 'ws' / 'params', tmp_path / 'ws') == 'params'


def test_simulation_ended_reads_a_withheld_runs_folder(tmp_path):
    """A retraining record names its params as `iteration._shown` shows them: with the reports folder outside the
    workspace, in a folder named with an address, the record's `params` is withheld text, and `simulation_ended` read
    it as a real path: a killed simulation's iteration was never reverted (its challenger served on)."""
    from dataclasses import replace

    from lifecycle.core.cli_support import scratch_workspace
    from lifecycle.core.workspace import Workspace
    from lifecycle.loop import iteration

    ws = Workspace.open(scratch_workspace(tmp_path / 'ws'))
    ws = replace(ws, reports_dir=(tmp_path / ADDRESS / 'reports').resolve())
    run = ws.runs_dir / '20261207T000000-sim'
    (run / 'params').mkdir(parents=True)
    it = {'params': iteration._shown(run / 'params', ws.root)}
    assert ADDRESS not in it['params']
    said = iteration.simulation_ended(ws, it)
    assert said and '20261207T000000-sim' in said and ADDRESS not in said, said
    elsewhere = iteration._shown(tmp_path / 'elsewhere' / 'params', ws.root)
    assert iteration.simulation_ended(ws, {'params': elsewhere}) == ''


def test_a_params_folder_one_command_read_is_not_withheld_by_the_next(tmp_path):
    """`names._params_read` is process-wide: a folder one in-process command (`cli` in tests) read stayed in it, and
    every later command's `fail()` withheld it too, one that never read it: a test of that command passed (its refusal
    'withheld' the address) only because an earlier test had read a folder of that name."""
    import shutil

    from lifecycle.core import names
    from lifecycle.core.cli_support import CommandError, scratch_workspace
    from lifecycle.core.workspace import PARAMS_FILE, Workspace

    root = scratch_workspace(tmp_path / 'ws')
    shutil.copytree(root / 'params', root / ADDRESS)
    state = Workspace.open(root).state_dir
    state.mkdir(parents=True, exist_ok=True)
    (state / PARAMS_FILE).write_text(f"{root / ADDRESS}\n")
    seen = []

    @command()
    def reads(as_json: bool = typer.Option(False, '--json')) -> Result:
        raise CommandError(f"the params ({Workspace.open(root).params_dir})")

    @command()
    def later(as_json: bool = typer.Option(False, '--json')) -> Result:
        seen.append(set(names._params_read))
        raise CommandError('refused')

    r = invoke(reads)
    assert r.exit_code == 2 and ADDRESS not in r.output and 'withheld' in r.output, r.output
    assert invoke(later).exit_code == 2 and seen == [set()], seen


def test_retraining_of_another_model_names_its_recorded_params_withheld(tmp_path):
    """`retrain run` refused for another model's retraining quotes the record's `params` in its hint: a record written
    before `iteration._shown` withheld names holds the folder raw (`bob@corp.example`), and no workspace of this
    command read it (not in `names._params_read`), so `fail()` printed the address."""
    from lifecycle.core.cli_support import scratch_workspace
    from lifecycle.core.workspace import Workspace
    from lifecycle.loop import iteration

    ws = Workspace.open(scratch_workspace(tmp_path / 'ws'))
    it = dict(id='20261207T000000-abcdef', status='data', started=1.0, finished=None, history=[], recorded=True)
    it['champion'] = {'version': '1'}
    iteration.save(ws.state_dir, {**it, 'model': 'other', 'params': ADDRESS})
    with pytest.raises(iteration.RetrainBlocked) as e:
        iteration.run(ws)
    assert ADDRESS not in str(e.value) and '--params <folder name withheld' in str(e.value), str(e.value)


def test_refusal_naming_the_settings_params_folder_withholds_it(tmp_path):
    """settings.ini's `params_dir = bob@corp.example` (no run yet, no --params): `Workspace.open` never went through
    `with_params`, so `names._params_read` lacked it and every refusal naming `ws.params_dir` printed the address."""
    import shutil

    from lifecycle.core.cli_support import CommandError, scratch_workspace
    from lifecycle.core.workspace import Workspace

    root = scratch_workspace(tmp_path / 'ws')
    shutil.copytree(root / 'params', root / ADDRESS)
    ini = root / 'settings.ini'
    ini.write_text(ini.read_text().replace('params_dir = params', f'params_dir = {ADDRESS}'))

    @command()
    def cmd(as_json: bool = typer.Option(False, '--json')) -> Result:
        ws = Workspace.open(root)
        assert ws.params_dir.name == ADDRESS
        raise CommandError(f"--role 'x': the admin_role of {ws.params_dir}/flags.yaml")

    r = invoke(cmd)
    assert r.exit_code == 2 and ADDRESS not in r.output and 'withheld' in r.output, r.output


def test_holds_contact_reads_a_model_or_archive_extension_as_no_domain():
    """`weights@best.pt`, `model@acme.onnx`, `backup@server.tar.gz` were read as e-mail addresses (their extension as a
    top-level domain) and withheld in every message; an address before such an extension, in a folder's name or inside
    a longer name is withheld still, and a folder `bob@sapo.pt` (`.pt`: Portugal) too."""
    from lifecycle.core.names import holds_contact, shown_path

    for ordinary in ('weights@best.pt', 'model@acme.onnx', 'backup@server.tar.gz', 'backup@server.zip', 'run@v2.ckpt',
                     'clf@final.pkl', 'enc@v3.joblib', 'x@y.log', 'cfg@prod.yaml'):  # fmt: skip
        assert not holds_contact(ordinary) and shown_path(f'models/{ordinary}') == f'models/{ordinary}', ordinary
    for address in ('bob@corp.example.csv', 'jane.doe@example.co.uk.parquet', 'bob@corp.example.onnx',
                    'old-bob@corp.example.tar.gz', 'bob@sapo.pt.csv', 'bob@corp.example.pt', 'x@mail.com'):  # fmt: skip
        assert holds_contact(address), address
    assert holds_contact('bob@sapo.pt', folder=True) and 'bob@' not in shown_path('data/bob@sapo.pt/weights@best.pt')
    assert shown_path('data/x@mail.com/weights@best.pt') == (
        'data/<folder name withheld: it holds personal data>/weights@best.pt'
    )


def test_refusal_naming_a_file_named_after_the_params_folder_calls_it_a_file(tmp_path):
    """With `--params bob@corp.example`, a refusal naming a file `bob@corp.example.csv` beside it (or `old-bob@...`)
    said `<folder name withheld: ...>.csv`: the folder's name was swapped inside the file's, calling a file a folder.
    The whole name is withheld, called a file; the folder is still called a folder, before a full stop too."""
    d = tmp_path / ADDRESS
    d.mkdir()

    @command()
    def cmd(as_json: bool = typer.Option(False, '--json')) -> Result:
        from lifecycle.core.cli_support import CommandError

        raise CommandError(f"no file at {tmp_path}/{ADDRESS}.csv nor old-{ADDRESS}.csv (params: {d}/ingest.yaml, {d}.)")

    r = invoke(with_params_option(cmd), ['--params', str(d), '--json'])
    file, folder = ('<file name withheld: it holds personal data>', '<folder name withheld: it holds personal data>')
    said = r.output.replace(str(tmp_path), 'T')
    assert r.exit_code == 2 and ADDRESS not in said and '.csv' not in said, said
    assert f'no file at T/{file} nor {file} (params: T/{folder}/ingest.yaml, T/{folder}.)' in said, said


def test_os_error_naming_a_folder_calls_it_a_folder(tmp_path):
    "`[Errno 21] Is a directory: '.../bob@corp.example'` (a folder given for a file) said `<file name withheld ...>`."
    d = tmp_path / ADDRESS
    d.mkdir()

    @command()
    def cmd(as_json: bool = typer.Option(False, '--json')) -> Result:
        open(d)

    r = invoke(cmd, ['--json'])
    assert r.exit_code == 1 and ADDRESS not in r.output and 'Is a directory' in r.output, r.output
    assert '<folder name withheld: it holds personal data>' in r.output, r.output


def test_retraining_record_written_before_withholding_is_shown_withheld(tmp_path, monkeypatch):
    """A retraining record written before `iteration._shown` withheld names holds its params folder raw: `retrain
    history --id` (text and --json) printed `bob@corp.example`. Read, it names the folder as `shown_path` does; the
    user's file is left as it is."""
    from lifecycle.core.cli_support import scratch_workspace
    from lifecycle.core.workspace import Workspace
    from lifecycle.loop import iteration
    from lifecycle.loop.commands import retrain_history

    root = scratch_workspace(tmp_path / 'ws')
    monkeypatch.setenv('LIFECYCLE_WORKSPACE', str(root))
    ws = Workspace.open(root)
    it = dict(id='20261207T000000-abcdef', status='data', started=1.0, finished=None, history=[], recorded=True)
    iteration.save(ws.state_dir, {**it, 'champion': {'version': '1'}, 'params': f'{tmp_path}/{ADDRESS}'})
    written = (iteration.iterations_dir(ws.state_dir) / f"{it['id']}.json").read_text()
    for args in ([], ['--json']):
        r = invoke(retrain_history, ['--id', it['id'], *args])
        assert r.exit_code == 0 and ADDRESS not in r.output and 'withheld' in r.output, r.output
    assert iteration.history(ws.state_dir)[0]['params'] == f'{tmp_path}/<folder name withheld: it holds personal data>'
    assert (iteration.iterations_dir(ws.state_dir) / f"{it['id']}.json").read_text() == written


def test_a_database_url_a_message_quotes_with_more_after_it_is_shown_masked():
    "A URL followed by its query (`...db?sslmode=require`) must be masked as before names were matched whole."
    from lifecycle.data.sources import _withheld_in

    said = _withheld_in('cannot connect to postgresql://u:pw@h/db?sslmode=require', 'postgresql://u:pw@h/db')
    assert 'pw' not in said and said.endswith('postgresql://***:***@h/db?sslmode=require'), said


def test_a_params_folder_quoted_in_backticks_or_brackets_is_called_a_folder(tmp_path):
    "A hint quoting the folder in backticks (`--params DIR`) or brackets called it a file and lost the closing mark."
    from lifecycle.core.names import _withheld_in

    d = f'{tmp_path}/{ADDRESS}'
    said = _withheld_in(f'run `retrain run --params {d}` or [{ADDRESS}]', (d, 'folder'))
    folder = '<folder name withheld: it holds personal data>'
    assert said == f'run `retrain run --params {tmp_path}/{folder}` or [{folder}]', said


def test_withholding_in_a_long_message_takes_linear_time():
    """A message with a long run of name characters (a line of data, a token) took a time that grows as the run's
    length squared to withhold a params folder in (1.7 s for 8000 characters, hours for 1 MB): each character began a
    search for a name to the run's end. 20 KB took 10 s; now a few milliseconds (1 MB: 0.2 s), the folder withheld."""
    import time

    from lifecycle.core.names import _withheld_in

    d, keys = f'/data/{ADDRESS}', ('/d/ann@gmail.com.csv', ('/e/+44 7911 123456', 'folder'))
    for run in ('a' * 20_000, 'a.' * 10_000, 'bob@corp.exampl' * 1300):
        start = time.perf_counter()
        said = _withheld_in(f'{run} {d}/x.yaml {run}{ADDRESS}', (d, 'folder'), *keys)
        assert time.perf_counter() - start < 5, len(run)  # (an order, not a speed goal: 10 s before, ms now)
        assert ADDRESS not in said and said.count('withheld') == 2, said[-200:]


def test_retraining_record_names_its_files_withheld_in_a_workspace_under_an_address(tmp_path, monkeypatch):
    """In a workspace under a folder `bob@corp.example`, a retraining record's artifacts (the record, the labelled
    batch, its lineage, the MLflow database, the rollout, the audit log) and its data's batch and lineage were written
    and shown whole by `retrain history --id` (text and --json) and the site. Written and read, each is withheld."""
    from lifecycle.core.cli_support import scratch_workspace
    from lifecycle.core.workspace import Workspace
    from lifecycle.loop import iteration
    from lifecycle.loop.commands import retrain_history

    root = scratch_workspace(tmp_path / ADDRESS / 'ws')
    monkeypatch.setenv('LIFECYCLE_WORKSPACE', str(root))
    ws = Workspace.open(root)
    files = dict(batch=f'{ws.state_dir}/x-labelled.csv', lineage=f'{ws.state_dir}/x-labelled.lineage.json')
    it = dict(id='20261207T000000-abcdef', status='data', started=1.0, finished=None, history=[], recorded=True)
    it.update(champion={'version': '1'}, data=files, train=dict(mlflow_run_id='abc'), canary=dict(rollout_id='r1'))
    written = iteration.artifacts(ws, it)
    assert {'record', 'labelled_batch', 'lineage', 'mlflow_run', 'rollout', 'audit_log'} <= set(written), written
    assert ADDRESS not in str(written) and str(written).count('<folder name withheld') == 6, written
    iteration.save(ws.state_dir, {**it, 'artifacts': {'audit_log': str(ws.audit_path)}})  # (as older records hold)
    for args in ([], ['--json']):
        r = invoke(retrain_history, ['--id', it['id'], *args])
        assert r.exit_code == 0 and ADDRESS not in r.output and 'withheld' in r.output and 'x-labelled' in r.output
    from lifecycle.app.site import _iterations, iteration_page

    page = iteration_page(_iterations(ws)[0], None, {}).text
    assert ADDRESS not in page and 'audit.log' in page, [ln for ln in page.splitlines() if ADDRESS in ln]


def test_a_failed_retraining_step_records_the_params_folder_withheld(tmp_path):
    """A retraining step's error of this project's own names the params folder as given (`fail` withholds it for a
    command): its first line was recorded whole in the record's failures, and the third in a row in the revert's
    reason and the `retrain.revert` audit entry: a folder `bob@corp.example` (outside the workspace, or the
    workspace's own folder) went out raw, a name cut at 300 characters too."""
    import shutil

    from lifecycle.core.cli_support import scratch_workspace
    from lifecycle.core.params import ParamsError
    from lifecycle.core.workspace import Workspace
    from lifecycle.loop import iteration

    root = scratch_workspace(tmp_path / ADDRESS / 'ws')
    shutil.copytree(root / 'params', tmp_path / ADDRESS / 'params')
    ws = Workspace.open(root, params_dir=tmp_path / ADDRESS / 'params')
    it = dict(id='20261207T000000-abcdef', status='data', champion={'version': '1'}, history=[])
    cut = 'x' * (295 - str(ws.params_dir).index(ADDRESS))  # (300 characters end inside the address)
    for said in (f'{ws.params_dir}/train.yaml: bad', f'{root}/.lifecycle/x: bad', f'{cut}{ws.params_dir}'):
        reverted = iteration._failed(ws, it, 'data', ParamsError(said))
    assert reverted == 'reverted' and len(it['failures']) == 3, it
    errors = [f['error'] for f in it['failures']]
    kept = str(errors) + it['decision']['reason'] + ws.audit_path.read_text()
    assert 'bob@' not in kept and all('<folder name withheld' in e for e in errors[:2]), kept


@pytest.mark.parametrize(
    'uri, shown',
    [
        ('postgresql://u:pw@db.internal/mlflow?sslmode=require', 'postgresql://***:***@db.internal/mlflow?sslmode=require'),
        ('http://u:pw@mlflow.internal:5000', 'http://***:***@mlflow.internal:5000'),
    ],
)
def test_retraining_record_keeps_its_mlflow_run_with_a_tracking_server(tmp_path, monkeypatch, uri, shown):
    """A record's `mlflow_run` artifact is the tracking URL and the run (`URL run ID`); read whole as a URL to withhold
    a contact in it, a query took the run in (`?sslmode=require+run+abc`) and a server's URL with a user was said to be
    '(a URL that cannot be parsed)': the run was lost from `retrain history --id` and the site, in any workspace."""
    import json

    from lifecycle.core.cli_support import scratch_workspace
    from lifecycle.core.workspace import Workspace
    from lifecycle.loop import iteration
    from lifecycle.loop.commands import retrain_history

    root = scratch_workspace(tmp_path / 'ws')
    monkeypatch.setenv('LIFECYCLE_WORKSPACE', str(root))
    monkeypatch.setenv('LIFECYCLE_TRACKING_URI', uri)
    ws = Workspace.open(root)
    it = dict(id='20261207T000000-abcdef', status='data', started=1.0, finished=None, history=[], recorded=True)
    it.update(champion={'version': '1'}, data={}, train=dict(mlflow_run_id='abc'))
    assert iteration.artifacts(ws, it)['mlflow_run'] == f'{shown} run abc'
    iteration.save(ws.state_dir, {**it, 'artifacts': {'mlflow_run': f'{shown} run abc'}})  # (as older records hold)
    r = invoke(retrain_history, ['--id', it['id'], '--json'])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)['record']['artifacts']['mlflow_run'] == f'{shown} run abc', r.output


def test_a_url_naming_a_folder_with_an_address_in_its_path_withholds_it_escaped_or_not():
    """MLflow's tracking URI as `shown_url` shows it writes an address in its path as `bob%40corp.example`, which was
    no address to `holds_contact`, and `shown_source` looked at no path of a URL but a SQLite file's: a retraining
    record's `mlflow_run` (`file:///.../bob%40corp.example/mlruns run ID`) named the folder. Escaped or not, it is
    withheld in any URL's path; a URL holding no contact is shown as before."""
    from lifecycle.core.names import holds_contact
    from lifecycle.core.settings import shown_url
    from lifecycle.data.sources import shown_source

    assert holds_contact('bob%40corp.example') and holds_contact('%2B44%207911%20123456')
    assert not holds_contact('sales%202024.csv') and not holds_contact('100%25.csv')
    for url in (f'file:///data/{ADDRESS}/mlruns', shown_url(f'file:///data/{ADDRESS}/mlruns')):
        assert shown_source(url) == 'file:///data/<folder name withheld: it holds personal data>/mlruns', url
    said = shown_source(f'postgresql://u:pw@h:5432/{ADDRESS}?sslmode=require')
    assert ADDRESS not in said and said.startswith('postgresql://***:***@h:5432/<')
    assert said.endswith('?sslmode=require')
    for plain in ('file:///data/x/mlruns', 'postgresql://u:pw@h/db?sslmode=require', 'http://u:pw@mlflow:5000'):
        assert shown_source(plain) == shown_url(plain), plain


def test_a_url_shows_no_contact_in_its_query_host_or_path_and_a_plain_url_as_before():
    """`shown_url` masked a URL's user, password and password-like parameters only: any other parameter's value went
    into messages whole (`?application_name=bob@corp.example`, libpq's `options`, a phone number %-escaped), and so
    did a database named `bob@corp.example` (`tracking_uri` in a refusal: `shown_source` withheld it, `shown_url` did
    not). Each key or value holding a contact is `***`, as read or escaped; a name of the path holding one withheld; a
    URL with no contact in it is shown byte for byte as before."""
    from lifecycle.core.settings import SettingsError, shown_url
    from lifecycle.core.tracking import _unavailable
    from lifecycle.data.sources import shown_source

    phone = '+44 7700 900123'
    for url, shown in (
        (f'postgresql://db.example/log?application_name={ADDRESS}', 'postgresql://db.example/log?application_name=***'),
        ('postgresql://db.example/log?options=-c%20app.owner%3Dann%40corp.example&sslmode=require',
         'postgresql://db.example/log?options=***&sslmode=require'),
        ('postgresql://db.example/log?tag=%2B44%207700%20900123', 'postgresql://db.example/log?tag=***'),
        ('postgresql://db.example/log?tag=+44+7700+900123', 'postgresql://db.example/log?tag=***'),  # (`+`: a space)
        ('postgresql://db.example/log?tag=bob%252540corp.example', 'postgresql://db.example/log?tag=***'),
        (f'postgresql://u:pw@h:5432/{ADDRESS}?sslmode=require',
         'postgresql://***:***@h:5432/<file name withheld: it holds personal data>?sslmode=require'),
        ('postgresql://u:pw@bob%40corp.example/db', 'postgresql://***:***@***/db'),
        (f'http://{phone.replace(" ", "-")}:5000', 'http://***:5000'),
        (f'sqlite:///file:x.db?mode=ro&uri=true&owner={ADDRESS}', 'sqlite:///file:x.db?mode=ro&uri=true&owner=***'),
        (f'sqlite+pysqlcipher://:pw@/x.db?cipher=aes&owner={ADDRESS}',
         'sqlite+pysqlcipher://:***@/x.db?cipher=aes&owner=***'),
    ):  # fmt: skip
        assert shown_url(url) == shown == shown_source(url) == shown_url(shown), url  # (shown again: the same)
    said = shown_url(f'postgresql://h/db?a=1&a={ADDRESS}&bob%40corp.example=x')
    assert said == 'postgresql://h/db?a=1&a=***&***=x' and shown_url(said) == 'postgresql://h/db?***=x&a=1&a=***'
    assert shown_url(f'/data/{phone}/mlruns') == '(a URL that cannot be parsed)'  # (no URL: as one with an '@' is)
    for plain, shown in (
        ('postgresql://u:pw@h:5432/db?sslmode=require', 'postgresql://***:***@h:5432/db?sslmode=require'),
        ('postgresql://db.example/log?application_name=lifecycle',
         'postgresql://db.example/log?application_name=lifecycle'),
        ('postgresql://u:p%40ss@h/db?password=x&sslmode=require&application_name=lifecycle',
         'postgresql://***:***@h/db?application_name=lifecycle&password=***&sslmode=require'),
        ('postgresql://h/db?options=-c%20statement_timeout%3D5000&tag=%2B1.5',
         'postgresql://h/db?options=-c+statement_timeout%3D5000&tag=%2B1.5'),
        ('mysql+pymysql://u:pw@h/db?charset=utf8mb4&ssl_ca=/etc/ca.pem',
         'mysql+pymysql://***:***@h/db?charset=utf8mb4&ssl_ca=%2Fetc%2Fca.pem'),
        ('mssql+pyodbc://u:pw@dsn?driver=ODBC+Driver+18+for+SQL+Server',
         'mssql+pyodbc://***:***@dsn?driver=ODBC+Driver+18+for+SQL+Server'),
        ('file:///data/x/mlruns', 'file:///data/x/mlruns'), ('http://u:pw@mlflow:5000', 'http://***:***@mlflow:5000'),
        ('sqlite:///file:x.db?mode=ro&uri=true', 'sqlite:///file:x.db?mode=ro&uri=true'), ('mlruns', 'mlruns'),
        ('sqlite:///a b.db?timeout=20', 'sqlite:///a b.db?timeout=20'),
        ('postgresql://h/100%25', 'postgresql://h/100%25'),
    ):  # fmt: skip
        assert shown_url(plain) == shown, plain
    with pytest.raises(SettingsError) as e:  # (a caller: the tracking URI's refusal, its wording as it was)
        with _unavailable(f'postgresql://db/{ADDRESS}?application_name={phone}&options=100%%'):
            pass
    said = str(e.value)
    assert said.startswith('the MLflow tracking URI postgresql://db/<file name withheld: it holds personal data>?')
    assert "it holds '%%'" in said and ADDRESS not in said and 'bob%40' not in said and '7700' not in said, said


def test_a_url_with_an_ipv6_host_keeps_it_in_brackets_and_withholds_its_path():
    """Reported: `shown_url` lost an IPv6 host's brackets. It did not (SQLAlchemy renders `[::1]`; asserted here, so
    that it stays so); but a path's name holding a contact behind a bracketed host that is no IP address (`[db:1]`,
    which `urlsplit` refuses) was shown whole by `shown_source`, which split the URL with `urlsplit`."""
    from lifecycle.core.settings import shown_url
    from lifecycle.data.sources import shown_source

    for url, shown in (
        ('postgresql://user:pw@[::1]:5432/db', 'postgresql://***:***@[::1]:5432/db'),
        ('postgresql+psycopg://[fe80::1%25eth0]:5432/db?sslmode=require',
         'postgresql+psycopg://[fe80::1%25eth0]:5432/db?sslmode=require'),
        ('http://u:pw@[2001:db8::1]:5000/x', 'http://***:***@[2001:db8::1]:5000/x'),
        (f'postgresql://user:pw@[::1]:5432/{ADDRESS}',
         'postgresql://***:***@[::1]:5432/<file name withheld: it holds personal data>'),
        (f'postgresql://user:pw@[db:1]/{ADDRESS}?sslmode=require',
         'postgresql://***:***@[db:1]/<file name withheld: it holds personal data>?sslmode=require'),
    ):  # fmt: skip
        assert shown_url(url) == shown == shown_source(url), url


def test_refusal_in_a_workspace_under_an_address_withholds_it_whatever_its_params(tmp_path, monkeypatch):
    """A workspace in a folder `bob@corp.example` reading its params from another folder (`--params`, the last run's):
    `fail` withheld the params folders only, so a damaged retraining record was refused naming its path whole, and so
    was settings.ini's unknown key. A workspace in no such folder is named whole, as before."""
    import shutil

    from lifecycle.core.cli_support import scratch_workspace
    from lifecycle.core.workspace import Workspace
    from lifecycle.loop.commands import retrain_history

    for under, withheld in ((ADDRESS, True), ('plain', False)):
        root = scratch_workspace(tmp_path / under / 'ws')
        shutil.copytree(root / 'params', tmp_path / f'{under}-params')
        monkeypatch.setenv('LIFECYCLE_WORKSPACE', str(root))
        monkeypatch.setenv('LIFECYCLE_PARAMS_DIR', str(tmp_path / f'{under}-params'))
        Workspace.open(root)  # (its state folder made, of this version's format)
        (root / '.lifecycle' / 'retrain' / 'iterations').mkdir(parents=True)
        (root / '.lifecycle' / 'retrain' / 'iterations' / 'X.json').write_text('{}')
        for args in ([], ['--json']):
            r = invoke(retrain_history, args)
            assert r.exit_code != 0 and 'X.json' in r.output, r.output
            assert (ADDRESS not in r.output and 'withheld' in r.output) if withheld else str(root) in r.output, r.output
        ini = (root / 'settings.ini').read_text()
        (root / 'settings.ini').write_text(ini.replace('[workspace]', '[workspace]\nbogus = 1', 1))
        r = invoke(retrain_history, [])
        assert r.exit_code != 0 and 'bogus' in r.output, r.output
        assert (ADDRESS not in r.output and 'withheld' in r.output) if withheld else str(root) in r.output, r.output
        (root / 'settings.ini').write_text(ini)  # (the next workspace is copied from this one)


def test_results_of_a_workspace_under_an_address_withhold_it(tmp_path, monkeypatch):
    """In a workspace in a folder `bob@corp.example`, a command that went through printed its paths whole: `status`
    (workspace, state folder, tracking URI) and `audit verify` (the log), as text and --json; `fail` withheld them in a
    refusal only. The result the command returns keeps its real paths; a workspace in no such folder is named whole."""
    from lifecycle.app.commands import status
    from lifecycle.core.cli_support import scratch_workspace
    from lifecycle.core.commands import audit_verify

    for under, withheld in ((ADDRESS, True), ('plain', False)):
        root = scratch_workspace(tmp_path / under / 'ws')
        monkeypatch.setenv('LIFECYCLE_WORKSPACE', str(root))
        for cmd in (status, audit_verify):
            for args in ([], ['--json']):
                r = invoke(cmd, args)
                assert r.exit_code == 0 and '/ws/.lifecycle' in r.output, r.output
                assert (ADDRESS not in r.output and 'withheld' in r.output) if withheld else str(root) in r.output
        assert str(audit_verify(as_json=False).path) == str(root / '.lifecycle' / 'audit.log')  # (returned: real)


def test_server_of_a_workspace_under_an_address_withholds_it(tiny_template, tmp_path, caplog):
    """A server in a workspace in a folder `+44 7911 123456` whose flags spec is damaged said the spec's path whole in
    its log lines (the alert, `not ready ...`), /ready's not_ready and flags_problem, and the alert's audit entry."""
    from conftest import copy_workspace
    from lifecycle.core.workspace import Workspace
    from lifecycle.serve import flags as fl
    from lifecycle.serve.server import Server

    phone = '+44 7911 123456'
    s = Workspace.open(copy_workspace(tiny_template, tmp_path / phone / 'ws'))
    fl.spec_path(s).write_text('{"model_name": ')
    with caplog.at_level('WARNING', logger='lifecycle'):
        srv = Server(s)
        try:
            status = srv.status()
        finally:
            srv.close()
    said = [caplog.text, str(status), s.audit_path.read_text(), (s.state_dir / 'audit.payloads.jsonl').read_text()]
    assert 'spec.json: not a flags spec' in caplog.text and 'spec.json' in status['flags_problem'], said
    assert all(phone not in x for x in said) and 'withheld' in status['not_ready'], said


def test_refusal_quoting_a_url_of_a_workspace_under_an_address_withholds_it_escaped(tmp_path, monkeypatch):
    """A URL names a folder `bob@corp.example` escaped (`bob%40corp.example`: SQLAlchemy's rendering, `shown_url`; a
    path's `as_uri()`), which the swaps of the folders a workspace read did not match: `status` with a `file:` tracking
    URI was refused naming the workspace's folder, escaped. Escaped or not, it is withheld."""
    from lifecycle.app.commands import status
    from lifecycle.core.cli_support import scratch_workspace
    from lifecycle.core.names import _withheld_in

    root = scratch_workspace(tmp_path / ADDRESS / 'ws')
    monkeypatch.setenv('LIFECYCLE_WORKSPACE', str(root))
    monkeypatch.setenv('LIFECYCLE_TRACKING_URI', f'file://{root}/mlruns')
    for args in ([], ['--json']):
        r = invoke(status, args)
        assert r.exit_code == 2 and "scheme 'file:'" in r.output, r.output
        assert 'bob' not in r.output and '/<folder name withheld: it holds personal data>/ws/mlruns' in r.output
    phone = tmp_path / '+44 7911 123456'
    said = _withheld_in(f'at {phone.as_uri()}/x and {phone}/x', (phone, 'folder'))
    assert '7911' not in said and said.count('<folder name withheld') == 2, said


def test_folders_with_no_contact_make_no_swaps_and_are_read_once(tmp_path, monkeypatch):
    """A server asks `_held_swaps` at each refused request and each /ready and /ping: with `--params` (no name holding
    a contact anywhere) it read every name of the folder through `holds_contact` again each time, and gave back its
    unchanged names, so each message and /ready's every value went through the swaps (tens of microseconds a
    request, for nothing). Nothing withheld is no swap, a result not walked; the folders are read once."""
    from lifecycle.core import names

    monkeypatch.setenv('LIFECYCLE_PARAMS_DIR', str(tmp_path / 'params'))
    assert names._held_swaps() == {}
    status = {'ready': False, 'not_ready': 'x', 'deployed': {'control': '1'}}
    assert names._withheld_result(status, names._held_swaps()) is status
    monkeypatch.setenv('LIFECYCLE_PARAMS_DIR', str(tmp_path / ADDRESS))
    held = names._held_swaps()
    assert held[ADDRESS] == '<folder name withheld: it holds personal data>' and all(k != v for k, v in held.items())

    def read(*a, **k):
        raise AssertionError('a folder read again')

    monkeypatch.setattr(names, 'holds_contact', read)
    assert names._held_swaps() == held


def test_log_lines_of_a_workspace_under_an_address_withhold_it(tmp_path, caplog):
    """In a workspace in a folder `bob@corp.example`, the log lines of this project's own (`lifecycle` and
    `lifecycle.serving` loggers: a damaged audit log's warning on every read, `lifecycle audit show` on stderr; a torn
    line not noted, a prediction log's) named the folder whole: only refusals, results and the server's alerts
    withheld it. The folders the workspace read are withheld in each such line, as `fail` withholds them."""
    import logging

    from lifecycle.core import audit
    from lifecycle.core.cli_support import scratch_workspace
    from lifecycle.core.workspace import Workspace

    ws = Workspace.open(scratch_workspace(tmp_path / ADDRESS / 'ws'))
    audit.append(ws.audit_path, 'x.y', 'z', reason='r')
    with ws.audit_path.open('a') as f:
        f.write('garbage\n')
    with caplog.at_level('WARNING', logger='lifecycle'):
        audit.read(ws.audit_path)
        logging.getLogger('lifecycle.serving').warning('%s: 100%% written', ws.state_dir / 'predictions.db')
    assert 'are not entries' in caplog.text and '100% written' in caplog.text, caplog.text
    assert ADDRESS not in caplog.text and caplog.text.count('<folder name withheld') == 2, caplog.text


def test_a_result_holding_other_containers_is_printed_withheld(tmp_path):
    """A command's printed result is a copy with the folders withheld: a field holding a defaultdict made it fail
    (`first argument must be callable`: a traceback), a Counter's keys became (key, count) pairs, and a set, a named
    tuple, a PurePath or another object (`--json` prints its `str`) were left as they were, naming the folder whole."""
    from collections import Counter, defaultdict, namedtuple
    from pathlib import PurePosixPath

    from lifecycle.core.cli_support import dumps
    from lifecycle.core.names import _path_swaps, _withheld_result

    class Named:
        def __str__(self):
            return f'the log at {folder}/audit.log'

    swaps, folder = {}, str(tmp_path / ADDRESS / 'ws')
    _path_swaps(swaps, folder, 'folder')
    at, pair = f'{folder}/x.csv', namedtuple('Pair', 'path rows')
    values = dict(d=defaultdict(list, {at: [at]}), c=Counter({at: 2}), s={at}, f=frozenset([at]), n=pair(at, 3),
                  p=PurePosixPath(at), o=Named(), t=(at, PurePosixPath(at)))  # fmt: skip
    shown = _withheld_result(values, swaps)
    assert ADDRESS not in dumps(shown) and ADDRESS not in str(shown), shown
    assert isinstance(shown['d'], defaultdict) and shown['d']['new'] == [] and list(shown['c'].values()) == [2]
    assert isinstance(shown['n'], pair) and shown['n'].rows == 3 and isinstance(shown['p'], PurePosixPath)
    assert isinstance(shown['s'], set) and isinstance(shown['f'], frozenset) and ADDRESS in str(values)


def test_server_worker_refusing_its_workspace_withholds_the_folder(tmp_path, monkeypatch, capsys):
    """A server's worker (`app_factory`, which `lifecycle serve` runs through uvicorn) refusing its workspace (a
    settings.ini key it does not know; a flags, PII key or prediction-log error) printed `error: {e}` whole: a
    workspace in a folder `bob@corp.example` was named in it. It is withheld, as `fail` withholds it."""
    from lifecycle.core.cli_support import scratch_workspace
    from lifecycle.serve.serving import app_factory

    root = scratch_workspace(tmp_path / ADDRESS / 'ws')
    ini = root / 'settings.ini'
    ini.write_text(ini.read_text().replace('[workspace]', '[workspace]\nbogus = 1', 1))
    monkeypatch.setenv('LIFECYCLE_ROOT', str(root))
    with pytest.raises(SystemExit) as e:
        app_factory()
    err = capsys.readouterr().err
    assert e.value.code == 2 and 'bogus' in err and 'settings.ini' in err, err
    assert ADDRESS not in err and '<folder name withheld: it holds personal data>/ws/settings.ini' in err, err


def test_a_log_line_with_an_exception_withholds_the_folder_in_it(tmp_path, caplog):
    """A log line of a workspace in a folder `bob@corp.example` carrying an exception (`exc_info`: a prediction row's
    waiter failed on its database) printed the exception's message, naming the folder, whole after the line withheld."""
    import logging

    from lifecycle.core.cli_support import scratch_workspace
    from lifecycle.core.workspace import Workspace

    ws = Workspace.open(scratch_workspace(tmp_path / ADDRESS / 'ws'))
    e = OSError(2, 'No such file or directory', str(ws.state_dir / 'predictions.db'))
    with caplog.at_level('WARNING', logger='lifecycle'):
        logging.getLogger('lifecycle.serving').error('a prediction row\'s waiter failed', exc_info=e)
    assert 'waiter failed' in caplog.text and 'No such file' in caplog.text and 'predictions.db' in caplog.text
    assert ADDRESS not in caplog.text and '<folder name withheld' in caplog.text, caplog.text


def test_a_log_line_with_its_stack_withholds_the_folder_in_it(tmp_path, caplog):
    """A log line logged with `stack_info=True` carries the stack it was logged from, which a Formatter prints as it
    finds it: a line logged by code in a file of a workspace in a folder `bob@corp.example` (a notebook's, a hook's)
    named the folder whole in its stack, after the line's message withheld. Its stack is withheld too; a stack naming
    no such folder is kept as it is."""
    from lifecycle.core.cli_support import scratch_workspace
    from lifecycle.core.workspace import Workspace

    ws = Workspace.open(scratch_workspace(tmp_path / ADDRESS / 'ws'))
    code = "import logging\nlogging.getLogger('lifecycle.serving').warning('a hook warned', stack_info=True)\n"
    with caplog.at_level('WARNING', logger='lifecycle'):
        exec(compile(code, str(ws.root / 'hook.py'), 'exec'), {})
        exec(compile(code, str(tmp_path / 'plain' / 'hook.py'), 'exec'), {})
    held, plain = (r for r in caplog.records if r.getMessage() == 'a hook warned')
    assert 'a hook warned' in caplog.text and 'Stack (most recent call last)' in caplog.text, caplog.text
    assert '<folder name withheld: it holds personal data>/ws/hook.py' in held.stack_info, held.stack_info
    assert ADDRESS not in caplog.text and f'{tmp_path}/plain/hook.py' in plain.stack_info, caplog.text


@pytest.mark.parametrize('json', [False, True])
def test_watchers_say_each_missed_pass_withholding_the_workspace_folder(tmp_path, monkeypatch, json):
    """`monitor run --every` and `retrain run --every` print each look or pass as it goes, not through the decorator:
    in a workspace in a folder `bob@corp.example` whose prediction log cannot be read, each missed one said
    `the prediction log at sqlite:////.../bob@corp.example/ws/.lifecycle/predictions.db cannot be read` whole (only
    the last, the command's refusal, withheld it), text and --json alike."""
    from lifecycle.core.cli_support import scratch_workspace
    from lifecycle.core.workspace import Workspace
    from lifecycle.loop.commands import retrain_run
    from lifecycle.operate.commands import monitor_run

    root = scratch_workspace(tmp_path / ADDRESS / 'ws')
    monkeypatch.setenv('LIFECYCLE_WORKSPACE', str(root))
    (Workspace.open(root).state_dir / 'predictions.db').write_bytes(b'not a database, ' * 8)
    for cmd in (monitor_run, retrain_run):
        r = invoke(cmd, ['--every', '0.01', '--times', '2', *(['--json'] if json else [])])
        assert r.exit_code != 0 and r.output.count('cannot be read') >= 2, r.output
        assert ADDRESS not in r.output and r.output.count('<folder name withheld') == r.output.count('cannot be read')


@pytest.mark.parametrize('json', [False, True])
def test_ingest_watch_says_each_batch_withholding_the_workspace_folder(tmp_path, monkeypatch, json):
    """`ingest --watch` prints each batch's outcome as it goes, not through the decorator: in a workspace in a folder
    `bob@corp.example`, each batch's drift report (`drift report: /.../bob@corp.example/ws/reports/ingest/...`) was
    named whole, text and --json alike (only the watch's last line, the command's, withheld it)."""
    from sklego.datasets import load_arrests

    from lifecycle.core.cli_support import scratch_workspace
    from lifecycle.data import commands
    from lifecycle.data.commands import ingest

    root = scratch_workspace(tmp_path / ADDRESS / 'ws')
    monkeypatch.setenv('LIFECYCLE_WORKSPACE', str(root))
    monkeypatch.setattr(commands, '_drift_report', lambda s, p, r: str(s.reports_dir / 'ingest' / 'x-drift.html'))
    (root / 'inbox').mkdir()
    load_arrests(as_frame=True).head(50).to_csv(root / 'inbox' / '0.csv', index=False)
    r = invoke(ingest, ['--watch', str(root / 'inbox'), '--max-batches', '1', '--interval', '0.05',
                        *(['--json'] if json else [])])  # fmt: skip
    assert r.exit_code == 0 and 'x-drift.html' in r.output, r.output
    assert ADDRESS not in r.output and '<folder name withheld' in r.output, r.output


def test_uvicorn_error_lines_of_a_workspace_under_an_address_withhold_it(tmp_path):
    """A server's route that raised (a bug, answered 500 by `serving.crashed`, whose own line is withheld) is logged
    again by uvicorn on `uvicorn.error`, traceback and all, as Starlette re-raises it: in a workspace in a folder
    `bob@corp.example`, the exception's text (an OSError naming `.lifecycle/flags/spec.json`) named the folder whole
    on the server's stderr. That logger's lines are withheld as the project's own are."""
    import io
    import logging

    from lifecycle.core.cli_support import scratch_workspace
    from lifecycle.core.workspace import Workspace

    logger, out = logging.getLogger('uvicorn.error'), io.StringIO()
    handler, filters, level = logging.StreamHandler(out), list(logger.filters), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        ws = Workspace.open(scratch_workspace(tmp_path / ADDRESS / 'ws'))
        e = FileNotFoundError(2, 'No such file or directory', str(ws.state_dir / 'flags' / 'spec.json'))
        logger.error('Exception in ASGI application\n', exc_info=e)  # (as uvicorn's protocols log it)
        logger.error('Error loading ASGI app factory: %s', e)
    finally:
        logger.removeHandler(handler)
        logger.filters[:], logger.level = filters, level
    said = out.getvalue()
    assert 'Exception in ASGI application' in said and said.count('flags/spec.json') == 2, said
    assert ADDRESS not in said and said.count('<folder name withheld') == 2, said


def test_no_workspace_found_in_a_folder_named_with_an_address_withholds_it(tmp_path, monkeypatch):
    """A command run in (or with `LIFECYCLE_WORKSPACE` naming) a folder `bob@corp.example/ws` holding no settings.ini
    was refused naming the folder whole: `no settings.ini found in /.../bob@corp.example/ws or any folder above it`.
    It is withheld, as in any other refusal; a folder in no such name is named whole."""
    from lifecycle.app.commands import status

    for under, withheld in ((ADDRESS, True), ('plain', False)):
        d = tmp_path / under / 'ws'
        d.mkdir(parents=True)
        monkeypatch.chdir(d)
        for env in ({'LIFECYCLE_WORKSPACE': ''}, {'LIFECYCLE_WORKSPACE': str(d)}):
            for args in ([], ['--json']):
                r = invoke(status, args, env=env)
                assert r.exit_code != 0 and 'settings.ini' in r.output, r.output
                assert (ADDRESS not in r.output and 'withheld' in r.output) if withheld else str(d) in r.output


def test_a_log_line_whose_arguments_do_not_fit_does_not_stop_the_caller(tmp_path):
    """In a workspace in a folder `bob@corp.example`, the filter withholding it in log lines formatted each line
    itself: a line whose arguments do not fit its text (`'%d', 'x'`) raised out of the logging call and stopped what
    logged it, where logging says `--- Logging error ---` and goes on. It is left to the handler, as before."""
    import io
    import logging

    from lifecycle.core.cli_support import scratch_workspace
    from lifecycle.core.workspace import Workspace

    logger, out = logging.getLogger('lifecycle'), io.StringIO()
    handler, raising = logging.StreamHandler(out), logging.raiseExceptions
    logger.addHandler(handler)
    logging.raiseExceptions = False  # (as a server or command runs: the handler's error said, not raised)
    try:
        ws = Workspace.open(scratch_workspace(tmp_path / ADDRESS / 'ws'))
        logger.warning('%d rows', 'x')  # (raised TypeError here)
        logger.warning('%s: read', ws.state_dir)
    finally:
        logger.removeHandler(handler)
        logging.raiseExceptions = raising
    assert 'read' in out.getvalue() and ADDRESS not in out.getvalue(), out.getvalue()


def _driver_error(said: str):
    "A SQLAlchemy `OperationalError` around psycopg's, saying `said`, as a failed connection raises it."
    import psycopg
    from sqlalchemy.exc import OperationalError

    return OperationalError(None, None, psycopg.OperationalError(said))


_SOCKET = 'connection failed: connection to server on socket "/tmp/pg/.s.PGSQL.5432" failed: FATAL:  '


def test_a_drivers_error_quoting_a_contact_of_its_url_or_its_own_withholds_it():
    """`without_secrets` replaced a URL's user, password and password-like values in a driver's error, nothing else:
    PostgreSQL's `database "bob@corp.example" does not exist`, psycopg's `failed to resolve host 'bob%40corp.example'`
    and `invalid value for parameter "work_mem": "ann@corp.example"` (libpq's `options`) reached the tracking URI's
    refusal, the prediction log's and /ready whole, and so did a role or value the server names that the URL does not
    hold. The wordings are PostgreSQL 15's and psycopg 3's, as a private cluster (`tests/postgres.py`) said them for
    these URLs. Each contact is `***` now, the sentence around it kept; a driver's text holding none is unchanged."""
    from lifecycle.core.settings import db_reason, without_secrets
    from lifecycle.core.tracking import TrackingUnavailable, _unavailable
    from lifecycle.serve.predlog import LogUnreadable, log_errors

    phone = '+44 7700 900123'
    for url, said, shown in (
        ('postgresql+psycopg://lifecycle@/bob%40corp.example?host=/tmp/pg',
         f'{_SOCKET}database "{ADDRESS}" does not exist', f'{_SOCKET}database "***" does not exist'),
        ('postgresql+psycopg://lifecycle@bob%40corp.example/postgres',
         "failed to resolve host 'bob%40corp.example': [Errno -2] Name or service not known",
         "failed to resolve host '***': [Errno -2] Name or service not known"),
        ('postgresql+psycopg://lifecycle@/postgres?host=/tmp/pg&options=-c%20work_mem%3Dann%40corp.example',
         f'{_SOCKET}invalid value for parameter "work_mem": "ann@corp.example"',
         f'{_SOCKET}invalid value for parameter "work_mem": "***"'),
        ('postgresql+psycopg://lifecycle@/postgres?host=/tmp/pg/bob%40corp.example',
         'connection is bad: connection to server on socket "/tmp/pg/bob@corp.example/.s.PGSQL.5432" failed: No such '
         'file or directory',
         'connection is bad: connection to server on socket "/tmp/pg/***/.s.PGSQL.5432" failed: No such file or '
         'directory'),
        ('postgresql+psycopg://lifecycle@/bob_+44_7700_900123?host=/tmp/pg',  # (read as holds_contact reads a name)
         f'{_SOCKET}database "bob_+44_7700_900123" does not exist', f'{_SOCKET}database "***" does not exist'),
        ('postgresql+psycopg://lifecycle@/log?host=/tmp/pg&tag=%2B44%207700%20900123',
         f'{_SOCKET}invalid value "{phone}"', f'{_SOCKET}invalid value "***"'),
        ('postgresql+psycopg://lifecycle@/postgres?host=/tmp/pg', f'{_SOCKET}role "{ADDRESS}" does not exist',
         f'{_SOCKET}role "***" does not exist'),  # (a contact of the server's own: no part of the URL)
        ('mysql+pymysql://u:pw@db/bob%40corp.example', f"(1049, \"Unknown database '{ADDRESS}'\")",
         "(1049, \"Unknown database '***'\")"),  # (MySQL's wording)
    ):  # fmt: skip
        assert without_secrets(said, url) == shown, url
        assert without_secrets(db_reason(_driver_error(said)), url) == f'OperationalError: {shown}', url
        for catch, raised in ((_unavailable, TrackingUnavailable), (log_errors, LogUnreadable)):
            with pytest.raises(raised) as e:
                with catch(url):
                    raise _driver_error(said)
            assert shown in str(e.value) and '@corp' not in str(e.value) and '7700' not in str(e.value), str(e.value)
    for url, said in (  # (real wordings holding no contact: byte for byte as they were)
        ('postgresql+psycopg://lifecycle@/nosuchdb?host=/tmp/pg', f'{_SOCKET}database "nosuchdb" does not exist'),
        ('postgresql+psycopg://u:pw@127.0.0.1:5432/db', 'connection failed: connection to server at "127.0.0.1", port '
         '5432 failed: Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?'),
        ('postgresql+psycopg://u@10.1.2.3/mlflow', f'{_SOCKET}no pg_hba.conf entry for host "192.168.10.15", user '
         '"lifecycle", database "mlflow", no encryption'),
        ('postgresql+psycopg://u@h/db?options=-c%20statement_timeout%3D5000',
         'canceling statement due to statement timeout'),
        ('mysql+pymysql://lifecycle:pw@localhost/db', "(1045, \"Access denied for user 'root'@'localhost' (using "
         "password: YES)\")"),
        ('sqlite:////nonexistent/bob@corp.example/x.db', 'unable to open database file'),
        ('sqlite:///x.db', 'database is locked'), ('sqlite:///x.db', 'no such table: predictions'),
    ):  # fmt: skip
        assert without_secrets(said, url) == said, url
        assert without_secrets(db_reason(_driver_error(said)), url) == f'OperationalError: {said.splitlines()[0]}'


def test_a_password_a_drivers_line_quotes_across_the_200_character_cut_is_withheld_whole():
    """`db_reason` cut a driver's line at 200 characters and the callers withheld the URL's secrets after it: a
    password the cut split no longer matched, and its first part reached the tracking URI's refusal, the prediction
    log's messages and /ready (a driver may quote its connection string: psycopg's `invalid dsn`). Given the URL,
    `db_reason` withholds its secrets first, then cuts; the line holding none is cut as before."""
    from lifecycle.core.settings import db_reason
    from lifecycle.core.tracking import TrackingUnavailable, _unavailable
    from lifecycle.serve.predlog import LogUnreadable, log_errors

    url = 'postgresql+psycopg://lifecycle:Tr0ub4dor-horse-battery@db.internal/mlflow'
    for lead in (171, 181, 190):  # (the password cut after 20, 10 and 1 of its characters)
        said = f"invalid dsn: {'x' * (lead - 13)}password=Tr0ub4dor-horse-battery host=db.internal"
        why = db_reason(_driver_error(said), url)
        assert 'Tr0ub' not in why and 'horse' not in why and why.startswith('OperationalError: invalid dsn: xx'), why
        for catch, raised in ((_unavailable, TrackingUnavailable), (log_errors, LogUnreadable)):
            with pytest.raises(raised) as e:
                with catch(url):
                    raise _driver_error(said)
            assert 'Tr0ub' not in str(e.value) and 'invalid dsn: xx' in str(e.value), str(e.value)
    plain = 'connection refused ' * 20
    assert db_reason(_driver_error(plain), url) == db_reason(_driver_error(plain)) == f'OperationalError: {plain[:200]}'

def test_ingest_of_a_query_the_driver_refuses_quoting_a_contact_withholds_it(tmp_path):
    """Ingest's `query failed` quoted SQLAlchemy's first line of a driver's error as it was (no `without_secrets`):
    SQLite's own `no such table: bob@corp.example` (a real error: the table the query names) reached the refusal and
    the batch log whole. The address is `***`; the rest of the sentence, and a refusal holding no contact, as before."""
    import sqlite3

    from lifecycle.data.sources import SourceError, read_chunks

    db = tmp_path / 'x.db'
    sqlite3.connect(db).close()
    url = f'sqlite:///{db}'
    with pytest.raises(SourceError) as e:
        list(read_chunks(url, tmp_path, query=f'SELECT * FROM "{ADDRESS}"'))
    assert str(e.value) == f'{url}: query failed: OperationalError: (sqlite3.OperationalError) no such table: ***'
    with pytest.raises(SourceError) as e:
        list(read_chunks(url, tmp_path, query='SELECT * FROM absent'))
    assert str(e.value) == f'{url}: query failed: OperationalError: (sqlite3.OperationalError) no such table: absent'


def test_the_prediction_logs_own_database_failures_say_no_piece_of_its_url(monkeypatch, caplog):
    """Two of the prediction log's sayings quoted a driver's error with no `without_secrets`: a start's line that old
    rows' keys are not pseudonymised yet, and the refusal that the `model` column cannot be added (`_add_model_column`).
    A role named after the URL's user (`role "bob_+44_7700_900123" does not exist`, PostgreSQL 15's wording) went into
    the server's output whole. Both say `role "***"` now, as the log's other failures do."""
    import logging

    from sqlalchemy import create_engine

    from lifecycle.serve import predlog

    user = 'bob_+44_7700_900123'  # (a name `holds_contact` reads as holding a phone number, as the URL's user)
    said = f'{_SOCKET}role "{user}" does not exist'
    def fails(*a, **k):
        raise _driver_error(said)

    def refused():  # (each connection refused so: psycopg's error, as SQLAlchemy wraps it)
        raise _driver_error(said).orig

    engine = create_engine(f'postgresql+psycopg://{user}:pw@/log?host=/tmp/pg', creator=refused)

    monkeypatch.setattr(predlog, 'pseudonymise_old_keys', fails)
    with caplog.at_level(logging.WARNING, logger='lifecycle.serving'):
        predlog._pseudonymised(engine, None)
    assert 'role "***" does not exist' in caplog.text and user not in caplog.text, caplog.text
    monkeypatch.setattr(predlog, 'names_models', lambda engine: False)
    with pytest.raises(RuntimeError) as e:
        predlog._add_model_column(engine)
    assert 'could not be added (OperationalError: connection failed: ' in str(e.value), str(e.value)
    assert 'role "***" does not exist' in str(e.value) and user not in str(e.value), str(e.value)


@pytest.mark.slow
def test_run_reports_withhold_a_source_file_named_with_an_address(tmp_path, arrests):
    """Review GM: `lifecycle run` from a file named with an e-mail address wrote its name whole into the executed ingest
    notebook (its injected params, papermill's metadata and the input table it displays), the model card's notebook
    and the evidence site's pages and search index; every other record of the run withholds it."""
    from conftest import cli, make_workspace, set_yaml

    ws = make_workspace(tmp_path / 'ws')
    (ws / 'data').mkdir()
    arrests.to_csv(ws / 'data' / f'{ADDRESS}.csv', index=False)
    set_yaml(ws / 'params' / 'ingest.yaml', source=f'data/{ADDRESS}.csv')
    r = cli(ws, 'run')
    assert r.returncode == 0, r.stdout + r.stderr
    said = [p for p in (ws / 'reports').rglob('*') if p.is_file() and ADDRESS.encode() in p.read_bytes()]
    assert not said, said
    assert 'withheld' in next((ws / 'reports' / 'runs').rglob('01_ingest.ipynb')).read_text()


@pytest.mark.parametrize('args', [['stats'], ['{ws}/batch.csv'], ['stats', '--json']])
def test_ingest_refusing_an_undeclared_dataset_withholds_its_name(tmp_path, args):
    "`lifecycle ingest ... --dataset bob@corp.example` was refused quoting the address (review GM); `init` withheld it."
    from conftest import cli, make_workspace

    ws = make_workspace(tmp_path / 'ws')
    r = cli(ws, 'ingest', *[a.format(ws=ws) for a in args], '--dataset', ADDRESS)
    assert r.returncode == 2, r.stdout + r.stderr
    out = r.stdout + r.stderr
    assert ADDRESS not in out and "--dataset (withheld" in out and "declares dataset 'arrests'" in out

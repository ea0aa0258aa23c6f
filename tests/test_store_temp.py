"""A writer killed mid-write leaves its temporary file in the store's temp folder; the next writer removes it
(the file names its writer's process, which no longer exists), and never a live writer's file."""
from __future__ import annotations
import signal, subprocess, time
import pandas as pd
from conftest import LIFECYCLE, clean_env, cli_json, set_yaml

def test_a_temporary_file_left_by_a_killed_ingest_is_removed_by_the_next_writer(workspace, arrests):
    big = workspace / 'big.csv'
    set_yaml(workspace / 'params/ingest.yaml', max_duplicate_rate=1.0, chunk_rows=50_000)
    pd.concat([arrests] * 120, ignore_index=True).to_csv(big, index=False)     # ~630k rows: a long write
    proc = subprocess.Popen([LIFECYCLE, 'ingest', str(big), '--dataset', 'arrests'], cwd=workspace, env=clean_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tmp, deadline = workspace / '.lifecycle/store/tmp', time.time() + 120
    while time.time() < deadline and not (tmp.is_dir() and any(tmp.glob('*.parquet.tmp'))): time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL); proc.wait()
    left = sorted(tmp.glob('*'))
    assert left and all(p.name.startswith(f'{proc.pid}@') for p in left)        # named after the dead writer
    small = workspace / 'small.csv'; arrests.head(300).to_csv(small, index=False)
    r, out = cli_json(workspace, 'ingest', str(small), '--dataset', 'arrests')
    assert r.returncode == 0 and out['status'] == 'accepted', r.stderr
    assert not any(p.exists() for p in left) and list(tmp.glob('*')) == []

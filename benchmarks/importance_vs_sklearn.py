"""Permutation importance in the validate stage (`model.validate.permutation_importance_table`, which hands
scikit-learn row indices of each column's transformed block, `RowsOf`) against scikit-learn's `permutation_importance`
on the whole pipeline, on the same wide generated holdout, in the same run.

    python benchmarks/importance_vs_sklearn.py [--columns C] [--rows N] [--repeats R] [--json]

The model is what `lifecycle train` makes of a file with C numeric columns (`features.build_transformer`: one
standardising step per column, then logistic regression). Both sides must give the same importances to the last digit
(exit status 1 if not); the figure is the ratio of seconds, scikit-learn's over ours. No goal: the stage was slow on
wide files (304 columns took 410 s at stop 58), and this shows by how much it no longer is.
"""

from __future__ import annotations
import argparse
import json
import time
import numpy as np
import pandas as pd


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--columns', type=int, default=120, help='input columns (default 120)')
    ap.add_argument('--rows', type=int, default=2000, help='holdout rows (default 2000)')
    ap.add_argument('--repeats', type=int, default=5, help='shuffles per column (default 5, the stage default)')
    ap.add_argument('--json', action='store_true', help='print the figures as JSON')
    a = ap.parse_args()
    from sklearn.inspection import permutation_importance
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from lifecycle.core.params import FeaturesParams
    from lifecycle.data.features import build_transformer
    from lifecycle.model.validate import permutation_importance_table

    rng = np.random.default_rng(0)
    X = pd.DataFrame({f'f{i}': rng.normal(size=a.rows) for i in range(a.columns)})
    y = (X.f0 + 0.5 * X.f1 + rng.normal(size=a.rows) > 0).astype(int).to_numpy()
    defs = [dict(name=c, kind='numeric', transform='standardize') for c in X.columns]
    model = Pipeline(
        [
            ('features', build_transformer(FeaturesParams(target='t', positive_class=1, features=defs))),
            ('model', LogisticRegression()),
        ]
    ).fit(X, y)
    t0 = time.perf_counter()
    ours = permutation_importance_table(model, X, y, a.repeats).set_index('feature').loc[list(X.columns)]
    t1 = time.perf_counter()
    lib = permutation_importance(model, X, y, scoring='roc_auc', n_repeats=a.repeats, random_state=0)
    t2 = time.perf_counter()
    same = bool(np.array_equal(ours.importance.to_numpy(), lib.importances_mean))
    out = dict(
        columns=a.columns,
        rows=a.rows,
        repeats=a.repeats,
        ours_s=round(t1 - t0, 2),
        sklearn_s=round(t2 - t1, 2),
        ratio=round((t2 - t1) / (t1 - t0), 1),
        identical=same,
    )
    if a.json:
        print(json.dumps(out))
    else:
        print(
            f"{a.columns} columns x {a.rows} rows, {a.repeats} repeats: ours {out['ours_s']} s, scikit-learn on "
            f"the pipeline {out['sklearn_s']} s: {out['ratio']}x; importances identical: {same}"
        )
    return 0 if same else 1


if __name__ == '__main__':
    raise SystemExit(main())

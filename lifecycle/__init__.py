"""A notebook-centric, reproducible MLOps workspace: the whole model lifecycle as one traceable loop.

Modules:

- `lifecycle.deliver.experiment`: Per variant of the model-version flag: requests, live accuracy from feedback, latency p50/p95, error rate. Then the Bayesian view (Beta-Binomial posterior of accuracy: probability to be best, expected loss, 95% credible intervals), the frequentist one (Newcombe 95% interval of the difference, two-proportion z-test), and the decision rule from `params/rollout.yaml`. JSON for scripts; plots for the report.
- `lifecycle.deliver.rollout`: Progressive delivery on the model-version flag. Canary: the challenger's share moves through the steps. Blue-green: one switch moves all traffic, and the switch back is instant. A guard compares challenger and control at each step on error rate, p95 latency and live accuracy from feedback, and advances, pauses or rolls back on its own. Every action, automatic or manual, is audited with actor and reason.
- `lifecycle.serve.gate`: The server never hands the shared flag file straight to the flag provider. The gate watches it; a new file is parsed and checked, every version it names is loaded and verified, and only then does it become the deployment the server routes to and this process's active file, which the flagd file provider reads. A corrupted or invalid file, one that is not what the flags spec compiles to (edited by hand), or one naming a version whose signature does not verify, is refused: the last good flags keep serving, and an alert is raised (metric, log, audit entry).
- `lifecycle.serve.limits`: One server process holds a bounded number of connections: a client gets `header_timeout_s` to send a request's headers (from connecting, or from its previous answer), and when the process is at its limit a new connection closes the one that has waited longest without a request. Half-open or slow clients therefore cannot use up the file descriptors that normal requests need.
- `lifecycle.serve.scoring`: What a scoring request does, with no web framework in it: parse the body into typed columns, check them against the ingestion contract, let the flags route it to a deployed version, score, turn scores into decisions with the flags' threshold, and log one prediction row. The routes in `serving` only read bytes and write answers around it, so everything here is tested without a server (the idea of MLflow's `scoring_server.invocations`)."""

__version__ = "0.1.0"

from .core.moved import install as _install_moved
_install_moved()

"""A notebook-centric, reproducible MLOps workspace: the whole model lifecycle as one traceable loop.

Modules:

- `lifecycle.deliver.experiment`: Per variant of the model-version flag: requests, live accuracy from feedback, latency p50/p95, error rate. Then the Bayesian view (Beta-Binomial posterior of accuracy: probability to be best, expected loss, 95% credible intervals), the frequentist one (Newcombe 95% interval of the difference, two-proportion z-test), and the decision rule from `params/rollout.yaml`. JSON for scripts; plots for the report.
- `lifecycle.deliver.rollout`: Progressive delivery on the model-version flag. Canary: the challenger's share moves through the steps. Blue-green: one switch moves all traffic, and the switch back is instant. A guard compares challenger and control at each step on error rate, p95 latency and live accuracy from feedback, and advances, pauses or rolls back on its own. Every action, automatic or manual, is audited with actor and reason.
- `lifecycle.operate.monitor`: One look at the prediction log: cut it into windows, measure the closed ones against each served version's baseline, judge the rules (and silence and heartbeats), raise and deliver the alerts, and leave the windows, a Prometheus text file and a heartbeat in the state folder. `lifecycle monitor run` calls `run_once`, once or every N seconds beside the server.
- `lifecycle.operate.prometheus`: For teams that run Prometheus: recording rules over the server's `/metrics`, alerting rules generated from the same `params/monitor.yaml` rules (over the monitor's text file, `<state>/monitor/metrics.prom`, read by node_exporter's textfile collector), an `absent()` rule for a dead monitor, and a Grafana dashboard of the same metrics with the rules' thresholds drawn.
- `lifecycle.operate.windows`: The prediction log cut into windows per model version and flag variant, and every window measured: traffic, errors, latency, the scores and classes served, input drift against the training snapshot, score drift against the holdout, realised performance from feedback with confidence intervals, and performance estimated before the labels arrive."""

__version__ = "0.1.0"

from .core.moved import install as _install_moved
_install_moved()

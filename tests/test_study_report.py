"""One small study (λ=0 baseline + 2 searched trials) on the session's Ray, then: per-trial MLflow
artifacts and tags, the report written at the end, the report rebuilt from MLflow alone into
another directory, the live gauges in Ray's Prometheus export, and (marked `browser`) the MLflow
compare view and the Ray dashboard in headless Chromium."""
import csv
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request

import pytest
import yaml
from mlflow.tracking import MlflowClient

from servers import mlflow_server
from smart.config import RunConfig
from study_files import write_study
from tuning import report
from tuning.run_study import main

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARTIFACTS = os.path.join(ROOT, "test-artifacts", "browser")
# The report CLI in a fresh interpreter, telling whether Ray or torch were imported.
_PROBE = ("import json, sys; from tuning.report import main; rc = main(sys.argv[1:]); "
          "print('@@' + json.dumps({'rc': rc, 'ray': 'ray' in sys.modules, 'torch': 'torch' in sys.modules}))")


@pytest.fixture(scope="module")
def study(ray_session, tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    path = write_study(root / "s.yaml", {("name",): "reported", ("budget", "num_samples"): 3,
                                         ("config", "training", "kimg"): 8.0,
                                         ("config", "eval", "cache_dir"): str(root / "cache"),
                                         ("scheduler", "grace_period"): 4.0, ("mlflow", "snapshot_every"): 1})
    storage = root / "store"
    assert main([path, "--storage", str(storage)]) == 0
    uri = f"sqlite:///{storage}/mlflow.db"
    summary = json.loads((storage / "reported" / "summary.json").read_text())
    runs = json.loads((storage / "reported" / "tracking" / "mlflow_runs.json").read_text())
    return {"root": root, "storage": storage, "uri": uri, "summary": summary, "runs": runs}


def _children(study):
    client = MlflowClient(study["uri"])
    return client, {tid: client.get_run(rid) for tid, rid in study["runs"]["trials"].items()}


def test_each_trial_logs_config_seed_code_version_and_snapshots(study):
    client, children = _children(study)
    assert len(children) == 3
    by_trial = {t["trial_id"]: t for t in study["summary"]["trials"]}
    for trial_id, run in children.items():
        rid = run.info.run_id
        with open(client.download_artifacts(rid, "config.yaml", str(study["root"] / rid)), encoding="utf-8") as fh:
            cfg = RunConfig.from_dict(yaml.safe_load(fh))
        assert cfg.seed == by_trial[trial_id]["config"]["seed"] == int(run.data.tags["seed"])
        assert cfg.regularizer.weight == by_trial[trial_id]["config"]["regularizer.weight"]
        assert len(run.data.tags["mlflow.source.git.commit"]) == 40
        snaps = [a.path for a in client.list_artifacts(rid, "snapshots")]
        evals = [m.step for m in client.get_metric_history(rid, "fid")]
        assert len(snaps) == len(evals) and snaps == sorted(snaps)  # one per eval (snapshot_every 1)
        assert snaps[-1].endswith(f"{by_trial[trial_id]['metrics']['kimg']:010.3f}.png")
        share = client.get_metric_history(rid, "smart_share")
        assert share and all(0.0 <= m.value <= 1.0 for m in share)
        assert run.data.tags["trial_status"] == by_trial[trial_id]["status"]


def _csv_rows(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _check_report(out, study):
    for name in ("report.html", "trials.csv", "fid_vs_lambda.png", "fid_vs_trange.png", "fid_over_kimg.png",
                 "parallel_coordinates.png", "parallel_coordinates.html", "baseline_vs_best.png",
                 "baseline_snapshot.png", "best_snapshot.png"):
        assert os.path.getsize(os.path.join(out, name)) > 0, name
    summary = study["summary"]
    rows = _csv_rows(os.path.join(out, "trials.csv"))
    assert [r["trial"] for r in rows] == [t["trial_id"] for t in summary["trials"]]
    for row, trial in zip(rows, summary["trials"]):
        assert row["status"] == trial["status"]
        key = summary["objective"]  # fid_best: the report ranks as the summary does
        assert float(row[key]) == pytest.approx(trial["metrics"][key])
        assert float(row["regularizer.weight"]) == pytest.approx(trial["config"]["regularizer.weight"])
        assert int(row["seed"]) == trial["config"]["seed"]
    assert rows[0]["rank"] == "1"
    page = open(os.path.join(out, "report.html"), encoding="utf-8").read()
    assert summary["best"]["trial_id"] in page and "baseline_vs_best.png" in page


def test_report_written_at_study_end_and_logged_to_parent(study):
    _check_report(study["storage"] / "reported" / "report", study)
    client = MlflowClient(study["uri"])
    logged = {a.path for a in client.list_artifacts(study["runs"]["parent"], "report")}
    assert {"report/report.html", "report/trials.csv", "report/fid_vs_lambda.png"} <= logged


def test_report_rebuilt_from_mlflow_alone(study, tmp_path, capsys):
    # by name, from the tracking store only: the study's directory (Ray's state) is out of reach
    moved = tmp_path / "elsewhere"
    shutil.copytree(study["storage"], moved, ignore=shutil.ignore_patterns("reported"))
    out = tmp_path / "again"
    assert report.main(["reported", "--mlflow-uri", f"sqlite:///{moved}/mlflow.db", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"report: {out}/report.html" in printed
    assert printed.splitlines()[2].split()[0] == study["summary"]["best"]["trial_id"]  # the table, best first
    _check_report(out, study)


def _cli(args, cwd):
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env={**os.environ, "PYTHONPATH": ROOT},
                          capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout, proc.stderr


def test_report_from_the_study_directory_as_the_readme_writes_it(study, tmp_path):
    """`python tuning/report.py runs/NAME`: the directory knows its tracking URI; the report goes
    to runs/NAME/report."""
    shutil.copytree(study["storage"] / "reported", tmp_path / "runs" / "reported", ignore=shutil.ignore_patterns("report"))
    rc, out, err = _cli([os.path.join(ROOT, "tuning", "report.py"), "runs/reported"], tmp_path)
    assert rc == 0, err
    assert "report: runs/reported/report/report.html" in out
    _check_report(tmp_path / "runs" / "reported" / "report", study)


def test_report_by_name_imports_neither_ray_nor_torch(study, tmp_path):
    rc, out, err = _cli(["-c", _PROBE, "reported", "--mlflow-uri", study["uri"], "--out", str(tmp_path / "out")],
                        tmp_path)
    assert json.loads(out.splitlines()[-1][2:]) == {"rc": 0, "ray": False, "torch": False}, err
    _check_report(tmp_path / "out", study)


def test_console_scripts_answer(tmp_path):
    for script, words in (("smart-study", "run a hyperparameter study"), ("smart-report", "the study report")):
        path = shutil.which(script)
        assert path, f"{script} is not installed (pip install -e .)"
        proc = subprocess.run([path, "--help"], env={**os.environ, "PYTHONPATH": ROOT}, capture_output=True,
                              text=True, timeout=120, cwd=tmp_path)
        assert proc.returncode == 0 and words in proc.stdout, proc.stderr


def test_report_bad_input_is_one_line(study, tmp_path, capsys):
    assert report.main(["no-such-study", "--mlflow-uri", study["uri"], "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: study: ") and err.count("\n") == 1 and not (tmp_path / "x").exists()
    missing = tmp_path / "none.db"
    assert report.main(["reported", "--mlflow-uri", f"sqlite:///{missing}"]) == 2
    assert "no MLflow store" in capsys.readouterr().err and not missing.exists()  # nothing created


def test_trials_export_live_gauges_to_prometheus(ray_session, tmp_path):
    """A trial's gauges reach Ray's Prometheus export while its worker lives (Ray drops the series
    of ended workers, so they are scraped before the actor goes away)."""
    import ray

    from tuning.live_metrics import TrialGauges
    from tuning.trial_run import run_trial

    @ray.remote(num_cpus=1)
    class Trial:
        def run(self, base):
            last = {}

            def report(metrics, checkpoint=None):
                last.update(metrics)
            run_trial(RunConfig.from_dict(base), metric="fid", mode="min", report=report, checkpoint=None,
                      gauges=TrialGauges("live", "trial-1"))
            return last

    base = {"training": {"kimg": 2, "eval_every_kimg": 1, "batch_size": 64},
            "eval": {"num_samples": 500, "cache_dir": str(tmp_path)}}
    actor = Trial.remote()
    final = ray.get(actor.run.remote(base))
    info = ray_session.address_info
    url = f"http://{info['node_ip_address']}:{info['metrics_export_port']}/metrics"
    deadline = time.time() + 60  # the metrics agent exports every few seconds
    while True:
        text = urllib.request.urlopen(url, timeout=5).read().decode()
        lines = {ln.split("{")[0]: float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines()
                 if ln.startswith("ray_smart_trial_") and 'study="live"' in ln and 'trial_id="trial-1"' in ln}
        if len(lines) == 4 or time.time() > deadline:
            break
        time.sleep(2)
    ray.kill(actor)
    assert set(lines) == {"ray_smart_trial_fid", "ray_smart_trial_kimg", "ray_smart_trial_kimg_per_s",
                          "ray_smart_trial_smart_share"}, text[-2000:]
    assert lines["ray_smart_trial_fid"] == pytest.approx(final["fid"])  # the last eval's FID
    assert lines["ray_smart_trial_kimg"] == pytest.approx(final["kimg"])
    assert 0.0 <= lines["ray_smart_trial_smart_share"] <= 1.0


# ---- what a person sees ------------------------------------------------------------------------
def _browser(profile_dir):
    """Headless Chromium driven through Debian's chromedriver (same build as the browser)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile_dir}", "--window-size=1400,1000"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def _wait_for_text(driver, texts, timeout=90):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def shown(d):
        body = d.find_element(By.TAG_NAME, "body").text
        return all(t in body for t in texts) and body
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.5).until(shown)
    except Exception:
        missing = [t for t in texts if t not in driver.find_element(By.TAG_NAME, "body").text]
        raise AssertionError(f"not on {driver.current_url}: {missing}") from None


@pytest.mark.browser
@pytest.mark.skipif(not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
                    reason="needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)")
def test_mlflow_compare_view_and_ray_dashboard_in_chromium(study, ray_session, tmp_path):
    from ray._raylet import AuthenticationTokenLoader

    os.makedirs(ARTIFACTS, exist_ok=True)
    client, children = _children(study)
    run_ids = [r.info.run_id for r in children.values()]
    exp_id = study["runs"]["experiment_id"]
    best = study["summary"]["best"]
    driver = _browser(tmp_path / "profile")
    try:
        with mlflow_server(study["uri"]) as url:
            driver.get(f"{url}/#/compare-runs?runs={json.dumps(run_ids)}&experiments={json.dumps([exp_id])}")
            body = _wait_for_text(driver, [*children, "regularizer.weight", "regularizer.interval", "fid"])
            assert f"{best['params']['regularizer.weight']}" in body  # (a λ = 0 best has no t-range)
            driver.save_screenshot(os.path.join(ARTIFACTS, "mlflow_compare_runs.png"))

        dashboard = ray_session.dashboard_url
        dashboard = dashboard if dashboard.startswith("http") else f"http://{dashboard}"
        token = AuthenticationTokenLoader.instance().get_raw_token(ignore_auth_mode=True)
        driver.get(f"{dashboard}/api/authentication_mode")  # a page of the dashboard's origin, no token needed
        status = driver.execute_async_script(  # what the dashboard's login prompt does: a cookie for the token
            "const done = arguments[arguments.length - 1];"
            "fetch('/api/authenticate', {method: 'POST', headers: {Authorization: 'Bearer ' + arguments[0]}})"
            ".then(r => done(r.status), e => done(String(e)));", token)
        assert status == 200
        driver.get(f"{dashboard}/#/actors")
        _wait_for_text(driver, ["ImplicitFunc", "train_trial", "DEAD"])  # the trials' actors
        driver.save_screenshot(os.path.join(ARTIFACTS, "ray_dashboard_actors.png"))
    finally:
        driver.quit()

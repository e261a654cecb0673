"""The benchmark harness runs and prints one JSON object per scenario (figures are not checked)."""

from __future__ import annotations

import json
import subprocess
import sys

from .conftest import ROOT, process_env


def test_bench_quick_prints_json_lines():
    out = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "enqueue", "delivery_instant", "pickup"],
        cwd=ROOT,
        env=process_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [line["scenario"] for line in lines] == ["enqueue", "bare_httpx_instant", "delivery_instant", "pickup"]
    assert lines[0]["p50_us"] > 0 and lines[2]["delivered_per_s"] > 0 and lines[3]["arrived"] == lines[3]["conversions"]


def test_bench_postgres_workers_prints_both_rates_and_the_workers_cpu():
    out = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "postgres_workers"],
        cwd=ROOT,
        env=process_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    (line,) = [json.loads(line) for line in out.stdout.splitlines()]
    assert line["scenario"] == "postgres_workers"
    assert line["one_worker_per_s"] > 0 and line["two_workers_per_s"] > 0
    # The rates are printed rounded: the ratio of the printed rates may differ in the last digit.
    assert abs(line["scaling"] - line["two_workers_per_s"] / line["one_worker_per_s"]) < 0.011
    assert set(line["workers_cpu_cores"]) == {"1", "2"}

"""Decompression bombs in parallel: the sender's memory stays bounded while decompressing.

A child process sends 32 postbacks at once through one ``Sender``, each answered by a bomb
(64 KiB that decompress to 64 MiB, in every encoding the sender reads), and reports its peak
resident memory (``ru_maxrss``, checked against the kernel's VmHWM). Decompressing first and
cutting after, as the sender once did, peaked at about 1.2 GB here.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.support.hostile import CATALOGUE, HostileSource, warm_up

from .conftest import process_env

PEAK_LIMIT_MB = 150

_CHILD = textwrap.dedent(
    """
    import json, resource, sys
    from concurrent.futures import ThreadPoolExecutor
    from hookspecs import PostbackRequest
    from s2s_plugin.delivery.sender import Sender
    from s2s_plugin.settings import DeliverySettings

    base, paths = sys.argv[1], json.loads(sys.argv[2])
    sender = Sender(DeliverySettings.from_kwargs(allow_private_targets=True, max_concurrency=32, timeout=10))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    urls = [base + paths[i % len(paths)] for i in range(32)]
    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(lambda url: sender.send(PostbackRequest("GET", url)), urls))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with open("/proc/self/status") as status:  # the kernel's own peak of this process, to compare
        hwm = int(next(line for line in status if line.startswith("VmHWM:")).split()[1])
    print(json.dumps({
        "before_kib": before, "peak_kib": peak, "hwm_kib": hwm,
        "results": [[r.outcome, r.http_status, r.response_truncated, len(r.response_body or ""), r.reason] for r in results],
    }))
    """
)


def test_32_bombs_in_parallel_stay_under_150_mb():
    bombs = [case for case in CATALOGUE if case.name.startswith("bomb-")]
    assert {case.name for case in bombs} == {"bomb-gzip", "bomb-x-gzip", "bomb-deflate", "bomb-raw-deflate"}
    warm_up()
    with HostileSource({f"/{case.name}": case.answer for case in bombs}) as source:
        paths = [f"/{case.name}" for case in bombs]
        # Through sh, which forks: on Linux a process's ru_maxrss starts from the memory of the
        # process it was forked from, so a child of this (large) test process would report the
        # test's own size. A child of a small sh reports its own.
        child = subprocess.run(
            ["/bin/sh", "-c", '"$@"; exit $?', "sh", sys.executable, "-c", _CHILD, source.url, json.dumps(paths)],
            env=process_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert child.returncode == 0, child.stderr
        assert sum(source.count(path) for path in paths) == 32
    report = json.loads(child.stdout.strip().splitlines()[-1])
    for outcome, status, truncated, length, reason in report["results"]:
        assert (outcome, status, truncated, length) == ("delivered", 200, True, 16 * 1024), reason
    peak_mb, before_mb, hwm_mb = (report[key] / 1024 for key in ("peak_kib", "before_kib", "hwm_kib"))
    print(
        f"\n32 bombs in parallel: peak RSS {peak_mb:.1f} MB (ru_maxrss; VmHWM {hwm_mb:.1f} MB; "
        f"{before_mb:.1f} MB before sending)"
    )
    assert abs(peak_mb - hwm_mb) < 5  # ru_maxrss measured this process, not the one it came from
    assert peak_mb <= PEAK_LIMIT_MB

"""Workers on other hosts through execnet (pytest-xdist --tx): a loopback socket server plays the
remote host; its records must equal a plain run's."""

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

execnet = pytest.importorskip("execnet")

ARGS = ("-p", "no:cacheprovider", "--lvlm-limit", "6", "--kv-bits", "2", "--kv-method", "uniform",
        "-k", "shapes_vqa or shapes_gqa")
SAME = ("metrics", "intervals", "p_values", "samples", "kv_ratio", "code", "fingerprint", "noninferiority")


@pytest.fixture
def remote_host(tmp_path):
    """execnet's socket server on a free loopback port, in its own directory (the remote host)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    home = tmp_path / "remote"
    home.mkdir()
    server = subprocess.Popen([sys.executable, str(Path(execnet.__file__).parent / "script" / "socketserver.py"),
                               f"127.0.0.1:{port}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    yield port, home
    server.kill()
    server.wait()


def test_a_run_on_a_remote_worker_equals_the_local_run(pytester, remote_host):
    port, home = remote_host
    pytester.makepyfile(test_reasoning="from pytest_lvlmbench.suite import capability_test\n"
                                       "test_visual_reasoning = capability_test('visual_reasoning')\n"
                                       "test_recognition = capability_test('recognition')\n")
    module = str(pytester.path / "test_reasoning.py")
    local = pytester.runpytest_subprocess(module, *ARGS, "--lvlm-report", "local.json")
    local.assert_outcomes(passed=4)
    remote = pytester.runpytest_subprocess(module, *ARGS, "--lvlm-report", "remote.json", "-d",
                                           "--tx", f"socket=127.0.0.1:{port}//chdir={home}",
                                           "--rsyncdir", str(pytester.path))
    remote.assert_outcomes(passed=4)
    assert (home / pytester.path.name / ".lvlmbench").is_dir() or any(home.rglob("generations.sqlite"))  # its own cache
    records = {}
    for name in ("local", "remote"):
        data = json.loads((pytester.path / f"{name}.json").read_text())["records"]
        records[name] = {(r["setting"], r["task"]): {f: r[f] for f in SAME} for r in data}
    assert records["remote"] == records["local"] and len(records["local"]) == 4

"""The benchmark worker protocol, interleaving and the peer venv's reuse check."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from benchmarks import peers

FAKE_WORKER = textwrap.dedent("""
    import sys
    from benchmarks.worker_protocol import serve

    calls = []

    def handle(request):
        print("stray output that must not reach the reply channel")
        if request["op"] == "fail":
            raise ValueError("asked to fail")
        calls.append(request["name"])
        return {"name": request["name"], "seq": len(calls)}

    serve(handle, {"pid_ok": True, "argv": sys.argv[1:]})
""")


@pytest.fixture
def fake_worker(tmp_path):
    script = tmp_path / "fake_worker.py"
    script.write_text(FAKE_WORKER)
    return [sys.executable, str(script)]


def test_worker_answers_requests_and_reports_errors(fake_worker, tmp_path):
    with peers.Worker(fake_worker + ["--x=1"], "fake", log_dir=str(tmp_path)) as worker:
        assert worker.info == {"ready": True, "pid_ok": True, "argv": ["--x=1"]}
        assert worker.request({"op": "go", "name": "a"}) == {"name": "a", "seq": 1}
        with pytest.raises(peers.WorkerError, match="ValueError: asked to fail"):
            worker.request({"op": "fail"})
        assert worker.request({"op": "go", "name": "b"}) == {"name": "b", "seq": 2}  # still alive
        process = worker.process
    assert process.returncode == 0  # exited on the exit request
    assert "stray output" in (tmp_path / "fake.log").read_text()


def test_worker_that_dies_raises_with_its_log(tmp_path):
    script = tmp_path / "dying.py"
    script.write_text("import sys\nprint('boom: bad flag', file=sys.stderr)\nsys.exit(3)\n")
    worker = peers.Worker([sys.executable, str(script)], "dying", log_dir=str(tmp_path))
    with pytest.raises(peers.WorkerError, match=r"(?s)exited with code 3.*boom: bad flag"):
        worker.start()


def test_interleave_alternates_direction_and_warms_up(fake_worker, tmp_path):
    a = peers.Worker(fake_worker, "a", log_dir=str(tmp_path))
    b = peers.Worker(fake_worker, "b", log_dir=str(tmp_path))
    with a, b:
        plan = [("A", a, {"op": "go", "name": "A"}), ("B", b, {"op": "go", "name": "B"})]
        replies = peers.interleave(plan, rounds=3, warmup=1, log=open(os.devnull, "w"))
    # Each worker counts its own calls: one warm-up, then one per round.
    assert [r["seq"] for r in replies["A"]] == [2, 3, 4]
    assert [r["seq"] for r in replies["B"]] == [2, 3, 4]


def test_interleave_order_is_abba(fake_worker, tmp_path):
    with peers.Worker(fake_worker, "one", log_dir=str(tmp_path)) as worker:
        plan = [(n, worker, {"op": "go", "name": n}) for n in ("A", "B", "C")]
        replies = peers.interleave(plan, rounds=2, warmup=0, log=open(os.devnull, "w"))
    order = sorted((r["seq"], name) for name, runs in replies.items() for r in runs)
    assert [name for _, name in order] == ["A", "B", "C", "C", "B", "A"]


def test_ensure_venv_reuses_a_matching_venv(tmp_path):
    import numpy

    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    os.symlink(sys.executable, venv / "bin" / "python")
    pins = (f"numpy=={numpy.__version__}",)
    (venv / peers.MARKER).write_text(json.dumps({"pins": list(pins), "install_seconds": 1.0}))
    assert peers.ensure_venv(str(venv), pins) == str(venv / "bin" / "python")
    assert peers.install_record(str(venv))["install_seconds"] == 1.0


def test_import_check_names_a_version_mismatch(tmp_path):
    error = peers._imports(sys.executable, ("numpy==0.0.1",))
    assert "numpy" in error and "0.0.1 pinned" in error
    assert peers._imports(str(tmp_path / "missing" / "python"), ("numpy==1",)).endswith("does not exist")


def test_workers_get_the_repository_on_their_path(fake_worker, tmp_path):
    env = peers.Worker(fake_worker, "env", log_dir=str(tmp_path)).env
    root = os.path.dirname(peers.HERE)
    assert env["PYTHONPATH"].split(os.pathsep)[0] == root
    out = subprocess.run([sys.executable, "-c", "import benchmarks.worker_protocol as w; print(w.REPLY)"],
                         env=env, cwd=str(tmp_path), capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "@@reply"

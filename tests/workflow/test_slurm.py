"""The SLURM profile on a real one-node SLURM cluster (README, section "SLURM").

The fixture starts munged, slurmctld and slurmd on localhost: partitions ``cpu`` and ``gpu`` on one node of
4 CPUs and 64 GB, no GPUs, no accounting database. The test runs the README's tested command (read from the
README) on a reduced smoke suite, cancels the LeFeD training with ``scancel`` after its first checkpoint,
and checks that Snakemake's retry resumes it, that the tables are complete and how the jobs were packed.
The daemons are stopped afterwards and nothing of the cluster is left.

Needs root and Debian's ``slurm-wlm`` and ``munge`` (``.ci/run`` installs them); skips otherwise, saying why.
Deselected by default (marker ``slurm``): ``python3 quickstart.py test -m slurm``. About three minutes on
2 CPU cores, much of it waiting for the executor's status checks (2, 14, 36 s after a submission or a
finished job).
"""

from __future__ import annotations

import fcntl
import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
import yaml
from workflows import BIN, REPO, small_suite, workflow_env

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(600)]

PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "srun", "squeue", "scancel", "scontrol", "sinfo")
SEARCH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])  # the daemons are in sbin
#: Where every SLURM command finds the cluster; SLURM_CONF is no way, as the executor's job step drops SLURM_*.
CONF = Path("/etc/slurm/slurm.conf")
MARK = "# One-node test cluster of sslbench's tests/workflow/test_slurm.py, removed when the test ends.\n"
TRAIN_MEM_MB = 32000  # the train rule's mem_mb
NODE_MEM_MB = 2 * TRAIN_MEM_MB  # two trainings at once
LEFED = "results/runs/slurm/synthetic/lefed/labels4/seed1337"
CONFIG = """\
ClusterName=sslbench
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ports[0]}
SlurmdPort={ports[1]}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={munge}/munge.socket
CredType=cred/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
MinJobAge=3600
SlurmdParameters=config_overrides
NodeName={host} NodeAddr=127.0.0.1 CPUs=4 RealMemory={mem} State=UNKNOWN
PartitionName=cpu Nodes={host} Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes={host} MaxTime=INFINITE State=UP
"""


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _run(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=60).stdout


def _daemon(name: str, *args: str) -> None:
    """Starts the daemon ``name`` (it forks into the background)."""
    _run(shutil.which(name, path=SEARCH), *args)


def _stop(pid_file: Path) -> None:
    """Waits for the daemon whose pid ``pid_file`` holds to exit; terminates it after 30 s."""
    if not pid_file.is_file():
        return
    pid = int(pid_file.read_text().split()[0])
    for sig in (0, signal.SIGTERM, signal.SIGKILL):
        if sig:
            os.kill(pid, sig)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


def _why_not() -> str | None:
    if os.name != "posix" or os.geteuid() != 0:
        return "the one-node test cluster runs munged, slurmctld and slurmd as root"
    missing = [p for p in PROGRAMS if shutil.which(p, path=SEARCH) is None]
    if missing:
        return (f"SLURM is not installed ({', '.join(missing)} not found); as root: apt-get install slurm-wlm munge "
                "(.ci/run does)")
    if shutil.which("snakemake", path=str(BIN)) is None:
        return "snakemake not installed"
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        return "snakemake-executor-plugin-slurm not installed (pip install -e .[test])"
    if not CONF.parent.is_dir():
        return f"{CONF.parent} not found: SLURM is not installed as Debian installs it"
    if CONF.is_file() and not CONF.read_text().startswith(MARK):
        return f"{CONF} belongs to another SLURM cluster; the test cluster does not replace it"
    return None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A running one-node cluster; yields its folder (state, logs)."""
    reason = _why_not()
    if reason:
        pytest.skip(reason)
    lock = os.open(CONF.parent, os.O_RDONLY)
    fcntl.flock(lock, fcntl.LOCK_EX)  # one test cluster at a time on this machine
    root = tmp_path_factory.mktemp("slurm")
    for folder in ("state", "spool"):
        (root / folder).mkdir()
    munge = Path(tempfile.mkdtemp(prefix="sslbench-munge-"))  # munged wants every folder above its socket open
    munge.chmod(0o755)
    key = munge / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    host = socket.gethostname().split(".")[0]
    CONF.write_text(MARK + CONFIG.format(host=host, ports=_free_ports(2), root=root, munge=munge, mem=NODE_MEM_MB))
    try:
        _daemon("munged", f"--socket={munge}/munge.socket", f"--key-file={key}", f"--pid-file={munge}/munged.pid",
                f"--log-file={root}/munged.log", f"--seed-file={munge}/munged.seed")
        _daemon("slurmctld")
        _daemon("slurmd")
        deadline = time.time() + 60
        while set(_run("sinfo", "-h", "-o", "%T").split()) != {"idle"}:
            assert time.time() < deadline, f"the node never came up:\n{_run('sinfo')}\n" + \
                (root / "slurmctld.log").read_text()[-3000:]
            time.sleep(0.5)
        yield root
    finally:
        queued = subprocess.run(["squeue", "-h", "-o", "%i"], check=False, capture_output=True, text=True).stdout
        if queued.split():
            subprocess.run(["scancel", "--full", *queued.split()], check=False, capture_output=True)
        subprocess.run(["scontrol", "shutdown"], check=False, capture_output=True, timeout=60)
        for pid_file in (root / "slurmd.pid", root / "slurmctld.pid", munge / "munged.pid"):
            _stop(pid_file)
        CONF.unlink(missing_ok=True)
        shutil.rmtree(munge)
        fcntl.flock(lock, fcntl.LOCK_UN)
        os.close(lock)


def readme_command() -> list[str]:
    """The tested command of the README's SLURM section."""
    section = (REPO / "README.md").read_text(encoding="utf-8").split("\n## SLURM\n", 1)[1].split("\n## ", 1)[0]
    tested = [line.strip() for line in section.splitlines() if "gpus_per_job=0" in line]
    return shlex.split(next(line for line in tested if line.startswith("snakemake --profile workflow/profiles/slurm ")))


def jobs() -> pd.DataFrame:
    """The cluster's jobs, finished ones included (``MinJobAge``): id, partition, state, start, end, rule."""
    rows = [line.split("|") for line in _run("squeue", "-h", "-t", "all", "-o", "%i|%P|%T|%S|%e|%k").splitlines()]
    table = pd.DataFrame(rows, columns=["id", "partition", "state", "start", "end", "comment"])
    table["rule"] = table.comment.str.extract(r"^rule_([a-z]+)")[0]
    return table


def most_at_once(spans: list[tuple[datetime, datetime]]) -> int:
    """The largest number of the half-open time spans that overlap (an end before a start at the same time)."""
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    count = best = 0
    for _, step in events:
        count += step
        best = max(best, count)
    return best


def test_profile_runs_the_suite_and_a_cancelled_training_resumes(cluster: Path, tmp_path: Path) -> None:
    small_suite(tmp_path, "slurm", ["vnet_lower", "vnet_upper", "lefed"],
                method_set={"lefed": ["iterations=30", "checkpoint_every=3", "val_every=15"]})
    cmd = readme_command()
    cmd[:1] = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path)]
    run = tmp_path / LEFED
    with open(tmp_path / "snakemake.log", "w") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=workflow_env(), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.time() + 240
        while not (run / "checkpoint_latest.pt").is_file() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.5)
        assert (run / "checkpoint_latest.pt").is_file(), "the LeFeD training never wrote a checkpoint"
        running = jobs()
        lefed = running[(running.rule == "train") & running.comment.str.contains("_lefed_")]
        assert list(lefed.state) == ["RUNNING"], f"the LeFeD training is not running:\n{lefed}"
        cancelled = lefed.id.item()
        _run("scancel", cancelled)
        proc.wait(timeout=420)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=60)
    log = (tmp_path / "snakemake.log").read_text()
    assert proc.returncode == 0, log[-6000:]
    # the cancelled job failed and the retry resumed from the checkpoint; every iteration is logged once
    assert f"SLURM-job '{cancelled}' failed, SLURM status is: 'CANCELLED'" in log and "Trying to restart job" in log
    slurm_log = next((tmp_path / ".snakemake/slurm_logs").rglob(f"{cancelled}.log")).read_text()
    assert f"JOB {cancelled} ON" in slurm_log and "CANCELLED AT" in slurm_log
    resumed = yaml.safe_load((run / "provenance.json").read_text())["resumed_from"]
    assert resumed and resumed["iteration"] > 0 and resumed["iteration"] % 3 == 0, resumed  # checkpoint_every=3
    assert list(pd.read_csv(run / "log.csv").iteration) == list(range(30))
    assert (run / "checkpoint_final.pt").is_file()
    # tables: the three rows of the main table, scored
    table = pd.read_csv(tmp_path / "results/tables/slurm/table_synthetic.csv")
    cells = table[table.row_key != "lefed_minus_bcp"]
    assert list(cells.row_key.unique()) == ["vnet_lower", "vnet_upper", "lefed"]
    assert (cells.n_runs == 1).all() and cells[cells.metric == "dice"]["mean"].between(0, 100).all()
    assert (tmp_path / "figures/slurm/figures.done").is_file()
    # GPU rules went to partition gpu, the others to cpu; the node ran two trainings at once, never three
    done = jobs()
    assert set(done.rule) == {"synth", "complexity", "train", "evaluate", "tables", "figures"}
    gpu = done.rule.isin(["train", "evaluate"])
    assert (done[gpu].partition == "gpu").all() and (done[~gpu].partition == "cpu").all()
    train = done[done.rule == "train"]
    assert sorted(train.state) == ["CANCELLED", "COMPLETED", "COMPLETED", "COMPLETED"]
    spans = [(datetime.fromisoformat(s), datetime.fromisoformat(e)) for s, e in zip(train.start, train.end)]
    assert most_at_once(spans) == NODE_MEM_MB // TRAIN_MEM_MB

"""``totemctl sim``: summary, exit codes, failure reports, and determinism of the simulator."""

from __future__ import annotations

import pytest

import totem.sim.invariants
from totem.cli.totemctl import main
from totem.sim import SimConfig, Simulation, Violation
from totem.sim.runner import faults_text, nodes_for, parse_range, reproduce_command


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(["sim", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_clean_runs_exit_0_with_a_summary(capsys):
    rc, out, err = run(capsys, "--seeds", "3", "--nodes", "3")
    assert rc == 0, out
    assert "sim: 3 runs, 0 with violations, faults all" in out
    for word in ("simulated", "wall", "sim-s per wall-s", "datagrams sent", "lost", "deliveries",
                 "token receptions"):
        assert word in out
    assert "VIOLATION" not in out and "FAILED" not in out
    assert err == ""


def test_verbose_prints_one_line_per_run(capsys):
    rc, out, _ = run(capsys, "--seeds", "2", "--seed", "10", "--nodes-range", "3-4", "--faults", "loss,crash",
                     "--verbose")
    assert rc == 0
    lines = [line for line in out.splitlines() if line.startswith("seed ")]
    assert len(lines) == 2
    assert lines[0].split()[1:4] == ["10", "3", "nodes"] and lines[1].split()[1:4] == ["11", "4", "nodes"]
    assert "faults loss,crash" in out


@pytest.mark.parametrize("faults", ["loss,bogus", "partitions", "all,none"])
def test_invalid_fault_list_exits_2(capsys, faults):
    rc, out, err = run(capsys, "--seeds", "1", "--faults", faults)
    assert rc == 2
    assert "totemctl sim:" in err and "unknown fault kinds" in err
    assert out == ""


@pytest.mark.parametrize("argv", [["--nodes-range", "8-3"], ["--nodes-range", "x"], ["--seeds", "0"],
                                  ["--nodes", "0"]])
def test_invalid_sizes_exit_2(capsys, argv):
    rc, out, err = run(capsys, *argv)
    assert rc == 2 and "totemctl sim:" in err and out == ""


def test_nodes_and_nodes_range_are_exclusive(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["sim", "--nodes", "3", "--nodes-range", "3-5"])
    assert exc.value.code == 2
    capsys.readouterr()


def test_helpers():
    assert parse_range("3-8") == (3, 8)
    assert [nodes_for(s, 3, (3, 8)) for s in range(8)] == [3, 4, 5, 6, 7, 8, 3, 4]
    assert nodes_for(5, 4, None) == 4
    assert faults_text(("loss", "crash")) == "loss,crash"
    assert reproduce_command(7, 5, ()) == "totemctl sim --seed 7 --seeds 1 --nodes 5 --faults none"


def test_a_violation_is_reported_with_seed_schedule_trace_and_replay(capsys, monkeypatch):
    def broken(result):
        seed = result.config.seed
        return [Violation("test", f"planted in seed {seed}")] if seed == 4 else []

    monkeypatch.setattr(totem.sim.invariants, "check", broken)
    rc, out, _ = run(capsys, "--seeds", "3", "--seed", "3", "--nodes", "4", "--faults", "crash,loss")
    assert rc == 1
    assert "VIOLATION  seed 4, 4 nodes, 1 violation(s)" in out
    assert "test: planted in seed 4" in out
    assert "seed 3," not in out and "seed 5," not in out
    assert "-- fault schedule" in out and "heal" in out
    assert "-- trace (last" in out
    assert "totemctl sim --seed 4 --seeds 1 --nodes 4 --faults crash,loss" in out
    assert "sim: 3 runs, 1 with violations" in out
    assert "FAILED    seeds 4 (4 nodes)" in out
    # the report comes before the summary
    assert out.index("VIOLATION") < out.index("sim: 3 runs")


def test_a_crashing_run_is_reported_not_fatal(capsys, monkeypatch):
    def boom(self):
        raise AssertionError("stack exploded")

    monkeypatch.setattr(Simulation, "run", boom)
    rc, out, _ = run(capsys, "--seeds", "2", "--nodes", "3")
    assert rc == 1
    assert "exception: AssertionError: stack exploded" in out
    assert "sim: 2 runs, 2 with violations" in out


# -- determinism ---------------------------------------------------------------------------


def _histories(result):
    return {key: (rec.started, rec.wiped, rec.alive, rec.history, rec.sent)
            for key, rec in result.records.items()}


def test_same_seed_same_run_different_seed_different_run():
    config = dict(nodes=5, faults=SimConfig().faults, trace_len=100_000)
    a = Simulation(SimConfig(seed=11, **config)).run()
    b = Simulation(SimConfig(seed=11, **config)).run()
    assert a.schedule == b.schedule
    assert a.trace == b.trace
    assert _histories(a) == _histories(b)
    assert a.sent == b.sent and a.stats == b.stats and a.final == b.final
    assert len(a.trace) > 50 and any(rec.history for rec in a.records.values())

    c = Simulation(SimConfig(seed=12, **config)).run()
    assert c.trace != a.trace
    assert c.schedule != a.schedule

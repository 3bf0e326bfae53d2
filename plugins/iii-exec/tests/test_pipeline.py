"""The pipeline with real processes and real files: order, failures, restarts, crashes, shutdown."""

from __future__ import annotations

import asyncio
import itertools
import logging

import pytest
from exec_helpers import exec_config, exec_module, lines, live_in_group, pid_alive, write

from iii_core import ConfigError
from iii_core.testing import wait_until


async def test_commands_run_in_order_and_output_is_prefixed(engine_factory, tmp_path, capfd):
    log = tmp_path / "log"
    config = exec_config(
        exec=[
            "echo one >> log",
            "echo two >> log; echo to-stderr >&2",
            "echo three >> log; exec sleep 60",
        ],
        cwd=str(tmp_path),
    )
    async with engine_factory(config) as engine:
        await wait_until(lambda: lines(log) == ["one", "two", "three"], 15, "the three steps")
        await wait_until(lambda: exec_module(engine).starts == 1, 5, "the start to be counted")
        out, err = capfd.readouterr()
        assert "[echo one >> log] " not in out  # the step printed nothing to stdout
        assert "[echo two >> log; echo to-stderr >&2] to-stderr" in err


async def test_name_prefixes_output(engine_factory, tmp_path, capfd):
    config = exec_config(exec=["echo hello; exec sleep 60"], cwd=str(tmp_path), name="api")
    async with engine_factory(config):
        seen = []

        def printed() -> bool:
            seen.append(capfd.readouterr().out)
            return "[api] hello\n" in "".join(seen)

        await wait_until(printed, 15, "the prefixed output line")


async def test_failing_step_stops_the_pipeline(engine_factory, tmp_path, caplog):
    caplog.set_level(logging.INFO, "iii.exec")
    log = tmp_path / "log"
    config = exec_config(
        exec=["echo one >> log", "exit 3", "echo never >> log; exec sleep 60"],
        cwd=str(tmp_path),
    )
    async with engine_factory(config) as engine:
        await wait_until(
            lambda: "step 2/3 `exit 3` exited with code 3" in caplog.text, 15, "the failure log"
        )
        await asyncio.sleep(0.5)
        assert lines(log) == ["one"]
        assert exec_module(engine).starts == 0


async def test_matching_change_restarts_non_matching_does_not(engine_factory, tmp_path):
    (tmp_path / "src" / "pkg").mkdir(parents=True)
    starts = tmp_path / "starts"
    config = exec_config(
        exec=["echo build >> builds", "echo $$ >> starts; exec sleep 60"],
        watch=["src/**/*.py"],
        cwd=str(tmp_path),
        debounce_ms=100,
        stop_grace_ms=2000,
    )
    async with engine_factory(config) as engine:
        await wait_until(lambda: len(lines(starts)) == 1, 15, "the first start")
        first_pid = int(lines(starts)[0])
        await asyncio.sleep(0.5)  # let the watcher settle
        # Not matching: other extension, same name in another directory, a .py outside src/.
        (tmp_path / "src" / "notes.txt").write_text("x")
        (tmp_path / "src" / "pkg" / "mod.pyc").write_text("x")
        (tmp_path / "other.py").write_text("x")
        await asyncio.sleep(1.5)
        assert len(lines(starts)) == 1
        assert exec_module(engine).pipeline_runs == 1
        # Matching, two directories deep.
        (tmp_path / "src" / "pkg" / "mod.py").write_text("x = 1\n")
        await wait_until(lambda: len(lines(starts)) == 2, 15, "the restart")
        assert lines(tmp_path / "builds") == ["build", "build"]  # the whole pipeline reran
        await wait_until(lambda: not pid_alive(first_pid), 5, "the old process to be gone")


async def test_a_burst_of_changes_restarts_once(engine_factory, tmp_path):
    starts = tmp_path / "starts"
    config = exec_config(
        exec=["echo x >> starts; exec sleep 60"],
        watch=["*.py"],
        cwd=str(tmp_path),
        debounce_ms=400,
    )
    async with engine_factory(config) as engine:
        await wait_until(lambda: len(lines(starts)) == 1, 15, "the first start")
        await asyncio.sleep(0.5)
        for index in range(20):
            write(tmp_path / f"m{index % 4}.py", f"v = {index}\n")
        await wait_until(lambda: len(lines(starts)) == 2, 15, "the restart")
        await asyncio.sleep(1.5)
        assert len(lines(starts)) == 2
        assert exec_module(engine).pipeline_runs == 2


async def test_crash_is_restarted_with_backoff(engine_factory, tmp_path, caplog):
    caplog.set_level(logging.INFO, "iii.exec")
    starts = tmp_path / "starts"
    config = exec_config(
        exec=["python3 -c 'import time; print(time.monotonic())' >> starts; exit 7"],
        cwd=str(tmp_path),
        restart_delay_ms=100,
        max_restart_delay_ms=800,
    )
    async with engine_factory(config) as engine:
        await wait_until(lambda: len(lines(starts)) >= 5, 20, "five starts")
        times = [float(t) for t in lines(starts)[:5]]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        # 0.1, 0.2, 0.4, 0.8 s of delay (lower bounds only: the machine may be slow).
        for gap, delay in zip(gaps, [0.1, 0.2, 0.4, 0.8], strict=True):
            assert gap >= delay * 0.9, gaps
        assert "exited with code 7" in caplog.text and "restarting it in" in caplog.text
        # Capped: no hot loop, at most one start per 0.8 s from here on.
        count = len(lines(starts))
        await asyncio.sleep(1.2)
        assert len(lines(starts)) <= count + 2
        assert exec_module(engine).crashes >= 5


async def test_a_change_during_the_backoff_restarts_at_once(engine_factory, tmp_path):
    starts = tmp_path / "starts"
    config = exec_config(
        exec=["echo x >> starts; test -e fixed && exec sleep 60; exit 1"],
        watch=["fixed"],
        cwd=str(tmp_path),
        restart_delay_ms=30_000,
        debounce_ms=50,
    )
    async with engine_factory(config) as engine:
        await wait_until(lambda: exec_module(engine).crashes == 1, 15, "the crash")
        await asyncio.sleep(0.3)
        (tmp_path / "fixed").write_text("")
        await wait_until(lambda: len(lines(starts)) == 2, 15, "the restart after the fix")


async def test_shutdown_leaves_no_orphan(engine_factory, tmp_path):
    pgid_file = tmp_path / "pgid"
    # The shell and its children ignore SIGTERM, so only the SIGKILL after the grace stops them.
    config = exec_config(
        exec=["trap '' TERM; sleep 301 & sleep 302 & echo $$ > pgid; wait"],
        cwd=str(tmp_path),
        stop_grace_ms=300,
    )
    async with engine_factory(config):
        await wait_until(lambda: bool(lines(pgid_file)), 15, "the command")
        pgid = int(lines(pgid_file)[0])
        await wait_until(lambda: len(live_in_group(pgid)) == 3, 10, "the group's processes")
    assert live_in_group(pgid) == []


async def test_shutdown_stops_finished_steps_leftovers(engine_factory, tmp_path):
    # A step that exits 0 but leaves a background process in its group.
    config = exec_config(
        exec=["(sleep 303 &) ; echo $$ > step_pgid", "exec sleep 60"],
        cwd=str(tmp_path),
    )
    async with engine_factory(config) as engine:
        await wait_until(lambda: exec_module(engine).starts == 1, 15, "the last command")
        pgid = int(lines(tmp_path / "step_pgid")[0])
        assert len(live_in_group(pgid)) == 1
    assert live_in_group(pgid) == []


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "exec"),
        ({"exec": []}, "at least one command"),
        ({"exec": ["true"], "bogus": 1}, "unknown key(s) bogus"),
        ({"exec": ["true"], "debounce_ms": -1}, "'debounce_ms' must be >= 0"),
        ({"exec": ["true"], "watch": [""]}, "watch[0]"),
        ({"exec": ["  "]}, "exec[0]"),
    ],
)
async def test_bad_config_is_rejected(engine_factory, config, message):
    with pytest.raises(ConfigError) as info:
        async with engine_factory(exec_config(**config)):
            pass
    assert message in str(info.value)


async def test_missing_cwd_is_rejected(engine_factory, tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        async with engine_factory(exec_config(exec=["true"], cwd=str(tmp_path / "nope"))):
            pass


async def test_alias_class_string(engine_factory, tmp_path):
    config = {
        "modules": [
            {
                "class": "modules::exec::ExecModule",
                "config": {"exec": ["echo $III_URL > url; exec sleep 60"], "cwd": str(tmp_path)},
            }
        ]
    }
    async with engine_factory(config) as engine:
        await wait_until(lambda: bool(lines(tmp_path / "url")), 15, "the command")
        assert lines(tmp_path / "url") == [f"ws://127.0.0.1:{engine.port}"]

"""The Python client against a real orchestrator with two real workers,
started by crates/cli/tests/it/tasks.rs, which passes:

- FUNETUN_TEST_URL: the orchestrator;
- FUNETUN_TEST_KEY: a key that may submit (hex);
- FUNETUN_TEST_MODULES: a directory holding pi.wasm, rounding.wasm,
  rounding-valid.wasm and sweep.wasm (`funetun tasks example`);
- FUNETUN_TEST_RPC: the chain's JSON-RPC, where FUNETUN_TEST_KEY has ether.
"""

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import funetun

URL = os.environ.get("FUNETUN_TEST_URL")
KEY = os.environ.get("FUNETUN_TEST_KEY")
MODULES = Path(os.environ.get("FUNETUN_TEST_MODULES", "."))
RPC = os.environ.get("FUNETUN_TEST_RPC")

pytestmark = pytest.mark.skipif(
    not URL, reason="needs an orchestrator: run through crates/cli/tests/it/tasks.rs"
)


def run(coro):
    return asyncio.run(coro)


def test_a_task_is_submitted_and_its_result_restored_from_another_process():
    async def submit():
        async with await funetun.connect(URL, key=KEY) as conn:
            staged = conn.create_task({"samples": 20000, "seed": 3}, MODULES / "pi.wasm")
            task = await staged.submit()
            result = await task.result(timeout=120)
            info = await task.status()
            return task.task_id, result, info

    task_id, result, info = run(submit())
    assert task_id.startswith("0x") and len(task_id) == 66
    assert result["samples"] == 20000
    assert abs(result["pi"] - 3.14159) < 0.1
    assert info["status"] == "done"
    assert [r["status"] for r in info["replicas"]] == ["valid", "valid"]
    assert len({r["worker"] for r in info["replicas"]}) == 2

    # Another process, with the id alone and no key, after this one's
    # connection closed.
    script = (
        "import asyncio, json, sys, funetun\n"
        "async def main():\n"
        "    async with await funetun.connect(sys.argv[1]) as conn:\n"
        "        print(json.dumps(await conn.restore_task(sys.argv[2]).result(timeout=60)))\n"
        "asyncio.run(main())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, URL, task_id],
        capture_output=True, text=True, check=True, env=os.environ,
    )
    assert json.loads(out.stdout) == result


def test_an_owners_validator_accepts_results_within_its_tolerance():
    async def go():
        async with await funetun.connect(URL, key=KEY) as conn:
            valid = MODULES / "rounding-valid.wasm"
            task = await conn.create_task(
                {"values": 5000, "seed": 9, "order": "pairwise"},
                MODULES / "rounding.wasm",
                init_valid=valid,
                compare_valid=valid,
                redundancy={"min_quorum": 2, "target_nresults": 2,
                            "max_error_results": 1, "max_total_results": 4},
            ).submit()
            return await task.result(timeout=120), await task.status()

    result, info = run(go())
    assert result["order"] == "pairwise"
    assert info["validator"] is not None
    assert info["redundancy"]["max_total_results"] == 4


def test_a_learning_rate_sweep_runs_as_concurrent_tasks():
    # Each point trains the MLP with Funetun's engine compiled to
    # WebAssembly, on two workers that must agree bit for bit.
    async def go():
        async with await funetun.connect(URL, key=KEY) as conn:
            staged = [
                conn.create_task({"lr": lr, "optimizer": "momentum", "steps": 20, "seed": 1},
                                 MODULES / "sweep.wasm")
                for lr in (0.01, 0.1)
            ]
            tasks = await asyncio.gather(*(s.submit() for s in staged))
            results = await asyncio.gather(*(t.result(timeout=300) for t in tasks))
            infos = await asyncio.gather(*(t.status() for t in tasks))
            return results, infos

    results, infos = run(go())
    assert [r["lr"] for r in results] == [0.01, 0.1]
    assert all(r["steps"] == 20 for r in results)
    assert all(0.1 < r["val_accuracy"] <= 1.0 for r in results), results
    assert all(r["train_loss_after"] < r["train_loss_before"] for r in results), results
    assert results[0]["val_accuracy"] != results[1]["val_accuracy"]
    for info in infos:
        assert info["status"] == "done"
        assert [r["status"] for r in info["replicas"]] == ["valid", "valid"]


def test_a_task_out_of_fuel_fails_with_its_class():
    async def go():
        async with await funetun.connect(URL, key=KEY) as conn:
            task = await conn.create_task(
                {"samples": 1000000, "seed": 1}, MODULES / "pi.wasm", fuel=1000
            ).submit()
            return await task.result(timeout=120)

    with pytest.raises(funetun.TaskFailed) as failed:
        run(go())
    assert failed.value.error == "fuel"


def test_a_batch_funded_from_python_pays_its_tasks():
    async def go():
        async with await funetun.connect(URL, key=KEY) as conn:
            with pytest.raises(ValueError):
                await conn.fund_batch(RPC, 10**15, 2 * 10**15)
            batch = await conn.fund_batch(RPC, 12 * 10**15, 10**15, hours=2)
            task = await conn.create_task({"samples": 3000, "seed": 5}, MODULES / "pi.wasm",
                                          batch=batch).submit()
            result = await task.result(timeout=120)
            deadline = asyncio.get_running_loop().time() + 60
            while True:
                info = await task.status()
                if info["settled"] or asyncio.get_running_loop().time() > deadline:
                    return batch, result, info
                await asyncio.sleep(0.2)

    batch, result, info = run(go())
    assert batch >= 1
    assert result["samples"] == 3000
    assert info["batch"] == batch
    # The leader paid both agreeing results on-chain.
    assert info["settled"] and info["settlement"].startswith("0x")


def test_bad_submissions_are_refused_with_their_codes():
    async def refused(**kwargs):
        async with await funetun.connect(URL, key=KEY) as conn:
            args = {"kwargs": {"samples": 10, "seed": 1}, "wasm": MODULES / "pi.wasm", **kwargs}
            with pytest.raises(funetun.FunetunError) as err:
                await conn.create_task(args.pop("kwargs"), args.pop("wasm"), **args).submit()
            return err.value

    assert run(refused(wasm=b"not a module")).code == "invalid_module"
    e = run(refused(redundancy={"min_quorum": 3, "target_nresults": 2}))
    assert (e.status, e.code) == (400, "bad_redundancy")
    assert run(refused(init_valid=MODULES / "pi.wasm")).code == "bad_validator"
    # A batch that does not exist on the contract funds nothing.
    assert run(refused(batch=999_999)).code == "unknown_batch"
    with pytest.raises(ValueError):
        funetun.Connection(URL).create_task({}, b"", batch=0)
    with pytest.raises(TypeError):
        funetun.Connection(URL).create_task([1, 2], b"")
    with pytest.raises(ValueError):
        funetun.Connection(URL).restore_task("42")

    async def unsigned():
        async with await funetun.connect(URL) as conn:
            await conn.create_task({}, MODULES / "pi.wasm").submit()

    with pytest.raises(funetun.FunetunError) as err:
        run(unsigned())
    assert err.value.code == "no_key"

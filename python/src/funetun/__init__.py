"""Funetun's generic verified compute from Python.

A task is a WebAssembly module and its keyword arguments (a JSON object);
participants of a Funetun market run it in a sandbox, several times over,
and the orchestrator keeps the result a quorum agreed on. A task is known
by a persistent id: any process can read its result with the id alone.

    import asyncio, funetun

    async def main():
        conn = await funetun.connect("http://127.0.0.1:8080", key=OWNER_KEY)
        staged = conn.create_task({"samples": 100000, "seed": 7}, "pi.wasm")
        task = await staged.submit()
        print(task.task_id, await task.result())

    asyncio.run(main())
"""

from .client import (
    Connection,
    FunetunError,
    Redundancy,
    StagedTask,
    SubmittedTask,
    TaskFailed,
    connect,
)

__all__ = [
    "Connection",
    "FunetunError",
    "Redundancy",
    "StagedTask",
    "SubmittedTask",
    "TaskFailed",
    "connect",
]

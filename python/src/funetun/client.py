"""The client: a signed HTTP connection to an orchestrator and the tasks
submitted through it. See docs/tasks.md of the Funetun repository for the
routes, the redundancy rule and the failure classes."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional, Union

import eth_abi
import httpx
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak, to_checksum_address

#: The tag every signed request's message starts with.
DOMAIN_TAG = "funetun-request-v1"

Wasm = Union[bytes, str, os.PathLike]


class FunetunError(Exception):
    """The orchestrator refused a request: ``status`` (HTTP), ``code`` (a
    stable word such as ``bad_input`` or ``invalid_module``) and ``detail``
    (what went wrong and what to do)."""

    def __init__(self, status: int, code: str, detail: str):
        super().__init__(f"{code} ({status}): {detail}")
        self.status = status
        self.code = code
        self.detail = detail


class TaskFailed(Exception):
    """A task ended without an output: its canonical result is a failure
    class (``error``: trap, fuel, memory, output_size, bad_output,
    invalid_module), or no quorum was reached (``error`` is None and
    ``reason`` says why)."""

    def __init__(self, task_id: str, error: Optional[str], reason: str):
        super().__init__(f"task {task_id}: {error or 'no quorum'}: {reason}")
        self.task_id = task_id
        self.error = error
        self.reason = reason


@dataclass(frozen=True)
class Redundancy:
    """BOINC's redundancy settings: ``min_quorum`` agreeing results of
    ``target_nresults`` replicas issued at first, at most
    ``max_total_results`` in all, giving up after ``max_error_results``
    failures without a quorum. ``adaptive`` runs the task once when its
    first worker has a clean record (random spot checks aside)."""

    min_quorum: int = 2
    target_nresults: int = 2
    max_error_results: int = 3
    max_total_results: int = 6
    adaptive: bool = False

    @classmethod
    def of(cls, value: Union["Redundancy", dict, int, None]) -> "Redundancy":
        """``None`` (the defaults), an int N (N agreeing of N), a dict of
        the fields, or a Redundancy."""
        if value is None:
            return cls()
        if isinstance(value, Redundancy):
            return value
        if isinstance(value, int):
            return cls(min_quorum=value, target_nresults=value,
                       max_total_results=max(value, cls.max_total_results))
        if isinstance(value, dict):
            unknown = set(value) - set(cls.__dataclass_fields__)
            if unknown:
                raise ValueError(f"unknown redundancy fields {sorted(unknown)}; "
                                 f"use {sorted(cls.__dataclass_fields__)}")
            return cls(**value)
        raise TypeError("redundancy is None, an int, a dict or a Redundancy")


def _module_bytes(wasm: Wasm) -> bytes:
    if isinstance(wasm, (bytes, bytearray)):
        return bytes(wasm)
    return Path(wasm).read_bytes()


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


#: ``createTaskBatch(bytes32,address,uint256,uint32)``'s selector.
_CREATE_TASK_BATCH = keccak(b"createTaskBatch(bytes32,address,uint256,uint32)")[:4]

#: The topic of the contract's ``TaskBatchCreated`` event.
_TASK_BATCH_CREATED = keccak(
    b"TaskBatchCreated(uint256,address,address,bytes32,uint256,uint256,uint64)")


class _Rpc:
    """Ethereum JSON-RPC over the connection's HTTP client."""

    def __init__(self, http: httpx.AsyncClient, url: str):
        self._http = http
        self._url = url
        self._id = 0

    async def call(self, method: str, params: list) -> Any:
        self._id += 1
        response = await self._http.post(
            self._url, json={"jsonrpc": "2.0", "id": self._id, "method": method, "params": params})
        response.raise_for_status()
        body = response.json()
        if body.get("error"):
            err = body["error"]
            raise FunetunError(0, "chain_error", f"{method}: {err.get('message', err)}")
        return body.get("result")


class Connection:
    """A connection to one orchestrator, signing with one key (or none:
    then it can only read)."""

    def __init__(self, url: str, key: Optional[str] = None, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self._account = Account.from_key(key) if key else None
        self._http = httpx.AsyncClient(timeout=timeout)

    @property
    def address(self) -> Optional[str]:
        """The signing address, if a key was given."""
        return self._account.address if self._account else None

    async def close(self) -> None:
        """Closes the HTTP connections."""
        await self._http.aclose()

    async def __aenter__(self) -> "Connection":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def _headers(self, method: str, path: str, body: bytes) -> dict:
        if self._account is None:
            raise FunetunError(0, "no_key",
                               "this connection has no key; pass key= to funetun.connect to submit")
        timestamp = int(time.time())
        nonce = secrets.token_hex(16)
        message = "\n".join([DOMAIN_TAG, method.upper(), path, _hex(keccak(body)),
                             str(timestamp), nonce])
        signed = self._account.sign_message(encode_defunct(text=message))
        return {
            "x-funetun-address": self._account.address,
            "x-funetun-timestamp": str(timestamp),
            "x-funetun-nonce": nonce,
            "x-funetun-signature": _hex(bytes(signed.signature)),
        }

    async def _send(self, method: str, path: str, body: Optional[bytes] = None,
                    content_type: str = "application/json", signed: bool = False) -> httpx.Response:
        headers = {}
        if body is not None:
            headers["content-type"] = content_type
        if signed:
            headers.update(self._headers(method, path, body or b""))
        response = await self._http.request(method, self.url + path, content=body, headers=headers)
        if response.status_code >= 400:
            try:
                err = response.json()
                raise FunetunError(response.status_code, err.get("error", "unknown"),
                                   err.get("detail", response.text))
            except ValueError:
                raise FunetunError(response.status_code, "unknown", response.text) from None
        return response

    async def info(self) -> dict:
        """``GET /v1/info``: the leader, contract and chain this orchestrator serves."""
        return (await self._send("GET", "/v1/info")).json()

    async def fund_batch(self, rpc_url: str, deposit_wei: int, reward_wei: int, *,
                         hours: int = 24, label: str = "funetun task batch",
                         timeout: float = 120.0) -> int:
        """Funds a task batch on the contract this orchestrator serves
        (``createTaskBatch``, led by it): ``deposit_wei`` locked, each
        result in a task's canonical class paid ``reward_wei``, for
        ``hours``. Signs the transaction with this connection's key, sends
        it to ``rpc_url`` (the chain's JSON-RPC) and returns the batch id
        once it is mined; tasks name it with ``create_task(..., batch=N)``.
        The deposit must cover at least one result."""
        if self._account is None:
            raise FunetunError(0, "no_key", "funding a batch needs a key: pass key= to funetun.connect")
        if reward_wei <= 0 or deposit_wei < reward_wei:
            raise ValueError("the reward must be positive and the deposit at least one reward")
        if not 1 <= hours < 2**32 // 3600:
            raise ValueError("hours must be between 1 and 1193046")
        info = await self.info()
        contract = to_checksum_address(info["contract"])
        data = _CREATE_TASK_BATCH + eth_abi.encode(
            ["bytes32", "address", "uint256", "uint32"],
            [keccak(label.encode()), to_checksum_address(info["leader"]), reward_wei,
             hours * 3600],
        )
        rpc = _Rpc(self._http, rpc_url)
        sender = self._account.address
        call = {"from": sender, "to": contract, "value": hex(deposit_wei),
                "data": _hex(data)}
        gas = int(await rpc.call("eth_estimateGas", [call]), 16)
        tx = {
            "chainId": int(await rpc.call("eth_chainId", []), 16),
            "nonce": int(await rpc.call("eth_getTransactionCount", [sender, "pending"]), 16),
            "to": contract,
            "value": deposit_wei,
            "data": data,
            "gas": gas + gas // 5,
            "gasPrice": int(await rpc.call("eth_gasPrice", []), 16),
        }
        signed = self._account.sign_transaction(tx)
        tx_hash = await rpc.call("eth_sendRawTransaction", [_hex(bytes(signed.raw_transaction))])
        deadline = time.monotonic() + timeout
        while True:
            receipt = await rpc.call("eth_getTransactionReceipt", [tx_hash])
            if receipt is not None:
                break
            if time.monotonic() > deadline:
                raise FunetunError(0, "not_mined", f"transaction {tx_hash} was not mined in {timeout} s")
            await asyncio.sleep(0.2)
        if int(receipt["status"], 16) != 1:
            raise FunetunError(0, "reverted", f"createTaskBatch reverted (transaction {tx_hash})")
        for log in receipt["logs"]:
            if log["topics"] and log["topics"][0] == _hex(_TASK_BATCH_CREATED):
                return int(log["topics"][1], 16)
        raise FunetunError(0, "no_event", f"transaction {tx_hash} created no task batch")

    async def upload_module(self, wasm: Wasm) -> str:
        """Uploads a WebAssembly module as a blob; returns its keccak256."""
        data = _module_bytes(wasm)
        digest = _hex(keccak(data))
        await self._send("PUT", f"/v1/blobs/{digest}?kind=data", data,
                         "application/octet-stream", signed=True)
        return digest

    def create_task(self, kwargs: dict, wasm: Wasm, *, init_valid: Optional[Wasm] = None,
                    compare_valid: Optional[Wasm] = None,
                    redundancy: Union[Redundancy, dict, int, None] = None,
                    fuel: Optional[int] = None,
                    batch: Optional[int] = None) -> "StagedTask":
        """Stages a task: ``kwargs`` (a JSON-serialisable dict) is its input,
        ``wasm`` its module (bytes or a path). ``init_valid`` and
        ``compare_valid`` name the validator module exporting those
        functions (one module: give it as either or both); without one,
        replicas must agree byte for byte. ``batch`` is a task batch of
        yours on the contract (``funetun tasks submit --deposit`` funds one
        and prints its id) that pays the results; without it the task runs
        unpaid. Nothing is sent until :meth:`StagedTask.submit`."""
        if not isinstance(kwargs, dict):
            raise TypeError("kwargs is a dict (the task's JSON input)")
        if batch is not None and (not isinstance(batch, int) or batch <= 0):
            raise ValueError(f"batch is a positive task batch id, not {batch!r}")
        validator = None
        given = [v for v in (init_valid, compare_valid) if v is not None]
        if given:
            modules = {_module_bytes(v) for v in given}
            if len(modules) > 1:
                raise ValueError("init_valid and compare_valid are exports of one validator "
                                 "module; give the same module for both")
            validator = modules.pop()
        return StagedTask(self, json.dumps(kwargs, separators=(",", ":")), _module_bytes(wasm),
                          validator, Redundancy.of(redundancy), fuel, batch)

    def restore_task(self, task_id: str) -> "SubmittedTask":
        """The task ``task_id`` (submitted by any process, anywhere), to read
        its status and result."""
        if not (isinstance(task_id, str) and task_id.startswith("0x") and len(task_id) == 66):
            raise ValueError(f"{task_id!r} is not a task id (0x and 64 hex digits)")
        return SubmittedTask(self, task_id.lower())

    async def task_info(self, task_id: str) -> dict:
        """``GET /v1/compute/tasks/{id}``: status, replicas, result."""
        return (await self._send("GET", f"/v1/compute/tasks/{task_id}")).json()


class StagedTask:
    """A task not submitted yet."""

    def __init__(self, conn: Connection, input_json: str, wasm: bytes,
                 validator: Optional[bytes], redundancy: Redundancy, fuel: Optional[int],
                 batch: Optional[int] = None):
        self._conn = conn
        self.input = input_json
        self.wasm = wasm
        self.validator = validator
        self.redundancy = redundancy
        self.fuel = fuel
        self.batch = batch

    async def submit(self) -> "SubmittedTask":
        """Uploads the modules and submits the task; the orchestrator checks
        everything and stores nothing for a bad submission
        (:class:`FunetunError` says what to fix)."""
        module = await self._conn.upload_module(self.wasm)
        body: dict = {"module": module, "input": self.input,
                      "redundancy": asdict(self.redundancy)}
        if self.validator is not None:
            body["validator"] = await self._conn.upload_module(self.validator)
        if self.fuel is not None:
            body["fuel"] = self.fuel
        if self.batch is not None:
            body["batch"] = self.batch
        response = await self._conn._send("POST", "/v1/compute/tasks",
                                          json.dumps(body).encode(), signed=True)
        return SubmittedTask(self._conn, response.json()["task_id"])


class SubmittedTask:
    """A submitted task, known by its persistent ``task_id``."""

    def __init__(self, conn: Connection, task_id: str):
        self._conn = conn
        self.task_id = task_id

    def __repr__(self) -> str:
        return f"SubmittedTask({self.task_id})"

    async def status(self) -> dict:
        """The task's record: ``status`` (open, done, failed), replicas, result."""
        return await self._conn.task_info(self.task_id)

    async def result(self, timeout: Optional[float] = None, first_delay: float = 0.25,
                     max_delay: float = 10.0) -> Any:
        """Waits for the canonical result (asking again with exponential
        back-off) and returns the output, parsed from JSON. Raises
        :class:`TaskFailed` for a canonical failure class or a task without
        a quorum, :class:`TimeoutError` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = first_delay
        while True:
            info = await self.status()
            if info["status"] == "done":
                result = info["result"]
                if result.get("output") is not None:
                    return json.loads(result["output"])
                raise TaskFailed(self.task_id, result.get("error"), result.get("detail", ""))
            if info["status"] == "failed":
                raise TaskFailed(self.task_id, None, info.get("reason", ""))
            if deadline is not None and time.monotonic() + delay > deadline:
                raise TimeoutError(f"task {self.task_id} is still open after {timeout} s")
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, max_delay)


async def connect(url: str, key: Optional[str] = None, timeout: float = 30.0) -> Connection:
    """Connects to the orchestrator at ``url`` (checking that it answers),
    signing with ``key`` (hex private key) when given."""
    conn = Connection(url, key, timeout)
    try:
        await conn.info()
    except httpx.HTTPError as e:
        await conn.close()
        raise ConnectionError(f"cannot reach the orchestrator at {url}: {e}") from e
    return conn

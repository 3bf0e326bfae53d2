"""Owner-aware registry rules (sans-I/O)."""

from __future__ import annotations

import pytest

from iii_core.errors import RegistrationError
from iii_core.registries import (
    FunctionEntry,
    FunctionRegistry,
    ServiceRegistry,
    Trigger,
    TriggerRegistry,
    Worker,
)


class _Conn:
    def send(self, frame: bytes) -> None:
        pass

    def close(self, code: int, reason: str) -> None:
        pass


def _worker(name: str) -> Worker:
    return Worker(name, _Conn())


def _add(reg: FunctionRegistry, fid: str, w: Worker) -> bool:
    _, created = reg.add_worker_owner(
        fid, w, description=None, request_format=None, response_format=None, metadata=None
    )
    return created


def test_several_owners_share_one_id_and_leave_one_by_one() -> None:
    reg = FunctionRegistry()
    a, b = _worker("a"), _worker("b")
    assert _add(reg, "f", a) is True
    assert _add(reg, "f", b) is False
    assert reg.remove_owner("f", a) is None  # b still owns it
    assert reg.get("f") is not None
    assert reg.remove_owner("f", b) is not None
    assert reg.get("f") is None


def test_an_earlier_owner_leaving_does_not_remove_a_later_one() -> None:
    reg = FunctionRegistry()
    a, b = _worker("a"), _worker("b")
    _add(reg, "f", a)
    _add(reg, "f", b)
    reg.remove_owner("f", a)
    entry = reg.get("f")
    assert entry is not None and entry.owners == [b]


def test_pick_owner_prefers_least_loaded_then_rotates() -> None:
    reg = FunctionRegistry()
    a, b = _worker("a"), _worker("b")
    _add(reg, "f", a)
    _add(reg, "f", b)
    entry = reg.get("f")
    assert entry is not None
    picks = [entry.pick_owner().id for _ in range(4)]  # type: ignore[union-attr]
    assert sorted(picks) == ["a", "a", "b", "b"]
    a.inflight.update({"1", "2"})
    assert {entry.pick_owner().id for _ in range(4)} == {"b"}  # type: ignore[union-attr]


def test_module_function_cannot_be_taken_over() -> None:
    reg = FunctionRegistry()

    async def handler(data: object, ctx: object) -> None:
        return None

    reg.add_module_function(FunctionEntry("state::get", handler=handler))
    with pytest.raises(RegistrationError):
        _add(reg, "state::get", _worker("a"))
    with pytest.raises(RegistrationError):
        reg.add_module_function(FunctionEntry("state::get", handler=handler))


def test_timeout_from_metadata() -> None:
    reg = FunctionRegistry()
    entry, _ = reg.add_worker_owner(
        "f",
        _worker("a"),
        description=None,
        request_format=None,
        response_format=None,
        metadata={"timeout_ms": 250},
    )
    assert entry.timeout_ms == 250


def test_services_derive_from_dotted_ids() -> None:
    services = ServiceRegistry()
    services.function_added("users.create")
    services.function_added("users.profile.get")
    services.function_added("engine::functions::list")
    assert services.services() == {"users": ["create", "profile.get"]}
    services.function_removed("users.create")
    services.function_removed("users.profile.get")
    assert services.services() == {}


def test_trigger_registry_indexes_by_type() -> None:
    triggers = TriggerRegistry()
    triggers.add(Trigger("1", "http", "f", {}))
    triggers.add(Trigger("2", "cron", "g", {}))
    assert [t.id for t in triggers.of_type("http")] == ["1"]
    triggers.remove("1")
    assert triggers.of_type("http") == []
    assert len(triggers) == 1

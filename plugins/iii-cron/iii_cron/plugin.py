"""Entry point ``iii`` → ``cron``: the cron module and its lock adapters."""

from __future__ import annotations

from iii_core import AdapterSpec, ModuleSpec, hookimpl
from iii_cron.local_lock import LocalCronLock
from iii_cron.module import CronModule
from iii_cron.redis_lock import RedisCronLock


@hookimpl
def iii_module_specs() -> list[ModuleSpec]:
    return [
        ModuleSpec(
            class_names=("modules::cron::CronModule",),
            factory=CronModule,
            default=True,
            description="cron trigger type (scheduled function calls)",
        )
    ]


@hookimpl
def iii_adapter_specs() -> list[AdapterSpec]:
    return [
        AdapterSpec(
            kind="cron",
            class_names=("modules::cron::LocalCronAdapter", "modules::cron::KvCronAdapter"),
            factory=LocalCronLock.from_config,
            default=True,
            description="in-process cron lock (one engine)",
        ),
        AdapterSpec(
            kind="cron",
            class_names=("modules::cron::RedisCronAdapter",),
            factory=RedisCronLock.from_config,
            description="Redis cron lock: several engines fire each tick once",
        ),
    ]

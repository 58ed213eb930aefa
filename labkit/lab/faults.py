"""Faults as injectors: what each kind of ``labkit.config.faults`` plan does to a running session.

An injector hooks into the one pipeline (``labkit.lab.session``) at fixed
points: it ``tune``s a process's settings before it starts, may put itself on
the consumer-provider hop (``link``), acts at its times while the workload is
published (``during``), notes whole-run episodes after publishing
(``after_publish``) and cleans up (``close``). A plain run uses the
``Plain`` injector, which does nothing. Injectors tune a process by its role
(provider, receiver, poller, streams) and act by the style's family (push, pull
or stream: ``labkit.styles.StyleInfo.family``), never by a style's name or the
role of its consumer process.
"""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any, Protocol

from labkit.config.faults import (
    ConsumerDown,
    ConsumerKill,
    FaultPlan,
    NetworkFault,
    ProviderKill,
    ReceiverDead,
    ReceiverErrors,
    ReceiverGone,
    ReceiverSlow,
    StreamDrop,
    Throttle,
)
from labkit.lab.measures import Episode
from labkit.servers.netproxy import EMULATION, Impairment, NetProxy
from labkit.styles.base import Lab, Role

MID_DISPATCH_WAIT_S = 2.0
# A fault run rides out a provider crash by retrying a publish this long; a plain run never retries.
FAULT_PUBLISH_GIVE_UP_S = 60.0


class FaultLab(Lab, Protocol):
    """The session as an injector sees it: the style's view plus the process controls a fault needs."""

    episodes: list[Episode]
    t0_ns: int
    publish_end_ns: int

    async def until(self, at_s: float) -> None: ...

    async def stop_consumer(self) -> None: ...

    async def kill(self, role: Role) -> None: ...

    async def restart(self, role: Role) -> dict[str, Any]: ...

    async def archive_counters(self, role: Role) -> None: ...


class Injector:
    """A fault kind's hooks; the defaults do nothing (a plain run, or the baseline)."""

    publish_give_up_s = FAULT_PUBLISH_GIVE_UP_S

    def __init__(self, plan: FaultPlan | None) -> None:
        self.plan = plan

    @property
    def promises_no_loss(self) -> bool:
        return True if self.plan is None else bool(self.plan.promises_no_loss)

    def tune(self, role: str, settings: dict[str, Any], lab: Lab) -> None:
        """Adjust the settings of a process about to start in ``role`` (provider, receiver, poller, streams)."""

    async def link(self, lab: Lab, host: str, port: int) -> str:
        """The URL of the consumer-provider hop to ``host:port``."""
        return f"http://{host}:{port}"

    async def during(self, lab: FaultLab) -> None:
        """Act at the plan's times while the workload is published (times count from its start)."""

    def after_publish(self, lab: FaultLab) -> None:
        """Note episodes that lasted the whole publishing window."""

    async def close(self) -> None:
        """Release what ``link`` started."""

    def block(self) -> dict[str, Any]:
        """Extra keys for the run's fault block."""
        return {}


class Plain(Injector):
    """No fault plan: nothing is injected, and a refused publish counts as an error at once."""

    publish_give_up_s = 0.0


class ConsumerDownInjector(Injector):
    async def during(self, lab: FaultLab) -> None:
        f = self.plan
        assert isinstance(f, ConsumerDown)
        await lab.until(f.at_s)
        started = time.time_ns()
        await lab.stop_consumer()
        await lab.until(f.at_s + f.duration_s)
        lab.episodes.append(Episode("consumer stopped", started, time.time_ns(), await lab.restart(lab.consumer)))


class ConsumerKillInjector(Injector):
    async def during(self, lab: FaultLab) -> None:
        f = self.plan
        assert isinstance(f, ConsumerKill)
        for at in f.at_s:
            await lab.until(at)
            await lab.archive_counters(lab.consumer)
            started = time.time_ns()
            await lab.kill(lab.consumer)
            await asyncio.sleep(f.restart_after_s)
            lab.episodes.append(Episode("consumer SIGKILLed", started, time.time_ns(), await lab.restart(lab.consumer)))


class ProviderKillInjector(Injector):
    def tune(self, role: str, settings: dict[str, Any], lab: Lab) -> None:
        f = self.plan
        assert isinstance(f, ProviderKill)
        if role == "receiver":
            settings["delay_ms"] = f.receiver_delay_ms  # every acknowledgement is slow, so the kill lands mid-dispatch

    async def during(self, lab: FaultLab) -> None:
        f = self.plan
        assert isinstance(f, ProviderKill)
        for at in f.at_s:
            await lab.until(at)
            in_flight = await _wait_mid_dispatch(lab)
            started = time.time_ns()
            await lab.kill(lab.provider)
            await asyncio.sleep(f.restart_after_s)
            ended = time.time_ns()
            detail = await lab.restart(lab.provider)
            lab.episodes.append(Episode("provider SIGKILLed", started, ended, {"in_flight_at_kill": in_flight, **detail}))


async def _wait_mid_dispatch(lab: FaultLab) -> int | None:
    """Wait (briefly) until the provider has deliveries in flight; None at once for a style it does not push to."""
    deadline = time.monotonic() + MID_DISPATCH_WAIT_S
    in_flight = None
    while time.monotonic() < deadline:
        in_flight = await lab.style.in_flight(lab)
        if in_flight is None and lab.style.info.family != "push":
            return None  # only a provider that pushes to the consumer's endpoint has deliveries in flight to wait for
        if in_flight:
            return in_flight
        await asyncio.sleep(0.01)
    return in_flight


class ReceiverWindow(Injector):
    """Receiver faults (slow, errors, 429, 410) armed by SIGUSR1 and lifted by SIGUSR2."""

    def tune(self, role: str, settings: dict[str, Any], lab: Lab) -> None:
        f = self.plan
        if role == "provider" and isinstance(f, ReceiverSlow):
            settings["delivery_timeout_s"] = f.delivery_timeout_s
        if role == "provider" and isinstance(f, Throttle) and lab.style.info.family == "pull":
            settings["key_rate_limits"] = {lab.consumer_key: [f.rate_limit_per_s, f.rate_limit_burst]}
        if role != "receiver":
            return
        if isinstance(f, ReceiverSlow):
            settings["delay_ms"] = f.delay_ms
        elif isinstance(f, ReceiverErrors):
            settings.update(fail_rate=f.rate, fail_status=f.status)
        elif isinstance(f, Throttle):
            settings.update(fail_rate=f.rate, fail_status=429, retry_after_s=f.retry_after_s)
        elif isinstance(f, ReceiverGone):
            settings["gone"] = True
        settings["fault_trigger"] = "signal"

    async def during(self, lab: FaultLab) -> None:
        f = self.plan
        if lab.style.info.family != "push":
            return  # a pulled style's throttle is the provider's key limit, for the whole run
        if isinstance(f, ReceiverGone):
            await lab.until(f.at_s)
            lab.consumer.child.popen.send_signal(signal.SIGUSR1)
            lab.episodes.append(Episode("receiver answers 410", time.time_ns(), None, {}))
            return
        assert isinstance(f, (ReceiverSlow, ReceiverErrors, Throttle))
        await lab.until(f.at_s)
        lab.consumer.child.popen.send_signal(signal.SIGUSR1)
        started = time.time_ns()
        await lab.until(f.at_s + f.duration_s)
        lab.consumer.child.popen.send_signal(signal.SIGUSR2)
        lab.episodes.append(Episode(f.describe(), started, time.time_ns(), {}))

    def after_publish(self, lab: FaultLab) -> None:
        if isinstance(self.plan, Throttle) and lab.style.info.family == "pull":
            lab.episodes.append(Episode("poller key rate-limited", lab.t0_ns, lab.publish_end_ns, {}))


class NetworkInjector(Injector):
    """A user-space TCP proxy on each consumer-provider hop, impaired for the plan's window.

    A style with two hops (the hybrid: the provider's pushes to the receiver and the
    reconciler's polls to the provider) gets a proxy on each, switched together.
    """

    def __init__(self, plan: FaultPlan | None) -> None:
        super().__init__(plan)
        self.proxies: list[NetProxy] = []

    async def link(self, lab: Lab, host: str, port: int) -> str:
        f = self.plan
        assert isinstance(f, NetworkFault)
        imp = Impairment(delay_ms=f.delay_ms, jitter_ms=f.jitter_ms, loss=f.loss, rto_ms=f.rto_ms, reset=f.reset)
        proxy = NetProxy(host, port, imp, seed=lab.settings.workload.seed + len(self.proxies), active=f.at_s == 0)
        self.proxies.append(proxy)
        await proxy.start()
        return proxy.url

    def _switch(self, active: bool) -> None:
        for proxy in self.proxies:
            proxy.active = active

    async def during(self, lab: FaultLab) -> None:
        f = self.plan
        assert isinstance(f, NetworkFault)
        if f.at_s <= 0 or not self.proxies:
            return
        await lab.until(f.at_s)
        self._switch(True)
        started = time.time_ns()
        if f.duration_s > 0:
            await lab.until(f.at_s + f.duration_s)
            self._switch(False)
            lab.episodes.append(Episode("network impaired", started, time.time_ns(), {}))
        else:
            lab.episodes.append(Episode("network impaired", started, None, {}))

    def after_publish(self, lab: FaultLab) -> None:
        f = self.plan
        if isinstance(f, NetworkFault) and f.at_s == 0 and f.duration_s == 0:
            lab.episodes.append(Episode("network impaired", lab.t0_ns, None, {}))

    async def close(self) -> None:
        for proxy in self.proxies:
            await proxy.stop()

    def block(self) -> dict[str, Any]:
        if not self.proxies:
            return {}
        # one hop (every shipped style but the hybrid): that proxy's counters, as before; several: summed
        snaps = [p.stats.snapshot() for p in self.proxies]
        total = snaps[0] if len(snaps) == 1 else measures_sum(snaps)
        return {"network": {"emulation": EMULATION, **total}}


def measures_sum(snaps: list[dict[str, Any]]) -> dict[str, Any]:
    """Several proxies' counters: numbers summed, anything else from the first."""
    out: dict[str, Any] = dict(snaps[0])
    for snap in snaps[1:]:
        for k, v in snap.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and isinstance(out.get(k), (int, float)):
                out[k] = out[k] + v
    out["hops"] = len(snaps)
    return out


class ReceiverDeadInjector(Injector):
    """The receiver fails every delivery from ``at_s`` on; the provider's disable policy ends the endpoint."""

    def tune(self, role: str, settings: dict[str, Any], lab: Lab) -> None:
        f = self.plan
        assert isinstance(f, ReceiverDead)
        if role == "provider":
            settings["disable_after_failing_s"] = f.disable_after_s
        elif role == "receiver":
            settings.update(fail_rate=1.0, fail_status=f.status, fault_trigger="signal")

    async def during(self, lab: FaultLab) -> None:
        f = self.plan
        assert isinstance(f, ReceiverDead)
        if lab.style.info.family != "push":
            return
        await lab.until(f.at_s)
        lab.consumer.child.popen.send_signal(signal.SIGUSR1)  # armed, never lifted
        lab.episodes.append(Episode(f.describe(), time.time_ns(), None, {}))


class StreamDropInjector(Injector):
    """Cut every held stream at the plan's times: SIGUSR2 to the consumer fleet, which reconnects and resumes."""

    async def during(self, lab: FaultLab) -> None:
        f = self.plan
        assert isinstance(f, StreamDrop)
        for at in f.at_s:
            await lab.until(at)
            if lab.style.info.family != "stream" or not lab.consumer.child.alive():
                continue
            now = time.time_ns()
            lab.consumer.child.popen.send_signal(signal.SIGUSR2)
            # the cut is instantaneous; the catch-up (reconnect, resume after the last id) is measured from it
            lab.episodes.append(Episode("every stream cut", now, now, {}))


# A fault's kind chooses its injector (labkit.config.faults.KINDS).
INJECTORS: dict[str, type[Injector]] = {
    "none": Injector,
    "consumer_down": ConsumerDownInjector,
    "consumer_kill": ConsumerKillInjector,
    "provider_kill": ProviderKillInjector,
    "receiver_slow": ReceiverWindow,
    "receiver_errors": ReceiverWindow,
    "throttle": ReceiverWindow,
    "receiver_gone": ReceiverWindow,
    "receiver_dead": ReceiverDeadInjector,
    "stream_drop": StreamDropInjector,
    "network": NetworkInjector,
}


def injector_for(plan: FaultPlan | None) -> Injector:
    """The injector of ``plan``'s kind; ``Plain`` for a run without a fault."""
    if plan is None:
        return Plain(None)
    return INJECTORS[plan.kind](plan)

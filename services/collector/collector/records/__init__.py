"""The collector's store: every statement it runs against its tables, by area.

- ``registry``: DTUs and meters as registered, and the API's views of them;
- ``bus``: what a DTU's bus loop works from and records of its link;
- ``commands``: commands kept until executed, and their results;
- ``states``: each meter's conditions (link, identity, clock...), why and since when;
- ``replicas``: leases among the replicas sharing the field, and read-now requests.

Every change that others must hear about is emitted in the same unit of work. Callers use
``records.<name>``; the areas are this package's own layout.
"""

from collector.records.bus import (
    BusConfig,
    MeterConfig,
    dtu_kind_of_meter,
    load_bus,
    record_clock_anomaly,
    record_dtu_lost,
    record_dtu_reachable,
    record_security_event,
)
from collector.records.commands import (
    CommandOutcome,
    PendingCommand,
    accept_commands,
    finish_command,
    forgotten_commands,
    meters_with_commands,
    pending_for,
)
from collector.records.registry import (
    count_online,
    dial_in_registrations,
    dtu_kind,
    enabled_dtus,
    get_meter,
    last_read_at,
    list_dtus,
    list_meters,
    meter_ids_of_dtu,
    move_meter,
    register_dtu,
    remove_dtu,
    remove_meters,
    set_dtu_enabled,
    set_meter_enabled,
)
from collector.records.replicas import (
    give_up_lease,
    last_read_request_id,
    read_requests_after,
    renew_lease,
    request_reads,
)
from collector.records.states import (
    clear_meter_state,
    learn_identity,
    meters_with_states,
    set_meter_state,
)

__all__ = [
    "BusConfig",
    "CommandOutcome",
    "MeterConfig",
    "PendingCommand",
    "accept_commands",
    "clear_meter_state",
    "count_online",
    "dial_in_registrations",
    "dtu_kind",
    "dtu_kind_of_meter",
    "enabled_dtus",
    "finish_command",
    "forgotten_commands",
    "get_meter",
    "give_up_lease",
    "last_read_at",
    "last_read_request_id",
    "learn_identity",
    "list_dtus",
    "list_meters",
    "load_bus",
    "meter_ids_of_dtu",
    "meters_with_commands",
    "meters_with_states",
    "move_meter",
    "pending_for",
    "read_requests_after",
    "record_clock_anomaly",
    "record_dtu_lost",
    "record_dtu_reachable",
    "record_security_event",
    "register_dtu",
    "remove_dtu",
    "remove_meters",
    "renew_lease",
    "request_reads",
    "set_dtu_enabled",
    "set_meter_enabled",
    "set_meter_state",
]

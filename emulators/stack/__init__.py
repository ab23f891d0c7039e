"""The local stack: every emulator, the Stripe double, the functions and the storefront.

`python -m emulators.stack dev|stop|status|test-services` is its command line (`make
dev`, `make stop`, `make status`; see cli.py). The modules, one job each:

    ports.py        where things listen: firebase.json + emulators/ports.json, or free ports
    functions.py    the Cloud Functions (defined once, by functions/main.py) and the
                    secrets each may read (as Terraform grants them)
    processes.py    process groups and readiness: start, probe, watch, stop by PID
    specs.py        how to start each server (Firestore jar, storage, tasks, maildev, ...)
    environment.py  what the functions get: computed settings < secrets < your .env
    persistence.py  Firestore and Storage data kept across restarts (`--keep-data`)
    launch.py       `LocalStack`: all of it, in order, with the set-up steps
    state.py        `.local/stack.json` and the launcher lock
    cli.py          dev / stop / status / test-services

Tests import what they need from here (single services through `start_service` /
`stop_service`, or a whole `LocalStack` on free ports). Everything here is standard
library only, so `make stop` and `make status` run under the system python3.
"""

from emulators.stack.environment import (
    LOCAL_BUCKET,
    LOCAL_PROJECT,
    SECRET_NAMES,
    function_environment,
    function_url,
    local_defaults,
    merged_environment,
    printable_env,
    public_env,
)
from emulators.stack.functions import FUNCTION_SECRETS, defined_functions, function_names
from emulators.stack.launch import LocalStack, StackInfo, run_setup_steps
from emulators.stack.persistence import KeptData
from emulators.stack.ports import (
    HOST,
    REPO_ROOT,
    Ports,
    configured_ports,
    free_port,
    free_ports,
    port_is_listening,
)
from emulators.stack.processes import (
    Probe,
    RunningService,
    ServiceSpec,
    StackError,
    StackInterrupted,
    group_members,
    http_probe,
    is_alive,
    log_tail,
    process_start_ticks,
    start_and_wait,
    start_service,
    stop_group,
    stop_groups,
    stop_service,
    stop_services,
    tcp_probe,
    wait_ready,
)
from emulators.stack.specs import (
    TASKS_LOCATION,
    TASKS_MAX_RETRIES,
    TASKS_QUEUE,
    find_firestore_jar,
    firestore_spec,
    function_spec,
    maildev_spec,
    storage_spec,
    storefront_spec,
    stripe_double_available,
    stripe_double_spec,
    tasks_queue_path,
    tasks_spec,
)
from emulators.stack.state import STATE_FILE, launcher_lock, read_state

__all__ = [
    "FUNCTION_SECRETS",
    "HOST",
    "LOCAL_BUCKET",
    "LOCAL_PROJECT",
    "REPO_ROOT",
    "SECRET_NAMES",
    "STATE_FILE",
    "TASKS_LOCATION",
    "TASKS_MAX_RETRIES",
    "TASKS_QUEUE",
    "KeptData",
    "LocalStack",
    "Ports",
    "Probe",
    "RunningService",
    "ServiceSpec",
    "StackError",
    "StackInfo",
    "StackInterrupted",
    "configured_ports",
    "defined_functions",
    "find_firestore_jar",
    "firestore_spec",
    "free_port",
    "free_ports",
    "function_environment",
    "function_names",
    "function_spec",
    "function_url",
    "group_members",
    "http_probe",
    "is_alive",
    "launcher_lock",
    "local_defaults",
    "log_tail",
    "maildev_spec",
    "merged_environment",
    "port_is_listening",
    "printable_env",
    "process_start_ticks",
    "public_env",
    "read_state",
    "run_setup_steps",
    "start_and_wait",
    "start_service",
    "stop_group",
    "stop_groups",
    "stop_service",
    "stop_services",
    "storage_spec",
    "storefront_spec",
    "stripe_double_available",
    "stripe_double_spec",
    "tasks_queue_path",
    "tasks_spec",
    "tcp_probe",
    "wait_ready",
]

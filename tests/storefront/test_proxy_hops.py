"""Which X-Forwarded-For entry is the client, per deployment shape, with the hop count
Terraform gives the functions (infra/terraform/modules/shop/locals.tf
`proxy_hops_by_shape`, chosen per function in functions.tf).

What Google's front ends append (the header a function receives):

- external HTTPS load balancer -> serverless NEG -> Cloud Run: the load balancer keeps
  whatever the client sent and appends `<client-ip>,<load-balancer-ip>` (Google's
  external Application Load Balancer overview, "X-Forwarded-For header"; registry.k8s.io
  behind the same shape reads the client 2 from the end);
- a function's own URL (`*.run.app`): Cloud Run's front end appends `<client-ip>`.

A client controls only what is left of those entries, so it must not be able to pick
the rate-limit bucket it lands in.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hcl2
import pytest
from functions_framework import create_app
from hcl2.utils import SerializationOptions
from hypothesis import given, settings
from hypothesis import strategies as st

from commerce.bootstrap import Container, use_container
from commerce.domain.network import client_address, network_prefix
from commerce.secrets import decode_secret
from tests.support.factories import TEST_SECRETS, session_id

MAIN = str(Path(__file__).resolve().parents[2] / "functions" / "main.py")
SHOP = Path(__file__).resolve().parents[2] / "infra" / "terraform" / "modules" / "shop"
CLIENT = "198.51.100.23"
LB_IP = "34.117.9.10"  # the forwarding rule's address
RUN_FRONT_END = "169.254.1.1"  # the peer address a Cloud Run instance sees


def through_load_balancer(client: str, supplied: str | None) -> str:
    return ",".join([*([supplied] if supplied is not None else []), client, LB_IP])


def through_function_url(client: str, supplied: str | None) -> str:
    return ",".join([*([supplied] if supplied is not None else []), client])


FRONT_ENDS: dict[str, Callable[[str, str | None], str]] = {
    "load_balancer": through_load_balancer,
    "direct": through_function_url,
}


def _hcl(name: str) -> dict[str, Any]:
    options = SerializationOptions(strip_string_quotes=True, with_comments=False)
    parsed: dict[str, Any] = hcl2.loads(
        (SHOP / name).read_text(encoding="utf-8"), serialization_options=options
    )
    return parsed


def terraform_hops() -> dict[str, int]:
    """locals.proxy_hops_by_shape as deployed."""
    for block in _hcl("locals.tf")["locals"]:
        if "proxy_hops_by_shape" in block:
            return {shape: int(hops) for shape, hops in block["proxy_hops_by_shape"].items()}
    raise AssertionError("locals.tf defines no proxy_hops_by_shape")


HOPS = terraform_hops()

FORGED = [
    None,
    "6.6.6.6",
    "6.6.6.6, 7.7.7.7",
    "203.0.113.99",  # another real customer's address
    LB_IP,
    "2001:db8::66",
    " , ,",
    "not-an-ip",
]


def bucket_documents(container: Container) -> dict[str, int]:
    """rate_limits documents by their hashed-bucket prefix -> count."""
    return {
        doc.id.rsplit("-", 1)[0]: int((doc.to_dict() or {})["count"])
        for doc in container.db.collection("rate_limits").stream()
    }


def install(container: Container, **settings: Any) -> Container:
    """The container the functions use, with these settings (as a cold start would)."""
    built = Container(
        container.settings.model_copy(update=settings),
        clock=container.clock,
        secrets=container.secrets,
    )
    built.db = container.db  # type: ignore[misc]
    use_container(built)
    return built


def bucket_name(network: str) -> str:
    """The counter id's prefix of the network's bucket: keyed with PSEUDONYM_KEY, hashed."""
    key = decode_secret(TEST_SECRETS["PSEUDONYM_KEY"], "PSEUDONYM_KEY")
    keyed = hmac.new(key, f"bucket:order_status:network:{network}".encode(), hashlib.sha256)
    return hashlib.sha256(("k:" + keyed.hexdigest()).encode()).hexdigest()[:32]


# -- the Terraform value matches the shape each function is deployed in ---------------


def test_terraform_counts_one_hop_per_front_end_that_appends() -> None:
    assert terraform_hops() == {"load_balancer": 2, "direct": 1}


def test_public_functions_get_the_load_balancer_count_and_no_other_way_in() -> None:
    (module,) = [m["function"] for m in _hcl("functions.tf")["module"] if "function" in m]
    env = module["environment_variables"]
    # Public functions: behind the LB and reachable only through it (ingress), so the
    # LB shape is the only one their requests have; private ones: their own URL.
    by_shape = 'local.proxy_hops_by_shape[each.value.public ? "load_balancer" : "direct"]'
    assert f"TRUSTED_PROXY_HOPS = tostring({by_shape})" in env
    assert (
        module["ingress"]
        == '${each.value.public ? "ALLOW_INTERNAL_AND_GCLB" : "ALLOW_INTERNAL_ONLY"}'
    )
    (negs,) = [
        r["google_compute_region_network_endpoint_group"]["function"]
        for r in _hcl("load_balancer.tf")["resource"]
        if "google_compute_region_network_endpoint_group" in r
    ]
    assert negs["for_each"] == "${local.public_functions}"
    (email_worker,) = [
        m["email_worker"] for m in _hcl("functions.tf")["module"] if "email_worker" in m
    ]
    assert email_worker["ingress"] == "ALLOW_INTERNAL_ONLY"
    assert email_worker["environment_variables"] == "${local.base_env}"
    base_env = next(b["base_env"] for b in _hcl("locals.tf")["locals"] if "base_env" in b)
    assert "TRUSTED_PROXY_HOPS = tostring(local.proxy_hops_by_shape.direct)" in base_env


# -- which entry is the client ---------------------------------------------------------

_ENTRY = st.one_of(
    st.ip_addresses().map(str),
    st.text(alphabet="0123456789abcdef.:, -", max_size=20),
)


@pytest.mark.parametrize("shape", sorted(FRONT_ENDS))
@settings(deadline=None)
@given(supplied=st.one_of(st.none(), st.lists(_ENTRY, max_size=5).map(",".join)))
def test_the_client_is_the_entry_our_front_ends_appended(shape: str, supplied: str | None) -> None:
    header = FRONT_ENDS[shape](CLIENT, supplied)
    assert client_address(header, RUN_FRONT_END, HOPS[shape]) == CLIENT


def test_with_the_other_shapes_count_the_bucket_would_be_wrong() -> None:
    hops = terraform_hops()
    # LB counted as direct: every client would share the load balancer's bucket.
    assert (
        client_address(through_load_balancer(CLIENT, "6.6.6.6"), RUN_FRONT_END, hops["direct"])
        == LB_IP
    )
    # A function URL counted as LB: the client's own last entry would pick the bucket.
    assert (
        client_address(
            through_function_url(CLIENT, "6.6.6.6"), RUN_FRONT_END, hops["load_balancer"]
        )
        == "6.6.6.6"
    )


# -- through the function: a forged header cannot choose the bucket -------------------


@pytest.mark.parametrize("shape", sorted(FRONT_ENDS))
def test_forged_forwarded_for_values_all_land_in_the_clients_bucket(
    shape: str, container: Container
) -> None:
    install(container, trusted_proxy_hops=HOPS[shape], order_status_rate_limit_per_network=100)
    client = create_app("order_status", MAIN).test_client()

    for forged in FORGED:
        answer = client.get(
            f"/?session_id={session_id(5)}",
            headers={"X-Forwarded-For": FRONT_ENDS[shape](CLIENT, forged)},
            environ_base={"REMOTE_ADDR": RUN_FRONT_END},
        )
        assert answer.status_code == 200, answer.get_data(as_text=True)

    assert bucket_documents(container) == {bucket_name(network_prefix(CLIENT)): len(FORGED)}


@pytest.mark.parametrize("shape", sorted(FRONT_ENDS))
def test_changing_the_forged_value_does_not_escape_the_limit(
    shape: str, container: Container
) -> None:
    install(container, trusted_proxy_hops=HOPS[shape], order_status_rate_limit_per_network=3)
    client = create_app("order_status", MAIN).test_client()

    codes = [
        client.get(
            f"/?session_id={session_id(5)}",
            headers={"X-Forwarded-For": FRONT_ENDS[shape](CLIENT, f"10.0.0.{n}")},
            environ_base={"REMOTE_ADDR": RUN_FRONT_END},
        ).status_code
        for n in range(5)
    ]

    assert codes == [200, 200, 200, 429, 429]

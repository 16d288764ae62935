"""VPC Lattice round trips and error cases for every call the cloudgate Lattice provider makes.

Runs against the cloudgate moto ground (moto + cloudgate_moto.lattice_ext) or, with
AWS_ENDPOINT_URL set, against any other endpoint such as LocalStack.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

ARN_PREFIX = r"arn:aws:vpc-lattice:[a-z0-9-]+:\d{12}:"


# ------------------------------------------------------------------------------------ helpers


def expect_error(code: str, status: int, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> dict:
    with pytest.raises(ClientError) as excinfo:
        fn(*args, **kwargs)
    resp = excinfo.value.response
    assert resp["Error"]["Code"] == code, resp
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == status, resp
    return resp


def vpc_id() -> str:
    return "vpc-" + uuid.uuid4().hex[:17]


def drain(fn: Callable[..., dict], **kwargs: Any) -> list[dict]:
    """Follows nextToken until the end, like the controller's paginators."""
    items: list[dict] = []
    token = None
    while True:
        page = fn(**kwargs, **({"nextToken": token} if token else {}))
        items.extend(page["items"])
        token = page.get("nextToken")
        if not token:
            return items


def mk_sn(lattice: Any, uniq: str, suffix: str = "", **kw: Any) -> dict:
    return lattice.create_service_network(name=f"gw-{uniq}{suffix}", **kw)


def mk_svc(lattice: Any, uniq: str, suffix: str = "", **kw: Any) -> dict:
    return lattice.create_service(name=f"route-{uniq}{suffix}", **kw)


def mk_tg(lattice: Any, uniq: str, suffix: str = "", vpc: str = "vpc-0123456789abcdef0", port: int = 8080,
          health: dict | None = None, **kw: Any) -> dict:
    config: dict[str, Any] = {"port": port, "protocol": "HTTP", "vpcIdentifier": vpc}
    if health is not None:
        config["healthCheck"] = health
    return lattice.create_target_group(name=f"backend-{uniq}{suffix}", type="IP", config=config, **kw)


def fwd(*weighted: tuple[str, int]) -> dict:
    return {"forward": {"targetGroups": [{"targetGroupIdentifier": t, "weight": w} for t, w in weighted]}}


FIXED_404 = {"fixedResponse": {"statusCode": 404}}


def mk_listener(lattice: Any, svc: dict, name: str = "http", protocol: str = "HTTP", action: dict | None = None, **kw: Any) -> dict:
    return lattice.create_listener(serviceIdentifier=svc["id"], name=name, protocol=protocol,
                                   defaultAction=action or FIXED_404, **kw)


def path_prefix(p: str) -> dict:
    return {"httpMatch": {"pathMatch": {"match": {"prefix": p}}}}


# ------------------------------------------------------------------------- service networks


def test_service_network_round_trip(lattice: Any, uniq: str) -> None:
    sn = mk_sn(lattice, uniq, tags={"cloudgate.io/gateway": "ns/gw"})
    assert re.fullmatch(r"sn-[0-9a-z]{17}", sn["id"])
    assert re.fullmatch(ARN_PREFIX + r"servicenetwork/sn-[0-9a-z]{17}", sn["arn"])
    assert sn["name"] == f"gw-{uniq}"
    assert sn["ResponseMetadata"]["HTTPStatusCode"] == 201

    by_id = lattice.get_service_network(serviceNetworkIdentifier=sn["id"])
    by_arn = lattice.get_service_network(serviceNetworkIdentifier=sn["arn"])
    assert by_id["arn"] == by_arn["arn"] == sn["arn"]
    assert by_id["authType"] == "NONE"
    assert by_id["numberOfAssociatedServices"] == 0 and by_id["numberOfAssociatedVPCs"] == 0
    assert "createdAt" in by_id and "lastUpdatedAt" in by_id

    assert sn["id"] in {i["id"] for i in drain(lattice.list_service_networks)}

    upd = lattice.update_service_network(serviceNetworkIdentifier=sn["arn"], authType="AWS_IAM")
    assert upd["authType"] == "AWS_IAM"
    assert lattice.get_service_network(serviceNetworkIdentifier=sn["id"])["authType"] == "AWS_IAM"

    assert lattice.list_tags_for_resource(resourceArn=sn["arn"])["tags"] == {"cloudgate.io/gateway": "ns/gw"}

    deleted = lattice.delete_service_network(serviceNetworkIdentifier=sn["id"])
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    resp = expect_error("ResourceNotFoundException", 404, lattice.get_service_network, serviceNetworkIdentifier=sn["id"])
    assert resp.get("resourceId") == sn["id"]
    assert resp.get("resourceType")
    expect_error("ResourceNotFoundException", 404, lattice.delete_service_network, serviceNetworkIdentifier=sn["id"])
    expect_error("ResourceNotFoundException", 404, lattice.update_service_network,
                 serviceNetworkIdentifier=sn["arn"], authType="NONE")


def test_service_network_duplicate_name_conflicts(lattice: Any, uniq: str) -> None:
    sn = mk_sn(lattice, uniq)
    resp = expect_error("ConflictException", 409, mk_sn, lattice, uniq)
    assert resp.get("resourceType")
    lattice.delete_service_network(serviceNetworkIdentifier=sn["id"])
    # The name is free again once deleted.
    again = mk_sn(lattice, uniq)
    lattice.delete_service_network(serviceNetworkIdentifier=again["id"])


def test_service_network_delete_refused_while_associated(lattice: Any, uniq: str) -> None:
    sn = mk_sn(lattice, uniq)
    snva = lattice.create_service_network_vpc_association(serviceNetworkIdentifier=sn["id"], vpcIdentifier=vpc_id())
    expect_error("ConflictException", 409, lattice.delete_service_network, serviceNetworkIdentifier=sn["id"])
    lattice.delete_service_network_vpc_association(serviceNetworkVpcAssociationIdentifier=snva["id"])

    svc = mk_svc(lattice, uniq)
    snsa = lattice.create_service_network_service_association(serviceNetworkIdentifier=sn["id"], serviceIdentifier=svc["id"])
    expect_error("ConflictException", 409, lattice.delete_service_network, serviceNetworkIdentifier=sn["arn"])
    lattice.delete_service_network_service_association(serviceNetworkServiceAssociationIdentifier=snsa["id"])

    lattice.delete_service_network(serviceNetworkIdentifier=sn["id"])
    lattice.delete_service(serviceIdentifier=svc["id"])


def test_service_network_validation(lattice_raw: Any) -> None:
    expect_error("ValidationException", 400, lattice_raw.create_service_network, name="Bad_Name")
    expect_error("ValidationException", 400, lattice_raw.create_service_network, name="ok-name", authType="MAGIC")
    expect_error("ValidationException", 400, lattice_raw.get_service_network, serviceNetworkIdentifier="not-an-id")
    resp = expect_error("ValidationException", 400, lattice_raw.create_service_network)  # name missing
    assert resp.get("reason") == "fieldValidationFailed"


# ---------------------------------------------------------------- service network <-> VPC


def test_vpc_association_round_trip(lattice: Any, uniq: str) -> None:
    sn = mk_sn(lattice, uniq)
    vpc = vpc_id()
    created = lattice.create_service_network_vpc_association(
        serviceNetworkIdentifier=sn["arn"], vpcIdentifier=vpc, securityGroupIds=["sg-0123456789abcdef0"],
        tags={"owner": "cloudgate"},
    )
    assert created["status"] == "ACTIVE"
    assert re.fullmatch(r"snva-[0-9a-z]{17}", created["id"])
    assert re.fullmatch(ARN_PREFIX + r"servicenetworkvpcassociation/snva-[0-9a-z]{17}", created["arn"])
    assert created["securityGroupIds"] == ["sg-0123456789abcdef0"]

    for ident in (created["id"], created["arn"]):
        got = lattice.get_service_network_vpc_association(serviceNetworkVpcAssociationIdentifier=ident)
        assert got["vpcId"] == vpc and got["serviceNetworkId"] == sn["id"]
        assert got["serviceNetworkName"] == sn["name"] and got["serviceNetworkArn"] == sn["arn"]
        assert got["status"] == "ACTIVE"

    by_sn = drain(lattice.list_service_network_vpc_associations, serviceNetworkIdentifier=sn["id"])
    by_vpc = drain(lattice.list_service_network_vpc_associations, vpcIdentifier=vpc)
    assert [a["id"] for a in by_sn] == [created["id"]] == [a["id"] for a in by_vpc]
    assert by_sn[0]["vpcId"] == vpc
    assert lattice.get_service_network(serviceNetworkIdentifier=sn["id"])["numberOfAssociatedVPCs"] == 1

    upd = lattice.update_service_network_vpc_association(
        serviceNetworkVpcAssociationIdentifier=created["id"], securityGroupIds=["sg-0123456789abcdef1", "sg-01234567"])
    assert upd["securityGroupIds"] == ["sg-0123456789abcdef1", "sg-01234567"]

    # Same pair again, and the same VPC into another service network: both conflict.
    expect_error("ConflictException", 409, lattice.create_service_network_vpc_association,
                 serviceNetworkIdentifier=sn["id"], vpcIdentifier=vpc)
    other = mk_sn(lattice, uniq, "-b")
    expect_error("ConflictException", 409, lattice.create_service_network_vpc_association,
                 serviceNetworkIdentifier=other["id"], vpcIdentifier=vpc)

    deleted = lattice.delete_service_network_vpc_association(serviceNetworkVpcAssociationIdentifier=created["arn"])
    assert deleted["status"] == "DELETE_IN_PROGRESS" and deleted["id"] == created["id"]
    expect_error("ResourceNotFoundException", 404, lattice.get_service_network_vpc_association,
                 serviceNetworkVpcAssociationIdentifier=created["id"])
    expect_error("ResourceNotFoundException", 404, lattice.delete_service_network_vpc_association,
                 serviceNetworkVpcAssociationIdentifier=created["id"])
    assert drain(lattice.list_service_network_vpc_associations, vpcIdentifier=vpc) == []
    lattice.delete_service_network(serviceNetworkIdentifier=sn["id"])
    lattice.delete_service_network(serviceNetworkIdentifier=other["id"])


def test_vpc_association_errors(lattice: Any, lattice_raw: Any, uniq: str) -> None:
    expect_error("ResourceNotFoundException", 404, lattice.create_service_network_vpc_association,
                 serviceNetworkIdentifier="sn-0123456789abcdef0", vpcIdentifier=vpc_id())
    # The API requires one of the two filters.
    expect_error("ValidationException", 400, lattice_raw.list_service_network_vpc_associations)
    expect_error("ValidationException", 400, lattice_raw.create_service_network_vpc_association,
                 serviceNetworkIdentifier="sn-0123456789abcdef0", vpcIdentifier="not-a-vpc")
    sn = mk_sn(lattice, uniq)
    a = lattice.create_service_network_vpc_association(serviceNetworkIdentifier=sn["id"], vpcIdentifier=vpc_id(),
                                                       securityGroupIds=["sg-01234567"])
    # An association with security groups must keep at least one.
    expect_error("ValidationException", 400, lattice_raw.update_service_network_vpc_association,
                 serviceNetworkVpcAssociationIdentifier=a["id"], securityGroupIds=[])
    lattice.delete_service_network_vpc_association(serviceNetworkVpcAssociationIdentifier=a["id"])
    lattice.delete_service_network(serviceNetworkIdentifier=sn["id"])


# ---------------------------------------------------------------------------------- services


def test_service_round_trip(lattice: Any, uniq: str) -> None:
    svc = mk_svc(lattice, uniq, tags={"cloudgate.io/route": "ns/r"})
    assert svc["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert re.fullmatch(r"svc-[0-9a-z]{17}", svc["id"])
    assert re.fullmatch(ARN_PREFIX + r"service/svc-[0-9a-z]{17}", svc["arn"])
    assert svc["status"] == "ACTIVE"
    dns = svc["dnsEntry"]
    assert re.fullmatch(rf"route-{uniq}-{svc['id'][4:]}\.[0-9a-z]+\.vpc-lattice-svcs\.[a-z0-9-]+\.on\.aws", dns["domainName"])
    assert dns["hostedZoneId"]

    for ident in (svc["id"], svc["arn"]):
        got = lattice.get_service(serviceIdentifier=ident)
        assert got["name"] == svc["name"] and got["dnsEntry"] == dns and got["status"] == "ACTIVE"
        assert got["authType"] == "NONE"

    listed = {s["id"]: s for s in drain(lattice.list_services)}
    assert listed[svc["id"]]["dnsEntry"] == dns and listed[svc["id"]]["status"] == "ACTIVE"

    upd = lattice.update_service(serviceIdentifier=svc["arn"], authType="AWS_IAM")
    assert upd["authType"] == "AWS_IAM" and upd["id"] == svc["id"]

    expect_error("ConflictException", 409, mk_svc, lattice, uniq)

    deleted = lattice.delete_service(serviceIdentifier=svc["id"])
    assert deleted["status"] == "DELETE_IN_PROGRESS" and deleted["id"] == svc["id"]
    expect_error("ResourceNotFoundException", 404, lattice.get_service, serviceIdentifier=svc["id"])
    expect_error("ResourceNotFoundException", 404, lattice.delete_service, serviceIdentifier=svc["arn"])
    expect_error("ResourceNotFoundException", 404, lattice.update_service, serviceIdentifier=svc["id"], authType="NONE")


def test_service_with_custom_domain(lattice: Any, uniq: str) -> None:
    svc = mk_svc(lattice, uniq, customDomainName=f"{uniq}.example.com",
                 certificateArn="arn:aws:acm:us-east-1:123456789012:certificate/0b1c2d3e-aaaa-bbbb-cccc-0123456789ab")
    got = lattice.get_service(serviceIdentifier=svc["id"])
    assert got["customDomainName"] == f"{uniq}.example.com"
    assert got["certificateArn"].endswith("0123456789ab")
    assert got["dnsEntry"]["domainName"].endswith(".on.aws")
    lattice.delete_service(serviceIdentifier=svc["id"])


def test_service_delete_refused_while_associated_and_cascades_listeners(lattice: Any, uniq: str) -> None:
    sn = mk_sn(lattice, uniq)
    svc = mk_svc(lattice, uniq)
    listener = mk_listener(lattice, svc)
    tg = mk_tg(lattice, uniq)
    rule = lattice.create_rule(serviceIdentifier=svc["id"], listenerIdentifier=listener["id"], name="prefix", priority=1,
                               match=path_prefix("/api"), action=fwd((tg["id"], 1)))
    snsa = lattice.create_service_network_service_association(serviceNetworkIdentifier=sn["id"], serviceIdentifier=svc["id"])
    expect_error("ConflictException", 409, lattice.delete_service, serviceIdentifier=svc["id"])
    lattice.delete_service_network_service_association(serviceNetworkServiceAssociationIdentifier=snsa["arn"])

    # Deleting the service deletes its listeners and rules, which frees the target group.
    lattice.delete_service(serviceIdentifier=svc["id"])
    expect_error("ResourceNotFoundException", 404, lattice.get_listener,
                 serviceIdentifier=svc["id"], listenerIdentifier=listener["id"])
    expect_error("ResourceNotFoundException", 404, lattice.list_tags_for_resource, resourceArn=rule["arn"])
    lattice.delete_target_group(targetGroupIdentifier=tg["id"])
    lattice.delete_service_network(serviceNetworkIdentifier=sn["id"])


def test_service_validation(lattice_raw: Any) -> None:
    expect_error("ValidationException", 400, lattice_raw.create_service, name="svc-reserved-prefix")
    expect_error("ValidationException", 400, lattice_raw.create_service, name="trailing-")
    expect_error("ValidationException", 400, lattice_raw.create_service, name="x" * 41)
    expect_error("ValidationException", 400, lattice_raw.get_service, serviceIdentifier="svc-short")


# ------------------------------------------------------------ service network <-> service


def test_service_association_round_trip(lattice: Any, uniq: str) -> None:
    sn = mk_sn(lattice, uniq)
    svc = mk_svc(lattice, uniq)
    created = lattice.create_service_network_service_association(
        serviceNetworkIdentifier=sn["arn"], serviceIdentifier=svc["arn"], tags={"owner": "cloudgate"})
    assert created["status"] == "ACTIVE"
    assert re.fullmatch(r"snsa-[0-9a-z]{17}", created["id"])
    assert re.fullmatch(ARN_PREFIX + r"servicenetworkserviceassociation/snsa-[0-9a-z]{17}", created["arn"])
    assert created["dnsEntry"] == svc["dnsEntry"]
    assert re.fullmatch(r"\d{12}", created["createdBy"])

    for ident in (created["id"], created["arn"]):
        got = lattice.get_service_network_service_association(serviceNetworkServiceAssociationIdentifier=ident)
        assert got["serviceId"] == svc["id"] and got["serviceArn"] == svc["arn"] and got["serviceName"] == svc["name"]
        assert got["serviceNetworkId"] == sn["id"] and got["serviceNetworkArn"] == sn["arn"]
        assert got["serviceNetworkName"] == sn["name"]
        assert got["dnsEntry"]["domainName"] == svc["dnsEntry"]["domainName"]
        assert got["status"] == "ACTIVE"

    for kwargs in ({"serviceNetworkIdentifier": sn["id"]}, {"serviceIdentifier": svc["arn"]},
                   {"serviceNetworkIdentifier": sn["arn"], "serviceIdentifier": svc["id"]}):
        items = drain(lattice.list_service_network_service_associations, **kwargs)
        assert [i["id"] for i in items] == [created["id"]], kwargs
        assert items[0]["dnsEntry"] == created["dnsEntry"]
    assert lattice.get_service_network(serviceNetworkIdentifier=sn["id"])["numberOfAssociatedServices"] == 1

    expect_error("ConflictException", 409, lattice.create_service_network_service_association,
                 serviceNetworkIdentifier=sn["id"], serviceIdentifier=svc["id"])

    deleted = lattice.delete_service_network_service_association(serviceNetworkServiceAssociationIdentifier=created["id"])
    assert deleted["status"] == "DELETE_IN_PROGRESS"
    expect_error("ResourceNotFoundException", 404, lattice.get_service_network_service_association,
                 serviceNetworkServiceAssociationIdentifier=created["id"])
    expect_error("ResourceNotFoundException", 404, lattice.delete_service_network_service_association,
                 serviceNetworkServiceAssociationIdentifier=created["arn"])
    assert drain(lattice.list_service_network_service_associations, serviceNetworkIdentifier=sn["id"]) == []
    lattice.delete_service(serviceIdentifier=svc["id"])
    lattice.delete_service_network(serviceNetworkIdentifier=sn["id"])


def test_service_association_errors(lattice: Any, lattice_raw: Any, uniq: str) -> None:
    sn = mk_sn(lattice, uniq)
    expect_error("ResourceNotFoundException", 404, lattice.create_service_network_service_association,
                 serviceNetworkIdentifier=sn["id"], serviceIdentifier="svc-0123456789abcdef0")
    expect_error("ValidationException", 400, lattice_raw.list_service_network_service_associations)
    lattice.delete_service_network(serviceNetworkIdentifier=sn["id"])


# --------------------------------------------------------------------------------- listeners


def test_listener_round_trip(lattice: Any, uniq: str) -> None:
    svc = mk_svc(lattice, uniq)
    tg = mk_tg(lattice, uniq)
    http = mk_listener(lattice, svc, tags={"cloudgate.io/listener": "http"})
    assert http["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert http["port"] == 80 and http["protocol"] == "HTTP"
    assert re.fullmatch(r"listener-[0-9a-z]{17}", http["id"])
    assert http["arn"] == f"{svc['arn']}/listener/{http['id']}"
    assert http["serviceId"] == svc["id"] and http["serviceArn"] == svc["arn"]
    assert http["defaultAction"] == FIXED_404

    https = mk_listener(lattice, svc, name="https", protocol="HTTPS", action=fwd((tg["id"], 1)))
    assert https["port"] == 443

    for sid, lid in ((svc["id"], http["id"]), (svc["arn"], http["arn"])):
        got = lattice.get_listener(serviceIdentifier=sid, listenerIdentifier=lid)
        assert got["name"] == "http" and got["defaultAction"] == FIXED_404

    listed = drain(lattice.list_listeners, serviceIdentifier=svc["id"])
    assert sorted(li["name"] for li in listed) == ["http", "https"]
    assert {li["port"] for li in listed} == {80, 443}

    upd = lattice.update_listener(serviceIdentifier=svc["id"], listenerIdentifier=http["id"], defaultAction=fwd((tg["arn"], 1)))
    assert upd["defaultAction"]["forward"]["targetGroups"][0]["targetGroupIdentifier"] == tg["arn"]
    got = lattice.get_listener(serviceIdentifier=svc["id"], listenerIdentifier=http["id"])
    assert got["defaultAction"]["forward"]["targetGroups"][0]["weight"] == 1

    # Same port or same name on the same service conflicts; another service is fine.
    expect_error("ConflictException", 409, mk_listener, lattice, svc, name="other", protocol="HTTP", port=80)
    expect_error("ConflictException", 409, mk_listener, lattice, svc, name="http", protocol="HTTP", port=8080)
    other_svc = mk_svc(lattice, uniq, "-b")
    mk_listener(lattice, other_svc, name="http")

    expect_error("ResourceNotFoundException", 404, mk_listener, lattice, svc, name="alt", port=8081,
                 action=fwd(("tg-0123456789abcdef0", 1)))
    expect_error("ResourceNotFoundException", 404, lattice.get_listener,
                 serviceIdentifier=other_svc["id"], listenerIdentifier=http["id"])  # wrong service
    expect_error("ResourceNotFoundException", 404, lattice.list_listeners, serviceIdentifier="svc-0123456789abcdef0")

    deleted = lattice.delete_listener(serviceIdentifier=svc["id"], listenerIdentifier=http["arn"])
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    expect_error("ResourceNotFoundException", 404, lattice.get_listener, serviceIdentifier=svc["id"], listenerIdentifier=http["id"])
    expect_error("ResourceNotFoundException", 404, lattice.delete_listener, serviceIdentifier=svc["id"], listenerIdentifier=http["id"])
    expect_error("ResourceNotFoundException", 404, lattice.update_listener, serviceIdentifier=svc["id"],
                 listenerIdentifier=http["id"], defaultAction=FIXED_404)

    lattice.delete_service(serviceIdentifier=svc["id"])
    lattice.delete_service(serviceIdentifier=other_svc["id"])
    lattice.delete_target_group(targetGroupIdentifier=tg["id"])


def test_listener_validation(lattice: Any, lattice_raw: Any, uniq: str) -> None:
    svc = mk_svc(lattice, uniq)
    tg1, tg2 = mk_tg(lattice, uniq, "-1"), mk_tg(lattice, uniq, "-2")
    expect_error("ValidationException", 400, lattice_raw.create_listener, serviceIdentifier=svc["id"], name="x",
                 protocol="HTTP", defaultAction=FIXED_404)  # name too short
    expect_error("ValidationException", 400, lattice_raw.create_listener, serviceIdentifier=svc["id"], name="web",
                 protocol="GOPHER", defaultAction=FIXED_404)
    expect_error("ValidationException", 400, lattice_raw.create_listener, serviceIdentifier=svc["id"], name="web",
                 protocol="HTTP", port=70000, defaultAction=FIXED_404)
    expect_error("ValidationException", 400, lattice_raw.create_listener, serviceIdentifier=svc["id"], name="web",
                 protocol="HTTP", defaultAction={"fixedResponse": {"statusCode": 404}, "forward": {"targetGroups": []}})
    # Several target groups need a weight each.
    expect_error("ValidationException", 400, lattice_raw.create_listener, serviceIdentifier=svc["id"], name="web",
                 protocol="HTTP", defaultAction={"forward": {"targetGroups": [
                     {"targetGroupIdentifier": tg1["id"]}, {"targetGroupIdentifier": tg2["id"]}]}})
    expect_error("ValidationException", 400, lattice_raw.create_listener, serviceIdentifier=svc["id"], name="web",
                 protocol="HTTP", defaultAction=fwd((tg1["id"], 1000)))
    lattice.delete_service(serviceIdentifier=svc["id"])
    for tg in (tg1, tg2):
        lattice.delete_target_group(targetGroupIdentifier=tg["id"])


# ------------------------------------------------------------------------------------- rules


@pytest.fixture
def svc_listener(lattice: Any, uniq: str):  # type: ignore[no-untyped-def]
    svc = mk_svc(lattice, uniq)
    listener = mk_listener(lattice, svc)
    tgs = [mk_tg(lattice, uniq, f"-{i}") for i in range(2)]
    yield svc, listener, tgs
    lattice.delete_service(serviceIdentifier=svc["id"])
    for tg in tgs:
        lattice.delete_target_group(targetGroupIdentifier=tg["id"])


def test_rule_round_trip_and_match_types(lattice: Any, svc_listener: Any) -> None:
    svc, listener, (tg_a, tg_b) = svc_listener
    sid, lid = svc["id"], listener["id"]
    matches = {
        "exact": {"httpMatch": {"pathMatch": {"match": {"exact": "/exact"}, "caseSensitive": True}}},
        "prefix": path_prefix("/api/"),
        "header": {"httpMatch": {"headerMatches": [{"name": "x-canary", "match": {"exact": "yes"}, "caseSensitive": False}]}},
        "method": {"httpMatch": {"method": "POST", "pathMatch": {"match": {"prefix": "/"}}}},
    }
    created = {}
    for prio, (name, match) in enumerate(matches.items(), start=1):
        rule = lattice.create_rule(serviceIdentifier=sid, listenerIdentifier=lid, name=name, priority=prio * 10,
                                   match=match, action=fwd((tg_a["id"], 90), (tg_b["id"], 10)), tags={"rule": name})
        assert rule["ResponseMetadata"]["HTTPStatusCode"] == 201
        assert re.fullmatch(r"rule-[0-9a-z]{17}", rule["id"])
        assert rule["arn"] == f"{listener['arn']}/rule/{rule['id']}"
        assert re.fullmatch(ARN_PREFIX + r"service/svc-[0-9a-z]{17}/listener/listener-[0-9a-z]{17}/rule/rule-[0-9a-z]{17}", rule["arn"])
        assert rule["match"] == match and rule["priority"] == prio * 10
        created[name] = rule

    fixed = lattice.create_rule(serviceIdentifier=sid, listenerIdentifier=lid, name="invalid-backend", priority=99,
                                match=path_prefix("/broken"), action={"fixedResponse": {"statusCode": 500}})
    assert fixed["action"] == {"fixedResponse": {"statusCode": 500}}

    for sref, lref, rref in ((sid, lid, created["header"]["id"]), (svc["arn"], listener["arn"], created["header"]["arn"])):
        got = lattice.get_rule(serviceIdentifier=sref, listenerIdentifier=lref, ruleIdentifier=rref)
        assert got["name"] == "header" and got["isDefault"] is False and got["priority"] == 30
        assert got["match"] == matches["header"]
        weights = {t["targetGroupIdentifier"]: t["weight"] for t in got["action"]["forward"]["targetGroups"]}
        assert weights == {tg_a["id"]: 90, tg_b["id"]: 10}

    rules = drain(lattice.list_rules, serviceIdentifier=sid, listenerIdentifier=lid)
    defaults = [r for r in rules if r["isDefault"]]
    assert len(defaults) == 1 and "priority" not in defaults[0]
    assert {r["name"] for r in rules if not r["isDefault"]} == set(matches) | {"invalid-backend"}
    paged = drain(lattice.list_rules, serviceIdentifier=sid, listenerIdentifier=lid, maxResults=2)
    assert [r["id"] for r in paged] == [r["id"] for r in rules]

    # A weight change is one UpdateRule: same rule, same priority and match, new weights.
    upd = lattice.update_rule(serviceIdentifier=sid, listenerIdentifier=lid, ruleIdentifier=created["prefix"]["arn"],
                              action=fwd((tg_a["id"], 0), (tg_b["id"], 999)))
    assert upd["id"] == created["prefix"]["id"] and upd["priority"] == 20 and upd["match"] == matches["prefix"]
    got = lattice.get_rule(serviceIdentifier=sid, listenerIdentifier=lid, ruleIdentifier=created["prefix"]["id"])
    assert {t["targetGroupIdentifier"]: t["weight"] for t in got["action"]["forward"]["targetGroups"]} == {tg_a["id"]: 0, tg_b["id"]: 999}

    upd = lattice.update_rule(serviceIdentifier=sid, listenerIdentifier=lid, ruleIdentifier=created["method"]["id"],
                              match={"httpMatch": {"method": "GET"}}, priority=45)
    assert upd["priority"] == 45 and upd["match"] == {"httpMatch": {"method": "GET"}}

    deleted = lattice.delete_rule(serviceIdentifier=sid, listenerIdentifier=lid, ruleIdentifier=created["exact"]["arn"])
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    expect_error("ResourceNotFoundException", 404, lattice.get_rule, serviceIdentifier=sid, listenerIdentifier=lid,
                 ruleIdentifier=created["exact"]["id"])
    expect_error("ResourceNotFoundException", 404, lattice.delete_rule, serviceIdentifier=sid, listenerIdentifier=lid,
                 ruleIdentifier=created["exact"]["id"])
    expect_error("ResourceNotFoundException", 404, lattice.update_rule, serviceIdentifier=sid, listenerIdentifier=lid,
                 ruleIdentifier=created["exact"]["id"], priority=1)


def test_rule_conflicts(lattice: Any, svc_listener: Any) -> None:
    svc, listener, (tg_a, _) = svc_listener
    sid, lid = svc["id"], listener["id"]
    first = lattice.create_rule(serviceIdentifier=sid, listenerIdentifier=lid, name="first", priority=5,
                                match=path_prefix("/a"), action=fwd((tg_a["id"], 1)))
    second = lattice.create_rule(serviceIdentifier=sid, listenerIdentifier=lid, name="second", priority=6,
                                 match=path_prefix("/b"), action=fwd((tg_a["id"], 1)))
    expect_error("ConflictException", 409, lattice.create_rule, serviceIdentifier=sid, listenerIdentifier=lid,
                 name="third", priority=5, match=path_prefix("/c"), action=fwd((tg_a["id"], 1)))
    expect_error("ConflictException", 409, lattice.create_rule, serviceIdentifier=sid, listenerIdentifier=lid,
                 name="first", priority=7, match=path_prefix("/c"), action=fwd((tg_a["id"], 1)))
    expect_error("ConflictException", 409, lattice.update_rule, serviceIdentifier=sid, listenerIdentifier=lid,
                 ruleIdentifier=second["id"], priority=5)
    # Updating a rule to its own priority is not a conflict.
    lattice.update_rule(serviceIdentifier=sid, listenerIdentifier=lid, ruleIdentifier=first["id"], priority=5)
    # Rule names and priorities are per listener.
    other = mk_listener(lattice, svc, name="alt", port=8080)
    lattice.create_rule(serviceIdentifier=sid, listenerIdentifier=other["id"], name="first", priority=5,
                        match=path_prefix("/a"), action=fwd((tg_a["id"], 1)))


def test_batch_update_rule(lattice: Any, svc_listener: Any) -> None:
    svc, listener, (tg_a, tg_b) = svc_listener
    sid, lid = svc["id"], listener["id"]
    r1 = lattice.create_rule(serviceIdentifier=sid, listenerIdentifier=lid, name="one", priority=1,
                             match=path_prefix("/one"), action=fwd((tg_a["id"], 1)))
    r2 = lattice.create_rule(serviceIdentifier=sid, listenerIdentifier=lid, name="two", priority=2,
                             match=path_prefix("/two"), action=fwd((tg_a["id"], 1)))

    # Swapping priorities is what the batch is for.
    resp = lattice.batch_update_rule(serviceIdentifier=sid, listenerIdentifier=lid, rules=[
        {"ruleIdentifier": r1["id"], "priority": 2},
        {"ruleIdentifier": r2["arn"], "priority": 1, "action": fwd((tg_a["id"], 50), (tg_b["id"], 50))},
    ])
    assert resp["unsuccessful"] == []
    assert {r["id"]: r["priority"] for r in resp["successful"]} == {r1["id"]: 2, r2["id"]: 1}
    got = lattice.get_rule(serviceIdentifier=sid, listenerIdentifier=lid, ruleIdentifier=r2["id"])
    assert got["priority"] == 1 and len(got["action"]["forward"]["targetGroups"]) == 2

    # Unknown rules are reported per entry, the rest is applied.
    resp = lattice.batch_update_rule(serviceIdentifier=sid, listenerIdentifier=lid, rules=[
        {"ruleIdentifier": "rule-0123456789abcdef0", "priority": 9},
        {"ruleIdentifier": r1["id"], "priority": 3},
    ])
    assert [u["ruleIdentifier"] for u in resp["unsuccessful"]] == ["rule-0123456789abcdef0"]
    assert resp["unsuccessful"][0]["failureCode"]
    assert [r["id"] for r in resp["successful"]] == [r1["id"]]

    # A batch that would leave two rules on one priority changes nothing.
    expect_error("ConflictException", 409, lattice.batch_update_rule, serviceIdentifier=sid, listenerIdentifier=lid,
                 rules=[{"ruleIdentifier": r1["id"], "priority": 1}])
    assert lattice.get_rule(serviceIdentifier=sid, listenerIdentifier=lid, ruleIdentifier=r1["id"])["priority"] == 3

    default = next(r for r in drain(lattice.list_rules, serviceIdentifier=sid, listenerIdentifier=lid) if r["isDefault"])
    resp = lattice.batch_update_rule(serviceIdentifier=sid, listenerIdentifier=lid,
                                     rules=[{"ruleIdentifier": default["id"], "priority": 50}])
    assert [u["ruleIdentifier"] for u in resp["unsuccessful"]] == [default["id"]]
    expect_error("ResourceNotFoundException", 404, lattice.batch_update_rule, serviceIdentifier=sid,
                 listenerIdentifier="listener-0123456789abcdef0", rules=[{"ruleIdentifier": r1["id"], "priority": 7}])


def test_default_rule(lattice: Any, svc_listener: Any) -> None:
    svc, listener, (tg_a, _) = svc_listener
    sid, lid = svc["id"], listener["id"]
    default = next(r for r in drain(lattice.list_rules, serviceIdentifier=sid, listenerIdentifier=lid) if r["isDefault"])
    got = lattice.get_rule(serviceIdentifier=sid, listenerIdentifier=lid, ruleIdentifier=default["id"])
    assert got["isDefault"] is True and got["action"] == FIXED_404
    lattice.update_listener(serviceIdentifier=sid, listenerIdentifier=lid, defaultAction=fwd((tg_a["id"], 1)))
    got = lattice.get_rule(serviceIdentifier=sid, listenerIdentifier=lid, ruleIdentifier=default["arn"])
    assert got["action"]["forward"]["targetGroups"][0]["targetGroupIdentifier"] == tg_a["id"]
    expect_error("ValidationException", 400, lattice.update_rule, serviceIdentifier=sid, listenerIdentifier=lid,
                 ruleIdentifier=default["id"], priority=3)
    expect_error("ValidationException", 400, lattice.delete_rule, serviceIdentifier=sid, listenerIdentifier=lid,
                 ruleIdentifier=default["id"])


def test_rule_validation(lattice: Any, lattice_raw: Any, svc_listener: Any) -> None:
    svc, listener, (tg_a, tg_b) = svc_listener
    base = {"serviceIdentifier": svc["id"], "listenerIdentifier": listener["id"], "name": "bad"}
    ok_action = fwd((tg_a["id"], 1))
    cases = [
        {"priority": 0, "match": path_prefix("/"), "action": ok_action},
        {"priority": 2001, "match": path_prefix("/"), "action": ok_action},
        {"priority": 1, "match": path_prefix("no-slash"), "action": ok_action},
        {"priority": 1, "match": {"httpMatch": {"method": "FETCH"}}, "action": ok_action},
        {"priority": 1, "match": {"httpMatch": {"pathMatch": {"match": {"exact": "/a", "prefix": "/a"}}}}, "action": ok_action},
        {"priority": 1, "match": path_prefix("/"), "action": {"forward": {"targetGroups": [
            {"targetGroupIdentifier": tg_a["id"]}, {"targetGroupIdentifier": tg_b["id"]}]}}},
        {"priority": 1, "match": path_prefix("/"), "action": fwd((tg_a["id"], 1), (tg_a["id"], 1))},
        {"priority": 1, "match": path_prefix("/"), "action": {"fixedResponse": {"statusCode": 700}}},
        {"priority": 1, "match": path_prefix("/")},
    ]
    for extra in cases:
        expect_error("ValidationException", 400, lattice_raw.create_rule, **base, **extra)
    expect_error("ResourceNotFoundException", 404, lattice.create_rule, **base, priority=1, match=path_prefix("/"),
                 action=fwd(("tg-0123456789abcdef0", 1)))
    expect_error("ResourceNotFoundException", 404, lattice.create_rule, serviceIdentifier=svc["id"],
                 listenerIdentifier="listener-0123456789abcdef0", name="bad", priority=1, match=path_prefix("/"), action=ok_action)
    assert [r for r in drain(lattice.list_rules, serviceIdentifier=svc["id"], listenerIdentifier=listener["id"])
            if not r["isDefault"]] == []


def test_deleting_listener_deletes_its_rules(lattice: Any, svc_listener: Any) -> None:
    svc, listener, (tg_a, _) = svc_listener
    rule = lattice.create_rule(serviceIdentifier=svc["id"], listenerIdentifier=listener["id"], name="gone", priority=1,
                               match=path_prefix("/"), action=fwd((tg_a["id"], 1)))
    expect_error("ConflictException", 409, lattice.delete_target_group, targetGroupIdentifier=tg_a["id"])
    lattice.delete_listener(serviceIdentifier=svc["id"], listenerIdentifier=listener["id"])
    expect_error("ResourceNotFoundException", 404, lattice.list_tags_for_resource, resourceArn=rule["arn"])
    # The rule was the only user of the target group.
    assert lattice.get_target_group(targetGroupIdentifier=tg_a["id"]).get("serviceArns", []) == []


# ------------------------------------------------------------------------------ target groups


def test_target_group_round_trip(lattice: Any, uniq: str) -> None:
    vpc = vpc_id()
    health = {"enabled": True, "protocol": "HTTP", "path": "/healthz", "port": 8081, "healthCheckIntervalSeconds": 10,
              "healthCheckTimeoutSeconds": 2, "healthyThresholdCount": 3, "unhealthyThresholdCount": 3,
              "matcher": {"httpCode": "200-299"}}
    tg = mk_tg(lattice, uniq, vpc=vpc, health=health, tags={"cloudgate.io/service": "ns/svc:80"})
    assert tg["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert re.fullmatch(r"tg-[0-9a-z]{17}", tg["id"])
    assert re.fullmatch(ARN_PREFIX + r"targetgroup/tg-[0-9a-z]{17}", tg["arn"])
    assert tg["status"] == "ACTIVE" and tg["type"] == "IP"
    assert tg["config"]["port"] == 8080 and tg["config"]["protocol"] == "HTTP" and tg["config"]["vpcIdentifier"] == vpc
    for key, value in health.items():
        assert tg["config"]["healthCheck"][key] == value

    for ident in (tg["id"], tg["arn"]):
        got = lattice.get_target_group(targetGroupIdentifier=ident)
        assert got["name"] == tg["name"] and got["config"]["healthCheck"]["path"] == "/healthz"
        assert "createdAt" in got

    listed = drain(lattice.list_target_groups, vpcIdentifier=vpc)
    assert [t["id"] for t in listed] == [tg["id"]]
    assert listed[0]["port"] == 8080 and listed[0]["protocol"] == "HTTP" and listed[0]["vpcIdentifier"] == vpc
    assert tg["id"] in {t["id"] for t in drain(lattice.list_target_groups, targetGroupType="IP")}
    assert tg["id"] not in {t["id"] for t in drain(lattice.list_target_groups, targetGroupType="LAMBDA")}

    upd = lattice.update_target_group(targetGroupIdentifier=tg["arn"], healthCheck={"path": "/ready", "enabled": False})
    assert upd["config"]["healthCheck"]["path"] == "/ready" and upd["config"]["healthCheck"]["enabled"] is False
    assert lattice.get_target_group(targetGroupIdentifier=tg["id"])["config"]["healthCheck"]["path"] == "/ready"

    expect_error("ConflictException", 409, mk_tg, lattice, uniq)

    deleted = lattice.delete_target_group(targetGroupIdentifier=tg["id"])
    assert deleted["id"] == tg["id"] and deleted["status"] == "DELETE_IN_PROGRESS"
    expect_error("ResourceNotFoundException", 404, lattice.get_target_group, targetGroupIdentifier=tg["id"])
    expect_error("ResourceNotFoundException", 404, lattice.delete_target_group, targetGroupIdentifier=tg["arn"])
    expect_error("ResourceNotFoundException", 404, lattice.update_target_group, targetGroupIdentifier=tg["id"],
                 healthCheck={"enabled": True})


def test_target_group_defaults_and_validation(lattice: Any, lattice_raw: Any, uniq: str) -> None:
    tg = mk_tg(lattice, uniq)
    hc = tg["config"]["healthCheck"]
    assert hc["enabled"] is True and hc["path"] == "/" and hc["protocol"] == "HTTP"
    assert tg["config"]["protocolVersion"] == "HTTP1" and tg["config"]["ipAddressType"] == "IPV4"
    lattice.delete_target_group(targetGroupIdentifier=tg["id"])
    expect_error("ValidationException", 400, lattice_raw.create_target_group, name=f"nocfg-{uniq}", type="IP")
    expect_error("ValidationException", 400, lattice_raw.create_target_group, name=f"badport-{uniq}", type="IP",
                 config={"port": 0, "protocol": "HTTP", "vpcIdentifier": "vpc-01234567"})
    expect_error("ValidationException", 400, lattice_raw.create_target_group, name=f"tg-{uniq}", type="IP",
                 config={"port": 80, "protocol": "HTTP", "vpcIdentifier": "vpc-01234567"})
    expect_error("ValidationException", 400, lattice_raw.create_target_group, name=f"typ-{uniq}", type="POD",
                 config={"port": 80, "protocol": "HTTP", "vpcIdentifier": "vpc-01234567"})


def test_target_group_belongs_to_one_service(lattice: Any, uniq: str) -> None:
    tg = mk_tg(lattice, uniq)
    svc_a, svc_b = mk_svc(lattice, uniq, "-a"), mk_svc(lattice, uniq, "-b")
    la, lb = mk_listener(lattice, svc_a, action=fwd((tg["id"], 1))), mk_listener(lattice, svc_b)
    assert lattice.get_target_group(targetGroupIdentifier=tg["id"])["serviceArns"] == [svc_a["arn"]]
    expect_error("ConflictException", 409, lattice.create_rule, serviceIdentifier=svc_b["id"], listenerIdentifier=lb["id"],
                 name="steal", priority=1, match=path_prefix("/"), action=fwd((tg["id"], 1)))
    expect_error("ConflictException", 409, lattice.update_listener, serviceIdentifier=svc_b["id"],
                 listenerIdentifier=lb["id"], defaultAction=fwd((tg["arn"], 1)))
    # A second listener of the same service may use it.
    mk_listener(lattice, svc_a, name="alt", port=8080, action=fwd((tg["id"], 1)))
    expect_error("ConflictException", 409, lattice.delete_target_group, targetGroupIdentifier=tg["id"])
    lattice.update_listener(serviceIdentifier=svc_a["id"], listenerIdentifier=la["id"], defaultAction=FIXED_404)
    lattice.delete_service(serviceIdentifier=svc_a["id"])
    lattice.delete_service(serviceIdentifier=svc_b["id"])
    lattice.delete_target_group(targetGroupIdentifier=tg["id"])


# ----------------------------------------------------------------------------------- targets


def test_register_list_deregister_targets(lattice: Any, uniq: str) -> None:
    tg = mk_tg(lattice, uniq)
    reg = lattice.register_targets(targetGroupIdentifier=tg["id"], targets=[
        {"id": "10.0.0.1", "port": 8080}, {"id": "10.0.0.2"}, {"id": "10.0.0.3", "port": 9090}, {"id": "not-an-ip"},
    ])
    assert {(t["id"], t["port"]) for t in reg["successful"]} == {("10.0.0.1", 8080), ("10.0.0.2", 8080), ("10.0.0.3", 9090)}
    assert [u["id"] for u in reg["unsuccessful"]] == ["not-an-ip"] and reg["unsuccessful"][0]["failureCode"]

    targets = drain(lattice.list_targets, targetGroupIdentifier=tg["arn"])
    assert {(t["id"], t["port"]) for t in targets} == {("10.0.0.1", 8080), ("10.0.0.2", 8080), ("10.0.0.3", 9090)}
    # Not used by any service yet.
    assert {t["status"] for t in targets} == {"UNUSED"}

    # Registering again is idempotent.
    lattice.register_targets(targetGroupIdentifier=tg["id"], targets=[{"id": "10.0.0.1", "port": 8080}])
    assert len(drain(lattice.list_targets, targetGroupIdentifier=tg["id"])) == 3

    paged = drain(lattice.list_targets, targetGroupIdentifier=tg["id"], maxResults=1)
    assert len(paged) == 3
    only = lattice.list_targets(targetGroupIdentifier=tg["id"], targets=[{"id": "10.0.0.3", "port": 9090}])["items"]
    assert [(t["id"], t["port"]) for t in only] == [("10.0.0.3", 9090)]

    svc = mk_svc(lattice, uniq)
    mk_listener(lattice, svc, action=fwd((tg["id"], 1)))
    assert {t["status"] for t in drain(lattice.list_targets, targetGroupIdentifier=tg["id"])} == {"HEALTHY"}
    lattice.update_target_group(targetGroupIdentifier=tg["id"], healthCheck={"enabled": False})
    assert {t["status"] for t in drain(lattice.list_targets, targetGroupIdentifier=tg["id"])} == {"UNAVAILABLE"}

    dereg = lattice.deregister_targets(targetGroupIdentifier=tg["id"], targets=[{"id": "10.0.0.1", "port": 8080}, {"id": "10.0.0.2"}])
    assert {(t["id"], t["port"]) for t in dereg["successful"]} == {("10.0.0.1", 8080), ("10.0.0.2", 8080)}
    assert [(t["id"], t["port"]) for t in drain(lattice.list_targets, targetGroupIdentifier=tg["id"])] == [("10.0.0.3", 9090)]
    # Deregistering what is not registered is harmless.
    again = lattice.deregister_targets(targetGroupIdentifier=tg["id"], targets=[{"id": "10.0.0.1", "port": 8080}])
    assert again["unsuccessful"] == []

    expect_error("ResourceNotFoundException", 404, lattice.register_targets, targetGroupIdentifier="tg-0123456789abcdef0",
                 targets=[{"id": "10.0.0.9"}])
    expect_error("ResourceNotFoundException", 404, lattice.list_targets, targetGroupIdentifier="tg-0123456789abcdef0")
    expect_error("ResourceNotFoundException", 404, lattice.deregister_targets, targetGroupIdentifier="tg-0123456789abcdef0",
                 targets=[{"id": "10.0.0.9"}])
    lattice.delete_service(serviceIdentifier=svc["id"])
    lattice.delete_target_group(targetGroupIdentifier=tg["id"])


def test_target_validation(lattice: Any, lattice_raw: Any, uniq: str) -> None:
    tg = mk_tg(lattice, uniq)
    expect_error("ValidationException", 400, lattice_raw.register_targets, targetGroupIdentifier=tg["id"], targets=[])
    expect_error("ValidationException", 400, lattice_raw.register_targets, targetGroupIdentifier=tg["id"],
                 targets=[{"id": f"10.0.{i // 250}.{i % 250}"} for i in range(101)])
    expect_error("ValidationException", 400, lattice_raw.register_targets, targetGroupIdentifier=tg["id"],
                 targets=[{"id": "10.0.0.1", "port": 0}])
    lattice.delete_target_group(targetGroupIdentifier=tg["id"])


def test_forced_target_health(lattice: Any, ground: Any, uniq: str) -> None:
    tg = mk_tg(lattice, uniq)
    lattice.register_targets(targetGroupIdentifier=tg["id"], targets=[{"id": "10.1.0.1"}])
    ground.ground("/_ground/lattice/target-health", "POST",
                  {"targetGroupIdentifier": tg["id"], "id": "10.1.0.1", "status": "UNHEALTHY", "region": lattice.meta.region_name})
    assert drain(lattice.list_targets, targetGroupIdentifier=tg["id"])[0]["status"] == "UNHEALTHY"
    ground.ground("/_ground/lattice/target-health", "POST", {"targetGroupIdentifier": tg["id"], "id": "10.1.0.1", "status": None, "region": lattice.meta.region_name})
    assert drain(lattice.list_targets, targetGroupIdentifier=tg["id"])[0]["status"] == "UNUSED"
    lattice.delete_target_group(targetGroupIdentifier=tg["id"])


def test_delete_target_group_with_registered_targets(lattice: Any, ground: Any, uniq: str) -> None:
    # The API reference only forbids deleting a target group a listener rule uses; the ground
    # follows it (GROUND_LATTICE_TG_DELETE_REQUIRES_NO_TARGETS=1 makes it stricter).
    tg = mk_tg(lattice, uniq)
    lattice.register_targets(targetGroupIdentifier=tg["id"], targets=[{"id": "10.2.0.1"}])
    lattice.delete_target_group(targetGroupIdentifier=tg["id"])
    expect_error("ResourceNotFoundException", 404, lattice.list_targets, targetGroupIdentifier=tg["id"])


# -------------------------------------------------------------------------------------- tags


def test_tags_on_every_taggable_resource(lattice: Any, uniq: str) -> None:
    sn = mk_sn(lattice, uniq, tags={"kind": "sn"})
    svc = mk_svc(lattice, uniq, tags={"kind": "svc"})
    tg = mk_tg(lattice, uniq, tags={"kind": "tg"})
    listener = mk_listener(lattice, svc, tags={"kind": "listener"})
    rule = lattice.create_rule(serviceIdentifier=svc["id"], listenerIdentifier=listener["id"], name="tagged", priority=1,
                               match=path_prefix("/"), action=fwd((tg["id"], 1)), tags={"kind": "rule"})
    snsa = lattice.create_service_network_service_association(serviceNetworkIdentifier=sn["id"], serviceIdentifier=svc["id"],
                                                              tags={"kind": "snsa"})
    snva = lattice.create_service_network_vpc_association(serviceNetworkIdentifier=sn["id"], vpcIdentifier=vpc_id(),
                                                          tags={"kind": "snva"})
    resources = {"sn": sn, "svc": svc, "tg": tg, "listener": listener, "rule": rule, "snsa": snsa, "snva": snva}
    for kind, res in resources.items():
        arn = res["arn"]
        assert lattice.list_tags_for_resource(resourceArn=arn)["tags"] == {"kind": kind}, kind
        lattice.tag_resource(resourceArn=arn, tags={"cloudgate.io/cluster": "c1", "kind": f"{kind}2"})
        assert lattice.list_tags_for_resource(resourceArn=arn)["tags"] == {"kind": f"{kind}2", "cloudgate.io/cluster": "c1"}
        lattice.untag_resource(resourceArn=arn, tagKeys=["kind", "absent"])
        assert lattice.list_tags_for_resource(resourceArn=arn)["tags"] == {"cloudgate.io/cluster": "c1"}

    missing = "arn:aws:vpc-lattice:us-east-1:123456789012:service/svc-0123456789abcdef0"
    expect_error("ResourceNotFoundException", 404, lattice.list_tags_for_resource, resourceArn=missing)
    expect_error("ResourceNotFoundException", 404, lattice.tag_resource, resourceArn=missing, tags={"a": "b"})
    expect_error("ResourceNotFoundException", 404, lattice.untag_resource, resourceArn=missing, tagKeys=["a"])

    lattice.delete_service_network_vpc_association(serviceNetworkVpcAssociationIdentifier=snva["id"])
    lattice.delete_service_network_service_association(serviceNetworkServiceAssociationIdentifier=snsa["id"])
    lattice.delete_service(serviceIdentifier=svc["id"])
    lattice.delete_service_network(serviceNetworkIdentifier=sn["id"])
    lattice.delete_target_group(targetGroupIdentifier=tg["id"])


def test_tagging_api_finds_lattice_resources(lattice: Any, tagging: Any, uniq: str) -> None:
    owner = {"cloudgate.io/owner": uniq}
    svc = mk_svc(lattice, uniq, tags=owner)
    tg = mk_tg(lattice, uniq, tags=owner)
    listener = mk_listener(lattice, svc, tags=owner)
    found = tagging.get_resources(TagFilters=[{"Key": "cloudgate.io/owner", "Values": [uniq]}])["ResourceTagMappingList"]
    assert {r["ResourceARN"] for r in found} == {svc["arn"], tg["arn"], listener["arn"]}
    only_tgs = tagging.get_resources(TagFilters=[{"Key": "cloudgate.io/owner", "Values": [uniq]}],
                                     ResourceTypeFilters=["vpc-lattice:targetgroup"])["ResourceTagMappingList"]
    assert [r["ResourceARN"] for r in only_tgs] == [tg["arn"]]
    lattice.delete_service(serviceIdentifier=svc["id"])
    lattice.delete_target_group(targetGroupIdentifier=tg["id"])


# ------------------------------------------------------------------ pagination, idempotency


@pytest.mark.parametrize("kind", ["service_networks", "services", "target_groups"])
def test_list_pagination(lattice: Any, lattice_raw: Any, uniq: str, kind: str) -> None:
    made = []
    for i in range(3):
        if kind == "service_networks":
            made.append(mk_sn(lattice, uniq, f"-{i}"))
        elif kind == "services":
            made.append(mk_svc(lattice, uniq, f"-{i}"))
        else:
            made.append(mk_tg(lattice, uniq, f"-{i}"))
    lister = getattr(lattice, f"list_{kind}")
    first = lister(maxResults=1)
    assert len(first["items"]) == 1 and first.get("nextToken")
    ids = [i["id"] for i in drain(lister, maxResults=1)]
    assert len(ids) == len(set(ids))
    assert {m["id"] for m in made} <= set(ids)
    expect_error("ValidationException", 400, lister, maxResults=1, nextToken="garbage!")
    expect_error("ValidationException", 400, getattr(lattice_raw, f"list_{kind}"), maxResults=0)
    expect_error("ValidationException", 400, getattr(lattice_raw, f"list_{kind}"), maxResults=101)
    for m in made:
        if kind == "service_networks":
            lattice.delete_service_network(serviceNetworkIdentifier=m["id"])
        elif kind == "services":
            lattice.delete_service(serviceIdentifier=m["id"])
        else:
            lattice.delete_target_group(targetGroupIdentifier=m["id"])


def test_client_token_idempotency(lattice: Any, uniq: str) -> None:
    token = f"tok-{uniq}"
    a = mk_svc(lattice, uniq, clientToken=token)
    b = mk_svc(lattice, uniq, clientToken=token)
    assert a["id"] == b["id"]
    expect_error("ConflictException", 409, mk_svc, lattice, uniq, "-other", clientToken=token)
    lattice.delete_service(serviceIdentifier=a["id"])

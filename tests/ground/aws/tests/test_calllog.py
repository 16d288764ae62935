"""The ground's call log: GET /_ground/calls, POST /_ground/calls/reset, $GROUND_CALL_LOG."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError


def triples(calls: list[dict]) -> list[tuple[str, str, int]]:
    return [(c["service"], c["action"], c["status"]) for c in calls]


def test_call_log_records_service_action_status(ground: Any, lattice: Any, elbv2: Any, ec2: Any, acm: Any, uniq: str) -> None:
    ground.ground("/_ground/calls/reset", "POST")
    assert ground.ground("/_ground/calls")["calls"] == []

    svc = lattice.create_service(name=f"log-{uniq}")
    listener = lattice.create_listener(serviceIdentifier=svc["id"], name="http", protocol="HTTP",
                                       defaultAction={"fixedResponse": {"statusCode": 404}})
    tg = lattice.create_target_group(name=f"log-{uniq}", type="IP",
                                     config={"port": 80, "protocol": "HTTP", "vpcIdentifier": "vpc-01234567"})
    rule = lattice.create_rule(serviceIdentifier=svc["id"], listenerIdentifier=listener["id"], name="r-one", priority=1,
                               match={"httpMatch": {"pathMatch": {"match": {"prefix": "/"}}}},
                               action={"forward": {"targetGroups": [{"targetGroupIdentifier": tg["id"], "weight": 1}]}})
    lattice.update_rule(serviceIdentifier=svc["arn"], listenerIdentifier=listener["arn"], ruleIdentifier=rule["arn"],
                        action={"forward": {"targetGroups": [{"targetGroupIdentifier": tg["id"], "weight": 2}]}})
    lattice.list_tags_for_resource(resourceArn=rule["arn"])
    try:
        lattice.get_service(serviceIdentifier="svc-0123456789abcdef0")
    except ClientError:
        pass
    elbv2.describe_load_balancers()
    ec2.describe_vpcs()
    acm.list_certificates()
    lattice.delete_rule(serviceIdentifier=svc["id"], listenerIdentifier=listener["id"], ruleIdentifier=rule["id"])
    lattice.delete_service(serviceIdentifier=svc["id"])
    lattice.delete_target_group(targetGroupIdentifier=tg["id"])

    calls = ground.ground("/_ground/calls")["calls"]
    assert triples(calls) == [
        ("vpc-lattice", "CreateService", 201),
        ("vpc-lattice", "CreateListener", 201),
        ("vpc-lattice", "CreateTargetGroup", 201),
        ("vpc-lattice", "CreateRule", 201),
        ("vpc-lattice", "UpdateRule", 200),
        ("vpc-lattice", "ListTagsForResource", 200),
        ("vpc-lattice", "GetService", 404),
        ("elbv2", "DescribeLoadBalancers", 200),
        ("ec2", "DescribeVpcs", 200),
        ("acm", "ListCertificates", 200),
        ("vpc-lattice", "DeleteRule", 204),
        ("vpc-lattice", "DeleteService", 200),
        ("vpc-lattice", "DeleteTargetGroup", 200),
    ]

    only = ground.ground("/_ground/calls?service=vpc-lattice&action=UpdateRule")["calls"]
    assert triples(only) == [("vpc-lattice", "UpdateRule", 200)]

    if ground.call_log_file:
        with open(ground.call_log_file, encoding="utf-8") as fh:
            lines = [json.loads(line) for line in fh]
        assert triples(lines)[-len(calls):] == triples(calls)

    assert ground.ground("/_ground/calls/reset", "POST")["cleared"] == len(calls)
    assert ground.ground("/_ground/calls")["calls"] == []


def test_call_log_ignores_ground_and_moto_api(ground: Any) -> None:
    ground.ground("/_ground/calls/reset", "POST")
    ground.ground("/_ground/health")
    ground.ground("/_ground/calls")
    assert ground.ground("/_ground/calls")["calls"] == []

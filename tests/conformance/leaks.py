"""Lists the cloud resources a cluster id still owns on the test ground, one per line.

    leaks.py PROVIDER CLUSTER_ID

After a conformance run has deleted its namespaces (every Gateway finalized by the controller),
nothing tagged or labelled with the run's cluster id may be left: the suite's Gateways come and
go in many shapes, and each must take its cloud resources with it. Exit status 0 with no output
means nothing is left. Reads the ground's endpoints from the environment (AWS_ENDPOINT_URL and
the AWS_* credentials for boto3; GCE_ENDPOINT, GCE_PROJECT, GCE_REGION for Compute).
"""
import json
import os
import sys
import urllib.request

CLUSTER_TAG = "cloudgate.io/cluster"


def aws_alb(cluster):
    import boto3
    elb, ec2, acm = boto3.client("elbv2"), boto3.client("ec2"), boto3.client("acm")
    arns = [lb["LoadBalancerArn"] for page in elb.get_paginator("describe_load_balancers").paginate() for lb in page["LoadBalancers"]]
    arns += [tg["TargetGroupArn"] for page in elb.get_paginator("describe_target_groups").paginate() for tg in page["TargetGroups"]]
    for i in range(0, len(arns), 20):
        for d in elb.describe_tags(ResourceArns=arns[i:i + 20])["TagDescriptions"]:
            if {t["Key"]: t["Value"] for t in d["Tags"]}.get(CLUSTER_TAG) == cluster:
                yield d["ResourceArn"]
    sgs = ec2.describe_security_groups(Filters=[{"Name": f"tag:{CLUSTER_TAG}", "Values": [cluster]}])["SecurityGroups"]
    yield from (sg["GroupId"] for sg in sgs)
    for c in acm.list_certificates()["CertificateSummaryList"]:
        tags = acm.list_tags_for_certificate(CertificateArn=c["CertificateArn"]).get("Tags", [])
        if {t["Key"]: t.get("Value") for t in tags}.get(CLUSTER_TAG) == cluster:
            yield c["CertificateArn"]


def aws_lattice(cluster):
    import boto3
    lattice = boto3.client("vpc-lattice")

    def every(method, key="items", **kw):
        yield from (x for page in lattice.get_paginator(method).paginate(**kw) for x in page[key])

    arns = []
    for sn in every("list_service_networks"):
        arns.append(sn["arn"])
        arns += [a["arn"] for a in every("list_service_network_vpc_associations", serviceNetworkIdentifier=sn["id"])]
        arns += [a["arn"] for a in every("list_service_network_service_associations", serviceNetworkIdentifier=sn["id"])]
        arns += [a["arn"] for a in every("list_access_log_subscriptions", resourceIdentifier=sn["id"])]
    for s in every("list_services"):
        arns.append(s["arn"])
        arns += [a["arn"] for a in every("list_access_log_subscriptions", resourceIdentifier=s["id"])]
        for listener in every("list_listeners", serviceIdentifier=s["id"]):
            arns.append(listener["arn"])
            rules = every("list_rules", serviceIdentifier=s["id"], listenerIdentifier=listener["id"])
            arns += [r["arn"] for r in rules if not r.get("isDefault")]
    arns += [t["arn"] for t in every("list_target_groups")]
    for arn in arns:
        if lattice.list_tags_for_resource(resourceArn=arn).get("tags", {}).get(CLUSTER_TAG) == cluster:
            yield arn


def gcp(cluster):
    base = os.environ["GCE_ENDPOINT"].rstrip("/") + f"/compute/v1/projects/{os.environ['GCE_PROJECT']}"
    region = os.environ["GCE_REGION"]
    scoped = ["addresses", "urlMaps", "backendServices", "healthChecks", "targetHttpProxies",
              "targetHttpsProxies", "forwardingRules", "sslCertificates"]
    paths = [f"global/{k}" for k in scoped] + [f"regions/{region}/{k}" for k in scoped]
    paths += ["global/firewalls", "aggregated/networkEndpointGroups"]
    for path in paths:
        with urllib.request.urlopen(f"{base}/{path}", timeout=30) as r:
            items = json.load(r).get("items", [])
        if isinstance(items, dict):  # aggregatedList: {"zones/x": {"networkEndpointGroups": [...]}}
            items = [n for scope in items.values() for n in scope.get("networkEndpointGroups", [])]
        for it in items:
            # Ownership is a label (addresses, forwarding rules) or JSON in the description.
            if cluster in it.get("description", "") or cluster in json.dumps(it.get("labels", {})):
                yield f"{path}/{it['name']}"


def main():
    provider, cluster = sys.argv[1], sys.argv[2]
    lister = {"aws-alb": aws_alb, "aws-lattice": aws_lattice, "gcp": gcp}[provider]
    for r in lister(cluster):
        print(r)


if __name__ == "__main__":
    main()

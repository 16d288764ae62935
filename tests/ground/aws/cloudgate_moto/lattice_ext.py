"""VPC Lattice for the cloudgate test ground, on top of moto's vpclattice module.

moto 5.2.x only knows create/get/list for most Lattice resources, mints ids that do not match the
API's id patterns (uuid fragments with dashes), builds malformed rule ARNs and answers errors with
HTTP 400 where AWS answers 404/409. This module replaces the parts the cloudgate controller talks
to, keeping moto's structure:

* ``CloudgateLatticeBackend`` subclasses moto's ``VPCLatticeBackend`` and is installed as the class
  of moto's ``vpclattice_backends`` BackendDict, so moto's own code (resource groups tagging API,
  access-log subscriptions, auth/resource policies, ``/moto-api/reset``) keeps working against it.
* ``CloudgateLatticeResponse`` subclasses moto's ``VPCLatticeResponse``; it turns on moto's
  model-driven request parser and returns ``ActionResult``s, so requests and responses are
  (de)serialised from the botocore service model (field names, status codes such as 201/204,
  error shapes with resourceId/resourceType, ISO-8601 timestamps).
* the url map routes every Lattice URI prefix to that response class; moto resolves the operation
  from method + URI using the same botocore model.

Semantics follow the VPC Lattice API reference (the documentation strings in botocore's
``vpc-lattice/2022-11-30/service-2.json``); where the reference is silent we choose something
deterministic and say so in a comment.

Call ``apply()`` once, before the server handles its first request.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import ipaddress
import itertools
import json
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from typing import Any

from botocore.model import OperationModel, Shape

import moto.vpclattice.urls as _vl_urls
from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult
from moto.core.utils import get_service_model
from moto.vpclattice.models import VPCLatticeBackend, vpclattice_backends
from moto.vpclattice.responses import VPCLatticeResponse

SERVICE_NAME = "vpc-lattice"

# One lock for the whole Lattice state: moto's server is threaded, and several of our operations
# check-then-mutate across resources (e.g. "is this target group used by any rule?").
_LOCK = threading.RLock()

# ListX default page size when maxResults is absent (the API reference gives no default; 100 is
# the documented maximum). Overridable so controller tests can force pagination.
DEFAULT_PAGE_SIZE = int(os.environ.get("GROUND_LATTICE_DEFAULT_PAGE_SIZE", "100"))

# The API reference for DeleteTargetGroup only forbids deleting a target group that a listener rule
# uses. Set this to 1 to also refuse while targets are still registered (stricter than documented).
STRICT_TG_DELETE = os.environ.get("GROUND_LATTICE_TG_DELETE_REQUIRES_NO_TARGETS", "") == "1"

HTTP_METHODS = {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _new_id(prefix: str) -> str:
    # Real ids are the prefix plus 17 lowercase hex characters (pattern e.g. svc-[0-9a-z]{17}).
    return f"{prefix}-{secrets.token_hex(9)[:17]}"


# --------------------------------------------------------------------------------------------
# Errors: serialised by moto from the model's error shapes (409/404/400/402 + required members).
# --------------------------------------------------------------------------------------------


class LatticeValidationException(ServiceException):
    code = "ValidationException"

    def __init__(
        self,
        message: str,
        reason: str = "fieldValidationFailed",
        fields: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.field_list = [{"name": n, "message": m} for n, m in fields] if fields else None


class LatticeNotFoundException(ServiceException):
    code = "ResourceNotFoundException"

    def __init__(self, resource_type: str, resource_id: str, message: str | None = None) -> None:
        super().__init__(message or f"{_pretty(resource_type)} {resource_id} not found")
        self.resource_type = resource_type
        self.resource_id = resource_id


class LatticeConflictException(ServiceException):
    code = "ConflictException"

    def __init__(self, resource_type: str, resource_id: str, message: str) -> None:
        super().__init__(message)
        self.resource_type = resource_type
        self.resource_id = resource_id


def _pretty(resource_type: str) -> str:
    return resource_type.replace("_", " ").capitalize()


# Resource type names used in error bodies.
RT_SN = "SERVICE_NETWORK"
RT_SVC = "SERVICE"
RT_SNSA = "SERVICE_NETWORK_SERVICE_ASSOCIATION"
RT_SNVA = "SERVICE_NETWORK_VPC_ASSOCIATION"
RT_LISTENER = "LISTENER"
RT_RULE = "RULE"
RT_TG = "TARGET_GROUP"
RT_TARGET = "TARGET"
RT_ANY = "RESOURCE"


# --------------------------------------------------------------------------------------------
# Model-driven input validation (AWS validates on the server; SDKs such as the Rust one do not
# validate ranges or patterns on the client).
# --------------------------------------------------------------------------------------------


def _describe(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 120 else text[:117] + "..."


def _validate_shape(shape: Shape, value: Any, path: str, errors: list[tuple[str, str]]) -> None:
    if value is None:
        return
    t = shape.type_name
    meta = shape.metadata
    if t == "structure":
        if not isinstance(value, dict):
            errors.append((path, f"Value '{_describe(value)}' at '{path}' must be a structure"))
            return
        for name in shape.required_members:
            if value.get(name) is None:
                p = f"{path}.{name}" if path else name
                errors.append((p, f"Value null at '{p}' failed to satisfy constraint: Member must not be null"))
        set_members = [k for k, v in value.items() if v is not None and k in shape.members]
        if shape.is_tagged_union and len(set_members) != 1:
            errors.append(
                (path, f"Value at '{path}' failed to satisfy constraint: exactly one member of the union must be set")
            )
        for name, member in shape.members.items():
            if name in value:
                _validate_shape(member, value[name], f"{path}.{name}" if path else name, errors)
        return
    if t == "list":
        if not isinstance(value, list):
            errors.append((path, f"Value at '{path}' must be a list"))
            return
        if "min" in meta and len(value) < meta["min"]:
            errors.append((path, f"Value at '{path}' failed to satisfy constraint: Member must have length greater than or equal to {meta['min']}"))
        if "max" in meta and len(value) > meta["max"]:
            errors.append((path, f"Value at '{path}' failed to satisfy constraint: Member must have length less than or equal to {meta['max']}"))
        for i, item in enumerate(value):
            _validate_shape(shape.member, item, f"{path}.{i + 1}.member", errors)
        return
    if t == "map":
        if not isinstance(value, dict):
            errors.append((path, f"Value at '{path}' must be a map"))
            return
        if "min" in meta and len(value) < meta["min"]:
            errors.append((path, f"Value at '{path}' failed to satisfy constraint: Map must have at least {meta['min']} entries"))
        if "max" in meta and len(value) > meta["max"]:
            errors.append((path, f"Value at '{path}' failed to satisfy constraint: Map must have at most {meta['max']} entries"))
        for k, v in value.items():
            _validate_shape(shape.key, k, f"{path}.key", errors)
            _validate_shape(shape.value, v, f"{path}.{k}", errors)
        return
    if t == "string":
        if not isinstance(value, str):
            errors.append((path, f"Value '{_describe(value)}' at '{path}' must be a string"))
            return
        enum = shape.enum
        if enum and value not in enum:
            errors.append((path, f"Value '{_describe(value)}' at '{path}' failed to satisfy constraint: Member must satisfy enum value set: [{', '.join(enum)}]"))
        if "min" in meta and len(value) < meta["min"]:
            errors.append((path, f"Value '{_describe(value)}' at '{path}' failed to satisfy constraint: Member must have length greater than or equal to {meta['min']}"))
        if "max" in meta and len(value) > meta["max"]:
            errors.append((path, f"Value '{_describe(value)}' at '{path}' failed to satisfy constraint: Member must have length less than or equal to {meta['max']}"))
        pattern = meta.get("pattern")
        if pattern and not _pattern(pattern).fullmatch(value):
            errors.append((path, f"Value '{_describe(value)}' at '{path}' failed to satisfy constraint: Member must satisfy regular expression pattern: {pattern}"))
        return
    if t in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append((path, f"Value '{_describe(value)}' at '{path}' must be an integer"))
            return
        if "min" in meta and value < meta["min"]:
            errors.append((path, f"Value '{value}' at '{path}' failed to satisfy constraint: Member must have value greater than or equal to {meta['min']}"))
        if "max" in meta and value > meta["max"]:
            errors.append((path, f"Value '{value}' at '{path}' failed to satisfy constraint: Member must have value less than or equal to {meta['max']}"))
        return
    if t == "boolean":
        if not isinstance(value, bool):
            errors.append((path, f"Value '{_describe(value)}' at '{path}' must be a boolean"))


_PATTERN_CACHE: dict[str, re.Pattern[str]] = {}


def _pattern(p: str) -> re.Pattern[str]:
    compiled = _PATTERN_CACHE.get(p)
    if compiled is None:
        compiled = _PATTERN_CACHE[p] = re.compile(p, re.DOTALL)
    return compiled


def validate_input(operation_model: OperationModel, params: dict[str, Any]) -> None:
    shape = operation_model.input_shape
    if shape is None:
        return
    errors: list[tuple[str, str]] = []
    _validate_shape(shape, params, "", errors)
    if errors:
        n = len(errors)
        msg = f"{n} validation error{'s' if n > 1 else ''} detected: " + "; ".join(m for _, m in errors)
        raise LatticeValidationException(msg, "fieldValidationFailed", errors)


def _invalid(field: str, message: str) -> LatticeValidationException:
    return LatticeValidationException(message, "fieldValidationFailed", [(field, message)])


# --------------------------------------------------------------------------------------------
# Resources. Attribute names are camelCase-able by moto's attribute picker; describe() gives the
# full camelCase view and the serializer keeps only what each operation's output shape lists.
# --------------------------------------------------------------------------------------------


class _Resource:
    resource_type = RT_ANY

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self.created_at = _now()
        self.last_updated_at = self.created_at

    def touch(self) -> None:
        self.last_updated_at = _now()


class ServiceNetwork(_Resource):
    resource_type = RT_SN

    def __init__(self, seq: int, region: str, account: str, name: str, auth_type: str, sharing_config: dict | None) -> None:
        super().__init__(seq)
        self.id = _new_id("sn")
        self.arn = f"arn:aws:vpc-lattice:{region}:{account}:servicenetwork/{self.id}"
        self.name = name
        self.auth_type = auth_type
        self.sharing_config = sharing_config or {"enabled": False}


class Service(_Resource):
    resource_type = RT_SVC

    def __init__(self, seq: int, region: str, account: str, name: str, auth_type: str,
                 certificate_arn: str | None, custom_domain_name: str | None) -> None:
        super().__init__(seq)
        self.id = _new_id("svc")
        self.arn = f"arn:aws:vpc-lattice:{region}:{account}:service/{self.id}"
        self.name = name
        self.auth_type = auth_type
        self.certificate_arn = certificate_arn
        self.custom_domain_name = custom_domain_name
        self.status = "ACTIVE"
        # Real shape: <name>-<17 hex of the id>.<7 hex>.vpc-lattice-svcs.<region>.on.aws
        self.dns_entry = {
            "domainName": f"{name}-{self.id[4:]}.{_short_hash(account, region)}.vpc-lattice-svcs.{region}.on.aws",
            "hostedZoneId": _hosted_zone_id(region),
        }


class Listener(_Resource):
    resource_type = RT_LISTENER

    def __init__(self, seq: int, service: Service, name: str, protocol: str, port: int, default_action: dict) -> None:
        super().__init__(seq)
        self.id = _new_id("listener")
        self.arn = f"{service.arn}/listener/{self.id}"
        self.service_id = service.id
        self.service_arn = service.arn
        self.name = name
        self.protocol = protocol
        self.port = port
        self.default_action = default_action
        self.default_rule_id = ""


class Rule(_Resource):
    resource_type = RT_RULE

    def __init__(self, seq: int, listener: Listener, name: str, priority: int | None, match: dict | None,
                 action: dict | None, is_default: bool = False) -> None:
        super().__init__(seq)
        self.id = _new_id("rule")
        # arn:aws:vpc-lattice:REGION:ACCOUNT:service/svc-x/listener/listener-y/rule/rule-z
        self.arn = f"{listener.arn}/rule/{self.id}"
        self.listener_id = listener.id
        self.service_id = listener.service_id
        self.name = name
        self.priority = priority
        self.match = match
        self._action = action
        self.is_default = is_default
        self._listener = listener
        # ids of the target groups the action forwards to (set by the backend once resolved)
        self.resolved_tg_ids: list[str] = []

    @property
    def action(self) -> dict | None:
        # The default rule mirrors the listener's default action (UpdateListener changes it).
        return self._listener.default_action if self.is_default else self._action

    @action.setter
    def action(self, value: dict | None) -> None:
        self._action = value


DEFAULT_HEALTH_CHECK = {
    "enabled": True,
    "protocol": "HTTP",
    "protocolVersion": "HTTP1",
    "path": "/",
    "healthCheckIntervalSeconds": 30,
    "healthCheckTimeoutSeconds": 5,
    "healthyThresholdCount": 5,
    "unhealthyThresholdCount": 2,
    "matcher": {"httpCode": "200"},
}
# In UpdateTargetGroup/CreateTargetGroup a 0 for these means "use the default" (min is 0 in the
# model although the documented ranges start at 1/2/5).
_HC_ZERO_MEANS_DEFAULT = (
    "healthCheckIntervalSeconds",
    "healthCheckTimeoutSeconds",
    "healthyThresholdCount",
    "unhealthyThresholdCount",
)


class TargetGroup(_Resource):
    resource_type = RT_TG

    def __init__(self, seq: int, region: str, account: str, name: str, tg_type: str, config: dict | None) -> None:
        super().__init__(seq)
        self.id = _new_id("tg")
        self.arn = f"arn:aws:vpc-lattice:{region}:{account}:targetgroup/{self.id}"
        self.name = name
        self.type = tg_type
        self.config = config
        self.status = "ACTIVE"
        # (target id, port) -> registration sequence number, in registration order
        self.targets: dict[tuple[str, int], int] = {}
        self.service_arns: list[str] = []  # filled at describe time


class ServiceNetworkServiceAssociation(_Resource):
    resource_type = RT_SNSA

    def __init__(self, seq: int, region: str, account: str, sn: ServiceNetwork, svc: Service) -> None:
        super().__init__(seq)
        self.id = _new_id("snsa")
        self.arn = f"arn:aws:vpc-lattice:{region}:{account}:servicenetworkserviceassociation/{self.id}"
        self.status = "ACTIVE"
        self.created_by = account
        self.service_id = svc.id
        self.service_name = svc.name
        self.service_arn = svc.arn
        self.service_network_id = sn.id
        self.service_network_name = sn.name
        self.service_network_arn = sn.arn
        # An association answers with the DNS entry of its service.
        self.dns_entry = dict(svc.dns_entry)
        self.custom_domain_name = svc.custom_domain_name


class ServiceNetworkVpcAssociation(_Resource):
    resource_type = RT_SNVA

    def __init__(self, seq: int, region: str, account: str, sn: ServiceNetwork, vpc_id: str,
                 security_group_ids: list[str] | None, private_dns_enabled: bool | None, dns_options: dict | None) -> None:
        super().__init__(seq)
        self.id = _new_id("snva")
        self.arn = f"arn:aws:vpc-lattice:{region}:{account}:servicenetworkvpcassociation/{self.id}"
        self.status = "ACTIVE"
        self.created_by = account
        self.service_network_id = sn.id
        self.service_network_name = sn.name
        self.service_network_arn = sn.arn
        self.vpc_id = vpc_id
        self.security_group_ids = list(security_group_ids or [])
        self.private_dns_enabled = private_dns_enabled
        self.dns_options = dns_options


def _short_hash(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:7]


def _hosted_zone_id(region: str) -> str:
    digest = hashlib.sha256(f"lattice-zone/{region}".encode()).hexdigest().upper()
    return "Z" + digest[:20]


# --------------------------------------------------------------------------------------------
# Backend
# --------------------------------------------------------------------------------------------


class CloudgateLatticeBackend(VPCLatticeBackend):
    """moto's VPCLatticeBackend with AWS semantics for the calls cloudgate makes."""

    def __init__(self, region_name: str, account_id: str) -> None:
        super().__init__(region_name, account_id)
        self._seq = itertools.count(1)
        # (operation, clientToken) -> (request digest, cached response dict)
        self.idempotency: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
        # (target group id, target id, port) -> forced status, set through /_ground endpoints
        self.health_overrides: dict[tuple[str, str, int], str] = {}

    # moto derives the urls module from the class's module name; ours lives elsewhere.
    @property
    def _url_module(self) -> Any:  # type: ignore[override]
        return _vl_urls

    def next_seq(self) -> int:
        return next(self._seq)

    # ---- lookups ---------------------------------------------------------------------------

    @staticmethod
    def _lookup(store: dict[str, Any], identifier: str, resource_type: str) -> Any:
        is_arn = identifier.startswith("arn:")
        key = identifier.rsplit("/", 1)[-1] if is_arn else identifier
        obj = store.get(key)
        if obj is None or (is_arn and obj.arn != identifier):
            raise LatticeNotFoundException(resource_type, identifier)
        return obj

    def get_service_network(self, service_network_identifier: str) -> ServiceNetwork:  # type: ignore[override]
        return self._lookup(self.service_networks, service_network_identifier, RT_SN)

    def get_service(self, service_identifier: str) -> Service:  # type: ignore[override]
        return self._lookup(self.services, service_identifier, RT_SVC)

    def get_target_group(self, target_group_identifier: str) -> TargetGroup:  # type: ignore[override]
        return self._lookup(self.target_groups, target_group_identifier, RT_TG)

    def get_listener(self, service_identifier: str, listener_identifier: str) -> Listener:  # type: ignore[override]
        svc = self.get_service(service_identifier)
        listener = self._lookup(self.listeners, listener_identifier, RT_LISTENER)
        if listener.service_id != svc.id:
            raise LatticeNotFoundException(RT_LISTENER, listener_identifier)
        return listener

    def get_rule(self, service_identifier: str, listener_identifier: str, rule_identifier: str) -> Rule:
        listener = self.get_listener(service_identifier, listener_identifier)
        rule = self._lookup(self.rules, rule_identifier, RT_RULE)
        if rule.listener_id != listener.id:
            raise LatticeNotFoundException(RT_RULE, rule_identifier)
        return rule

    def get_service_network_service_association(self, identifier: str) -> ServiceNetworkServiceAssociation:  # type: ignore[override]
        return self._lookup(self.service_network_service_associations, identifier, RT_SNSA)

    def get_service_network_vpc_association(self, identifier: str) -> ServiceNetworkVpcAssociation:
        return self._lookup(self.service_network_vpc_associations, identifier, RT_SNVA)

    def find_arn(self, arn: str) -> Any:
        for store in (
            self.service_networks,
            self.services,
            self.listeners,
            self.rules,
            self.target_groups,
            self.service_network_service_associations,
            self.service_network_vpc_associations,
            self.service_network_resource_associations,
            self.access_log_subscriptions,
        ):
            for obj in store.values():
                if obj.arn == arn:
                    return obj
        return None

    def _forget(self, obj: Any) -> None:
        self.tagger.delete_all_tags_for_resource(obj.arn)

    # ---- service networks --------------------------------------------------------------------

    def create_service_network(self, name: str, auth_type: str | None, sharing_config: dict | None,  # type: ignore[override]
                               tags: dict[str, str] | None) -> ServiceNetwork:
        for sn in self.service_networks.values():
            if sn.name == name:
                raise LatticeConflictException(RT_SN, sn.id, f"Service network with name {name} already exists")
        sn = ServiceNetwork(self.next_seq(), self.region_name, self.account_id, name, auth_type or "NONE", sharing_config)
        self.service_networks[sn.id] = sn
        self.tag_resource(sn.arn, tags or {})
        return sn

    def update_service_network(self, identifier: str, auth_type: str) -> ServiceNetwork:
        sn = self.get_service_network(identifier)
        sn.auth_type = auth_type
        sn.touch()
        return sn

    def delete_service_network(self, identifier: str) -> None:
        sn = self.get_service_network(identifier)
        if any(a.service_network_id == sn.id for a in self.service_network_service_associations.values()):
            raise LatticeConflictException(
                RT_SN, sn.id, f"Service network {sn.id} cannot be deleted because it has service associations"
            )
        if any(a.service_network_id == sn.id for a in self.service_network_vpc_associations.values()):
            raise LatticeConflictException(
                RT_SN, sn.id, f"Service network {sn.id} cannot be deleted because it has VPC associations"
            )
        self._drop_policies_and_logs(sn)
        del self.service_networks[sn.id]
        self._forget(sn)

    def _drop_policies_and_logs(self, obj: Any) -> None:
        # "all resources related ... such as the resource policy, auth policy, and access log
        # subscriptions, are also deleted"
        self.auth_policies.pop(obj.id, None)
        self.resource_policies.pop(obj.arn, None)
        for sub_id in [s.id for s in self.access_log_subscriptions.values() if s.resourceId == obj.id]:
            self._forget(self.access_log_subscriptions.pop(sub_id))

    def counts_for(self, sn: ServiceNetwork) -> tuple[int, int]:
        vpcs = sum(1 for a in self.service_network_vpc_associations.values() if a.service_network_id == sn.id)
        svcs = sum(1 for a in self.service_network_service_associations.values() if a.service_network_id == sn.id)
        return vpcs, svcs

    # ---- services ----------------------------------------------------------------------------

    def create_service(self, name: str, auth_type: str | None, certificate_arn: str | None,  # type: ignore[override]
                       custom_domain_name: str | None, tags: dict[str, str] | None) -> Service:
        for svc in self.services.values():
            if svc.name == name:
                raise LatticeConflictException(RT_SVC, svc.id, f"Service with name {name} already exists")
        if certificate_arn and not custom_domain_name:
            raise _invalid("certificateArn", "A certificate can only be specified together with a customDomainName")
        svc = Service(self.next_seq(), self.region_name, self.account_id, name, auth_type or "NONE",
                      certificate_arn, custom_domain_name)
        self.services[svc.id] = svc
        self.tag_resource(svc.arn, tags or {})
        return svc

    def update_service(self, identifier: str, certificate_arn: str | None, auth_type: str | None) -> Service:
        svc = self.get_service(identifier)
        if certificate_arn is not None:
            if certificate_arn and not svc.custom_domain_name:
                raise _invalid("certificateArn", "A certificate can only be specified for a service with a customDomainName")
            svc.certificate_arn = certificate_arn or None
        if auth_type is not None:
            svc.auth_type = auth_type
        svc.touch()
        return svc

    def delete_service(self, identifier: str) -> Service:
        svc = self.get_service(identifier)
        # "A service can't be deleted if it's associated with a service network."
        if any(a.service_id == svc.id for a in self.service_network_service_associations.values()):
            raise LatticeConflictException(
                RT_SVC, svc.id, f"Service {svc.id} cannot be deleted because it is associated with a service network"
            )
        # "...listeners, listener rules ... are also deleted."
        for listener in [li for li in self.listeners.values() if li.service_id == svc.id]:
            self._delete_listener(listener)
        self._drop_policies_and_logs(svc)
        del self.services[svc.id]
        self._forget(svc)
        svc.status = "DELETE_IN_PROGRESS"
        return svc

    # ---- target groups -----------------------------------------------------------------------

    def create_target_group(self, name: str, tg_type: str, config: dict | None,  # type: ignore[override]
                            tags: dict[str, str] | None) -> TargetGroup:
        for tg in self.target_groups.values():
            if tg.name == name:
                raise LatticeConflictException(RT_TG, tg.id, f"Target group with name {name} already exists")
        config = copy.deepcopy(config) if config else None
        if tg_type == "LAMBDA":
            if config and set(config) - {"lambdaEventStructureVersion"}:
                raise _invalid("config", "Only lambdaEventStructureVersion is supported for LAMBDA target groups")
            if config is None:
                config = {}
            config.setdefault("lambdaEventStructureVersion", "V1")
        else:
            if not config:
                raise _invalid("config", f"config is required for target groups of type {tg_type}")
            for required in ("port", "protocol", "vpcIdentifier"):
                if tg_type == "ALB" and required == "port":
                    continue
                if config.get(required) is None:
                    raise _invalid(f"config.{required}", f"config.{required} is required for target groups of type {tg_type}")
            if "lambdaEventStructureVersion" in config:
                raise _invalid("config.lambdaEventStructureVersion", "lambdaEventStructureVersion is only supported for LAMBDA target groups")
            if config.get("ipAddressType") and tg_type != "IP":
                raise _invalid("config.ipAddressType", "ipAddressType is only supported for IP target groups")
            if tg_type == "IP":
                config.setdefault("ipAddressType", "IPV4")
            if config.get("protocol") != "TCP":
                config.setdefault("protocolVersion", "HTTP1")
            if tg_type == "ALB":
                config.pop("healthCheck", None)
            else:
                config["healthCheck"] = _merge_health_check(DEFAULT_HEALTH_CHECK, config.get("healthCheck"), config)
        tg = TargetGroup(self.next_seq(), self.region_name, self.account_id, name, tg_type, config)
        self.target_groups[tg.id] = tg
        self.tag_resource(tg.arn, tags or {})
        return tg

    def update_target_group(self, identifier: str, health_check: dict) -> TargetGroup:
        tg = self.get_target_group(identifier)
        if tg.type in ("LAMBDA", "ALB"):
            raise _invalid("healthCheck", f"Health checks are not supported for target groups of type {tg.type}")
        tg.config["healthCheck"] = _merge_health_check(tg.config.get("healthCheck") or DEFAULT_HEALTH_CHECK, health_check, tg.config)
        tg.touch()
        return tg

    def rules_using_target_group(self, tg: TargetGroup) -> list[Rule]:
        return [r for r in self.rules.values() if tg.id in r.resolved_tg_ids]

    def services_using_target_group(self, tg: TargetGroup) -> list[str]:
        arns: list[str] = []
        for rule in self.rules.values():
            if tg.id in rule.resolved_tg_ids:
                svc = self.services.get(rule.service_id)
                if svc and svc.arn not in arns:
                    arns.append(svc.arn)
        return arns

    def delete_target_group(self, identifier: str) -> TargetGroup:
        tg = self.get_target_group(identifier)
        using = self.rules_using_target_group(tg)
        if using:
            raise LatticeConflictException(
                RT_TG, tg.id, f"Target group {tg.id} is in use by listener rule {using[0].arn}"
            )
        if STRICT_TG_DELETE and tg.targets:
            raise LatticeConflictException(RT_TG, tg.id, f"Target group {tg.id} still has registered targets")
        del self.target_groups[tg.id]
        self.health_overrides = {k: v for k, v in self.health_overrides.items() if k[0] != tg.id}
        self._forget(tg)
        tg.status = "DELETE_IN_PROGRESS"
        return tg

    # ---- targets -----------------------------------------------------------------------------

    def _check_target(self, tg: TargetGroup, target: dict) -> tuple[tuple[str, int] | None, dict | None]:
        tid = target["id"]
        port = target.get("port")
        if tg.type == "LAMBDA":
            port = None
        elif port is None:
            port = (tg.config or {}).get("port")
        if tg.type == "IP":
            try:
                addr = ipaddress.ip_address(tid)
            except ValueError:
                return None, _failure(tid, port, "InvalidTargetId", f"Target id {tid} is not a valid IP address")
            want = 6 if (tg.config or {}).get("ipAddressType") == "IPV6" else 4
            if addr.version != want:
                return None, _failure(tid, port, "InvalidTargetId", f"Target id {tid} is not an IPv{want} address")
        elif tg.type == "INSTANCE" and not re.fullmatch(r"i-[0-9a-f]{8}([0-9a-f]{9})?", tid):
            return None, _failure(tid, port, "InvalidTargetId", f"Target id {tid} is not an instance id")
        elif tg.type in ("LAMBDA", "ALB") and not tid.startswith("arn:"):
            return None, _failure(tid, port, "InvalidTargetId", f"Target id {tid} is not an ARN")
        return (tid, port or 0), None

    def register_targets(self, identifier: str, targets: list[dict]) -> tuple[list[dict], list[dict]]:
        tg = self.get_target_group(identifier)
        if tg.type == "LAMBDA" and len({t["id"] for t in targets} | {k[0] for k in tg.targets}) > 1:
            # "If it's a Lambda target, you can only have one target in a target group."
            raise LatticeConflictException(RT_TG, tg.id, "A LAMBDA target group can only have one target")
        ok, bad = [], []
        for target in targets:
            key, failure = self._check_target(tg, target)
            if failure:
                bad.append(failure)
                continue
            assert key is not None
            if key not in tg.targets:
                tg.targets[key] = self.next_seq()
            ok.append(_target_out(key))
        tg.touch()
        return ok, bad

    def deregister_targets(self, identifier: str, targets: list[dict]) -> tuple[list[dict], list[dict]]:
        tg = self.get_target_group(identifier)
        ok, bad = [], []
        for target in targets:
            key, failure = self._check_target(tg, target)
            if failure:
                bad.append(failure)
                continue
            assert key is not None
            # Deregistering a target that is not registered is a no-op success; real Lattice
            # drains for a while (DRAINING), here the target disappears at once.
            tg.targets.pop(key, None)
            self.health_overrides.pop((tg.id, key[0], key[1]), None)
            ok.append(_target_out(key))
        tg.touch()
        return ok, bad

    def target_summaries(self, tg: TargetGroup, only: list[dict] | None) -> list[dict]:
        wanted: set[tuple[str, int]] | None = None
        if only:
            wanted = set()
            for t in only:
                key, _ = self._check_target(tg, t)
                if key:
                    wanted.add(key)
        used = bool(self.rules_using_target_group(tg))
        hc_enabled = ((tg.config or {}).get("healthCheck") or {}).get("enabled", tg.type not in ("LAMBDA", "ALB"))
        out = []
        for key, seq in tg.targets.items():
            if wanted is not None and key not in wanted:
                continue
            summary: dict[str, Any] = _target_out(key)
            override = self.health_overrides.get((tg.id, key[0], key[1]))
            if override:
                summary["status"] = override
            elif not used:
                summary["status"], summary["reasonCode"] = "UNUSED", "TargetGroupNotInUse"
            elif not hc_enabled or tg.type in ("LAMBDA", "ALB"):
                summary["status"], summary["reasonCode"] = "UNAVAILABLE", "HealthCheckDisabled"
            else:
                summary["status"] = "HEALTHY"
            summary["_seq"] = seq
            out.append(summary)
        return out

    # ---- actions -----------------------------------------------------------------------------

    def resolve_action(self, action: dict, field: str, service: Service, listener_protocol: str) -> tuple[dict, list[str]]:
        """Validates an action and returns it normalised (ids, default weight) plus the TG ids."""
        action = copy.deepcopy(action)
        if "fixedResponse" in action:
            return action, []
        groups = action["forward"]["targetGroups"]
        if len(groups) > 1 and any(g.get("weight") is None for g in groups):
            raise _invalid(f"{field}.forward.targetGroups", "A weight must be specified for each target group when a forward action has more than one target group")
        ids: list[str] = []
        for i, group in enumerate(groups):
            tg = self.get_target_group(group["targetGroupIdentifier"])
            if tg.id in ids:
                raise _invalid(f"{field}.forward.targetGroups.{i + 1}", f"Target group {tg.id} is specified more than once")
            if (listener_protocol == "TLS_PASSTHROUGH") != ((tg.config or {}).get("protocol") == "TCP"):
                raise _invalid(
                    f"{field}.forward.targetGroups.{i + 1}",
                    f"Target group {tg.id} with protocol {(tg.config or {}).get('protocol')} cannot be used by a {listener_protocol} listener",
                )
            # "A target group can only be used by a single service."
            for other in self.services_using_target_group(tg):
                if other != service.arn:
                    raise LatticeConflictException(RT_TG, tg.id, f"TargetGroup {tg.id} has been associated with other services")
            ids.append(tg.id)
            # Lattice echoes the identifier the caller gave; keep it.
            if group.get("weight") is None:
                group["weight"] = 100
        return action, ids

    # ---- listeners ---------------------------------------------------------------------------

    def create_listener(self, service_identifier: str, name: str, protocol: str, port: int | None,  # type: ignore[override]
                        default_action: dict, tags: dict[str, str] | None) -> Listener:
        svc = self.get_service(service_identifier)
        if port is None:
            port = 80 if protocol == "HTTP" else 443
        for li in self.listeners.values():
            if li.service_id != svc.id:
                continue
            if li.name == name:
                raise LatticeConflictException(RT_LISTENER, li.id, f"Listener with name {name} already exists on service {svc.id}")
            if li.port == port:
                raise LatticeConflictException(RT_LISTENER, li.id, f"Listener on port {port} already exists on service {svc.id}")
        action, tg_ids = self.resolve_action(default_action, "defaultAction", svc, protocol)
        listener = Listener(self.next_seq(), svc, name, protocol, port, action)
        self.listeners[listener.id] = listener
        default_rule = Rule(self.next_seq(), listener, "default", None, None, None, is_default=True)
        default_rule.resolved_tg_ids = tg_ids
        listener.default_rule_id = default_rule.id
        self.rules[default_rule.id] = default_rule
        self.tag_resource(listener.arn, tags or {})
        return listener

    def update_listener(self, service_identifier: str, listener_identifier: str, default_action: dict) -> Listener:
        listener = self.get_listener(service_identifier, listener_identifier)
        svc = self.services[listener.service_id]
        action, tg_ids = self.resolve_action(default_action, "defaultAction", svc, listener.protocol)
        listener.default_action = action
        default_rule = self.rules[listener.default_rule_id]
        default_rule.resolved_tg_ids = tg_ids
        default_rule.touch()
        listener.touch()
        return listener

    def _delete_listener(self, listener: Listener) -> None:
        for rule_id in [r.id for r in self.rules.values() if r.listener_id == listener.id]:
            self._forget(self.rules.pop(rule_id))
        del self.listeners[listener.id]
        self._forget(listener)

    def delete_listener(self, service_identifier: str, listener_identifier: str) -> None:
        self._delete_listener(self.get_listener(service_identifier, listener_identifier))

    # ---- rules -------------------------------------------------------------------------------

    def listener_rules(self, listener: Listener) -> list[Rule]:
        return [r for r in self.rules.values() if r.listener_id == listener.id]

    @staticmethod
    def _check_match(match: dict, field: str) -> None:
        method = (match.get("httpMatch") or {}).get("method")
        if method is not None and method not in HTTP_METHODS:
            raise _invalid(f"{field}.httpMatch.method", f"Invalid HTTP method {method}")

    def create_rule(self, service_identifier: str, listener_identifier: str, name: str, priority: int,  # type: ignore[override]
                    match: dict, action: dict, tags: dict[str, str] | None) -> Rule:
        listener = self.get_listener(service_identifier, listener_identifier)
        if listener.protocol == "TLS_PASSTHROUGH":
            raise _invalid("listenerIdentifier", "Rules are not supported on TLS_PASSTHROUGH listeners")
        self._check_match(match, "match")
        for rule in self.listener_rules(listener):
            if rule.name == name:
                raise LatticeConflictException(RT_RULE, rule.id, f"Rule with name {name} already exists on listener {listener.id}")
            if rule.priority == priority:
                raise LatticeConflictException(RT_RULE, rule.id, f"Rule with priority {priority} already exists on listener {listener.id}")
        svc = self.services[listener.service_id]
        action, tg_ids = self.resolve_action(action, "action", svc, listener.protocol)
        rule = Rule(self.next_seq(), listener, name, priority, copy.deepcopy(match), action)
        rule.resolved_tg_ids = tg_ids
        self.rules[rule.id] = rule
        self.tag_resource(rule.arn, tags or {})
        return rule

    def _prepare_rule_update(self, rule: Rule, update: dict, field: str) -> dict[str, Any]:
        if rule.is_default:
            raise _invalid(field, "You can't modify a default listener rule; use UpdateListener")
        listener = self.listeners[rule.listener_id]
        changes: dict[str, Any] = {}
        if update.get("match") is not None:
            self._check_match(update["match"], f"{field}.match")
            changes["match"] = copy.deepcopy(update["match"])
        if update.get("action") is not None:
            svc = self.services[listener.service_id]
            changes["action"], changes["resolved_tg_ids"] = self.resolve_action(update["action"], f"{field}.action", svc, listener.protocol)
        if update.get("priority") is not None:
            changes["priority"] = update["priority"]
        return changes

    @staticmethod
    def _apply_rule_changes(rule: Rule, changes: dict[str, Any]) -> None:
        for key, value in changes.items():
            setattr(rule, key, value)
        rule.touch()

    def update_rule(self, service_identifier: str, listener_identifier: str, rule_identifier: str,
                    match: dict | None, priority: int | None, action: dict | None) -> Rule:
        rule = self.get_rule(service_identifier, listener_identifier, rule_identifier)
        changes = self._prepare_rule_update(rule, {"match": match, "priority": priority, "action": action}, "ruleIdentifier")
        if "priority" in changes:
            for other in self.listener_rules(self.listeners[rule.listener_id]):
                if other.id != rule.id and other.priority == changes["priority"]:
                    raise LatticeConflictException(RT_RULE, other.id, f"Rule with priority {changes['priority']} already exists on listener {rule.listener_id}")
        self._apply_rule_changes(rule, changes)
        return rule

    def batch_update_rule(self, service_identifier: str, listener_identifier: str, updates: list[dict]) -> tuple[list[Rule], list[dict]]:
        listener = self.get_listener(service_identifier, listener_identifier)
        planned: list[tuple[Rule, dict[str, Any]]] = []
        failed: list[dict] = []
        seen: set[str] = set()
        for i, update in enumerate(updates):
            ident = update["ruleIdentifier"]
            try:
                rule = self.get_rule(service_identifier, listener_identifier, ident)
                if rule.id in seen:
                    raise _invalid(f"rules.{i + 1}.ruleIdentifier", f"Rule {rule.id} appears more than once in the batch")
                seen.add(rule.id)
                planned.append((rule, self._prepare_rule_update(rule, update, f"rules.{i + 1}")))
            except ServiceException as err:
                failed.append({"ruleIdentifier": ident, "failureCode": err.code, "failureMessage": err.message})
        # The batch exists to move/swap priorities, so conflicts are judged on the final state.
        final = {r.id: r.priority for r in self.listener_rules(listener) if not r.is_default}
        for rule, changes in planned:
            if "priority" in changes:
                final[rule.id] = changes["priority"]
        by_priority: dict[int, str] = {}
        for rule_id, prio in final.items():
            if prio in by_priority:
                raise LatticeConflictException(RT_RULE, rule_id, f"Rule priority {prio} would be used by more than one rule on listener {listener.id}")
            by_priority[prio] = rule_id
        for rule, changes in planned:
            self._apply_rule_changes(rule, changes)
        return [r for r, _ in planned], failed

    def delete_rule(self, service_identifier: str, listener_identifier: str, rule_identifier: str) -> None:
        rule = self.get_rule(service_identifier, listener_identifier, rule_identifier)
        if rule.is_default:
            raise _invalid("ruleIdentifier", "You can't delete the default listener rule")
        del self.rules[rule.id]
        self._forget(rule)

    # ---- associations ------------------------------------------------------------------------

    def create_service_network_service_association(self, service_network_identifier: str,  # type: ignore[override]
                                                   service_identifier: str, tags: dict[str, str] | None) -> ServiceNetworkServiceAssociation:
        sn = self.get_service_network(service_network_identifier)
        svc = self.get_service(service_identifier)
        for a in self.service_network_service_associations.values():
            if a.service_network_id == sn.id and a.service_id == svc.id:
                raise LatticeConflictException(RT_SNSA, a.id, f"Service {svc.id} is already associated with service network {sn.id}")
        assoc = ServiceNetworkServiceAssociation(self.next_seq(), self.region_name, self.account_id, sn, svc)
        self.service_network_service_associations[assoc.id] = assoc
        self.tag_resource(assoc.arn, tags or {})
        return assoc

    def delete_service_network_service_association(self, identifier: str) -> ServiceNetworkServiceAssociation:
        assoc = self.get_service_network_service_association(identifier)
        del self.service_network_service_associations[assoc.id]
        self._forget(assoc)
        assoc.status = "DELETE_IN_PROGRESS"
        return assoc

    def create_service_network_vpc_association(self, service_network_identifier: str, vpc_identifier: str,  # type: ignore[override]
                                               security_group_ids: list[str] | None, private_dns_enabled: bool | None,
                                               dns_options: dict | None, tags: dict[str, str] | None) -> ServiceNetworkVpcAssociation:
        sn = self.get_service_network(service_network_identifier)
        for a in self.service_network_vpc_associations.values():
            if a.vpc_id == vpc_identifier:
                if a.service_network_id == sn.id:
                    raise LatticeConflictException(RT_SNVA, a.id, f"VPC {vpc_identifier} is already associated with service network {sn.id}")
                # A VPC can be associated with one service network at a time.
                raise LatticeConflictException(RT_SNVA, a.id, f"VPC {vpc_identifier} is already associated with service network {a.service_network_id}")
        assoc = ServiceNetworkVpcAssociation(self.next_seq(), self.region_name, self.account_id, sn, vpc_identifier,
                                             security_group_ids, private_dns_enabled, dns_options)
        self.service_network_vpc_associations[assoc.id] = assoc
        self.tag_resource(assoc.arn, tags or {})
        return assoc

    def update_service_network_vpc_association(self, identifier: str, security_group_ids: list[str]) -> ServiceNetworkVpcAssociation:
        assoc = self.get_service_network_vpc_association(identifier)
        assoc.security_group_ids = list(security_group_ids)
        assoc.touch()
        return assoc

    def delete_service_network_vpc_association(self, identifier: str) -> ServiceNetworkVpcAssociation:
        assoc = self.get_service_network_vpc_association(identifier)
        del self.service_network_vpc_associations[assoc.id]
        self._forget(assoc)
        assoc.status = "DELETE_IN_PROGRESS"
        return assoc

    # ---- tags --------------------------------------------------------------------------------

    def _taggable(self, arn: str) -> Any:
        obj = self.find_arn(arn)
        if obj is None:
            raise LatticeNotFoundException(RT_ANY, arn, f"Resource {arn} not found")
        return obj

    def tag_existing_resource(self, arn: str, tags: dict[str, str]) -> None:
        self._taggable(arn)
        current = self.tagger.get_tag_dict_for_resource(arn)
        if len(set(current) | set(tags)) > 50:
            raise _invalid("tags", "A resource can have at most 50 tags")
        self.tag_resource(arn, tags)

    def untag_existing_resource(self, arn: str, keys: list[str]) -> None:
        self._taggable(arn)
        self.untag_resource(arn, keys)

    def tags_of_existing_resource(self, arn: str) -> dict[str, str]:
        self._taggable(arn)
        return self.tagger.get_tag_dict_for_resource(arn)

    def tag_resource(self, resource_arn: str, tags: dict[str, str]) -> None:
        if tags:
            super().tag_resource(resource_arn, tags)

    def untag_resource(self, resource_arn: str, tag_keys: list[str]) -> None:
        if tag_keys:
            super().untag_resource(resource_arn, list(tag_keys))

    # ---- tagging API (resourcegroupstaggingapi GetResources) --------------------------------

    def iter_tagged(self) -> Iterator[tuple[str, str, dict[str, str]]]:
        stores = (
            ("servicenetwork", self.service_networks),
            ("service", self.services),
            ("listener", self.listeners),
            ("rule", self.rules),
            ("targetgroup", self.target_groups),
            ("servicenetworkserviceassociation", self.service_network_service_associations),
            ("servicenetworkvpcassociation", self.service_network_vpc_associations),
            ("accesslogsubscription", self.access_log_subscriptions),
        )
        for kind, store in stores:
            for obj in list(store.values()):
                yield kind, obj.arn, self.tagger.get_tag_dict_for_resource(obj.arn)


def _merge_health_check(base: dict, update: dict | None, config: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in (update or {}).items():
        if value is None:
            continue
        if key in _HC_ZERO_MEANS_DEFAULT and value == 0:
            value = DEFAULT_HEALTH_CHECK[key]
        merged[key] = copy.deepcopy(value)
    if config.get("protocolVersion") == "GRPC" and (update or {}).get("protocolVersion") is None:
        merged.setdefault("protocolVersion", "HTTP1")
    if config.get("protocol") == "TCP":
        # TCP target groups health-check over TCP unless told otherwise.
        if not (update or {}).get("protocol"):
            merged["protocol"] = "TCP"
            merged.pop("path", None)
            merged.pop("matcher", None)
            merged.pop("protocolVersion", None)
    return merged


def _failure(tid: str, port: int | None, code: str, message: str) -> dict:
    out: dict[str, Any] = {"id": tid, "failureCode": code, "failureMessage": message}
    if port:
        out["port"] = port
    return out


def _target_out(key: tuple[str, int]) -> dict[str, Any]:
    out: dict[str, Any] = {"id": key[0]}
    if key[1]:
        out["port"] = key[1]
    return out


# --------------------------------------------------------------------------------------------
# Views (camelCase dicts; the serializer keeps what the output shape lists)
# --------------------------------------------------------------------------------------------


def view_sn(b: CloudgateLatticeBackend, sn: ServiceNetwork) -> dict[str, Any]:
    vpcs, svcs = b.counts_for(sn)
    return {
        "id": sn.id, "name": sn.name, "arn": sn.arn, "authType": sn.auth_type, "sharingConfig": sn.sharing_config,
        "createdAt": sn.created_at, "lastUpdatedAt": sn.last_updated_at,
        "numberOfAssociatedVPCs": vpcs, "numberOfAssociatedServices": svcs,
        "numberOfAssociatedResourceConfigurations": 0,
    }


def view_svc(svc: Service) -> dict[str, Any]:
    return {
        "id": svc.id, "name": svc.name, "arn": svc.arn, "authType": svc.auth_type, "status": svc.status,
        "certificateArn": svc.certificate_arn, "customDomainName": svc.custom_domain_name,
        "dnsEntry": svc.dns_entry, "createdAt": svc.created_at, "lastUpdatedAt": svc.last_updated_at,
    }


def view_listener(li: Listener) -> dict[str, Any]:
    return {
        "id": li.id, "arn": li.arn, "name": li.name, "protocol": li.protocol, "port": li.port,
        "serviceArn": li.service_arn, "serviceId": li.service_id, "defaultAction": li.default_action,
        "createdAt": li.created_at, "lastUpdatedAt": li.last_updated_at,
    }


def view_rule(rule: Rule) -> dict[str, Any]:
    return {
        "id": rule.id, "arn": rule.arn, "name": rule.name, "isDefault": rule.is_default,
        "priority": rule.priority, "match": rule.match, "action": rule.action,
        "createdAt": rule.created_at, "lastUpdatedAt": rule.last_updated_at,
    }


def view_tg(b: CloudgateLatticeBackend, tg: TargetGroup, summary: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": tg.id, "arn": tg.arn, "name": tg.name, "type": tg.type, "config": tg.config, "status": tg.status,
        "createdAt": tg.created_at, "lastUpdatedAt": tg.last_updated_at,
        "serviceArns": b.services_using_target_group(tg) if tg.id in b.target_groups else [],
    }
    if summary:
        config = tg.config or {}
        for key in ("port", "protocol", "ipAddressType", "vpcIdentifier", "lambdaEventStructureVersion"):
            out[key] = config.get(key)
    return out


def view_snsa(a: ServiceNetworkServiceAssociation) -> dict[str, Any]:
    return {
        "id": a.id, "arn": a.arn, "status": a.status, "createdBy": a.created_by, "createdAt": a.created_at,
        "serviceId": a.service_id, "serviceName": a.service_name, "serviceArn": a.service_arn,
        "serviceNetworkId": a.service_network_id, "serviceNetworkName": a.service_network_name,
        "serviceNetworkArn": a.service_network_arn, "dnsEntry": a.dns_entry, "customDomainName": a.custom_domain_name,
    }


def view_snva(a: ServiceNetworkVpcAssociation) -> dict[str, Any]:
    return {
        "id": a.id, "arn": a.arn, "status": a.status, "createdBy": a.created_by, "createdAt": a.created_at,
        "lastUpdatedAt": a.last_updated_at, "serviceNetworkId": a.service_network_id,
        "serviceNetworkName": a.service_network_name, "serviceNetworkArn": a.service_network_arn,
        "vpcId": a.vpc_id, "securityGroupIds": a.security_group_ids, "privateDnsEnabled": a.private_dns_enabled,
        "dnsOptions": a.dns_options,
    }


# --------------------------------------------------------------------------------------------
# Responses
# --------------------------------------------------------------------------------------------


def _encode_token(seq: int) -> str:
    raw = json.dumps({"v": 1, "after": seq}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str) -> int:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return int(data["after"])
    except Exception:  # noqa: BLE001 - any malformed token is the caller's fault
        raise LatticeValidationException("Invalid nextToken", "fieldValidationFailed", [("nextToken", "Invalid token")]) from None


class CloudgateLatticeResponse(VPCLatticeResponse):
    def __init__(self) -> None:
        super().__init__()
        # Parse requests from the botocore model (uri labels, query strings, JSON body, types).
        self.automated_parameter_parsing = True

    @property
    def backend(self) -> CloudgateLatticeBackend:  # type: ignore[override]
        return vpclattice_backends[self.current_account][self.region]

    def call_action(self) -> Any:
        with _LOCK:
            return super().call_action()

    def serialized(self, action_result: ActionResult) -> Any:
        status, headers, body = super().serialized(action_result)
        if status == 204:
            body = ""
            headers.pop("Content-Type", None)
        return status, headers, body

    # ---- helpers -----------------------------------------------------------------------------

    def _op_model(self) -> OperationModel:
        return get_service_model(SERVICE_NAME).operation_model(self._get_action())

    def _input(self) -> dict[str, Any]:
        params = dict(self.params or {})
        validate_input(self._op_model(), params)
        return params

    def _idempotent(self, params: dict[str, Any], create: Callable[[], dict[str, Any]]) -> ActionResult:
        token = params.get("clientToken")
        if not token:
            return ActionResult(create())
        key = (self._get_action(), token)
        digest = hashlib.sha256(
            json.dumps({k: v for k, v in params.items() if k != "clientToken"}, sort_keys=True, default=str).encode()
        ).hexdigest()
        seen = self.backend.idempotency.get(key)
        if seen:
            if seen[0] != digest:
                raise LatticeConflictException(RT_ANY, token, "The clientToken was already used with different parameters")
            return ActionResult(copy.deepcopy(seen[1]))
        result = create()
        self.backend.idempotency[key] = (digest, copy.deepcopy(result))
        return ActionResult(result)

    @staticmethod
    def _page(items: Iterable[Any], params: dict[str, Any], seq_of: Callable[[Any], int] = lambda o: o.seq) -> tuple[list[Any], str | None]:
        items = sorted(items, key=seq_of)
        limit = params.get("maxResults") or DEFAULT_PAGE_SIZE
        token = params.get("nextToken")
        if token:
            after = _decode_token(token)
            items = [i for i in items if seq_of(i) > after]
        page = items[:limit]
        more = len(items) > limit
        return page, (_encode_token(seq_of(page[-1])) if more and page else None)

    # ---- service networks --------------------------------------------------------------------

    def create_service_network(self) -> ActionResult:  # type: ignore[override]
        p = self._input()
        return self._idempotent(p, lambda: view_sn(self.backend, self.backend.create_service_network(
            p["name"], p.get("authType"), p.get("sharingConfig"), p.get("tags"))))

    def get_service_network(self) -> ActionResult:  # type: ignore[override]
        p = self._input()
        return ActionResult(view_sn(self.backend, self.backend.get_service_network(p["serviceNetworkIdentifier"])))

    def list_service_networks(self) -> ActionResult:  # type: ignore[override]
        p = self._input()
        page, token = self._page(self.backend.service_networks.values(), p)
        return ActionResult({"items": [view_sn(self.backend, sn) for sn in page], "nextToken": token})

    def update_service_network(self) -> ActionResult:
        p = self._input()
        return ActionResult(view_sn(self.backend, self.backend.update_service_network(p["serviceNetworkIdentifier"], p["authType"])))

    def delete_service_network(self) -> ActionResult:
        p = self._input()
        self.backend.delete_service_network(p["serviceNetworkIdentifier"])
        return ActionResult({})

    # ---- services ----------------------------------------------------------------------------

    def create_service(self) -> ActionResult:  # type: ignore[override]
        p = self._input()
        return self._idempotent(p, lambda: view_svc(self.backend.create_service(
            p["name"], p.get("authType"), p.get("certificateArn"), p.get("customDomainName"), p.get("tags"))))

    def get_service(self) -> ActionResult:  # type: ignore[override]
        p = self._input()
        return ActionResult(view_svc(self.backend.get_service(p["serviceIdentifier"])))

    def list_services(self) -> ActionResult:  # type: ignore[override]
        p = self._input()
        page, token = self._page(self.backend.services.values(), p)
        return ActionResult({"items": [view_svc(s) for s in page], "nextToken": token})

    def update_service(self) -> ActionResult:
        p = self._input()
        return ActionResult(view_svc(self.backend.update_service(p["serviceIdentifier"], p.get("certificateArn"), p.get("authType"))))

    def delete_service(self) -> ActionResult:
        p = self._input()
        return ActionResult(view_svc(self.backend.delete_service(p["serviceIdentifier"])))

    # ---- service network <-> service ---------------------------------------------------------

    def create_service_network_service_association(self) -> ActionResult:  # type: ignore[override]
        p = self._input()
        return self._idempotent(p, lambda: view_snsa(self.backend.create_service_network_service_association(
            p["serviceNetworkIdentifier"], p["serviceIdentifier"], p.get("tags"))))

    def get_service_network_service_association(self) -> ActionResult:  # type: ignore[override]
        p = self._input()
        return ActionResult(view_snsa(self.backend.get_service_network_service_association(p["serviceNetworkServiceAssociationIdentifier"])))

    def list_service_network_service_associations(self) -> ActionResult:  # type: ignore[override]
        p = self._input()
        sn_ident, svc_ident = p.get("serviceNetworkIdentifier"), p.get("serviceIdentifier")
        if not sn_ident and not svc_ident:
            raise _invalid("serviceNetworkIdentifier", "You must provide either serviceNetworkIdentifier or serviceIdentifier")
        items = list(self.backend.service_network_service_associations.values())
        if sn_ident:
            items = [a for a in items if sn_ident in (a.service_network_id, a.service_network_arn)]
        if svc_ident:
            items = [a for a in items if svc_ident in (a.service_id, a.service_arn)]
        page, token = self._page(items, p)
        return ActionResult({"items": [view_snsa(a) for a in page], "nextToken": token})

    def delete_service_network_service_association(self) -> ActionResult:
        p = self._input()
        return ActionResult(view_snsa(self.backend.delete_service_network_service_association(p["serviceNetworkServiceAssociationIdentifier"])))

    # ---- service network <-> VPC ---------------------------------------------------------------

    def create_service_network_vpc_association(self) -> ActionResult:  # type: ignore[override]
        p = self._input()
        return self._idempotent(p, lambda: view_snva(self.backend.create_service_network_vpc_association(
            p["serviceNetworkIdentifier"], p["vpcIdentifier"], p.get("securityGroupIds"), p.get("privateDnsEnabled"),
            p.get("dnsOptions"), p.get("tags"))))

    def get_service_network_vpc_association(self) -> ActionResult:
        p = self._input()
        return ActionResult(view_snva(self.backend.get_service_network_vpc_association(p["serviceNetworkVpcAssociationIdentifier"])))

    def list_service_network_vpc_associations(self) -> ActionResult:  # type: ignore[override]
        p = self._input()
        sn_ident, vpc = p.get("serviceNetworkIdentifier"), p.get("vpcIdentifier")
        if not sn_ident and not vpc:
            raise _invalid("serviceNetworkIdentifier", "You must provide either serviceNetworkIdentifier or vpcIdentifier")
        items = list(self.backend.service_network_vpc_associations.values())
        if sn_ident:
            items = [a for a in items if sn_ident in (a.service_network_id, a.service_network_arn)]
        if vpc:
            items = [a for a in items if a.vpc_id == vpc]
        page, token = self._page(items, p)
        return ActionResult({"items": [view_snva(a) for a in page], "nextToken": token})

    def update_service_network_vpc_association(self) -> ActionResult:
        p = self._input()
        return ActionResult(view_snva(self.backend.update_service_network_vpc_association(
            p["serviceNetworkVpcAssociationIdentifier"], p["securityGroupIds"])))

    def delete_service_network_vpc_association(self) -> ActionResult:
        p = self._input()
        return ActionResult(view_snva(self.backend.delete_service_network_vpc_association(p["serviceNetworkVpcAssociationIdentifier"])))

    # ---- listeners ---------------------------------------------------------------------------

    def create_listener(self) -> ActionResult:  # type: ignore[override]
        p = self._input()
        return self._idempotent(p, lambda: view_listener(self.backend.create_listener(
            p["serviceIdentifier"], p["name"], p["protocol"], p.get("port"), p["defaultAction"], p.get("tags"))))

    def get_listener(self) -> ActionResult:  # type: ignore[override]
        p = self._input()
        return ActionResult(view_listener(self.backend.get_listener(p["serviceIdentifier"], p["listenerIdentifier"])))

    def list_listeners(self) -> ActionResult:  # type: ignore[override]
        p = self._input()
        svc = self.backend.get_service(p["serviceIdentifier"])
        page, token = self._page([li for li in self.backend.listeners.values() if li.service_id == svc.id], p)
        return ActionResult({"items": [view_listener(li) for li in page], "nextToken": token})

    def update_listener(self) -> ActionResult:
        p = self._input()
        return ActionResult(view_listener(self.backend.update_listener(p["serviceIdentifier"], p["listenerIdentifier"], p["defaultAction"])))

    def delete_listener(self) -> ActionResult:
        p = self._input()
        self.backend.delete_listener(p["serviceIdentifier"], p["listenerIdentifier"])
        return ActionResult({})

    # ---- rules -------------------------------------------------------------------------------

    def create_rule(self) -> ActionResult:  # type: ignore[override]
        p = self._input()
        return self._idempotent(p, lambda: view_rule(self.backend.create_rule(
            p["serviceIdentifier"], p["listenerIdentifier"], p["name"], p["priority"], p["match"], p["action"], p.get("tags"))))

    def get_rule(self) -> ActionResult:
        p = self._input()
        return ActionResult(view_rule(self.backend.get_rule(p["serviceIdentifier"], p["listenerIdentifier"], p["ruleIdentifier"])))

    def list_rules(self) -> ActionResult:
        p = self._input()
        listener = self.backend.get_listener(p["serviceIdentifier"], p["listenerIdentifier"])
        page, token = self._page(self.backend.listener_rules(listener), p)
        return ActionResult({"items": [view_rule(r) for r in page], "nextToken": token})

    def update_rule(self) -> ActionResult:
        p = self._input()
        return ActionResult(view_rule(self.backend.update_rule(
            p["serviceIdentifier"], p["listenerIdentifier"], p["ruleIdentifier"], p.get("match"), p.get("priority"), p.get("action"))))

    def batch_update_rule(self) -> ActionResult:
        p = self._input()
        ok, failed = self.backend.batch_update_rule(p["serviceIdentifier"], p["listenerIdentifier"], p["rules"])
        return ActionResult({"successful": [view_rule(r) for r in ok], "unsuccessful": failed})

    def delete_rule(self) -> ActionResult:
        p = self._input()
        self.backend.delete_rule(p["serviceIdentifier"], p["listenerIdentifier"], p["ruleIdentifier"])
        return ActionResult({})

    # ---- target groups -----------------------------------------------------------------------

    def create_target_group(self) -> ActionResult:  # type: ignore[override]
        p = self._input()
        return self._idempotent(p, lambda: view_tg(self.backend, self.backend.create_target_group(
            p["name"], p["type"], p.get("config"), p.get("tags"))))

    def get_target_group(self) -> ActionResult:  # type: ignore[override]
        p = self._input()
        return ActionResult(view_tg(self.backend, self.backend.get_target_group(p["targetGroupIdentifier"])))

    def list_target_groups(self) -> ActionResult:  # type: ignore[override]
        p = self._input()
        items = list(self.backend.target_groups.values())
        if p.get("vpcIdentifier"):
            items = [tg for tg in items if (tg.config or {}).get("vpcIdentifier") == p["vpcIdentifier"]]
        if p.get("targetGroupType"):
            items = [tg for tg in items if tg.type == p["targetGroupType"]]
        page, token = self._page(items, p)
        return ActionResult({"items": [view_tg(self.backend, tg, summary=True) for tg in page], "nextToken": token})

    def update_target_group(self) -> ActionResult:
        p = self._input()
        return ActionResult(view_tg(self.backend, self.backend.update_target_group(p["targetGroupIdentifier"], p["healthCheck"])))

    def delete_target_group(self) -> ActionResult:
        p = self._input()
        return ActionResult(view_tg(self.backend, self.backend.delete_target_group(p["targetGroupIdentifier"])))

    def register_targets(self) -> ActionResult:
        p = self._input()
        ok, bad = self.backend.register_targets(p["targetGroupIdentifier"], p["targets"])
        return ActionResult({"successful": ok, "unsuccessful": bad})

    def deregister_targets(self) -> ActionResult:
        p = self._input()
        ok, bad = self.backend.deregister_targets(p["targetGroupIdentifier"], p["targets"])
        return ActionResult({"successful": ok, "unsuccessful": bad})

    def list_targets(self) -> ActionResult:
        p = self._input()
        tg = self.backend.get_target_group(p["targetGroupIdentifier"])
        summaries = self.backend.target_summaries(tg, p.get("targets"))
        page, token = self._page(summaries, p, seq_of=lambda s: s["_seq"])
        for s in page:
            s.pop("_seq", None)
        return ActionResult({"items": page, "nextToken": token})

    # ---- tags --------------------------------------------------------------------------------

    def tag_resource(self) -> ActionResult:  # type: ignore[override]
        p = self._input()
        self.backend.tag_existing_resource(p["resourceArn"], p["tags"])
        return ActionResult({})

    def untag_resource(self) -> ActionResult:  # type: ignore[override]
        p = self._input()
        self.backend.untag_existing_resource(p["resourceArn"], p.get("tagKeys") or [])
        return ActionResult({})

    def list_tags_for_resource(self) -> ActionResult:  # type: ignore[override]
        p = self._input()
        return ActionResult({"tags": self.backend.tags_of_existing_resource(p["resourceArn"])})


# --------------------------------------------------------------------------------------------
# Installation
# --------------------------------------------------------------------------------------------


def _url_paths() -> dict[str, Any]:
    """One route per top-level collection of the Lattice API; moto then resolves the operation
    from method + URI with the botocore model, so every operation of the model is reachable."""
    model = get_service_model(SERVICE_NAME)
    prefixes = sorted({model.operation_model(n).http["requestUri"].split("?")[0].strip("/").split("/")[0]
                       for n in model.operation_names})
    paths: dict[str, Any] = {}
    for prefix in prefixes:
        paths["{0}/" + prefix + "$"] = CloudgateLatticeResponse.dispatch
        paths["{0}/" + prefix + "/(?P<rest>.+)$"] = CloudgateLatticeResponse.dispatch
    return paths


def _patch_tagging_api() -> None:
    """moto 5.2.1's GetResources knows only some Lattice resource types and matches the
    "vpc-lattice" filter literally; serve every Lattice resource with per-type filters."""
    try:
        from moto.resourcegroupstaggingapi import models as rgt
    except ImportError as err:  # an optional dependency of moto (pyparsing) is missing
        import sys

        print(f"cloudgate-moto: tagging API not patched for Lattice: {err}", file=sys.stderr)
        return

    cls = rgt.ResourceGroupsTaggingAPIBackend
    if getattr(cls, "_cloudgate_patched", False):
        return
    original = cls._get_resources_generator

    def generator(self: Any, tag_filters: list[dict[str, Any]] | None = None,
                  resource_type_filters: list[str] | None = None) -> Iterator[dict[str, Any]]:
        for item in original(self, tag_filters=tag_filters, resource_type_filters=resource_type_filters):
            if not item["ResourceARN"].split(":")[2:3] == [SERVICE_NAME]:
                yield item
        wanted = resource_type_filters or []
        backend = vpclattice_backends[self.account_id][self.region_name]
        for kind, arn, tags in backend.iter_tagged():
            if wanted and SERVICE_NAME not in wanted and f"{SERVICE_NAME}:{kind}" not in wanted:
                continue
            if not tags or not _tags_match(tags, tag_filters or []):
                continue
            yield {"ResourceARN": arn, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}

    cls._get_resources_generator = generator  # type: ignore[method-assign]
    cls._cloudgate_patched = True  # type: ignore[attr-defined]


def _tags_match(tags: dict[str, str], filters: list[dict[str, Any]]) -> bool:
    for f in filters:
        key, values = f.get("Key"), f.get("Values") or []
        if key not in tags:
            return False
        if values and tags[key] not in values:
            return False
    return True


_APPLIED = False


def apply() -> None:
    """Install the extension into moto (idempotent). Must run before the first Lattice request."""
    global _APPLIED
    if _APPLIED:
        return
    vpclattice_backends.backend = CloudgateLatticeBackend  # type: ignore[assignment]
    vpclattice_backends.clear()
    _vl_urls.url_paths.clear()
    _vl_urls.url_paths.update(_url_paths())
    _patch_tagging_api()
    _APPLIED = True


def set_target_health(account_id: str, region: str, target_group: str, target_id: str, port: int | None, status: str | None) -> dict[str, Any]:
    """Ground-control hook: force the status ListTargets reports for one target (None clears)."""
    with _LOCK:
        backend: CloudgateLatticeBackend = vpclattice_backends[account_id][region]
        tg = backend.get_target_group(target_group)
        key, failure = backend._check_target(tg, {"id": target_id, "port": port})
        if failure or key is None:
            raise ValueError(failure["failureMessage"] if failure else "bad target")
        if status is None:
            backend.health_overrides.pop((tg.id, key[0], key[1]), None)
        else:
            allowed = get_service_model(SERVICE_NAME).shape_for("TargetStatus").enum
            if status not in allowed:
                raise ValueError(f"status must be one of {allowed}")
            backend.health_overrides[(tg.id, key[0], key[1])] = status
        return {"targetGroupId": tg.id, "id": key[0], "port": key[1], "status": status}

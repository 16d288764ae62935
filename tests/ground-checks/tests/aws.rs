//! The AWS ground (moto + our VPC Lattice extension) answers the Rust SDK clients the controller
//! uses exactly as the providers need: every VPC Lattice call of the Lattice provider, the ELBv2
//! (+ EC2 subnet/security group) calls of the ALB provider, typed errors, and a call log that
//! counts what was sent.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_vpclattice as lattice;
use aws_sdk_vpclattice::config::http::HttpResponse;
use aws_sdk_vpclattice::config::{Credentials, Region};
use aws_sdk_vpclattice::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use cloudgate_ground_checks::{env, ground_get, unique};
use lattice::types::{
    AuthType, ForwardAction, HeaderMatch, HeaderMatchType, HealthCheckConfig, HttpMatch, ListenerProtocol, PathMatch,
    PathMatchType, RuleAction, RuleMatch, RuleUpdate, Target, TargetGroupConfig, TargetGroupProtocol, TargetGroupType,
    TargetStatus, WeightedTargetGroup,
};

/// The SDK configuration the controller would build, pointed at the ground: endpoint, region
/// and static credentials from the environment, HTTPS client = hyper + rustls/ring.
async fn sdk_config() -> SdkConfig {
    let endpoint = env("AWS_ENDPOINT_URL");
    let credentials = Credentials::new(
        env("AWS_ACCESS_KEY_ID"),
        env("AWS_SECRET_ACCESS_KEY"),
        None,
        None,
        "ground-env",
    );
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .endpoint_url(endpoint)
        .region(Region::new(env("AWS_REGION")))
        .credentials_provider(credentials)
        .load()
        .await
}

async fn lattice_client() -> lattice::Client {
    lattice::Client::new(&sdk_config().await)
}

/// The error code and HTTP status of a failed call, and the typed service error the SDK
/// decoded (what the provider matches on); panics when the call succeeded or never reached the
/// service.
fn failure<T: std::fmt::Debug, E: ProvideErrorMetadata + std::fmt::Debug>(
    what: &str,
    r: Result<T, SdkError<E, HttpResponse>>,
) -> (String, u16, Typed<E>) {
    match r {
        Ok(v) => panic!("{what}: expected an error, got {v:?}"),
        Err(e) => {
            let status = e.raw_response().map(|r| r.status().as_u16()).unwrap_or(0);
            let code = e.code().unwrap_or("<none>").to_string();
            assert!(e.as_service_error().is_some(), "{what}: not a service error: {e:?}");
            (code, status, Typed(e))
        }
    }
}

/// The typed service error inside an `SdkError` (checked to be there by `failure`).
struct Typed<E>(SdkError<E, HttpResponse>);

impl<E> std::ops::Deref for Typed<E> {
    type Target = E;
    fn deref(&self) -> &E {
        self.0.as_service_error().expect("service error")
    }
}

/// A VPC id in the API's format. The Lattice extension, like Lattice itself for a VPC in
/// another account, does not look VPCs up, so no EC2 call is needed for the Lattice provider.
fn vpc_id() -> String {
    let u = unique("v");
    let hex: String = u.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    format!("vpc-{:0>17}", &hex[hex.len().saturating_sub(17)..])
}

/// How many calls the ground's call log holds for `service`/`action` whose path contains `needle`.
async fn logged_calls(service: &str, action: &str, needle: &str) -> Option<usize> {
    if std::env::var("GROUND_AWS_MODE").as_deref() == Ok("external") {
        eprintln!(
            "GROUND_AWS_MODE=external: no call log at {}, call counts not checked",
            env("AWS_ENDPOINT_URL")
        );
        return None;
    }
    let log = ground_get(
        &env("AWS_ENDPOINT_URL"),
        &format!("/_ground/calls?service={service}&action={action}"),
    )
    .await;
    Some(
        log["calls"]
            .as_array()
            .expect("calls")
            .iter()
            .filter(|c| c["path"].as_str().is_some_and(|p| p.contains(needle)))
            .count(),
    )
}

fn forward(weighted: &[(&str, i32)]) -> RuleAction {
    let mut f = ForwardAction::builder();
    for (tg, w) in weighted {
        f = f.target_groups(
            WeightedTargetGroup::builder()
                .target_group_identifier(*tg)
                .weight(*w)
                .build()
                .unwrap(),
        );
    }
    RuleAction::Forward(f.build().unwrap())
}

fn weights(action: Option<&RuleAction>) -> BTreeMap<String, i32> {
    match action {
        Some(RuleAction::Forward(f)) => f
            .target_groups()
            .iter()
            .map(|t| (t.target_group_identifier().to_string(), t.weight().unwrap_or(-1)))
            .collect(),
        other => panic!("expected a forward action, got {other:?}"),
    }
}

fn path_prefix(p: &str) -> RuleMatch {
    RuleMatch::HttpMatch(
        HttpMatch::builder()
            .path_match(
                PathMatch::builder()
                    .r#match(PathMatchType::Prefix(p.into()))
                    .case_sensitive(true)
                    .build(),
            )
            .build(),
    )
}

/// Service network and VPC association: create/get/list/update/delete, and the conflicts and
/// not-found errors the provider reacts to.
#[tokio::test]
async fn lattice_service_network_and_vpc_association() {
    let c = lattice_client().await;
    let name = unique("gw");
    let vpc = vpc_id();

    let sn = c
        .create_service_network()
        .name(&name)
        .auth_type(AuthType::None)
        .tags("cloudgate.io/gateway", "ns/web")
        .send()
        .await
        .expect("create service network");
    let sn_id = sn.id().unwrap().to_string();
    let sn_arn = sn.arn().unwrap().to_string();
    assert!(sn_id.starts_with("sn-") && sn_id.len() == 20, "{sn_id}");
    assert!(sn_arn.starts_with("arn:aws:vpc-lattice:") && sn_arn.ends_with(&format!(":servicenetwork/{sn_id}")));
    assert_eq!(sn.name(), Some(name.as_str()));

    let (code, status, err) = failure(
        "duplicate service network",
        c.create_service_network().name(&name).send().await,
    );
    assert_eq!((code.as_str(), status), ("ConflictException", 409));
    assert!(err.is_conflict_exception());

    // Get by id and by ARN.
    for ident in [&sn_id, &sn_arn] {
        let got = c
            .get_service_network()
            .service_network_identifier(ident)
            .send()
            .await
            .unwrap();
        assert_eq!(
            (got.id(), got.name(), got.auth_type()),
            (Some(sn_id.as_str()), Some(name.as_str()), Some(&AuthType::None))
        );
    }
    let listed: Vec<_> = c
        .list_service_networks()
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(listed.iter().filter(|s| s.id() == Some(sn_id.as_str())).count(), 1);

    let updated = c
        .update_service_network()
        .service_network_identifier(&sn_id)
        .auth_type(AuthType::AwsIam)
        .send()
        .await
        .unwrap();
    assert_eq!(updated.auth_type(), Some(&AuthType::AwsIam));
    let got = c
        .get_service_network()
        .service_network_identifier(&sn_id)
        .send()
        .await
        .unwrap();
    assert_eq!(got.auth_type(), Some(&AuthType::AwsIam));

    let assoc = c
        .create_service_network_vpc_association()
        .service_network_identifier(&sn_id)
        .vpc_identifier(&vpc)
        .tags("cloudgate.io/gateway", "ns/web")
        .send()
        .await
        .expect("vpc association");
    let assoc_id = assoc.id().unwrap().to_string();
    assert!(assoc_id.starts_with("snva-"), "{assoc_id}");
    let got = c
        .get_service_network_vpc_association()
        .service_network_vpc_association_identifier(&assoc_id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        (got.vpc_id(), got.service_network_id()),
        (Some(vpc.as_str()), Some(sn_id.as_str()))
    );
    assert_eq!(got.status().map(|s| s.as_str()), Some("ACTIVE"));
    let listed = c
        .list_service_network_vpc_associations()
        .service_network_identifier(&sn_id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        listed.items().iter().map(|a| a.id().unwrap()).collect::<Vec<_>>(),
        [assoc_id.as_str()]
    );

    let (code, status, _) = failure(
        "same VPC twice",
        c.create_service_network_vpc_association()
            .service_network_identifier(&sn_id)
            .vpc_identifier(&vpc)
            .send()
            .await,
    );
    assert_eq!((code.as_str(), status), ("ConflictException", 409));
    let (code, status, _) = failure(
        "delete service network with an association",
        c.delete_service_network()
            .service_network_identifier(&sn_id)
            .send()
            .await,
    );
    assert_eq!((code.as_str(), status), ("ConflictException", 409));

    let deleted = c
        .delete_service_network_vpc_association()
        .service_network_vpc_association_identifier(&assoc_id)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status().map(|s| s.as_str()), Some("DELETE_IN_PROGRESS"));
    let (code, status, err) = failure(
        "get deleted association",
        c.get_service_network_vpc_association()
            .service_network_vpc_association_identifier(&assoc_id)
            .send()
            .await,
    );
    assert_eq!((code.as_str(), status), ("ResourceNotFoundException", 404));
    assert!(err.is_resource_not_found_exception());

    c.delete_service_network()
        .service_network_identifier(&sn_id)
        .send()
        .await
        .unwrap();
    let (code, status, err) = failure(
        "get deleted service network",
        c.get_service_network().service_network_identifier(&sn_id).send().await,
    );
    assert_eq!((code.as_str(), status), ("ResourceNotFoundException", 404));
    assert!(err.is_resource_not_found_exception());
    let (code, _, _) = failure(
        "update unknown service network",
        c.update_service_network()
            .service_network_identifier("sn-0123456789abcdef0")
            .auth_type(AuthType::None)
            .send()
            .await,
    );
    assert_eq!(code, "ResourceNotFoundException");
}

/// Service, service-network association, target groups and targets, listener, rules (path,
/// header, method matches; weighted forward; update; batch update) and their errors, then
/// deletes in dependency order. One weight change is exactly one UpdateRule on the wire.
#[tokio::test]
async fn lattice_service_listener_rules_and_target_groups() {
    let c = lattice_client().await;
    let u = unique("r");
    let vpc = vpc_id();

    let sn = c.create_service_network().name(format!("gw-{u}")).send().await.unwrap();
    let sn_id = sn.id().unwrap().to_string();

    // --- service
    let svc = c
        .create_service()
        .name(format!("route-{u}"))
        .auth_type(AuthType::None)
        .tags("cloudgate.io/route", "ns/r")
        .send()
        .await
        .expect("create service");
    let svc_id = svc.id().unwrap().to_string();
    let dns = svc
        .dns_entry()
        .and_then(|d| d.domain_name())
        .expect("dns entry")
        .to_string();
    assert!(
        dns.starts_with(&format!("route-{u}-")) && dns.ends_with(".vpc-lattice-svcs.us-east-1.on.aws"),
        "{dns}"
    );
    let (code, status, err) = failure(
        "duplicate service",
        c.create_service().name(format!("route-{u}")).send().await,
    );
    assert_eq!((code.as_str(), status), ("ConflictException", 409));
    assert!(err.is_conflict_exception());
    let got = c.get_service().service_identifier(&svc_id).send().await.unwrap();
    assert_eq!(got.dns_entry().and_then(|d| d.domain_name()), Some(dns.as_str()));
    let listed: Vec<_> = c
        .list_services()
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert!(listed.iter().any(|s| s.id() == Some(svc_id.as_str())));
    let updated = c
        .update_service()
        .service_identifier(&svc_id)
        .auth_type(AuthType::AwsIam)
        .send()
        .await
        .unwrap();
    assert_eq!(updated.auth_type(), Some(&AuthType::AwsIam));
    let (code, status, _) = failure(
        "unknown service",
        c.get_service().service_identifier("svc-0123456789abcdef0").send().await,
    );
    assert_eq!((code.as_str(), status), ("ResourceNotFoundException", 404));

    // --- service network <-> service association
    let sns = c
        .create_service_network_service_association()
        .service_network_identifier(&sn_id)
        .service_identifier(&svc_id)
        .send()
        .await
        .expect("service association");
    let sns_id = sns.id().unwrap().to_string();
    assert_eq!(
        sns.dns_entry().and_then(|d| d.domain_name()),
        Some(dns.as_str()),
        "an association carries the service's DNS"
    );
    let listed = c
        .list_service_network_service_associations()
        .service_network_identifier(&sn_id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        listed
            .items()
            .iter()
            .map(|a| a.service_id().unwrap())
            .collect::<Vec<_>>(),
        [svc_id.as_str()]
    );
    let (code, _, _) = failure(
        "duplicate service association",
        c.create_service_network_service_association()
            .service_network_identifier(&sn_id)
            .service_identifier(&svc_id)
            .send()
            .await,
    );
    assert_eq!(code, "ConflictException");

    // --- target groups and targets
    let mk_tg = |suffix: &str| {
        c.create_target_group()
            .name(format!("backend-{u}-{suffix}"))
            .r#type(TargetGroupType::Ip)
            .config(
                TargetGroupConfig::builder()
                    .port(8080)
                    .protocol(TargetGroupProtocol::Http)
                    .vpc_identifier(&vpc)
                    .health_check(HealthCheckConfig::builder().enabled(true).path("/healthz").build())
                    .build(),
            )
            .tags("cloudgate.io/backend", format!("ns/{suffix}"))
            .send()
    };
    let tg_a = mk_tg("a").await.expect("target group a");
    let tg_b = mk_tg("b").await.expect("target group b");
    let (a, b) = (tg_a.id().unwrap().to_string(), tg_b.id().unwrap().to_string());
    assert!(a.starts_with("tg-") && b.starts_with("tg-") && a != b);
    let (code, _, err) = failure("duplicate target group", mk_tg("a").await);
    assert_eq!(code, "ConflictException");
    assert!(err.is_conflict_exception());
    let got = c
        .get_target_group()
        .target_group_identifier(tg_a.arn().unwrap())
        .send()
        .await
        .unwrap();
    let cfg = got.config().unwrap();
    assert_eq!((cfg.port(), cfg.vpc_identifier()), (Some(8080), Some(vpc.as_str())));
    assert_eq!(cfg.health_check().and_then(|h| h.path()), Some("/healthz"));
    // Pagination with one item per page still finds both.
    let paged: BTreeSet<String> = c
        .list_target_groups()
        .vpc_identifier(&vpc)
        .max_results(1)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id().unwrap().to_string())
        .collect();
    assert_eq!(paged, BTreeSet::from([a.clone(), b.clone()]));
    let upd = c
        .update_target_group()
        .target_group_identifier(&a)
        .health_check(HealthCheckConfig::builder().enabled(true).path("/ready").build())
        .send()
        .await
        .unwrap();
    assert_eq!(
        upd.config().and_then(|c| c.health_check()).and_then(|h| h.path()),
        Some("/ready")
    );

    let reg = c
        .register_targets()
        .target_group_identifier(&a)
        .targets(Target::builder().id("10.244.0.5").port(8080).build().unwrap())
        .targets(Target::builder().id("10.244.0.6").build().unwrap())
        .send()
        .await
        .unwrap();
    let ok: BTreeSet<_> = reg
        .successful()
        .iter()
        .map(|t| (t.id().to_string(), t.port()))
        .collect();
    assert_eq!(
        ok,
        BTreeSet::from([("10.244.0.5".into(), Some(8080)), ("10.244.0.6".into(), Some(8080))])
    );
    assert!(reg.unsuccessful().is_empty());
    let targets = c.list_targets().target_group_identifier(&a).send().await.unwrap();
    let statuses: BTreeSet<_> = targets.items().iter().map(|t| t.status().cloned()).collect();
    assert_eq!(
        statuses,
        BTreeSet::from([Some(TargetStatus::Unused)]),
        "no rule uses the group yet"
    );

    // --- listener and its default rule
    let listener = c
        .create_listener()
        .service_identifier(&svc_id)
        .name("http")
        .protocol(ListenerProtocol::Http)
        .port(80)
        .default_action(RuleAction::FixedResponse(
            lattice::types::FixedResponseAction::builder()
                .status_code(404)
                .build()
                .unwrap(),
        ))
        .send()
        .await
        .expect("create listener");
    let l_id = listener.id().unwrap().to_string();
    let got = c
        .get_listener()
        .service_identifier(&svc_id)
        .listener_identifier(&l_id)
        .send()
        .await
        .unwrap();
    assert_eq!((got.port(), got.protocol()), (Some(80), Some(&ListenerProtocol::Http)));
    let listeners = c.list_listeners().service_identifier(&svc_id).send().await.unwrap();
    assert_eq!(
        listeners.items().iter().map(|l| l.id().unwrap()).collect::<Vec<_>>(),
        [l_id.as_str()]
    );
    let (code, _, _) = failure(
        "duplicate listener port",
        c.create_listener()
            .service_identifier(&svc_id)
            .name("http-again")
            .protocol(ListenerProtocol::Http)
            .port(80)
            .default_action(forward(&[(&a, 1)]))
            .send()
            .await,
    );
    assert_eq!(code, "ConflictException");
    c.update_listener()
        .service_identifier(&svc_id)
        .listener_identifier(&l_id)
        .default_action(RuleAction::Forward(
            ForwardAction::builder()
                .target_groups(
                    WeightedTargetGroup::builder()
                        .target_group_identifier(&b)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        ))
        .send()
        .await
        .unwrap();
    let got = c
        .get_listener()
        .service_identifier(&svc_id)
        .listener_identifier(&l_id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        weights(got.default_action()),
        BTreeMap::from([(b.clone(), 100)]),
        "a single group defaults to weight 100"
    );

    // --- rules: path, header and method matches with weighted forwards
    let header = RuleMatch::HttpMatch(
        HttpMatch::builder()
            .header_matches(
                HeaderMatch::builder()
                    .name("x-canary")
                    .r#match(HeaderMatchType::Exact("yes".into()))
                    .case_sensitive(false)
                    .build()
                    .unwrap(),
            )
            .path_match(
                PathMatch::builder()
                    .r#match(PathMatchType::Exact("/exact".into()))
                    .build(),
            )
            .build(),
    );
    let method = RuleMatch::HttpMatch(
        HttpMatch::builder()
            .method("POST")
            .path_match(PathMatch::builder().r#match(PathMatchType::Prefix("/".into())).build())
            .build(),
    );
    let mut rules = BTreeMap::new();
    for (name, prio, m) in [
        ("header", 10, header.clone()),
        ("prefix", 20, path_prefix("/api/")),
        ("method", 30, method.clone()),
    ] {
        let r = c
            .create_rule()
            .service_identifier(&svc_id)
            .listener_identifier(&l_id)
            .name(name)
            .priority(prio)
            .r#match(m.clone())
            .action(forward(&[(&a, 90), (&b, 10)]))
            .tags("cloudgate.io/rule", name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("create rule {name}: {e:?}"));
        assert_eq!((r.priority(), r.r#match()), (Some(prio), Some(&m)), "{name}");
        assert!(
            r.arn()
                .unwrap()
                .ends_with(&format!("/listener/{l_id}/rule/{}", r.id().unwrap()))
        );
        rules.insert(name, r.id().unwrap().to_string());
    }
    let got = c
        .get_rule()
        .service_identifier(&svc_id)
        .listener_identifier(&l_id)
        .rule_identifier(&rules["header"])
        .send()
        .await
        .unwrap();
    assert_eq!(got.r#match(), Some(&header));
    assert_eq!(
        weights(got.action()),
        BTreeMap::from([(a.clone(), 90), (b.clone(), 10)])
    );
    assert_eq!(got.is_default(), Some(false));
    let listed = c
        .list_rules()
        .service_identifier(&svc_id)
        .listener_identifier(&l_id)
        .send()
        .await
        .unwrap();
    let names: BTreeSet<_> = listed
        .items()
        .iter()
        .filter(|r| r.is_default() == Some(false))
        .map(|r| r.name().unwrap())
        .collect();
    assert_eq!(names, BTreeSet::from(["header", "method", "prefix"]));
    assert_eq!(
        listed.items().iter().filter(|r| r.is_default() == Some(true)).count(),
        1,
        "every listener has a default rule"
    );

    let (code, status, err) = failure(
        "duplicate priority",
        c.create_rule()
            .service_identifier(&svc_id)
            .listener_identifier(&l_id)
            .name("clash")
            .priority(20)
            .r#match(path_prefix("/other"))
            .action(forward(&[(&a, 1)]))
            .send()
            .await,
    );
    assert_eq!((code.as_str(), status), ("ConflictException", 409));
    assert!(err.is_conflict_exception());

    // Targets turn HEALTHY once a rule uses their group.
    let targets = c.list_targets().target_group_identifier(&a).send().await.unwrap();
    assert!(
        targets
            .items()
            .iter()
            .all(|t| t.status() == Some(&TargetStatus::Healthy)),
        "{targets:?}"
    );

    // A weight change is one UpdateRule on the same rule.
    let upd = c
        .update_rule()
        .service_identifier(&svc_id)
        .listener_identifier(&l_id)
        .rule_identifier(&rules["prefix"])
        .action(forward(&[(&a, 0), (&b, 999)]))
        .send()
        .await
        .unwrap();
    assert_eq!((upd.id(), upd.priority()), (Some(rules["prefix"].as_str()), Some(20)));
    let got = c
        .get_rule()
        .service_identifier(&svc_id)
        .listener_identifier(&l_id)
        .rule_identifier(&rules["prefix"])
        .send()
        .await
        .unwrap();
    assert_eq!(
        weights(got.action()),
        BTreeMap::from([(a.clone(), 0), (b.clone(), 999)])
    );
    if let Some(n) = logged_calls("vpc-lattice", "UpdateRule", &rules["prefix"]).await {
        assert_eq!(n, 1, "one weight change = exactly one UpdateRule");
    }

    // Batch update swaps priorities (judged on the final state) and reports unknown rules.
    let batch = c
        .batch_update_rule()
        .service_identifier(&svc_id)
        .listener_identifier(&l_id)
        .rules(
            RuleUpdate::builder()
                .rule_identifier(&rules["header"])
                .priority(30)
                .build()
                .unwrap(),
        )
        .rules(
            RuleUpdate::builder()
                .rule_identifier(&rules["method"])
                .priority(10)
                .build()
                .unwrap(),
        )
        .rules(
            RuleUpdate::builder()
                .rule_identifier("rule-0123456789abcdef0")
                .priority(40)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let ok: BTreeMap<_, _> = batch
        .successful()
        .iter()
        .map(|r| (r.id().unwrap().to_string(), r.priority()))
        .collect();
    assert_eq!(
        ok,
        BTreeMap::from([(rules["header"].clone(), Some(30)), (rules["method"].clone(), Some(10))])
    );
    assert_eq!(
        batch
            .unsuccessful()
            .iter()
            .map(|f| f.rule_identifier().unwrap())
            .collect::<Vec<_>>(),
        ["rule-0123456789abcdef0"]
    );
    let (code, _, _) = failure(
        "batch leaving two rules on one priority",
        c.batch_update_rule()
            .service_identifier(&svc_id)
            .listener_identifier(&l_id)
            .rules(
                RuleUpdate::builder()
                    .rule_identifier(&rules["header"])
                    .priority(20)
                    .build()
                    .unwrap(),
            )
            .send()
            .await,
    );
    assert_eq!(code, "ConflictException");

    // A target group still used by a rule cannot be deleted.
    let (code, status, err) = failure(
        "delete used target group",
        c.delete_target_group().target_group_identifier(&a).send().await,
    );
    assert_eq!((code.as_str(), status), ("ConflictException", 409));
    assert!(err.is_conflict_exception());

    let dereg = c
        .deregister_targets()
        .target_group_identifier(&a)
        .targets(Target::builder().id("10.244.0.5").port(8080).build().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(dereg.successful().len(), 1);
    let left: Vec<_> = c
        .list_targets()
        .target_group_identifier(&a)
        .send()
        .await
        .unwrap()
        .items()
        .iter()
        .map(|t| (t.id().unwrap().to_string(), t.port()))
        .collect();
    assert_eq!(left, [("10.244.0.6".to_string(), Some(8080))]);

    // --- deletes, children first
    for (name, id) in &rules {
        c.delete_rule()
            .service_identifier(&svc_id)
            .listener_identifier(&l_id)
            .rule_identifier(id)
            .send()
            .await
            .unwrap_or_else(|e| panic!("delete rule {name}: {e:?}"));
    }
    let (code, status, _) = failure(
        "get deleted rule",
        c.get_rule()
            .service_identifier(&svc_id)
            .listener_identifier(&l_id)
            .rule_identifier(&rules["header"])
            .send()
            .await,
    );
    assert_eq!((code.as_str(), status), ("ResourceNotFoundException", 404));
    c.delete_listener()
        .service_identifier(&svc_id)
        .listener_identifier(&l_id)
        .send()
        .await
        .unwrap();
    let (code, _, _) = failure(
        "get deleted listener",
        c.get_listener()
            .service_identifier(&svc_id)
            .listener_identifier(&l_id)
            .send()
            .await,
    );
    assert_eq!(code, "ResourceNotFoundException");
    let (code, _, _) = failure(
        "delete associated service",
        c.delete_service().service_identifier(&svc_id).send().await,
    );
    assert_eq!(code, "ConflictException");
    c.delete_service_network_service_association()
        .service_network_service_association_identifier(&sns_id)
        .send()
        .await
        .unwrap();
    assert!(
        c.list_service_network_service_associations()
            .service_network_identifier(&sn_id)
            .send()
            .await
            .unwrap()
            .items()
            .is_empty()
    );
    c.delete_service().service_identifier(&svc_id).send().await.unwrap();
    for tg in [&a, &b] {
        c.delete_target_group()
            .target_group_identifier(tg)
            .send()
            .await
            .unwrap();
    }
    let (code, _, _) = failure(
        "get deleted target group",
        c.get_target_group().target_group_identifier(&a).send().await,
    );
    assert_eq!(code, "ResourceNotFoundException");
    let (code, _, _) = failure(
        "register into deleted target group",
        c.register_targets()
            .target_group_identifier(&a)
            .targets(Target::builder().id("10.244.0.7").build().unwrap())
            .send()
            .await,
    );
    assert_eq!(code, "ResourceNotFoundException");
    c.delete_service_network()
        .service_network_identifier(&sn_id)
        .send()
        .await
        .unwrap();
}

/// Tags are how the provider finds what it owns: tag, untag and list on a service and a
/// target group, by ARN.
#[tokio::test]
async fn lattice_tags() {
    let c = lattice_client().await;
    let u = unique("t");
    let svc = c
        .create_service()
        .name(format!("tags-{u}"))
        .tags("cloudgate.io/cluster", "c1")
        .send()
        .await
        .unwrap();
    let arn = svc.arn().unwrap().to_string();
    let tags = |arn: String| {
        let c = c.clone();
        async move {
            c.list_tags_for_resource()
                .resource_arn(arn)
                .send()
                .await
                .unwrap()
                .tags()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .collect::<BTreeMap<_, _>>()
        }
    };
    assert_eq!(
        tags(arn.clone()).await,
        BTreeMap::from([("cloudgate.io/cluster".into(), "c1".into())])
    );
    c.tag_resource()
        .resource_arn(&arn)
        .tags("cloudgate.io/route", "ns/web")
        .tags("cloudgate.io/cluster", "c2")
        .send()
        .await
        .unwrap();
    assert_eq!(
        tags(arn.clone()).await,
        BTreeMap::from([
            ("cloudgate.io/cluster".into(), "c2".into()),
            ("cloudgate.io/route".into(), "ns/web".into())
        ])
    );
    c.untag_resource()
        .resource_arn(&arn)
        .tag_keys("cloudgate.io/cluster")
        .send()
        .await
        .unwrap();
    assert_eq!(
        tags(arn.clone()).await,
        BTreeMap::from([("cloudgate.io/route".into(), "ns/web".into())])
    );

    let tg = c
        .create_target_group()
        .name(format!("tags-{u}"))
        .r#type(TargetGroupType::Ip)
        .config(
            TargetGroupConfig::builder()
                .port(80)
                .protocol(TargetGroupProtocol::Http)
                .vpc_identifier(vpc_id())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let tg_arn = tg.arn().unwrap().to_string();
    assert!(tags(tg_arn.clone()).await.is_empty());
    c.tag_resource()
        .resource_arn(&tg_arn)
        .tags("cloudgate.io/backend", "ns/svc:80")
        .send()
        .await
        .unwrap();
    assert_eq!(
        tags(tg_arn.clone()).await,
        BTreeMap::from([("cloudgate.io/backend".into(), "ns/svc:80".into())])
    );

    let (code, status, err) = failure(
        "tags of an unknown resource",
        c.list_tags_for_resource()
            .resource_arn("arn:aws:vpc-lattice:us-east-1:123456789012:service/svc-0123456789abcdef0")
            .send()
            .await,
    );
    assert_eq!((code.as_str(), status), ("ResourceNotFoundException", 404));
    assert!(err.is_resource_not_found_exception());

    c.delete_target_group()
        .target_group_identifier(&tg_arn)
        .send()
        .await
        .unwrap();
    c.delete_service().service_identifier(&arn).send().await.unwrap();
}

/// ALB: VPC, subnets and security group through EC2 (moto checks that subnets exist), then load
/// balancer, target groups, listener, a rule with all five condition kinds and a weighted
/// forward, modify_rule (exactly one ModifyRule on the wire), set_rule_priorities, targets, tags,
/// and deletes.
#[tokio::test]
async fn elbv2_application_load_balancer_round_trip() {
    use aws_sdk_ec2 as ec2;
    use aws_sdk_elasticloadbalancingv2 as elb;
    use elb::types::{
        Action, ActionTypeEnum, FixedResponseActionConfig, ForwardActionConfig, HostHeaderConditionConfig,
        HttpHeaderConditionConfig, HttpRequestMethodConditionConfig, LoadBalancerSchemeEnum, LoadBalancerTypeEnum,
        PathPatternConditionConfig, ProtocolEnum, QueryStringConditionConfig, QueryStringKeyValuePair, RuleCondition,
        RulePriorityPair, Tag, TargetDescription, TargetGroupTuple, TargetTypeEnum,
    };

    let config = sdk_config().await;
    let ec2 = ec2::Client::new(&config);
    let elb = elb::Client::new(&config);
    let u = unique("alb");

    let vpc = ec2
        .create_vpc()
        .cidr_block("10.77.0.0/16")
        .send()
        .await
        .expect("create vpc");
    let vpc_id = vpc.vpc().and_then(|v| v.vpc_id()).unwrap().to_string();
    let zones = ec2.describe_availability_zones().send().await.unwrap();
    let zones: Vec<String> = zones
        .availability_zones()
        .iter()
        .filter_map(|z| z.zone_name().map(String::from))
        .take(2)
        .collect();
    assert_eq!(zones.len(), 2, "an ALB needs two zones");
    let mut subnets = Vec::new();
    for (i, zone) in zones.iter().enumerate() {
        let s = ec2
            .create_subnet()
            .vpc_id(&vpc_id)
            .cidr_block(format!("10.77.{i}.0/24"))
            .availability_zone(zone)
            .send()
            .await
            .expect("create subnet");
        subnets.push(s.subnet().and_then(|s| s.subnet_id()).unwrap().to_string());
    }
    let sg = ec2
        .create_security_group()
        .group_name(&u)
        .description("cloudgate ground check")
        .vpc_id(&vpc_id)
        .send()
        .await
        .unwrap()
        .group_id()
        .unwrap()
        .to_string();

    let owner = Tag::builder()
        .key("cloudgate.io/gateway")
        .value(format!("ns/{u}"))
        .build();
    let lb = elb
        .create_load_balancer()
        .name(&u)
        .r#type(LoadBalancerTypeEnum::Application)
        .scheme(LoadBalancerSchemeEnum::InternetFacing)
        .set_subnets(Some(subnets.clone()))
        .security_groups(&sg)
        .tags(owner.clone())
        .send()
        .await
        .expect("create load balancer");
    let lb = &lb.load_balancers()[0];
    let lb_arn = lb.load_balancer_arn().unwrap().to_string();
    assert!(lb.dns_name().is_some_and(|d| !d.is_empty()));
    assert_eq!(lb.vpc_id(), Some(vpc_id.as_str()));
    let lb_zones: BTreeSet<_> = lb.availability_zones().iter().filter_map(|z| z.subnet_id()).collect();
    assert_eq!(lb_zones, subnets.iter().map(String::as_str).collect());

    let mut tgs = Vec::new();
    for suffix in ["a", "b"] {
        let tg = elb
            .create_target_group()
            .name(format!("{u}-{suffix}"))
            .protocol(ProtocolEnum::Http)
            .port(8080)
            .vpc_id(&vpc_id)
            .target_type(TargetTypeEnum::Ip)
            .health_check_path("/healthz")
            .tags(owner.clone())
            .send()
            .await
            .expect("create target group");
        tgs.push(tg.target_groups()[0].target_group_arn().unwrap().to_string());
    }
    let (tg_a, tg_b) = (tgs[0].clone(), tgs[1].clone());

    let listener = elb
        .create_listener()
        .load_balancer_arn(&lb_arn)
        .protocol(ProtocolEnum::Http)
        .port(80)
        .default_actions(
            Action::builder()
                .r#type(ActionTypeEnum::FixedResponse)
                .fixed_response_config(
                    FixedResponseActionConfig::builder()
                        .status_code("404")
                        .content_type("text/plain")
                        .build(),
                )
                .build(),
        )
        .tags(owner.clone())
        .send()
        .await
        .expect("create listener");
    let listener_arn = listener.listeners()[0].listener_arn().unwrap().to_string();

    let weighted = |wa: i32, wb: i32| {
        Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .forward_config(
                ForwardActionConfig::builder()
                    .target_groups(TargetGroupTuple::builder().target_group_arn(&tg_a).weight(wa).build())
                    .target_groups(TargetGroupTuple::builder().target_group_arn(&tg_b).weight(wb).build())
                    .build(),
            )
            .build()
    };
    let conditions = vec![
        RuleCondition::builder()
            .field("host-header")
            .host_header_config(HostHeaderConditionConfig::builder().values("app.example.com").build())
            .build(),
        RuleCondition::builder()
            .field("path-pattern")
            .path_pattern_config(PathPatternConditionConfig::builder().values("/api/*").build())
            .build(),
        RuleCondition::builder()
            .field("http-header")
            .http_header_config(
                HttpHeaderConditionConfig::builder()
                    .http_header_name("x-canary")
                    .values("yes")
                    .build(),
            )
            .build(),
        RuleCondition::builder()
            .field("query-string")
            .query_string_config(
                QueryStringConditionConfig::builder()
                    .values(QueryStringKeyValuePair::builder().key("v").value("2").build())
                    .build(),
            )
            .build(),
        RuleCondition::builder()
            .field("http-request-method")
            .http_request_method_config(
                HttpRequestMethodConditionConfig::builder()
                    .values("GET")
                    .values("HEAD")
                    .build(),
            )
            .build(),
    ];
    let rule = elb
        .create_rule()
        .listener_arn(&listener_arn)
        .priority(10)
        .set_conditions(Some(conditions.clone()))
        .actions(weighted(900, 100))
        .tags(owner.clone())
        .send()
        .await
        .expect("create rule");
    let rule = &rule.rules()[0];
    let rule_arn = rule.rule_arn().unwrap().to_string();
    let fields: BTreeSet<_> = rule.conditions().iter().filter_map(|c| c.field()).collect();
    assert_eq!(
        fields,
        BTreeSet::from([
            "host-header",
            "http-header",
            "http-request-method",
            "path-pattern",
            "query-string"
        ])
    );
    let header = rule
        .conditions()
        .iter()
        .find(|c| c.field() == Some("http-header"))
        .unwrap();
    assert_eq!(
        header.http_header_config().and_then(|h| h.http_header_name()),
        Some("x-canary")
    );
    let query = rule
        .conditions()
        .iter()
        .find(|c| c.field() == Some("query-string"))
        .unwrap();
    let pairs: Vec<_> = query
        .query_string_config()
        .unwrap()
        .values()
        .iter()
        .map(|p| (p.key(), p.value()))
        .collect();
    assert_eq!(pairs, [(Some("v"), Some("2"))]);
    let fallback = elb
        .create_rule()
        .listener_arn(&listener_arn)
        .priority(20)
        .conditions(
            RuleCondition::builder()
                .field("path-pattern")
                .path_pattern_config(PathPatternConditionConfig::builder().values("/other/*").build())
                .build(),
        )
        .actions(
            Action::builder()
                .r#type(ActionTypeEnum::Forward)
                .target_group_arn(&tg_a)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let fallback_arn = fallback.rules()[0].rule_arn().unwrap().to_string();
    let (code, _, _) = failure(
        "duplicate rule priority",
        elb.create_rule()
            .listener_arn(&listener_arn)
            .priority(10)
            .set_conditions(Some(conditions[1..2].to_vec()))
            .actions(weighted(1, 1))
            .send()
            .await,
    );
    assert_eq!(code, "PriorityInUse");

    let tg_weights = |actions: &[Action]| -> BTreeMap<String, i32> {
        actions[0]
            .forward_config()
            .unwrap()
            .target_groups()
            .iter()
            .map(|t| (t.target_group_arn().unwrap().to_string(), t.weight().unwrap()))
            .collect()
    };
    // The query protocol puts no ARN in the path, so the call log is compared before/after.
    let before = logged_calls("elbv2", "ModifyRule", "").await;
    let modified = elb
        .modify_rule()
        .rule_arn(&rule_arn)
        .actions(weighted(0, 999))
        .send()
        .await
        .expect("modify rule");
    if let (Some(before), Some(after)) = (before, logged_calls("elbv2", "ModifyRule", "").await) {
        assert_eq!(after, before + 1, "one modify = exactly one ModifyRule");
    }
    assert_eq!(
        tg_weights(modified.rules()[0].actions()),
        BTreeMap::from([(tg_a.clone(), 0), (tg_b.clone(), 999)])
    );
    let described = elb.describe_rules().rule_arns(&rule_arn).send().await.unwrap();
    assert_eq!(
        tg_weights(described.rules()[0].actions()),
        BTreeMap::from([(tg_a.clone(), 0), (tg_b.clone(), 999)])
    );
    assert_eq!(
        described.rules()[0].conditions().len(),
        5,
        "modify_rule without conditions keeps them"
    );

    // Move both rules in one call. (A swap in one call works on AWS, which judges the final
    // order; moto 5.2.1 checks pair by pair and answers PriorityInUse, so it is not used here.)
    elb.set_rule_priorities()
        .rule_priorities(RulePriorityPair::builder().rule_arn(&rule_arn).priority(5).build())
        .rule_priorities(RulePriorityPair::builder().rule_arn(&fallback_arn).priority(15).build())
        .send()
        .await
        .expect("set rule priorities");
    let described = elb.describe_rules().listener_arn(&listener_arn).send().await.unwrap();
    let priorities: BTreeMap<_, _> = described
        .rules()
        .iter()
        .map(|r| (r.rule_arn().unwrap().to_string(), r.priority().unwrap().to_string()))
        .collect();
    assert_eq!(priorities[&rule_arn], "5");
    assert_eq!(priorities[&fallback_arn], "15");
    assert_eq!(priorities.values().filter(|p| *p == "default").count(), 1);

    elb.register_targets()
        .target_group_arn(&tg_a)
        .targets(TargetDescription::builder().id("10.77.0.10").port(8080).build())
        .targets(TargetDescription::builder().id("10.77.1.11").port(8080).build())
        .send()
        .await
        .expect("register targets");
    let health = elb
        .describe_target_health()
        .target_group_arn(&tg_a)
        .send()
        .await
        .unwrap();
    let ids: BTreeSet<_> = health
        .target_health_descriptions()
        .iter()
        .filter_map(|h| h.target()?.id())
        .collect();
    assert_eq!(ids, BTreeSet::from(["10.77.0.10", "10.77.1.11"]));
    elb.deregister_targets()
        .target_group_arn(&tg_a)
        .targets(TargetDescription::builder().id("10.77.0.10").port(8080).build())
        .send()
        .await
        .unwrap();
    let health = elb
        .describe_target_health()
        .target_group_arn(&tg_a)
        .send()
        .await
        .unwrap();
    let ids: BTreeSet<_> = health
        .target_health_descriptions()
        .iter()
        .filter(|h| h.target_health().and_then(|t| t.state()).map(|s| s.as_str()) != Some("draining"))
        .filter_map(|h| h.target()?.id())
        .collect();
    assert_eq!(ids, BTreeSet::from(["10.77.1.11"]));

    let arns = [lb_arn.clone(), tg_a.clone(), listener_arn.clone(), rule_arn.clone()];
    let described = elb
        .describe_tags()
        .set_resource_arns(Some(arns.to_vec()))
        .send()
        .await
        .unwrap();
    let tagged: BTreeMap<_, _> = described
        .tag_descriptions()
        .iter()
        .map(|d| {
            let tags: BTreeMap<_, _> = d
                .tags()
                .iter()
                .map(|t| (t.key().unwrap(), t.value().unwrap_or("")))
                .collect();
            (d.resource_arn().unwrap().to_string(), tags)
        })
        .collect();
    for arn in &arns {
        assert_eq!(
            tagged[arn].get("cloudgate.io/gateway").copied(),
            Some(format!("ns/{u}").as_str()),
            "{arn} carries the ownership tag"
        );
    }

    let (code, _, _) = failure(
        "delete target group in use",
        elb.delete_target_group().target_group_arn(&tg_a).send().await,
    );
    assert_eq!(code, "ResourceInUse");

    for r in [&rule_arn, &fallback_arn] {
        elb.delete_rule().rule_arn(r).send().await.unwrap();
    }
    elb.delete_listener().listener_arn(&listener_arn).send().await.unwrap();
    elb.delete_load_balancer()
        .load_balancer_arn(&lb_arn)
        .send()
        .await
        .unwrap();
    for tg in [&tg_a, &tg_b] {
        elb.delete_target_group().target_group_arn(tg).send().await.unwrap();
    }
    let (code, status, _) = failure(
        "describe deleted load balancer",
        elb.describe_load_balancers().load_balancer_arns(&lb_arn).send().await,
    );
    assert_eq!((code.as_str(), status), ("LoadBalancerNotFound", 400));
    ec2.delete_security_group().group_id(&sg).send().await.unwrap();
    for s in &subnets {
        ec2.delete_subnet().subnet_id(s).send().await.unwrap();
    }
    ec2.delete_vpc().vpc_id(&vpc_id).send().await.unwrap();
}

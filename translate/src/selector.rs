//! Kubernetes label selectors (matchLabels + matchExpressions), for allowedRoutes namespaces.

use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requirement {
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    pub match_labels: BTreeMap<String, String>,
    pub requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// Fails on an unknown operator; the caller treats that selector as matching nothing.
    pub fn parse(
        match_labels: BTreeMap<String, String>,
        exprs: impl IntoIterator<Item = (String, String, Vec<String>)>,
    ) -> Result<Self, String> {
        let requirements = exprs
            .into_iter()
            .map(|(key, op, values)| match op.as_str() {
                "In" => Ok(Requirement::In(key, values)),
                "NotIn" => Ok(Requirement::NotIn(key, values)),
                "Exists" => Ok(Requirement::Exists(key)),
                "DoesNotExist" => Ok(Requirement::DoesNotExist(key)),
                other => Err(format!("unknown selector operator {other}")),
            })
            .collect::<Result<_, _>>()?;
        Ok(LabelSelector { match_labels, requirements })
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
            && self.requirements.iter().all(|r| match r {
                Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
                Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
                Requirement::Exists(k) => labels.contains_key(k),
                Requirement::DoesNotExist(k) => !labels.contains_key(k),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn match_labels_and_expressions() {
        let s = LabelSelector::parse(
            labels(&[("team", "a")]),
            vec![
                ("env".into(), "In".into(), vec!["prod".into(), "stage".into()]),
                ("legacy".into(), "DoesNotExist".into(), vec![]),
            ],
        )
        .unwrap();
        assert!(s.matches(&labels(&[("team", "a"), ("env", "prod")])));
        assert!(!s.matches(&labels(&[("team", "a"), ("env", "dev")])));
        assert!(!s.matches(&labels(&[("team", "a"), ("env", "prod"), ("legacy", "1")])));
        assert!(!s.matches(&labels(&[("env", "prod")])));
        assert!(LabelSelector::parse(BTreeMap::new(), vec![("a".into(), "Gt".into(), vec![])]).is_err());
    }
}

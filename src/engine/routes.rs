//! The route table: dialled number → flow reference (name or id), exact match before `*`.

use std::collections::HashMap;

use crate::config::RouteConfig;

#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    exact: HashMap<String, String>,
    wildcard: Option<String>,
}

impl RouteTable {
    pub fn new(routes: &[RouteConfig]) -> Self {
        let mut table = RouteTable::default();
        for r in routes {
            if r.number == "*" {
                table.wildcard.get_or_insert_with(|| r.flow.clone());
            } else {
                table
                    .exact
                    .entry(r.number.clone())
                    .or_insert_with(|| r.flow.clone());
            }
        }
        table
    }

    /// The flow reference for `number`, if any route matches.
    pub fn lookup(&self, number: &str) -> Option<&str> {
        self.exact
            .get(number)
            .or(self.wildcard.as_ref())
            .map(String::as_str)
    }

    /// Every route in effect as (number, flow reference): exact numbers in order, then `*`
    /// (a number configured twice keeps its first flow, as [`RouteTable::lookup`] does).
    pub fn entries(&self) -> Vec<(&str, &str)> {
        let mut out: Vec<(&str, &str)> = self
            .exact
            .iter()
            .map(|(n, f)| (n.as_str(), f.as_str()))
            .collect();
        out.sort_unstable();
        out.extend(self.wildcard.iter().map(|f| ("*", f.as_str())));
        out
    }

    /// Every flow reference, for start-up validation.
    pub fn flow_refs(&self) -> impl Iterator<Item = &str> {
        self.exact
            .values()
            .chain(self.wildcard.iter())
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(number: &str, flow: &str) -> RouteConfig {
        RouteConfig {
            number: number.into(),
            flow: flow.into(),
        }
    }

    #[test]
    fn exact_beats_wildcard() {
        let t = RouteTable::new(&[route("*", "any"), route("+1555", "ivr")]);
        assert_eq!(t.lookup("+1555"), Some("ivr"));
        assert_eq!(t.lookup("42"), Some("any"));
        let t = RouteTable::new(&[route("100", "a")]);
        assert_eq!(t.lookup("200"), None);
    }

    #[test]
    fn entries_are_the_routes_in_effect() {
        let t = RouteTable::new(&[
            route("*", "any"),
            route("200", "b"),
            route("100", "a"),
            route("100", "ignored"),
            route("*", "ignored"),
        ]);
        assert_eq!(t.entries(), [("100", "a"), ("200", "b"), ("*", "any")]);
    }
}

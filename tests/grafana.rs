//! The shipped Grafana dashboards and Prometheus alert rules (README "Monitoring", "Alerts"):
//! every dashboard picks its Prometheus through a `${datasource}` variable and filters every
//! query by the `job` and `instance` variables, every panel has a unit that fits its queries,
//! and the webhook, storage, RTP pool, build and 503 panels are there; no range is shorter than
//! four 1 m scrapes (dashboards: `$__rate_interval`); every metric and label value a dashboard
//! or a rule names is exported by a running engine; the rules pass `promtool check rules` and
//! their unit tests (`promtool test rules`), and a real Prometheus loads them, evaluates every
//! rule without error, fires the storage-down alert while the database is locked and clears it
//! after, and fires the engine-down alert when the engine is killed.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::wait_until;
use serde_json::Value;

const DATASOURCE: &str = "${datasource}";
const RULES: &str = "grafana/alerts/activeflow.rules.yml";
const RULE_TESTS: &str = "grafana/alerts/activeflow.rules.test.yml";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Every dashboard in `grafana/dashboards/`: (file name, parsed JSON).
fn dashboards() -> Vec<(String, Value)> {
    let dir = repo("grafana/dashboards");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no dashboards in {}", dir.display());
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let json = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: invalid JSON: {e}", p.display()));
            (p.file_name().unwrap().to_string_lossy().into_owned(), json)
        })
        .collect()
}

/// The panels of a dashboard, rows' nested panels included (rows themselves left out).
fn panels(dash: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in dash["panels"].as_array().unwrap() {
        if p["type"] == "row" {
            out.extend(p["panels"].as_array().into_iter().flatten());
        } else {
            out.push(p);
        }
    }
    out
}

fn exprs(panel: &Value) -> Vec<String> {
    panel["targets"]
        .as_array()
        .unwrap_or_else(|| panic!("{}: no targets", panel["title"]))
        .iter()
        .map(|t| t["expr"].as_str().unwrap().to_owned())
        .collect()
}

/// One vector selector of a PromQL expression: the metric name and its matchers (`None`
/// without braces).
type Selector = (String, Option<String>);

/// The text between the bracket at `chars[*i]` and its match (strings inside skipped); `*i`
/// ends just past the closing bracket.
fn group(chars: &[char], i: &mut usize, open: char, close: char) -> String {
    let start = *i + 1;
    let mut depth = 0;
    let mut in_string = false;
    while *i < chars.len() {
        let c = chars[*i];
        if in_string {
            if c == '"' && chars[*i - 1] != '\\' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
        } else if c == open {
            depth += 1;
        } else if c == close {
            depth -= 1;
            if depth == 0 {
                break;
            }
        }
        *i += 1;
    }
    let body = chars[start.min(chars.len())..(*i).min(chars.len())]
        .iter()
        .collect();
    *i += 1;
    body
}

/// Every metric a PromQL expression selects, with its matchers. Function and aggregation
/// names (followed by `(`), keywords, label lists after `by`/`on`/..., strings, numbers and
/// range durations are not metrics.
fn selectors(expr: &str) -> Vec<Selector> {
    const KEYWORDS: [&str; 11] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "and",
        "or",
        "unless",
        "bool",
        "offset",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let word_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += 1;
            }
            i += 1;
        } else if c == '[' {
            group(&chars, &mut i, '[', ']');
        } else if c == '{' {
            group(&chars, &mut i, '{', '}');
        } else if c.is_ascii_digit() || c == '.' {
            // A number (1e-9 included).
            i += 1;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric()
                    || chars[i] == '.'
                    || (matches!(chars[i], '-' | '+') && matches!(chars[i - 1], 'e' | 'E')))
            {
                i += 1;
            }
        } else if word_char(c) {
            let start = i;
            while i < chars.len() && word_char(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut j = i;
            while j < chars.len() && chars[j].is_whitespace() {
                j += 1;
            }
            let next = chars.get(j).copied();
            let rest: String = chars[j..].iter().take(8).collect();
            // `sum by (le) (...)`: an aggregation with its grouping first.
            let grouping = ["by", "without"].iter().any(|k| {
                rest.strip_prefix(k)
                    .is_some_and(|r| r.starts_with(|c: char| c.is_whitespace() || c == '('))
            });
            if KEYWORDS.contains(&word.as_str()) {
                if next == Some('(') {
                    i = j;
                    group(&chars, &mut i, '(', ')');
                }
            } else if next == Some('(') || grouping {
                // A function or an aggregation.
            } else if next == Some('{') {
                i = j;
                let matchers = group(&chars, &mut i, '{', '}');
                out.push((word, Some(matchers)));
            } else {
                out.push((word, None));
            }
        } else {
            i += 1;
        }
    }
    out
}

#[test]
fn the_selector_scan_finds_metrics_not_functions_labels_or_numbers() {
    let found = selectors(
        "histogram_quantile(0.95, sum by (le, type) (rate(a_bucket{job=~\"$job\", x=\"y{z}\"}[5m])) \
         and on (type) (sum by (type) (rate(b_count[5m])) > 1e-9)) / clamp_min(c, 1) or vector(0)",
    );
    assert_eq!(
        found,
        vec![
            (
                "a_bucket".to_owned(),
                Some("job=~\"$job\", x=\"y{z}\"".to_owned())
            ),
            ("b_count".to_owned(), None),
            ("c".to_owned(), None),
        ]
    );
}

/// The unit a panel's queries call for: seconds for quantiles, a ratio for divisions and for
/// rates of seconds, per second for other rates, bytes for `_bytes`, else a plain number.
fn unit_for(expr: &str) -> &'static str {
    let names: Vec<String> = selectors(expr).into_iter().map(|(n, _)| n).collect();
    if expr.starts_with("histogram_quantile(") {
        "s"
    } else if expr.contains(" / ")
        || (expr.contains("rate(") && names.iter().all(|n| n.ends_with("_seconds_total")))
    {
        "percentunit"
    } else if expr.contains("rate(") {
        if names.iter().all(|n| n == "sip_requests_received_total") {
            "reqps"
        } else {
            "ops"
        }
    } else if names.iter().all(|n| n.ends_with("_bytes")) {
        "bytes"
    } else {
        "short"
    }
}

#[test]
fn dashboards_use_the_datasource_job_and_instance_variables_and_fit_units() {
    let job_filter = "job=~\"$job\"";
    let instance_filter = "instance=~\"$instance\"";
    for (file, dash) in dashboards() {
        let vars: BTreeMap<&str, &Value> = dash["templating"]["list"]
            .as_array()
            .unwrap_or_else(|| panic!("{file}: no templating"))
            .iter()
            .map(|v| (v["name"].as_str().unwrap(), v))
            .collect();
        let ds = vars
            .get("datasource")
            .unwrap_or_else(|| panic!("{file}: no datasource variable"));
        assert_eq!(ds["type"], "datasource", "{file}");
        assert_eq!(ds["query"], "prometheus", "{file}");
        for (name, wants) in [("job", "job)"), ("instance", "instance)")] {
            let v = vars
                .get(name)
                .unwrap_or_else(|| panic!("{file}: no {name} variable"));
            assert_eq!(v["type"], "query", "{file}: {name}");
            assert_eq!(v["datasource"]["uid"], DATASOURCE, "{file}: {name}");
            let q = v["query"]["query"]
                .as_str()
                .unwrap_or_else(|| v["query"].as_str().unwrap());
            assert!(
                q.starts_with("label_values(") && q.ends_with(wants),
                "{file}: {name}: {q}"
            );
            // Its label values come from a family every engine exports.
            assert!(q.contains("activeflow_build_info"), "{file}: {name}: {q}");
        }
        let instance_query = vars["instance"]["query"]["query"].as_str().unwrap();
        assert!(
            instance_query.contains(job_filter),
            "{file}: instance follows job"
        );

        let mut ids = BTreeSet::new();
        let mut cells = BTreeSet::new();
        for p in dash["panels"].as_array().unwrap() {
            assert!(
                ids.insert(p["id"].as_u64().unwrap()),
                "{file}: id {} twice",
                p["id"]
            );
            let g = &p["gridPos"];
            let (x, y, w, h) = (
                g["x"].as_u64().unwrap(),
                g["y"].as_u64().unwrap(),
                g["w"].as_u64().unwrap(),
                g["h"].as_u64().unwrap(),
            );
            assert!(x + w <= 24, "{file}: {} wider than the grid", p["title"]);
            for cx in x..x + w {
                for cy in y..y + h {
                    assert!(
                        cells.insert((cx, cy)),
                        "{file}: {} overlaps another panel",
                        p["title"]
                    );
                }
            }
        }
        for p in panels(&dash) {
            let title = p["title"].as_str().unwrap();
            assert_eq!(p["datasource"]["uid"], DATASOURCE, "{file}: {title}");
            assert_eq!(p["datasource"]["type"], "prometheus", "{file}: {title}");
            let exprs = exprs(p);
            assert!(!exprs.is_empty(), "{file}: {title}: no query");
            for t in p["targets"].as_array().unwrap() {
                assert_eq!(t["datasource"]["uid"], DATASOURCE, "{file}: {title}");
            }
            let unit = p["fieldConfig"]["defaults"]["unit"].as_str().unwrap_or("");
            for expr in &exprs {
                for (name, matchers) in selectors(expr) {
                    let m = matchers.unwrap_or_default();
                    assert!(
                        m.contains(job_filter) && m.contains(instance_filter),
                        "{file}: {title}: {name} is not filtered by $job and $instance: {expr}"
                    );
                }
                assert_eq!(unit, unit_for(expr), "{file}: {title}: unit for {expr}");
            }
        }
    }
    // The panels an operator looks for, by what they query.
    let queried: String = dashboards()
        .iter()
        .flat_map(|(_, d)| panels(d).into_iter().flat_map(exprs).collect::<Vec<_>>())
        .collect::<Vec<_>>()
        .join("\n");
    for wanted in [
        "activeflow_build_info",
        "activeflow_rtp_ports_in_use",
        "activeflow_rtp_ports_capacity",
        "activeflow_sip_unavailable_total",
        "activeflow_webhook_deliveries_total",
        "outcome=\"dropped\"",
        "activeflow_outbound_refused_total{job=~\"$job\", instance=~\"$instance\", work=\"webhook_send\"}",
        "activeflow_storage_writes_total",
        "activeflow_storage_write_errors_total",
        "activeflow_storage_write_rejected_total",
        "activeflow_storage_batch_seconds_bucket",
        "activeflow_storage_queue_full_total",
    ] {
        assert!(queried.contains(wanted), "no panel queries {wanted}");
    }
}

/// The value of every `expr:` of a rule file (one line, or a folded `>-` block).
fn rule_exprs(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(rest) = line.trim_start().strip_prefix("expr:") else {
            continue;
        };
        let rest = rest.trim();
        if rest != ">-" && rest != "|" && rest != ">" {
            out.push(rest.to_owned());
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let block: Vec<&str> = lines[i + 1..]
            .iter()
            .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
            .map(|l| l.trim())
            .collect();
        out.push(block.join(" "));
    }
    out
}

/// Every `- alert:` name of a rule file.
fn alert_names(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.trim_start().strip_prefix("- alert:"))
        .map(|n| n.trim().to_owned())
        .collect()
}

/// The range of every range selector of an expression (`5m` of `rate(x[5m])`).
fn ranges(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let (mut out, mut i, mut in_string) = (Vec::new(), 0, false);
    while i < chars.len() {
        match chars[i] {
            '"' => in_string = !in_string,
            '[' if !in_string => {
                let range = group(&chars, &mut i, '[', ']');
                out.push(range.split(':').next().unwrap().trim().to_owned());
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// A PromQL duration (`90s`, `5m`, `1h`, `1h30m`) in seconds.
fn seconds(duration: &str) -> u64 {
    let (mut total, mut number) = (0, String::new());
    for c in duration.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => panic!("unit {c} in {duration}"),
        };
        total += number.parse::<u64>().unwrap() * unit;
        number.clear();
    }
    assert!(number.is_empty(), "{duration}");
    total
}

/// At Prometheus's default 1 m scrape a `rate` needs two samples in its range, and a range of
/// under four scrapes swings with every missed one: rules use 4 minutes or more, dashboards
/// `$__rate_interval` (Grafana's: at least four scrape intervals of the data source) or that.
#[test]
fn no_range_is_shorter_than_four_one_minute_scrapes() {
    assert_eq!(
        ranges("rate(a[5m]) / b{x=\"[1m]\"}[$__rate_interval]"),
        ["5m", "$__rate_interval"]
    );
    assert_eq!(seconds("1h30m"), 5400);
    let mut checked = 0;
    let rules = std::fs::read_to_string(repo(RULES)).unwrap();
    for expr in rule_exprs(&rules) {
        for range in ranges(&expr) {
            assert!(seconds(&range) >= 240, "{RULES}: [{range}] in {expr}");
            checked += 1;
        }
    }
    for (file, dash) in dashboards() {
        for p in panels(&dash) {
            for expr in exprs(p) {
                for range in ranges(&expr) {
                    let ok = range == "$__rate_interval" || seconds(&range) >= 240;
                    assert!(ok, "{file}: {}: [{range}] in {expr}", p["title"]);
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 40, "only {checked} ranges");
}

/// The `label op "value"` matchers of a selector's matchers text, as (label, op, value),
/// the value unquoted.
fn label_matchers(text: &str) -> Vec<(String, String, String)> {
    let mut pieces = Vec::new();
    let (mut piece, mut in_string, mut escaped) = (String::new(), false, false);
    for c in text.chars() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
        } else if c == ',' {
            pieces.push(std::mem::take(&mut piece));
            continue;
        }
        piece.push(c);
    }
    pieces.push(piece);
    pieces
        .iter()
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .map(|p| {
            let at = p
                .find(['=', '!'])
                .unwrap_or_else(|| panic!("no operator in {p}"));
            let (label, rest) = p.split_at(at);
            let op = ["=~", "!~", "!=", "="]
                .into_iter()
                .find(|op| rest.starts_with(op))
                .unwrap();
            let value = rest[op.len()..].trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or_else(|| panic!("unquoted value in {p}"))
                .replace("\\\"", "\"");
            (label.trim().to_owned(), op.to_owned(), value)
        })
        .collect()
}

/// Every series of an exposition by name: its labels and the values each takes.
fn series_labels(text: &str) -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let mut out: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let Some(open) = line.find('{') else {
            let name = line.split(' ').next().unwrap();
            out.entry(name.to_owned()).or_default();
            continue;
        };
        let labels = out.entry(line[..open].to_owned()).or_default();
        let close = line.rfind('}').unwrap();
        for (label, _, value) in label_matchers(&line[open + 1..close]) {
            labels.entry(label).or_default().insert(value);
        }
    }
    out
}

#[test]
fn the_matcher_scan_reads_labels_operators_and_values() {
    assert_eq!(
        label_matchers(r#"job=~"$job", reason!~"a|b", x="y,\"z\"", method != "INVITE""#),
        [
            ("job", "=~", "$job"),
            ("reason", "!~", "a|b"),
            ("x", "=", "y,\"z\""),
            ("method", "!=", "INVITE"),
        ]
        .map(|(l, o, v)| (l.to_owned(), o.to_owned(), v.to_owned()))
    );
}

/// Every metric a dashboard or a rule selects is exported by a running engine, and so is every
/// label value they match on (series exist at zero from start-up for every known value): a
/// renamed metric or label value fails here, not silently in Grafana or Alertmanager. A regex
/// matcher must be a plain `a|b|c` of such values.
#[test]
fn every_metric_and_label_value_a_dashboard_or_rule_names_is_exported_by_a_running_engine() {
    let e = common::spawn_engine_with(&[], &[]);
    let text = common::raw_get(e.metrics, "/metrics");
    let families: BTreeMap<&str, &str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .collect();
    let exported = |name: &str| {
        families.contains_key(name)
            || ["_bucket", "_sum", "_count"].iter().any(|s| {
                name.strip_suffix(s)
                    .is_some_and(|base| families.get(base) == Some(&"histogram"))
            })
    };
    let series = series_labels(&text);
    let mut named: Vec<(String, Selector)> = Vec::new();
    for (file, dash) in dashboards() {
        for p in panels(&dash) {
            for expr in exprs(p) {
                named.extend(selectors(&expr).into_iter().map(|s| (file.clone(), s)));
            }
        }
    }
    let rules = std::fs::read_to_string(repo(RULES)).unwrap();
    let exprs = rule_exprs(&rules);
    assert_eq!(exprs.len(), alert_names(&rules).len(), "{exprs:?}");
    for expr in &exprs {
        // `up` is Prometheus's own (the scrape's health), not the engine's.
        named.extend(
            selectors(expr)
                .into_iter()
                .filter(|(n, _)| n != "up")
                .map(|s| (RULES.to_owned(), s)),
        );
    }
    assert!(named.len() > 50, "{named:?}");
    let missing: Vec<_> = named.iter().filter(|(_, (n, _))| !exported(n)).collect();
    assert!(missing.is_empty(), "named but not exported: {missing:?}");

    let mut checked = 0;
    let mut unknown = Vec::new();
    for (file, (name, matchers)) in &named {
        let labels = series.get(name);
        for (label, op, value) in label_matchers(matchers.as_deref().unwrap_or("")) {
            // `job` and `instance` are the scrape's target labels; `$...` is a variable.
            if label == "job" || label == "instance" || value.contains('$') {
                continue;
            }
            let words: Vec<&str> = match op.as_str() {
                "=" | "!=" => vec![value.as_str()],
                _ => value.split('|').collect(),
            };
            for word in words {
                assert!(
                    !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "{file}: {name}: {label}{op}\"{value}\" is not a plain alternation of values"
                );
                checked += 1;
                let known = labels
                    .and_then(|l| l.get(&label))
                    .is_some_and(|values| values.contains(word));
                if !known {
                    unknown.push(format!("{file}: {name}{{{label}{op}\"{value}\"}}: {word}"));
                }
            }
        }
    }
    assert!(checked >= 10, "only {checked} label values checked");
    assert!(
        unknown.is_empty(),
        "label values no series has: {unknown:#?}"
    );

    // ActiveflowStorageDown's guard: an engine without storage exports `storage` and
    // `storage_writer` both at 0 (and the rule stays silent); with storage, both at 1.
    let up = |text: &str, part: &str| {
        common::metric(
            text,
            &format!("activeflow_component_up{{component=\"{part}\"}}"),
        )
    };
    assert_eq!(up(&text, "storage"), Some(1.0));
    assert_eq!(up(&text, "storage_writer"), Some(1.0));
    let bare = common::spawn_engine_with(&[], &[("ACTIVEFLOW_STORAGE_PATH", "")]);
    let bare_text = common::raw_get(bare.metrics, "/metrics");
    assert_eq!(up(&bare_text, "storage"), Some(0.0));
    assert_eq!(up(&bare_text, "storage_writer"), Some(0.0));
    e.reaper.assert_no_panic();
    bare.reaper.assert_no_panic();
}

fn promtool(args: &[&str]) -> (bool, String) {
    common::require("promtool");
    let out = Command::new("promtool")
        .args(args)
        .current_dir(repo("grafana/alerts"))
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    let rules = repo(RULES);
    let (ok, out) = promtool(&["check", "rules", rules.to_str().unwrap()]);
    assert!(ok, "promtool check rules:\n{out}");
    let names = alert_names(&std::fs::read_to_string(&rules).unwrap());
    assert!(
        out.contains(&format!("SUCCESS: {} rules found", names.len())),
        "{out}"
    );
    for wanted in [
        "ActiveflowOverload",
        "ActiveflowRtpPortsNearlyFull",
        "ActiveflowStorageDown",
        "ActiveflowStorageWriteErrors",
        "ActiveflowStorageWritesRejected",
        "ActiveflowWebhookFailures",
        "ActiveflowDown",
        "ActiveflowClusterNodeLost",
    ] {
        assert!(
            names.iter().any(|n| n == wanted),
            "no {wanted} in {names:?}"
        );
    }
    // Every alert has a severity and both annotations.
    let text = std::fs::read_to_string(&rules).unwrap();
    for block in text.split("- alert:").skip(1) {
        for key in ["severity:", "summary:", "description:"] {
            assert!(block.contains(key), "no {key} in{block}");
        }
    }
    let tests = repo(RULE_TESTS);
    let (ok, out) = promtool(&["test", "rules", tests.to_str().unwrap()]);
    assert!(ok, "promtool test rules:\n{out}");
    // Each alert is exercised by the unit tests, firing and silent.
    let unit_tests = std::fs::read_to_string(&tests).unwrap();
    for name in &names {
        let cases = unit_tests.matches(&format!("alertname: {name}\n")).count();
        assert!(cases >= 2, "{name}: {cases} unit test cases");
    }
    // And the shipped scrape config loads the rules.
    let config = repo("grafana/prometheus.yml");
    let (ok, out) = promtool(&["check", "config", config.to_str().unwrap()]);
    assert!(
        ok && out.contains("1 rule files found"),
        "promtool check config:\n{out}"
    );
}

/// The shipped rules, as a real Prometheus evaluating them every second loads them; for this
/// test only, `ActiveflowDown` and `ActiveflowStorageDown` wait 2 s instead of two minutes
/// (`for: 2m` → `for: 2s`) so that killing the engine or locking its database makes them fire
/// within the test. Every other rule is as shipped.
fn rules_for_test() -> String {
    let mut text = std::fs::read_to_string(repo(RULES)).unwrap();
    for name in ["ActiveflowDown", "ActiveflowStorageDown"] {
        let marker = format!("- alert: {name}\n");
        let (before, rule) = text.split_once(&marker).unwrap();
        let (rule, after) = rule.split_once("- alert:").unwrap_or((rule, ""));
        assert!(rule.contains("for: 2m"), "{rule}");
        let rest = match after.is_empty() {
            true => String::new(),
            false => format!("- alert:{after}"),
        };
        text = format!(
            "{before}{marker}{}{rest}",
            rule.replace("for: 2m", "for: 2s")
        );
    }
    text
}

/// The alert `name` in Prometheus's `/api/v1/alerts`, in `state` (`pending` or `firing`).
fn alert(prometheus: &common::prometheus::Prometheus, name: &str, state: &str) -> Option<Value> {
    prometheus.api("/api/v1/alerts")?["data"]["alerts"]
        .as_array()?
        .iter()
        .find(|a| a["labels"]["alertname"] == name && a["state"] == state)
        .cloned()
}

#[test]
fn a_real_prometheus_evaluates_every_rule_and_fires_storage_down_and_engine_down() {
    common::require("prometheus");
    let db = common::temp_db_path();
    let mut e = common::spawn_engine_with(&[], &[("ACTIVEFLOW_STORAGE_PATH", &db)]);
    let shipped = std::fs::read_to_string(repo(RULES)).unwrap();
    let names = alert_names(&shipped);
    let prometheus = common::prometheus::start_with_rules(
        e.metrics,
        &[("activeflow.rules.yml", rules_for_test())],
    );

    // Every group loaded, every rule evaluated without error (twice, so on scraped data).
    let groups = wait_until("every rule evaluated", Duration::from_secs(90), || {
        let rules = prometheus.api("/api/v1/rules")?;
        let groups = rules["data"]["groups"].as_array()?.clone();
        let evaluated = |r: &Value| {
            r["health"] == "ok"
                && r["lastEvaluation"]
                    .as_str()
                    .is_some_and(|t| !t.starts_with("0001-"))
        };
        let all: Vec<&Value> = groups
            .iter()
            .flat_map(|g| g["rules"].as_array().into_iter().flatten())
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        let up = prometheus.query("up{job=\"activeflow\"}")["data"]["result"][0]["value"][1] == "1";
        (up && all.len() == names.len() && all.iter().all(|r| evaluated(r))).then_some(groups)
    });
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(groups[0]["name"], "activeflow");
    let loaded: Vec<&str> = groups[0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(loaded, names);
    for r in groups[0]["rules"].as_array().unwrap() {
        assert_eq!(r["health"], "ok", "{r}");
        assert!(r["lastError"].as_str().unwrap_or("").is_empty(), "{r}");
        assert_eq!(r["type"], "alerting", "{r}");
    }
    // A healthy, idle engine: nothing pending or firing (but ActiveflowDown, which a scrape
    // slower than its 1 s timeout on a loaded machine may set pending).
    let alerts = prometheus.api("/api/v1/alerts").unwrap();
    let raised: Vec<&Value> = alerts["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["labels"]["alertname"] != "ActiveflowDown")
        .collect();
    assert!(raised.is_empty(), "{alerts}");
    let instance = e.metrics.to_string();

    // Another connection holds the database's write lock: the next write (an activeflow
    // created) fails its commit, `storage` goes down with the writer still up, and
    // ActiveflowStorageDown fires; the lock goes, the held-back write commits, and it clears.
    let holder = rusqlite::Connection::open(&db).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let body = serde_json::json!({"actions": [{"type": "stop"}]}).to_string();
    let (status, created) = common::http(e.api, "POST", "/v1/activeflows", Some(&body));
    assert_eq!(status, 200, "{created}");
    let firing = wait_until(
        "ActiveflowStorageDown firing",
        Duration::from_secs(60),
        || {
            std::thread::sleep(Duration::from_millis(200));
            alert(&prometheus, "ActiveflowStorageDown", "firing")
        },
    );
    assert_eq!(firing["labels"]["instance"], instance.as_str(), "{firing}");
    assert_eq!(firing["labels"]["severity"], "critical", "{firing}");
    holder.execute_batch("ROLLBACK").unwrap();
    wait_until(
        "ActiveflowStorageDown cleared",
        Duration::from_secs(60),
        || {
            std::thread::sleep(Duration::from_millis(200));
            let alerts = prometheus.api("/api/v1/alerts")?;
            let raised = alerts["data"]["alerts"]
                .as_array()?
                .iter()
                .any(|a| a["labels"]["alertname"] == "ActiveflowStorageDown");
            (!raised).then_some(())
        },
    );

    // The engine dies: the scrape fails, `up` turns 0, and the alert fires.
    e.reaper.0.kill().unwrap();
    e.reaper.0.wait().unwrap();
    let firing = wait_until("ActiveflowDown firing", Duration::from_secs(60), || {
        std::thread::sleep(Duration::from_millis(200));
        alert(&prometheus, "ActiveflowDown", "firing")
    });
    assert_eq!(firing["labels"]["instance"], instance.as_str(), "{firing}");
    assert_eq!(firing["labels"]["severity"], "critical", "{firing}");
    assert_eq!(
        firing["annotations"]["summary"],
        format!("activeflow {instance} is down"),
        "{firing}"
    );
}

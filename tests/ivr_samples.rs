//! The sample flows load without errors.
mod ivr_support;

use std::path::Path;

use switchboard::ivr::load_flows;

#[test]
fn sample_flows_are_valid() {
    let (flows, errors) = load_flows(Path::new("ivr-flows"), &ivr_support::known());
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert!(errors.is_empty(), "{}", text.join("\n"));
    let names: Vec<&str> = flows.names().collect();
    assert_eq!(names, ["after_hours", "csat", "identify", "main"]);
    assert!(flows.calendar("office").is_some());
    assert_eq!(
        flows
            .flow_for_file(Path::new("ivr-flows/main.yaml"))
            .map(|f| f.name()),
        Some("main")
    );
}

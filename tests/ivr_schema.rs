//! `schema/flow.schema.json` accepts every sample flow and rejects broken ones.
mod ivr_support;

use std::path::Path;

use serde_json::Value;

fn schema() -> Value {
    let text = std::fs::read_to_string("ivr-flows/schema/flow.schema.json").expect("schema exists");
    serde_json::from_str(&text).expect("schema is JSON")
}

fn yaml_as_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("file exists");
    serde_saphyr::from_str(&text).expect("valid YAML")
}

#[test]
fn sample_flows_match_the_schema() {
    let schema = schema();
    let mut checked = 0;
    for entry in std::fs::read_dir("ivr-flows").unwrap() {
        let path = entry.unwrap().path();
        let is_flow = path.extension().is_some_and(|e| e == "yaml")
            && path.file_name().is_some_and(|n| n != "calendars.yaml");
        if !is_flow {
            continue;
        }
        let errors = ivr_support::schema::validate(&schema, &yaml_as_json(&path));
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
        checked += 1;
    }
    assert_eq!(checked, 4);
}

#[test]
fn broken_flows_are_rejected_by_the_schema() {
    let schema = schema();
    // Structurally broken flows; graph or name errors (unknown queue, loops...)
    // are beyond what a schema can say.
    for (file, expected) in [
        ("unknown_type.yaml", "/steps/hello"),
        ("unknown_field.yaml", "/steps/ask"),
        ("missing_start.yaml", "missing required property `start`"),
        ("missing_next.yaml", "/steps/hello"),
        ("many.yaml", "/steps/bye"),
    ] {
        let path = Path::new("tests/ivr_broken").join(file);
        let errors = ivr_support::schema::validate(&schema, &yaml_as_json(&path));
        assert!(
            errors.iter().any(|e| e.contains(expected)),
            "{file}: expected an error mentioning {expected}, got {errors:#?}"
        );
    }
}

#[test]
fn schema_checker_rejects_wrong_shapes() {
    let schema = schema();
    let flow: Value = serde_json::json!({
        "name": "x",
        "start": "a",
        "steps": {
            "a": { "type": "menu", "prompt": "Hi", "choices": { "c": { "dtmf": "12", "next": "a" } }, "default": "a" },
            "b": { "type": "transfer", "user": "alice", "number": "123" },
            "c": { "type": "queue" }
        }
    });
    let errors = ivr_support::schema::validate(&schema, &flow);
    for path in ["/steps/a", "/steps/b", "/steps/c"] {
        assert!(
            errors.iter().any(|e| e.starts_with(path)),
            "{path}: {errors:#?}"
        );
    }
}

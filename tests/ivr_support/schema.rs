//! A checker for the subset of JSON Schema (2020-12) that `schema/flow.schema.json`
//! uses. Any other keyword makes it panic, so the schema cannot silently grow
//! past what is tested.

use serde_json::Value;

const ANNOTATIONS: [&str; 8] = [
    "$schema",
    "$id",
    "$defs",
    "$comment",
    "title",
    "description",
    "default",
    "examples",
];

/// Validate `instance` against `schema` (whose `$ref`s resolve in itself);
/// returns the problems, each prefixed with its instance path.
pub fn validate(schema: &Value, instance: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(schema, schema, instance, "", &mut errors);
    errors
}

fn type_matches(name: &str, v: &Value) -> bool {
    match name {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        other => panic!("unknown type `{other}` in schema"),
    }
}

fn json_eq(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn resolve<'a>(root: &'a Value, reference: &str) -> &'a Value {
    let pointer = reference
        .strip_prefix('#')
        .unwrap_or_else(|| panic!("only local $ref are supported: {reference}"));
    root.pointer(pointer)
        .unwrap_or_else(|| panic!("unresolved $ref {reference}"))
}

fn check(root: &Value, schema: &Value, v: &Value, path: &str, errors: &mut Vec<String>) {
    let Value::Object(keywords) = schema else {
        match schema {
            Value::Bool(true) => return,
            Value::Bool(false) => {
                errors.push(format!("{path}: not allowed"));
                return;
            }
            _ => panic!("a schema must be an object or boolean"),
        }
    };
    let at = if path.is_empty() { "/" } else { path };
    for (key, arg) in keywords {
        match key.as_str() {
            k if ANNOTATIONS.contains(&k) => {}
            "$ref" => check(root, resolve(root, arg.as_str().unwrap()), v, path, errors),
            "type" => {
                let ok = match arg {
                    Value::String(t) => type_matches(t, v),
                    Value::Array(ts) => ts.iter().any(|t| type_matches(t.as_str().unwrap(), v)),
                    _ => panic!("bad `type`"),
                };
                if !ok {
                    errors.push(format!("{at}: expected type {arg}, found {v}"));
                }
            }
            "enum" => {
                if !arg.as_array().unwrap().iter().any(|e| json_eq(e, v)) {
                    errors.push(format!("{at}: {v} is not one of {arg}"));
                }
            }
            "const" => {
                if !json_eq(arg, v) {
                    errors.push(format!("{at}: expected {arg}, found {v}"));
                }
            }
            "properties" => {
                if let Value::Object(obj) = v {
                    for (name, sub) in arg.as_object().unwrap() {
                        if let Some(value) = obj.get(name) {
                            check(root, sub, value, &format!("{path}/{name}"), errors);
                        }
                    }
                }
            }
            "required" => {
                if let Value::Object(obj) = v {
                    for name in arg.as_array().unwrap() {
                        let name = name.as_str().unwrap();
                        if !obj.contains_key(name) {
                            errors.push(format!("{at}: missing required property `{name}`"));
                        }
                    }
                }
            }
            "additionalProperties" => {
                if let Value::Object(obj) = v {
                    let known = keywords
                        .get("properties")
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default();
                    for (name, value) in obj {
                        if known.contains_key(name) {
                            continue;
                        }
                        if arg == &Value::Bool(false) {
                            errors.push(format!("{at}: unexpected property `{name}`"));
                        } else {
                            check(root, arg, value, &format!("{path}/{name}"), errors);
                        }
                    }
                }
            }
            "minProperties" => {
                if let Value::Object(obj) = v {
                    if (obj.len() as u64) < arg.as_u64().unwrap() {
                        errors.push(format!("{at}: needs at least {arg} properties"));
                    }
                }
            }
            "items" => {
                if let Value::Array(items) = v {
                    for (i, item) in items.iter().enumerate() {
                        check(root, arg, item, &format!("{path}/{i}"), errors);
                    }
                }
            }
            "minItems" => {
                if let Value::Array(items) = v {
                    if (items.len() as u64) < arg.as_u64().unwrap() {
                        errors.push(format!("{at}: needs at least {arg} items"));
                    }
                }
            }
            "minLength" => {
                if let Value::String(s) = v {
                    if (s.chars().count() as u64) < arg.as_u64().unwrap() {
                        errors.push(format!("{at}: shorter than {arg}"));
                    }
                }
            }
            "minimum" | "maximum" => {
                if let (Some(x), Some(bound)) = (v.as_f64(), arg.as_f64()) {
                    let bad = if key == "minimum" {
                        x < bound
                    } else {
                        x > bound
                    };
                    if bad {
                        errors.push(format!("{at}: {x} is out of range ({key} {bound})"));
                    }
                }
            }
            "anyOf" | "oneOf" => {
                let branches = arg.as_array().unwrap();
                let passing = branches
                    .iter()
                    .filter(|b| {
                        let mut sub = Vec::new();
                        check(root, b, v, path, &mut sub);
                        sub.is_empty()
                    })
                    .count();
                let ok = if key == "anyOf" {
                    passing >= 1
                } else {
                    passing == 1
                };
                if !ok {
                    errors.push(format!("{at}: matches {passing} of the {key} alternatives"));
                }
            }
            other => panic!("schema keyword `{other}` is not supported by the test checker"),
        }
    }
}

//! YAML as kubectl prints it (block style, sorted keys, lists at their key's indentation), safe
//! to re-apply: a string that a YAML 1.1 reader (go-yaml, PyYAML) would take for something else
//! (`on`, `yes`, `No`, `~`, `12:30`, `1_000`, `0x1F`, `1e3`, `2001-12-14`) is double-quoted.

use serde_json::Value;

/// `value` as a YAML document.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => mapping(map, 0, &mut out),
        Value::Array(items) if !items.is_empty() => sequence(items, 0, &mut out),
        scalar => {
            out.push_str(&inline(scalar));
            out.push('\n');
        }
    }
    out
}

fn mapping(map: &serde_json::Map<String, Value>, indent: usize, out: &mut String) {
    for (key, value) in map {
        out.push_str(&" ".repeat(indent));
        out.push_str(&string(key));
        out.push(':');
        match value {
            Value::Object(inner) if !inner.is_empty() => {
                out.push('\n');
                mapping(inner, indent + 2, out);
            }
            // Lists sit at their key's indentation, as kubectl prints them.
            Value::Array(items) if !items.is_empty() => {
                out.push('\n');
                sequence(items, indent, out);
            }
            scalar => {
                out.push(' ');
                out.push_str(&inline(scalar));
                out.push('\n');
            }
        }
    }
}

fn sequence(items: &[Value], indent: usize, out: &mut String) {
    for item in items {
        out.push_str(&" ".repeat(indent));
        out.push('-');
        match item {
            Value::Object(inner) if !inner.is_empty() => {
                // The first key on the dash's line, the rest under it.
                let mut nested = String::new();
                mapping(inner, indent + 2, &mut nested);
                out.push(' ');
                out.push_str(nested.trim_start());
            }
            Value::Array(inner) if !inner.is_empty() => {
                out.push('\n');
                sequence(inner, indent + 2, out);
            }
            scalar => {
                out.push(' ');
                out.push_str(&inline(scalar));
                out.push('\n');
            }
        }
    }
}

fn inline(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string(s),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

/// A string, plain where every YAML 1.1 reader takes it for that string, else double-quoted.
fn string(text: &str) -> String {
    if plain_is_safe(text) {
        return text.to_string();
    }
    // A JSON string is a valid YAML double-quoted scalar with the same escapes.
    serde_json::to_string(text).unwrap_or_else(|_| format!("{text:?}"))
}

/// The words YAML 1.1 reads as booleans or null.
const YAML_1_1_WORDS: &[&str] = &[
    "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE", "false", "False",
    "FALSE", "on", "On", "ON", "off", "Off", "OFF", "null", "Null", "NULL", "~",
];

fn plain_is_safe(text: &str) -> bool {
    let Some(first) = text.chars().next() else {
        return false;
    };
    if YAML_1_1_WORDS.contains(&text) || text.ends_with(' ') {
        return false;
    }
    // Letters, digits and a few marks that mean nothing to YAML; no ':' or '#' at all, so no
    // mapping, comment, sexagesimal number or time can hide in a plain scalar.
    let ordinary = |c: char| {
        c.is_ascii_alphanumeric()
            || matches!(c, '_' | '.' | '/' | '-' | ' ' | '=' | '+' | '@' | ',' | '(' | ')')
    };
    if !text.chars().all(ordinary) || !(first.is_ascii_alphanumeric() || first == '_' || first == '/') {
        return false;
    }
    // What starts like a number, a date or `.inf` must hold a letter no number has.
    let numeric =
        |c: char| c.is_ascii_hexdigit() || matches!(c, '_' | '.' | '+' | '-' | 'x' | 'X' | 'o' | 'O');
    !(first.is_ascii_digit() && text.chars().all(numeric))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ambiguous_strings_are_quoted_and_ordinary_ones_are_not() {
        for quoted in [
            "on",
            "yes",
            "No",
            "~",
            "12:30",
            "1_000",
            "0x1F",
            "1e3",
            "2001-12-14",
            "",
            " lead",
            "trail ",
            "a: b",
            "#x",
            "-1",
            ".5",
            "null",
            "[x]",
            "*alias",
            "multi\nline",
        ] {
            assert!(!plain_is_safe(quoted), "{quoted:?} must be quoted");
        }
        for plain in [
            "nginx",
            "100m",
            "1Gi",
            "app.kubernetes.io/name",
            "/registry/pods",
            "kube-system",
            "v1",
        ] {
            assert!(plain_is_safe(plain), "{plain:?} may stay plain");
        }
    }

    #[test]
    fn documents_are_laid_out_as_kubectl_does() {
        let value = serde_json::json!({
            "kind": "Pod",
            "metadata": {"labels": {"app": "web"}, "name": "x"},
            "spec": {"containers": [{"image": "nginx", "name": "web", "ports": [{"containerPort": 80}]}]},
            "status": {}
        });
        assert_eq!(
            to_yaml(&value),
            "kind: Pod\nmetadata:\n  labels:\n    app: web\n  name: x\nspec:\n  containers:\n  - image: nginx\n    name: web\n    ports:\n    - containerPort: 80\nstatus: {}\n"
        );
    }
}

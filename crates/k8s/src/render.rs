//! A stored object as the JSON kubectl prints: protobuf read with the newest schema that knows
//! its kind, with the JSON rules the protobuf form does not carry (k8s-decoding.md §1.5): times,
//! durations, quantities, int-or-string, raw JSON, inlined structs and renamed fields.

use base64::Engine;
use prost_reflect::{DynamicMessage, MapKey, MessageDescriptor, ReflectMessage, Value as Field};
use serde_json::{Map, Value};

use crate::envelope::{Envelope, StoredValue, classify};
use crate::schema::Schemas;
use crate::{Error, Result};

/// A decoded value: the object, the schema that read it, and what it could not read fully.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub object: Value,
    /// The Kubernetes minor whose schema read a protobuf value (`None` for JSON).
    pub schema: Option<&'static str>,
    /// What the object holds that was not rendered (fields no schema knows), one line each.
    pub findings: Vec<String>,
}

/// Decodes a stored value (as `etcdctl get --print-value-only` gives it) into the object the
/// API server serves for it. Encrypted and CBOR values are errors that say so; the caller
/// decrypts first.
pub fn decode(value: &[u8]) -> Result<Decoded> {
    let mut decoded = decode_stored(value)?;
    crate::served::as_served(&mut decoded.object);
    Ok(decoded)
}

/// Decodes a stored value into the object exactly as stored, without what the API server
/// changes on read (Kubernetes' serializer fixtures are that form).
pub fn decode_stored(value: &[u8]) -> Result<Decoded> {
    let mut decoded = decode_nested(value, 0)?;
    // Findings quote the value's own names: one line each, no terminal escapes.
    for finding in &mut decoded.findings {
        *finding = crate::envelope::printable(finding.as_bytes());
    }
    Ok(decoded)
}

/// How deep objects may nest inside raw fields (a RawExtension holding an object holding ...):
/// far beyond what Kubernetes writes, and a bound on recursion for any input.
const MAX_NESTING: usize = 8;

/// What rendering one object carries along.
struct Context {
    schema: &'static str,
    findings: Vec<String>,
    /// How many objects this one is nested in.
    nesting: usize,
}

fn decode_nested(value: &[u8], nesting: usize) -> Result<Decoded> {
    match classify(value)? {
        StoredValue::Protobuf(envelope) => decode_protobuf(&envelope, nesting),
        StoredValue::Json(text) => {
            let object: Value = serde_json::from_slice(text).map_err(|e| Error::Json {
                message: e.to_string(),
            })?;
            Ok(Decoded {
                object,
                schema: None,
                findings: Vec::new(),
            })
        }
        StoredValue::Cbor(_) => Err(Error::Unsupported {
            what: "a CBOR value (Kubernetes' CBOR serializer) is not supported yet".into(),
        }),
        StoredValue::Encrypted {
            provider, key_name, ..
        } => Err(Error::Unsupported {
            what: format!("the value is encrypted at rest ({provider}, key {key_name})"),
        }),
        StoredValue::Other(_) => Err(Error::Unsupported {
            what: "not a Kubernetes value (neither protobuf, JSON, CBOR nor encrypted)".into(),
        }),
    }
}

fn decode_protobuf(envelope: &Envelope, nesting: usize) -> Result<Decoded> {
    let candidates = Schemas::embedded().messages(&envelope.api_version, &envelope.kind);
    let mut best: Option<Decoded> = None;
    let mut last_error = None;
    // The newest schema that reads it without leftovers; else the newest that reads it at all.
    for (schema, descriptor) in candidates {
        let message = match DynamicMessage::decode(descriptor, envelope.raw.as_slice()) {
            Ok(message) => message,
            Err(error) => {
                last_error = Some((schema, error.to_string()));
                continue;
            }
        };
        let mut cx = Context {
            schema,
            findings: Vec::new(),
            nesting,
        };
        let mut object = match message_value(&message, "", &mut cx) {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        object.insert("apiVersion".into(), Value::String(envelope.api_version.clone()));
        object.insert("kind".into(), Value::String(envelope.kind.clone()));
        let decoded = Decoded {
            object: Value::Object(object),
            schema: Some(schema),
            findings: cx.findings,
        };
        // Only the outermost object tries older schemas: nested ones doing so too would cost
        // schemas to the power of the depth.
        if decoded.findings.is_empty() || nesting > 0 {
            return Ok(decoded);
        }
        best.get_or_insert(decoded);
    }
    if let Some(decoded) = best {
        return Ok(decoded);
    }
    match last_error {
        Some((schema, message)) => Err(Error::Object {
            api_version: envelope.api_version.clone(),
            kind: envelope.kind.clone(),
            schema,
            message,
        }),
        // A kind no schema knows (removed before 1.30, or newer than 1.36): its envelope.
        None => Ok(Decoded {
            object: serde_json::json!({"apiVersion": envelope.api_version, "kind": envelope.kind}),
            schema: None,
            findings: vec![format!(
                "{}: only the envelope is shown, {} bytes of the object are not decoded",
                Error::UnknownKind {
                    api_version: envelope.api_version.clone(),
                    kind: envelope.kind.clone(),
                },
                envelope.raw.len()
            )],
        }),
    }
}

/// Fields whose struct Go embeds (its fields appear in the parent's JSON): (message, field).
const INLINED: &[(&str, &str)] = &[
    ("Volume", "volumeSource"),
    ("PersistentVolumeSpec", "persistentVolumeSource"),
    ("Probe", "handler"),
    ("EphemeralContainer", "ephemeralContainerCommon"),
    ("SecretProjection", "localObjectReference"),
    ("ConfigMapVolumeSource", "localObjectReference"),
    ("ConfigMapProjection", "localObjectReference"),
    ("ConfigMapKeySelector", "localObjectReference"),
    ("SecretKeySelector", "localObjectReference"),
    ("ConfigMapEnvSource", "localObjectReference"),
    ("SecretEnvSource", "localObjectReference"),
    ("IngressRule", "ingressRuleValue"),
    ("NamedRuleWithOperations", "ruleWithOperations"),
    ("RuleWithOperations", "rule"),
    ("DeviceClaimConfiguration", "deviceConfiguration"),
    ("DeviceAllocationConfiguration", "deviceConfiguration"),
    ("DeviceClassConfiguration", "deviceConfiguration"),
    ("Unknown", "typeMeta"),
];

/// Fields whose JSON name is not their protobuf name: (message, field, JSON name).
const RENAMED: &[(&str, &str, &str)] = &[
    ("Validation", "Expression", "expression"),
    ("Variable", "Name", "name"),
    ("Variable", "Expression", "expression"),
    ("ValidatingWebhookConfiguration", "Webhooks", "webhooks"),
    ("MutatingWebhookConfiguration", "Webhooks", "webhooks"),
    ("BoundObjectReference", "uID", "uid"),
    ("IngressClassParametersReference", "aPIGroup", "apiGroup"),
];

/// Messages that stand for a plain list of strings in JSON (`repeated string items`).
const STRING_LISTS: &[&str] = &["Verbs", "ExtraValue", "AttestationValue"];

fn message_value(message: &DynamicMessage, path: &str, cx: &mut Context) -> Value {
    let descriptor = message.descriptor();
    for unknown in message.unknown_fields() {
        cx.findings.push(format!(
            "{}: field {} of {} is not in schema {}; it is left out",
            if path.is_empty() { "." } else { path },
            unknown.number(),
            descriptor.full_name(),
            cx.schema
        ));
    }
    if let Some(special) = special_value(message, &descriptor, path, cx) {
        return special;
    }
    let mut object = Map::new();
    render_fields(message, &descriptor, path, cx, &mut object);
    Value::Object(object)
}

/// (message, field) pairs of a data file of `<message> <field>` lines.
type FieldSet = std::collections::HashSet<(&'static str, &'static str)>;

fn field_set(text: &'static str) -> FieldSet {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once(' '))
        .collect()
}

/// Fields Go's JSON leaves out when zero (`omitempty` scalars, `omitzero`): gogo-protobuf
/// stores them zero or not (see the data file).
fn omitted_when_zero(message: &str, field: &str) -> bool {
    static RULES: std::sync::OnceLock<FieldSet> = std::sync::OnceLock::new();
    RULES
        .get_or_init(|| field_set(include_str!("../data/omit-when-zero.txt")))
        .contains(&(message, field))
}

/// Slices and maps without `omitempty`: absent from the protobuf form when empty, `null` in
/// Go's JSON.
fn null_when_absent(message: &str, field: &str) -> bool {
    static RULES: std::sync::OnceLock<FieldSet> = std::sync::OnceLock::new();
    RULES
        .get_or_init(|| field_set(include_str!("../data/null-when-absent.txt")))
        .contains(&(message, field))
}

/// Whether a field holds its type's zero value (a message: every field it has is zero).
fn is_zero(value: &Field) -> bool {
    match value {
        Field::Bool(b) => !b,
        Field::I32(n) | Field::EnumNumber(n) => *n == 0,
        Field::I64(n) => *n == 0,
        Field::U32(n) => *n == 0,
        Field::U64(n) => *n == 0,
        Field::F32(n) => *n == 0.0,
        Field::F64(n) => *n == 0.0,
        Field::String(s) => s.is_empty(),
        Field::Bytes(b) => b.is_empty(),
        Field::List(items) => items.is_empty(),
        Field::Map(entries) => entries.is_empty(),
        Field::Message(message) => message.fields().all(|(_, value)| is_zero(value)),
    }
}

fn render_fields(
    message: &DynamicMessage,
    descriptor: &MessageDescriptor,
    path: &str,
    cx: &mut Context,
    object: &mut Map<String, Value>,
) {
    let name = descriptor.name();
    for (field, value) in message.fields() {
        let proto_name = field.name();
        if omitted_when_zero(descriptor.full_name(), proto_name) && is_zero(value) {
            continue;
        }
        if INLINED.contains(&(name, proto_name))
            && let Field::Message(inner) = value
        {
            if let Value::Object(fields) = message_value(inner, path, cx) {
                object.extend(fields);
            }
            continue;
        }
        let json_name = json_name_of(name, proto_name);
        let child = format!("{path}.{json_name}");
        object.insert(json_name.to_string(), field_value(value, &child, cx));
    }
    for field in descriptor.fields() {
        if !message.has_field(&field) && null_when_absent(descriptor.full_name(), field.name()) {
            object.insert(json_name_of(name, field.name()).to_string(), Value::Null);
        }
    }
}

/// The JSON name of `message`'s protobuf field `field`.
fn json_name_of<'a>(message: &str, field: &'a str) -> &'a str {
    RENAMED
        .iter()
        .find(|(renamed, proto, _)| *renamed == message && *proto == field)
        .map_or(field, |(_, _, json)| json)
}

fn field_value(value: &Field, path: &str, cx: &mut Context) -> Value {
    match value {
        Field::Bool(b) => Value::Bool(*b),
        Field::I32(n) => Value::from(*n),
        Field::I64(n) => Value::from(*n),
        Field::U32(n) => Value::from(*n),
        Field::U64(n) => Value::from(*n),
        Field::F32(n) => Value::from(f64::from(*n)),
        Field::F64(n) => Value::from(*n),
        Field::String(s) => Value::String(s.clone()),
        Field::Bytes(bytes) => Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
        Field::EnumNumber(n) => Value::from(*n),
        Field::Message(message) => message_value(message, path, cx),
        Field::List(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(index, item)| field_value(item, &format!("{path}[{index}]"), cx))
                .collect(),
        ),
        Field::Map(entries) => {
            let mut object = Map::new();
            for (key, item) in entries {
                let key = match key {
                    MapKey::String(s) => s.clone(),
                    MapKey::Bool(b) => b.to_string(),
                    MapKey::I32(n) => n.to_string(),
                    MapKey::I64(n) => n.to_string(),
                    MapKey::U32(n) => n.to_string(),
                    MapKey::U64(n) => n.to_string(),
                };
                let child = format!("{path}.{key}");
                object.insert(key, field_value(item, &child, cx));
            }
            Value::Object(object)
        }
    }
}

fn get<'a>(message: &'a DynamicMessage, name: &str) -> Option<std::borrow::Cow<'a, Field>> {
    message
        .has_field_by_name(name)
        .then(|| message.get_field_by_name(name))
        .flatten()
}

fn int(message: &DynamicMessage, name: &str) -> Option<i64> {
    match get(message, name)?.as_ref() {
        Field::I64(n) => Some(*n),
        Field::I32(n) => Some(i64::from(*n)),
        _ => None,
    }
}

fn bytes(message: &DynamicMessage, name: &str) -> Vec<u8> {
    match get(message, name).as_deref() {
        Some(Field::Bytes(bytes)) => bytes.to_vec(),
        _ => Vec::new(),
    }
}

/// Raw JSON held in bytes (RawExtension, FieldsV1, apiextensions JSON): inlined; empty is null.
fn raw_json(raw: &[u8], path: &str, cx: &mut Context) -> Value {
    if raw.is_empty() {
        return Value::Null;
    }
    if let Ok(value) = serde_json::from_slice(raw) {
        return value;
    }
    let nested = match cx.nesting < MAX_NESTING {
        // A nested object in the storage encoding.
        true => decode_nested(raw, cx.nesting + 1).map_err(|e| e.to_string()),
        false => Err(format!("objects nest deeper than {MAX_NESTING}")),
    };
    match nested {
        Ok(decoded) => {
            cx.findings.extend(decoded.findings);
            decoded.object
        }
        Err(error) => {
            cx.findings.push(format!(
                "{path}: raw content is neither JSON nor a Kubernetes object ({error}); shown as base64"
            ));
            Value::String(base64::engine::general_purpose::STANDARD.encode(raw))
        }
    }
}

/// The messages whose JSON is not their fields.
fn special_value(
    message: &DynamicMessage,
    descriptor: &MessageDescriptor,
    path: &str,
    cx: &mut Context,
) -> Option<Value> {
    let full_name = descriptor.full_name();
    let value = match full_name {
        "apimachinery.pkg.apis.meta.v1.Time" => match int(message, "seconds") {
            Some(seconds) => timestamp(seconds, None),
            None => Value::Null,
        },
        "apimachinery.pkg.apis.meta.v1.MicroTime" => match int(message, "seconds") {
            Some(seconds) => timestamp(seconds, Some(int(message, "nanos").unwrap_or(0))),
            None => Value::Null,
        },
        "apimachinery.pkg.apis.meta.v1.Duration" => {
            Value::String(go_duration(int(message, "duration").unwrap_or(0)))
        }
        "apimachinery.pkg.api.resource.Quantity" => match get(message, "string").as_deref() {
            Some(Field::String(s)) => Value::String(s.clone()),
            _ => Value::String("0".into()),
        },
        "apimachinery.pkg.util.intstr.IntOrString" => match int(message, "type").unwrap_or(0) {
            0 => Value::from(int(message, "intVal").unwrap_or(0)),
            _ => match get(message, "strVal").as_deref() {
                Some(Field::String(s)) => Value::String(s.clone()),
                _ => Value::String(String::new()),
            },
        },
        "apimachinery.pkg.runtime.RawExtension" => raw_json(&bytes(message, "raw"), path, cx),
        "apimachinery.pkg.apis.meta.v1.FieldsV1" => raw_json(&bytes(message, "Raw"), path, cx),
        name if name.starts_with("apiextensions_apiserver.pkg.apis.apiextensions.") => {
            match descriptor.name() {
                "JSON" => raw_json(&bytes(message, "raw"), path, cx),
                "JSONSchemaPropsOrArray" => either(message, "schema", "jSONSchemas", path, cx),
                "JSONSchemaPropsOrBool" => either(message, "schema", "allows", path, cx),
                "JSONSchemaPropsOrStringArray" => either(message, "schema", "property", path, cx),
                _ => return None,
            }
        }
        _ if STRING_LISTS.contains(&descriptor.name()) && descriptor.fields().len() == 1 => {
            match get(message, "items") {
                Some(items) => field_value(&items, path, cx),
                None => Value::Array(Vec::new()),
            }
        }
        _ => return None,
    };
    Some(value)
}

/// The JSON of a one-of-two wrapper: the schema object when set, else the other form.
fn either(message: &DynamicMessage, schema_field: &str, other: &str, path: &str, cx: &mut Context) -> Value {
    match get(message, schema_field) {
        Some(value) => field_value(&value, path, cx),
        None => match get(message, other) {
            Some(value) => field_value(&value, path, cx),
            None => match message.descriptor().get_field_by_name(other) {
                Some(field) if field.is_list() => Value::Array(Vec::new()),
                _ => Value::Bool(false),
            },
        },
    }
}

/// RFC 3339 in UTC: seconds only for Time, microseconds for MicroTime.
fn timestamp(seconds: i64, nanos: Option<i64>) -> Value {
    let Ok(at) = time::OffsetDateTime::from_unix_timestamp(seconds) else {
        return Value::from(seconds);
    };
    let date = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    Value::String(match nanos {
        None => format!("{date}Z"),
        Some(nanos) => format!("{date}.{:06}Z", nanos.clamp(0, 999_999_999) / 1000),
    })
}

/// Go's `time.Duration.String()`: `1h0m0s`, `1m30s`, `1.5s`, `500ms`, `0s`.
fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    let fraction = |value: u64, unit: u64| -> String {
        let whole = value / unit;
        let rest = value % unit;
        if rest == 0 {
            return whole.to_string();
        }
        let digits = unit.to_string().len() - 1;
        let text = format!("{rest:0digits$}");
        format!("{whole}.{}", text.trim_end_matches('0'))
    };
    if n < 1_000 {
        return format!("{sign}{n}ns");
    }
    if n < 1_000_000 {
        return format!("{sign}{}µs", fraction(n, 1_000));
    }
    if n < 1_000_000_000 {
        return format!("{sign}{}ms", fraction(n, 1_000_000));
    }
    let seconds = fraction(n % 60_000_000_000, 1_000_000_000);
    let minutes = (n / 60_000_000_000) % 60;
    let hours = n / 3_600_000_000_000;
    match (hours, n / 60_000_000_000) {
        (0, 0) => format!("{sign}{seconds}s"),
        (0, _) => format!("{sign}{minutes}m{seconds}s"),
        _ => format!("{sign}{hours}h{minutes}m{seconds}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_go_prints_them() {
        for (nanos, text) in [
            (0, "0s"),
            (500_000_000, "500ms"),
            (1_500_000_000, "1.5s"),
            (90_000_000_000, "1m30s"),
            (3_600_000_000_000, "1h0m0s"),
            (1_500, "1.5µs"),
            (7, "7ns"),
            (-2_000_000_000, "-2s"),
        ] {
            assert_eq!(go_duration(nanos), text);
        }
    }

    fn field(number: u8, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![(number << 3) | 2];
        prost::encoding::encode_varint(bytes.len() as u64, &mut out);
        out.extend_from_slice(bytes);
        out
    }

    /// A ControllerRevision whose data (a RawExtension) holds `inner`, in the storage envelope.
    fn revision_holding(inner: &[u8]) -> Vec<u8> {
        let revision = field(2, &field(1, inner));
        let type_meta = [field(1, b"apps/v1"), field(2, b"ControllerRevision")].concat();
        [b"k8s\0".as_slice(), &field(1, &type_meta), &field(2, &revision)].concat()
    }

    #[test]
    fn objects_inside_raw_fields_are_decoded_to_a_bounded_depth() {
        let json = revision_holding(br#"{"spec":{"replicas":3}}"#);
        let decoded = decode(&json).unwrap();
        assert_eq!(decoded.object["data"]["spec"]["replicas"], 3);
        assert_eq!(decoded.object["kind"], "ControllerRevision");

        let mut value = revision_holding(b"{}");
        for _ in 0..20 {
            value = revision_holding(&value);
        }
        let decoded = decode(&value).unwrap();
        assert!(
            decoded.findings.iter().any(|f| f.contains("nest deeper than 8")),
            "{:?}",
            decoded.findings
        );
    }

    #[test]
    fn a_kind_no_schema_knows_is_shown_by_its_envelope_with_a_finding() {
        let type_meta = [field(1, b"policy/v1beta1"), field(2, b"PodSecurityPolicy")].concat();
        let value = [b"k8s\0".as_slice(), &field(1, &type_meta), &field(2, b"\x0a\x00")].concat();
        let decoded = decode(&value).unwrap();
        assert_eq!(
            decoded.object,
            serde_json::json!({"apiVersion": "policy/v1beta1", "kind": "PodSecurityPolicy"})
        );
        assert!(
            decoded.findings[0].contains("none of the schemas"),
            "{:?}",
            decoded.findings
        );
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(
            timestamp(1_199_149_261, None),
            Value::String("2008-01-01T01:01:01Z".into())
        );
        assert_eq!(
            timestamp(1_041_382_861, Some(3_000)),
            Value::String("2003-01-01T01:01:01.000003Z".into())
        );
    }
}

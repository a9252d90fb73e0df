//! The Kubernetes meaning of etcd values, offline: the storage envelope (`k8s\0` and a
//! runtime.Unknown), protobuf read through the Kubernetes API's own `generated.proto` schemas
//! (1.30 to 1.35, vendored under proto/), and the JSON kubectl prints for the object; values
//! encrypted at rest are decrypted with the API server's EncryptionConfiguration.
//! Pure and synchronous.

mod age;
mod encryption;
mod envelope;
mod render;
mod schema;
mod served;
mod yaml;

pub use age::human_age;
pub use encryption::{ConfigError, DecryptError, EncryptionConfig};
pub use envelope::{Envelope, StoredValue, classify};
pub use render::{Decoded, decode, decode_stored};
pub use schema::{SCHEMA_VERSIONS, Schemas};
pub use yaml::to_yaml;

/// Why a value cannot be read as a Kubernetes object.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The `k8s\0` envelope (runtime.Unknown) does not parse.
    #[error("not a Kubernetes protobuf envelope: {message}")]
    Envelope { message: String },
    /// The object inside does not parse with the schema of its kind.
    #[error("{api_version} {kind}: the object does not decode with schema {schema}: {message}")]
    Object {
        api_version: String,
        kind: String,
        schema: &'static str,
        message: String,
    },
    /// A JSON value that does not parse.
    #[error("not valid JSON: {message}")]
    Json { message: String },
    /// A kind no schema of this build knows.
    #[error("{api_version} {kind} is in none of the schemas this build knows (Kubernetes 1.30 to 1.36)")]
    UnknownKind { api_version: String, kind: String },
    /// A value this build cannot read.
    #[error("{what}")]
    Unsupported { what: String },
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

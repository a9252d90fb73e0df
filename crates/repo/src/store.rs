//! Storage through object_store: a local directory or `s3://bucket/prefix`, with keys relative to
//! the repository root. Nothing outside this module names object_store.

use std::path::PathBuf;
use std::sync::Arc;

use object_store::ClientOptions;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

use crate::open_uploads::MultipartLister;
use crate::{Error, Result};

/// Where a repository lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    /// `s3://bucket/prefix`.
    S3 {
        bucket: String,
        prefix: String,
    },
    /// `gs://bucket/prefix` (Google Cloud Storage).
    Gcs {
        bucket: String,
        prefix: String,
    },
    /// `az://container/prefix` (Azure Blob Storage).
    Azure {
        container: String,
        prefix: String,
    },
}

const SCHEMES: &str = "s3://bucket/prefix, gs://bucket/prefix or az://container/prefix";

impl Location {
    /// `s3://`, `gs://` or `az://` `bucket[/prefix]`, or a local path.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |reason: String| Error::Location {
            repo: text.to_string(),
            reason,
        };
        if let Some((scheme, rest)) = text.split_once("://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let (bucket, prefix) = (bucket.to_string(), prefix.trim_matches('/').to_string());
            if bucket.is_empty() {
                return Err(bad(format!("no bucket: give {SCHEMES}")));
            }
            return match scheme {
                "s3" => Ok(Location::S3 { bucket, prefix }),
                "gs" => Ok(Location::Gcs { bucket, prefix }),
                "az" => Ok(Location::Azure {
                    container: bucket,
                    prefix,
                }),
                _ => Err(bad(format!("unknown scheme; give a local path, {SCHEMES}"))),
            };
        }
        if text.is_empty() {
            return Err(bad(format!(
                "empty; give a path, {SCHEMES} (or set LIFEBOAT_REPO)"
            )));
        }
        Ok(Location::Local(PathBuf::from(text)))
    }
}

/// How to reach cloud storage, resolved by the caller from the environment and flags.
#[derive(Clone, Default)]
pub struct StorageSettings {
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub region: Option<String>,
    /// Custom S3 endpoint (path-style addressing is used with it).
    pub endpoint: Option<String>,
    /// Allow plain http to a non-loopback endpoint.
    pub allow_http: bool,
    /// Further object_store settings as the binary found them in `AWS_*`, `GOOGLE_*` and
    /// `AZURE_*` variables (`aws_session_token`, `aws_web_identity_token_file`, `aws_role_arn`,
    /// `aws_container_credentials_relative_uri`, `aws_metadata_endpoint`,
    /// `google_service_account`, `google_application_credentials`, `google_base_url`,
    /// `azure_storage_account_name`, `azure_storage_account_key`, `azure_client_id`,
    /// `azure_federated_token_file`, `azure_storage_endpoint`, ...): credentials work as for
    /// each provider's own tools.
    pub config: Vec<(String, String)>,
}

/// Settings [`StorageSettings`] has fields for; taken from those, not from `config`.
const EXPLICIT_KEYS: &[&str] = &[
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_region",
    "aws_default_region",
    "aws_endpoint",
    "aws_endpoint_url",
    "aws_allow_http",
];

/// Where the S3 client looks for credentials, for the error when it finds none.
const CREDENTIAL_SOURCES: &str = "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or --s3-access-key-id), \
AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN (EKS IRSA), AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or \
AWS_CONTAINER_CREDENTIALS_FULL_URI (ECS, EKS Pod Identity), and the instance metadata service";

impl std::fmt::Debug for StorageSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageSettings")
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("allow_http", &self.allow_http)
            .field(
                "config",
                &self.config.iter().map(|(key, _)| key).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Transient failures (5xx, 429, broken connections) are retried with exponential backoff.
fn retry() -> object_store::RetryConfig {
    object_store::RetryConfig {
        backoff: object_store::BackoffConfig::default(),
        max_retries: 5,
        retry_timeout: std::time::Duration::from_secs(120),
    }
}

/// Whether `endpoint` needs plain http, refusing it off this host unless `allow_http`.
fn plain_http(endpoint: &str, allow_http: bool) -> std::result::Result<bool, String> {
    if !endpoint.starts_with("http://") {
        return Ok(false);
    }
    if is_loopback_http(endpoint) || allow_http {
        return Ok(true);
    }
    Err(format!(
        "endpoint {endpoint} is plain http; use https, or --s3-allow-http if the network is trusted"
    ))
}

impl StorageSettings {
    fn configured(&self, key: &str) -> Option<&str> {
        self.config
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The `config` entries a builder understands.
    fn config_for<K: std::str::FromStr>(&self) -> impl Iterator<Item = (K, &str)> {
        self.config
            .iter()
            .filter(|(key, _)| !EXPLICIT_KEYS.contains(&key.as_str()))
            .filter_map(|(key, value)| Some((key.parse::<K>().ok()?, value.as_str())))
    }
}

/// What opening a Google or an Azure store has in common.
trait CloudBuilder: Sized {
    type Key: std::str::FromStr;
    fn retry(self, retry: object_store::RetryConfig) -> Self;
    fn config(self, key: Self::Key, value: &str) -> Self;
    fn client_options(self, options: ClientOptions) -> Self;
    fn build_store(self) -> object_store::Result<Arc<dyn ObjectStore>>;
}

/// The two builders' methods of the same names, behind the trait.
macro_rules! cloud_builder {
    ($builder:ty, $key:ty) => {
        impl CloudBuilder for $builder {
            type Key = $key;
            fn retry(self, retry: object_store::RetryConfig) -> Self {
                self.with_retry(retry)
            }
            fn config(self, key: Self::Key, value: &str) -> Self {
                self.with_config(key, value)
            }
            fn client_options(self, options: ClientOptions) -> Self {
                self.with_client_options(options)
            }
            fn build_store(self) -> object_store::Result<Arc<dyn ObjectStore>> {
                Ok(Arc::new(self.build()?))
            }
        }
    };
}

cloud_builder!(GoogleCloudStorageBuilder, GoogleConfigKey);
cloud_builder!(MicrosoftAzureBuilder, AzureConfigKey);

/// Where object_store sends bucket requests, worked out as its builder does: the configured
/// endpoint (with the bucket in its path unless virtual-hosted), else AWS's own.
fn bucket_url(builder: &AmazonS3Builder, bucket: &str) -> String {
    let region = builder
        .get_config_value(&AmazonS3ConfigKey::Region)
        .unwrap_or_else(|| "us-east-1".into());
    let virtual_hosted = builder
        .get_config_value(&AmazonS3ConfigKey::VirtualHostedStyleRequest)
        .is_some_and(|v| v == "true");
    let endpoint = builder
        .get_config_value(&AmazonS3ConfigKey::S3Endpoint)
        .or_else(|| builder.get_config_value(&AmazonS3ConfigKey::Endpoint));
    match (endpoint, virtual_hosted) {
        (Some(endpoint), true) => endpoint,
        (Some(endpoint), false) => format!("{}/{bucket}", endpoint.trim_end_matches('/')),
        (None, true) => format!("https://{bucket}.s3.{region}.amazonaws.com"),
        (None, false) => format!("https://s3.{region}.amazonaws.com/{bucket}"),
    }
}

fn is_loopback_http(endpoint: &str) -> bool {
    let rest = endpoint.strip_prefix("http://").unwrap_or_default();
    let host = rest.split(['/', ':']).next().unwrap_or_default();
    matches!(host, "127.0.0.1" | "localhost") || rest.starts_with("[::1]")
}

/// A repository's objects.
#[derive(Debug, Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    repo: String,
    /// The directory of a local repository, where uploads in progress are staging files.
    local_root: Option<PathBuf>,
    /// S3 with no credentials configured: the instance metadata service at this endpoint is
    /// the last resort, and failing to reach it means no credentials were found.
    metadata_fallback: Option<String>,
    /// Where this storage's credentials come from, for an access-denied error.
    credentials: &'static str,
    /// On S3: how to list and abort the multipart uploads object_store does not.
    multipart: Option<Arc<MultipartLister>>,
}

/// A stored object and when it was last written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    /// Relative to the repository root.
    pub key: String,
    pub size: u64,
    pub modified: std::time::SystemTime,
}

impl Storage {
    /// Connects to `location`; nothing is created until something is written.
    pub fn open(location: &Location, s3: &StorageSettings) -> Result<Self> {
        match location {
            Location::Local(path) => {
                let repo = path.display().to_string();
                let failed = |reason: String| Error::Location {
                    repo: repo.clone(),
                    reason,
                };
                // Rooted at `/` so nothing needs to exist before `repo init` writes the config.
                let absolute = std::path::absolute(path).map_err(|e| failed(e.to_string()))?;
                let Some(text) = absolute.to_str() else {
                    return Err(failed("the path is not valid UTF-8; choose another".into()));
                };
                let prefix = ObjectPath::parse(text.trim_start_matches('/'))
                    .map_err(|e| failed(format!("not usable as a repository path: {e}")))?;
                // fsync: a manifest must never reach the disk before the data it names.
                let store = LocalFileSystem::new().with_fsync(true);
                Ok(Self {
                    store: Arc::new(store),
                    prefix,
                    repo,
                    local_root: Some(absolute),
                    metadata_fallback: None,
                    credentials: "the directory's owner and mode",
                    multipart: None,
                })
            }
            Location::S3 { bucket, prefix } => {
                let repo = format!("s3://{bucket}/{prefix}");
                let failed = |reason: String| Error::Location {
                    repo: repo.clone(),
                    reason,
                };
                let mut builder = AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_retry(retry());
                for (key, value) in s3.config_for::<object_store::aws::AmazonS3ConfigKey>() {
                    builder = builder.with_config(key, value);
                }
                let metadata_fallback = (s3.access_key_id.is_none()
                    && s3.configured("aws_web_identity_token_file").is_none()
                    && s3.configured("aws_container_credentials_relative_uri").is_none()
                    && s3.configured("aws_container_credentials_full_uri").is_none())
                .then(|| {
                    s3.configured("aws_metadata_endpoint")
                        .unwrap_or("http://169.254.169.254")
                        .to_string()
                });
                if let Some(endpoint) = &s3.endpoint {
                    builder = builder
                        .with_endpoint(endpoint)
                        .with_virtual_hosted_style_request(false)
                        .with_allow_http(plain_http(endpoint, s3.allow_http).map_err(failed)?);
                }
                for (value, set) in [
                    (
                        &s3.access_key_id,
                        AmazonS3Builder::with_access_key_id as fn(AmazonS3Builder, String) -> AmazonS3Builder,
                    ),
                    (&s3.secret_access_key, AmazonS3Builder::with_secret_access_key),
                    (&s3.region, AmazonS3Builder::with_region),
                ] {
                    if let Some(value) = value {
                        builder = set(builder, value.clone());
                    }
                }
                let mut options = ClientOptions::new();
                for (key, value) in s3.config_for::<object_store::ClientConfigKey>() {
                    options = options.with_config(key, value);
                }
                if let Some(endpoint) = &s3.endpoint {
                    options = options.with_allow_http(plain_http(endpoint, s3.allow_http).map_err(failed)?);
                }
                let bucket_url = bucket_url(&builder, bucket);
                let region = builder
                    .get_config_value(&AmazonS3ConfigKey::Region)
                    .unwrap_or_else(|| "us-east-1".into());
                let store = Arc::new(builder.build().map_err(|e| failed(e.to_string()))?);
                let mut storage = Self::cloud(
                    store.clone(),
                    repo,
                    prefix,
                    metadata_fallback,
                    "the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or the role) and the bucket policy",
                );
                storage.multipart = Some(Arc::new(MultipartLister {
                    store,
                    bucket_url,
                    region,
                    options,
                }));
                Ok(storage)
            }
            Location::Gcs { bucket, prefix } => Self::open_cloud(
                GoogleCloudStorageBuilder::new().with_bucket_name(bucket),
                s3,
                "google_base_url",
                format!("gs://{bucket}/{prefix}"),
                prefix,
                "the credentials (GOOGLE_SERVICE_ACCOUNT, GOOGLE_APPLICATION_CREDENTIALS or the workload identity) and the bucket's IAM",
            ),
            Location::Azure { container, prefix } => Self::open_cloud(
                MicrosoftAzureBuilder::new().with_container_name(container),
                s3,
                "azure_storage_endpoint",
                format!("az://{container}/{prefix}"),
                prefix,
                "the credentials (AZURE_STORAGE_ACCOUNT_KEY, a SAS, AZURE_CLIENT_ID or the managed identity) and the container's roles",
            ),
        }
    }

    /// A Google or Azure store: `settings.config` applied, plain http only to loopback (or when
    /// allowed) at the endpoint configured under `endpoint_key`, retries as everywhere.
    fn open_cloud<B: CloudBuilder>(
        builder: B,
        settings: &StorageSettings,
        endpoint_key: &str,
        repo: String,
        prefix: &str,
        credentials: &'static str,
    ) -> Result<Self> {
        let failed = |reason: String| Error::Location {
            repo: repo.clone(),
            reason,
        };
        let mut builder = builder.retry(retry());
        for (key, value) in settings.config_for::<B::Key>() {
            builder = builder.config(key, value);
        }
        if let Some(url) = settings.configured(endpoint_key) {
            let http = plain_http(url, settings.allow_http).map_err(failed)?;
            builder = builder.client_options(ClientOptions::new().with_allow_http(http));
        }
        let store = builder.build_store().map_err(|e| failed(e.to_string()))?;
        Ok(Self::cloud(store, repo, prefix, None, credentials))
    }

    /// A new, empty repository place in this process's memory: for tests that need no server
    /// or directory. Gone when the last clone is dropped.
    pub fn in_memory() -> Self {
        Self::cloud(
            Arc::new(object_store::memory::InMemory::new()),
            "memory:".into(),
            "",
            None,
            "nothing (in memory)",
        )
    }

    /// The same storage with its root moved down to `prefix` (`a/b`), as another repository.
    pub fn within(&self, prefix: &str) -> Self {
        let mut moved = self.clone();
        moved.prefix = self.path(prefix);
        moved.repo = format!("{}/{prefix}", self.repo.trim_end_matches('/'));
        moved.local_root = self.local_root.as_ref().map(|root| root.join(prefix));
        moved
    }

    fn cloud(
        store: Arc<dyn ObjectStore>,
        repo: String,
        prefix: &str,
        metadata_fallback: Option<String>,
        credentials: &'static str,
    ) -> Self {
        Self {
            store,
            prefix: ObjectPath::from(prefix),
            repo,
            local_root: None,
            metadata_fallback,
            credentials,
            multipart: None,
        }
    }

    fn path(&self, key: &str) -> ObjectPath {
        key.split('/')
            .fold(self.prefix.clone(), |path, part| path.join(part))
    }

    /// A local repository's directory.
    pub(crate) fn local_root(&self) -> Option<&std::path::Path> {
        self.local_root.as_deref()
    }

    pub(crate) fn multipart(&self) -> Option<&MultipartLister> {
        self.multipart.as_deref()
    }

    /// The repository's root as a key prefix: empty, or `prefix/`.
    pub(crate) fn root_prefix(&self) -> String {
        match self.prefix.as_ref() {
            "" => String::new(),
            prefix => format!("{prefix}/"),
        }
    }

    pub(crate) fn object_error(&self, key: &str, error: object_store::Error) -> Error {
        let denied = matches!(
            error,
            object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. }
        );
        self.storage_error(key, error.to_string(), denied)
    }

    /// The error for a failed request about `key`, whose answer was `text`; `denied` when the
    /// answer itself said so (not only its XML code).
    pub(crate) fn storage_error(&self, key: &str, text: String, denied: bool) -> Error {
        if let Some(endpoint) = &self.metadata_fallback
            && text.contains(endpoint.trim_end_matches('/'))
        {
            return Error::Location {
                repo: self.repo.clone(),
                reason: format!(
                    "no S3 credentials found: tried {CREDENTIAL_SOURCES} at {endpoint} (not reachable); set one of them"
                ),
            };
        }
        // S3 puts the reason in an XML body; its code says more than the whole response.
        let code = text
            .split_once("<Code>")
            .and_then(|(_, rest)| rest.split_once("</Code>"))
            .map(|(code, _)| code.to_string());
        if code.as_deref() == Some("NoSuchBucket") {
            return Error::Location {
                repo: self.repo.clone(),
                reason: "the bucket does not exist; create it first or fix the name (and --s3-endpoint)"
                    .into(),
            };
        }
        let denied = denied
            || matches!(
                code.as_deref(),
                Some("AccessDenied" | "SignatureDoesNotMatch" | "InvalidAccessKeyId")
            );
        let message = match (denied, code) {
            (true, code) => format!(
                "access denied{}; check {}",
                code.map(|c| format!(" ({c})")).unwrap_or_default(),
                self.credentials
            ),
            _ => text,
        };
        Error::Storage {
            repo: self.repo.clone(),
            key: key.to_string(),
            message,
        }
    }

    /// Fails unless the repository's place can be listed: the bucket exists and the credentials
    /// work (a single request).
    pub async fn check_reachable(&self) -> Result<()> {
        self.store
            .list_with_delimiter(Some(&self.prefix))
            .await
            .map(|_| ())
            .map_err(|e| self.object_error("(listing)", e))
    }

    /// The repository as the user named it.
    pub fn repo(&self) -> &str {
        &self.repo
    }

    /// Writes a small object in one put.
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        self.store
            .put(&self.path(key), PutPayload::from(bytes))
            .await
            .map_err(|e| self.object_error(key, e))?;
        Ok(())
    }

    /// Reads a small object (a manifest, a record) whole; `None` if it does not exist. One
    /// larger than [`SMALL_OBJECT_MAX`] is refused, whatever the store says its size is.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let Some(mut download) = self.download(key).await? else {
            return Ok(None);
        };
        let too_large = || Error::TooLarge {
            object: format!("{}/{key}", self.repo),
            what: "size",
            limit: SMALL_OBJECT_MAX,
        };
        if download.size() > SMALL_OBJECT_MAX {
            return Err(too_large());
        }
        // The reported size may lie: the bound holds on what arrives.
        let mut bytes = Vec::with_capacity(download.size() as usize);
        while let Some(chunk) = download.next_chunk().await? {
            if (bytes.len() + chunk.len()) as u64 > SMALL_OBJECT_MAX {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Some(bytes))
    }

    /// Deletes an object; an absent one is not an error.
    pub async fn delete(&self, key: &str) -> Result<()> {
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.object_error(key, e)),
        }
    }

    /// Keys (relative to the repository) under `prefix`, with their sizes, sorted.
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        Ok(self
            .list_objects(prefix)
            .await?
            .into_iter()
            .map(|o| (o.key, o.size))
            .collect())
    }

    /// The objects under `prefix`, sorted by key, with sizes and modification times.
    pub async fn list_objects(&self, prefix: &str) -> Result<Vec<StoredObject>> {
        use futures::TryStreamExt;
        let root = self.path(prefix);
        let objects: Vec<_> = self
            .store
            .list(Some(&root))
            .try_collect()
            .await
            .map_err(|e| self.object_error(prefix, e))?;
        let skip = self.prefix.parts().count();
        let mut found: Vec<StoredObject> = objects
            .into_iter()
            .map(|meta| {
                let parts: Vec<String> = meta
                    .location
                    .parts()
                    .skip(skip)
                    .map(|p| p.as_ref().to_string())
                    .collect();
                StoredObject {
                    key: parts.join("/"),
                    size: meta.size,
                    modified: meta.last_modified.into(),
                }
            })
            .collect();
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }
}

/// The most [`Storage::get`] reads: manifests and records are kilobytes; anything near this is
/// damaged or planted, and must not fill memory.
pub const SMALL_OBJECT_MAX: u64 = 16 << 20;

/// An object being read as a stream of chunks.
pub struct Download {
    key: String,
    storage: Storage,
    size: u64,
    stream: futures::stream::BoxStream<'static, object_store::Result<bytes::Bytes>>,
}

impl std::fmt::Debug for Download {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Download")
            .field("key", &self.key)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl Storage {
    /// Starts reading object `key`; `None` if it does not exist.
    pub async fn download(&self, key: &str) -> Result<Option<Download>> {
        match self.store.get(&self.path(key)).await {
            Ok(result) => Ok(Some(Download {
                key: key.to_string(),
                storage: self.clone(),
                size: result.meta.size,
                stream: result.into_stream(),
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.object_error(key, e)),
        }
    }
}

impl Download {
    /// The object's size as the store reports it.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The next chunk; `None` at the end.
    pub async fn next_chunk(&mut self) -> Result<Option<bytes::Bytes>> {
        use futures::StreamExt;
        match self.stream.next().await {
            None => Ok(None),
            Some(Ok(chunk)) => Ok(Some(chunk)),
            Some(Err(e)) => Err(self.storage.object_error(&self.key, e)),
        }
    }
}

/// Part size of multipart uploads: S3's 5 MiB minimum for all parts but the last (10,000
/// parts: objects up to 48.8 GiB).
pub const PART_SIZE: usize = 5 << 20;
/// A write waits while this many parts are uploading: one part uploads while the next fills,
/// so the stream never waits out a whole round trip (with 1 every part would), and an upload
/// holds at most three parts in memory, whatever the object's size.
const PARTS_IN_FLIGHT: usize = 2;

/// An object being streamed; it appears only at [`Upload::finish`]. Dropping it without
/// finishing leaves an incomplete multipart upload on S3 (object_store does not abort on
/// drop), so every error path must call [`Upload::abort`].
pub struct Upload {
    key: String,
    storage: Storage,
    writer: WriteMultipart,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Storage {
    /// Starts streaming object `key`.
    pub async fn upload(&self, key: &str) -> Result<Upload> {
        let multipart = self
            .store
            .put_multipart(&self.path(key))
            .await
            .map_err(|e| self.object_error(key, e))?;
        Ok(Upload {
            key: key.to_string(),
            storage: self.clone(),
            writer: WriteMultipart::new_with_chunk_size(multipart, PART_SIZE),
        })
    }
}

impl Upload {
    /// Appends bytes, waiting while too many parts are in flight.
    pub async fn write(&mut self, bytes: Vec<u8>) -> Result<()> {
        self.writer
            .wait_for_capacity(PARTS_IN_FLIGHT)
            .await
            .map_err(|e| self.storage.object_error(&self.key, e))?;
        self.writer.put(bytes::Bytes::from(bytes));
        Ok(())
    }

    /// Completes the object.
    pub async fn finish(self) -> Result<()> {
        self.writer
            .finish()
            .await
            .map_err(|e| self.storage.object_error(&self.key, e))?;
        Ok(())
    }

    /// Gives the upload up; the object never appears.
    pub async fn abort(self) -> Result<()> {
        self.writer
            .abort()
            .await
            .map_err(|e| self.storage.object_error(&self.key, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse() {
        assert_eq!(
            Location::parse("s3://b/some/prefix/").unwrap(),
            Location::S3 {
                bucket: "b".into(),
                prefix: "some/prefix".into()
            }
        );
        assert_eq!(
            Location::parse("s3://b").unwrap(),
            Location::S3 {
                bucket: "b".into(),
                prefix: String::new()
            }
        );
        assert_eq!(
            Location::parse("/var/backups").unwrap(),
            Location::Local("/var/backups".into())
        );
        assert_eq!(
            Location::parse("gs://b/p").unwrap(),
            Location::Gcs {
                bucket: "b".into(),
                prefix: "p".into()
            }
        );
        assert_eq!(
            Location::parse("az://c").unwrap(),
            Location::Azure {
                container: "c".into(),
                prefix: String::new()
            }
        );
        for bad in ["", "s3://", "gs://", "ftp://b/p"] {
            assert!(Location::parse(bad).is_err(), "{bad}");
        }
        assert!(is_loopback_http("http://127.0.0.1:9000"));
        assert!(!is_loopback_http("http://10.0.0.1:9000"));
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let settings = StorageSettings {
            secret_access_key: Some("hunter2".into()),
            ..StorageSettings::default()
        };
        assert!(!format!("{settings:?}").contains("hunter2"));
    }
}

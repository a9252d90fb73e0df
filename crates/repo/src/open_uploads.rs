//! Uploads begun and never completed or aborted (their process died): a local repository's
//! staging files, and S3 multipart uploads, which object_store neither lists nor aborts on drop.
//! On S3 they are listed with ListMultipartUploads, signed with object_store's own SigV4 code,
//! and aborted through object_store.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use object_store::ClientOptions;
use object_store::aws::{AmazonS3, AwsAuthorizer};
use object_store::client::{HttpConnector, HttpRequest, HttpRequestBody, ReqwestConnector};
use object_store::multipart::MultipartStore;
use object_store::path::Path as ObjectPath;
use serde::Deserialize;

use crate::store::Storage;
use crate::{Error, Result};

/// An upload that was begun and neither completed nor aborted (its process died).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenUpload {
    /// The object it would have become, relative to the repository root.
    pub key: String,
    pub started: SystemTime,
    handle: Handle,
}

/// What aborting an open upload removes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Handle {
    /// object_store's local staging file `<key>#<n>`.
    Staging(PathBuf),
    /// An S3 multipart upload.
    Multipart { path: ObjectPath, upload_id: String },
}

/// How to list an S3 bucket's multipart uploads.
#[derive(Debug)]
pub(crate) struct MultipartLister {
    pub(crate) store: Arc<AmazonS3>,
    /// `https://host/bucket` or `https://bucket.host`: where bucket requests go.
    pub(crate) bucket_url: String,
    pub(crate) region: String,
    pub(crate) options: ClientOptions,
}

/// Bounds on what a server's listing may make this process do.
const MAX_PAGE_BYTES: usize = 8 << 20;
const MAX_PAGES: usize = 1000;
const LISTING: &str = "(open uploads)";

/// One page of ListMultipartUploads.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct UploadsPage {
    is_truncated: bool,
    next_key_marker: Option<String>,
    next_upload_id_marker: Option<String>,
    #[serde(rename = "Upload")]
    uploads: Vec<ListedUpload>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ListedUpload {
    key: String,
    upload_id: String,
    initiated: String,
}

/// Percent-encodes a query value as SigV4 canonicalises it (everything but unreserved bytes).
fn query_value(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The query of one page's request; markers continue after the previous page.
fn page_query(prefix: &str, markers: Option<(&str, &str)>) -> String {
    let mut query = format!("uploads=&prefix={}", query_value(prefix));
    if let Some((key, upload_id)) = markers {
        query.push_str(&format!(
            "&key-marker={}&upload-id-marker={}",
            query_value(key),
            query_value(upload_id)
        ));
    }
    query
}

fn parse_page(body: &[u8]) -> std::result::Result<UploadsPage, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the listing is not UTF-8".to_string())?;
    quick_xml::de::from_str(text).map_err(|e| format!("the listing is not ListMultipartUploads XML: {e}"))
}

/// When an upload began; a time that does not parse counts as now, so it is never taken for old.
fn initiated(text: &str) -> SystemTime {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(SystemTime::from)
        .unwrap_or_else(|_| SystemTime::now())
}

impl Storage {
    /// Uploads left open by processes that died: a local repository's staging files, or an S3
    /// bucket's multipart uploads under the repository's prefix. `None` where the storage
    /// cannot list them (Google and Azure, whose uncommitted blocks expire by themselves, and
    /// S3 servers without ListMultipartUploads).
    pub async fn open_uploads(&self) -> Result<Option<Vec<OpenUpload>>> {
        if let Some(root) = self.local_root() {
            let root = root.to_path_buf();
            let repo = self.repo().to_string();
            let found = tokio::task::spawn_blocking(move || staging_files(&root))
                .await
                .map_err(|e| Error::Storage {
                    repo,
                    key: LISTING.into(),
                    message: e.to_string(),
                })?;
            return Ok(Some(found));
        }
        match self.multipart() {
            Some(lister) => self.multipart_uploads(lister).await,
            None => Ok(None),
        }
    }

    async fn multipart_uploads(&self, lister: &MultipartLister) -> Result<Option<Vec<OpenUpload>>> {
        let failed = |message: String, denied: bool| self.storage_error(LISTING, message, denied);
        let credential = lister
            .store
            .credentials()
            .get_credential()
            .await
            .map_err(|e| self.object_error(LISTING, e))?;
        let client = ReqwestConnector::default()
            .connect(&lister.options)
            .map_err(|e| self.object_error(LISTING, e))?;
        let root = self.root_prefix();
        let mut found = Vec::new();
        let mut markers: Option<(String, String)> = None;
        for _ in 0..MAX_PAGES {
            let query = page_query(&root, markers.as_ref().map(|(k, u)| (k.as_str(), u.as_str())));
            let url = format!("{}?{query}", lister.bucket_url.trim_end_matches('/'));
            let mut request: HttpRequest = http::Request::get(&url)
                .body(HttpRequestBody::empty())
                .map_err(|e| failed(e.to_string(), false))?;
            AwsAuthorizer::new(&credential, "s3", &lister.region)
                .try_authorize(&mut request, None)
                .map_err(|e| self.object_error(LISTING, e))?;
            let response = client
                .execute(request)
                .await
                .map_err(|e| failed(e.to_string(), false))?;
            let status = response.status();
            let body = bounded_body(response.into_body())
                .await
                .map_err(|e| failed(e, false))?;
            let text = String::from_utf8_lossy(&body);
            if status == http::StatusCode::NOT_IMPLEMENTED || text.contains("<Code>NotImplemented</Code>") {
                return Ok(None);
            }
            if !status.is_success() {
                let denied = matches!(status.as_u16(), 401 | 403);
                return Err(failed(format!("HTTP {status}: {text}"), denied));
            }
            let page = parse_page(&body).map_err(|e| failed(e, false))?;
            for upload in &page.uploads {
                // The server's answer is untrusted: only keys under this repository count.
                let Some(key) = upload.key.strip_prefix(&root) else {
                    return Err(failed(
                        format!("the server listed {} outside the prefix asked for", upload.key),
                        false,
                    ));
                };
                let Ok(path) = ObjectPath::parse(&upload.key) else {
                    continue;
                };
                found.push(OpenUpload {
                    key: key.to_string(),
                    started: initiated(&upload.initiated),
                    handle: Handle::Multipart {
                        path,
                        upload_id: upload.upload_id.clone(),
                    },
                });
            }
            if !page.is_truncated {
                found.sort_by(|a, b| a.key.cmp(&b.key));
                return Ok(Some(found));
            }
            let next = (
                page.next_key_marker.unwrap_or_default(),
                page.next_upload_id_marker.unwrap_or_default(),
            );
            // A truncated page must move the listing on, or it would never end.
            if next.0.is_empty() || markers.as_ref() == Some(&next) {
                return Err(failed(
                    "a truncated listing did not advance its markers".into(),
                    false,
                ));
            }
            markers = Some(next);
        }
        Err(failed(
            format!("more than {MAX_PAGES} pages of open uploads"),
            false,
        ))
    }

    /// Removes what an open upload stored; one already gone is not an error.
    pub async fn abort_open_upload(&self, upload: &OpenUpload) -> Result<()> {
        match &upload.handle {
            Handle::Staging(staging) => match tokio::fs::remove_file(staging).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(source) => Err(Error::Io {
                    object: format!("{}/{}", self.repo(), upload.key),
                    source,
                }),
            },
            Handle::Multipart { path, upload_id } => {
                let Some(lister) = self.multipart() else {
                    return Ok(());
                };
                match lister.store.abort_multipart(path, upload_id).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(e) => Err(self.object_error(&upload.key, e)),
                }
            }
        }
    }
}

/// A response body, refused past [`MAX_PAGE_BYTES`].
async fn bounded_body(body: object_store::client::HttpResponseBody) -> std::result::Result<Vec<u8>, String> {
    use futures::StreamExt;
    let mut stream = body.bytes_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        if bytes.len() + chunk.len() > MAX_PAGE_BYTES {
            return Err(format!("a listing page is larger than {MAX_PAGE_BYTES} bytes"));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// object_store's local staging files (`<key>#<n>`) under `root`.
fn staging_files(root: &std::path::Path) -> Vec<OpenUpload> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(metadata) = entry.metadata() else { continue };
            if metadata.is_dir() {
                pending.push(path);
                continue;
            }
            let Some((target, _)) = path.to_str().and_then(|p| p.rsplit_once('#')) else {
                continue;
            };
            let key = std::path::Path::new(target)
                .strip_prefix(root)
                .map(|k| k.display().to_string())
                .unwrap_or_default();
            found.push(OpenUpload {
                key,
                started: metadata.modified().unwrap_or(std::time::UNIX_EPOCH),
                handle: Handle::Staging(path),
            });
        }
    }
    found.sort_by(|a, b| a.key.cmp(&b.key));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_page_parses() {
        let page = parse_page(
            br#"<?xml version="1.0" encoding="UTF-8"?>
<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>b</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>
  <NextKeyMarker>p/backups/x/etcd-snapshot.db</NextKeyMarker><NextUploadIdMarker>u2</NextUploadIdMarker>
  <Prefix>p/</Prefix><MaxUploads>1000</MaxUploads><IsTruncated>true</IsTruncated>
  <Upload><Key>p/backups/x/etcd-snapshot.db</Key><UploadId>u1</UploadId>
    <Initiator><ID>i</ID></Initiator><StorageClass>STANDARD</StorageClass>
    <Initiated>2026-12-01T10:00:00.000Z</Initiated></Upload>
  <Upload><Key>p/backups/x/etcd-snapshot.db</Key><UploadId>u2</UploadId><Initiated>garbage</Initiated></Upload>
</ListMultipartUploadsResult>"#,
        )
        .unwrap();
        assert!(page.is_truncated);
        assert_eq!(page.uploads.len(), 2);
        assert_eq!(page.uploads[1].upload_id, "u2");
        assert_eq!(page.next_upload_id_marker.as_deref(), Some("u2"));
        let started = initiated(&page.uploads[0].initiated);
        assert_eq!(
            started.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs(),
            1_796_119_200
        );
        assert!(
            initiated(&page.uploads[1].initiated) > started,
            "unparseable counts as now"
        );
        let empty = parse_page(
            b"<ListMultipartUploadsResult><IsTruncated>false</IsTruncated></ListMultipartUploadsResult>",
        )
        .unwrap();
        assert!(empty.uploads.is_empty() && !empty.is_truncated);
        assert!(parse_page(b"\xff").is_err());
        assert!(parse_page(b"<Error><Code>").is_err());
    }

    #[test]
    fn queries_are_encoded_as_signed() {
        assert_eq!(page_query("", None), "uploads=&prefix=");
        assert_eq!(
            page_query("a b/", Some(("a b/k#1", "x+y=="))),
            "uploads=&prefix=a%20b%2F&key-marker=a%20b%2Fk%231&upload-id-marker=x%2By%3D%3D"
        );
    }
}

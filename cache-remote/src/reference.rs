//! [`ReferenceClient`]: the reference scanner's client protocol (Twirp
//! `trivy.cache.v1.Cache` and `trivy.scanner.v1.Scanner`), as `trivy image --server`
//! speaks it, against `scancache server` or the reference's own `trivy server`; and
//! [`UploadCache`], the view of it that `cache-scan`'s upload flow writes through.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use cache_core::{
    ArtifactId, ArtifactInfo, BlobId, BlobInfo, Cache, CacheOptions, Digest, EntryKey, EntryKind,
    Error, Missing, RawEntry, Result, Visitor, Walk, Walked, codec, mask_url,
};
use cache_server::proto::{cache as pc, scanner as psc};
use http::{HeaderName, HeaderValue};
use prost::Message;

use crate::{
    config::{Endpoint, RemoteConfig},
    transport::{Call, Transport},
};

/// The reference's cache service.
const CACHE_SERVICE: &str = "trivy.cache.v1.Cache";

/// The reference's scan service.
const SCANNER_SERVICE: &str = "trivy.scanner.v1.Scanner";

/// A client of a server that speaks the reference's protocol: `scancache server`, or
/// the reference's `trivy server`. It shares the process's connection pool and retry
/// policy with [`crate::RemoteCache`].
#[derive(Debug)]
pub struct ReferenceClient {
    transport: Transport,
    endpoint: Endpoint,
    location: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    timeout: Duration,
}

impl ReferenceClient {
    /// A client of the server `config` names (its admin token is not used). No call is
    /// made yet.
    pub fn new(config: &RemoteConfig) -> Result<ReferenceClient> {
        let endpoint = config.validate()?;
        let transport = Transport::shared(config)?;
        let mut headers = Vec::new();
        if let Some(token) = config.token.as_deref().filter(|t| !t.is_empty()) {
            let name =
                HeaderName::try_from(config.token_header.as_str()).map_err(|_| Error::Config {
                    setting: cache_core::Setting::Backend,
                    reason: "invalid token header name".into(),
                })?;
            let mut value = HeaderValue::try_from(token).map_err(|_| Error::Config {
                setting: cache_core::Setting::Backend,
                reason: "the token holds characters an HTTP header cannot carry".into(),
            })?;
            value.set_sensitive(true);
            headers.push((name, value));
        }
        Ok(ReferenceClient {
            transport,
            location: mask_url(&endpoint.to_string()),
            endpoint,
            headers,
            timeout: config.request_timeout,
        })
    }

    /// The server's address, for messages.
    pub fn location(&self) -> &str {
        &self.location
    }

    async fn call<R: Message + Default>(
        &self,
        service: &str,
        method: &str,
        request: &impl Message,
    ) -> Result<R> {
        let uri = self.endpoint.uri(service, method);
        let call = Call {
            uri: &uri,
            what: method,
            headers: &self.headers,
            body: Bytes::from(request.encode_to_vec()),
            timeout: self.timeout,
        };
        let body = self
            .transport
            .unary(&call)
            .await
            .map_err(|f| f.into_error(&self.location, method))?;
        R::decode(body).map_err(|e| Error::Backend {
            backend: self.location.clone(),
            message: format!("{method}: cannot decode the answer: {e}"),
        })
    }

    /// `MissingBlobs`: whether the server lacks the artifact, and which blobs.
    pub async fn missing_blobs(&self, artifact: &ArtifactId, blobs: &[BlobId]) -> Result<Missing> {
        let request = pc::MissingBlobsRequest {
            artifact_id: artifact.to_string(),
            blob_ids: blobs.iter().map(ToString::to_string).collect(),
        };
        let answer: pc::MissingBlobsResponse =
            self.call(CACHE_SERVICE, "MissingBlobs", &request).await?;
        let blobs = answer
            .missing_blob_ids
            .iter()
            .map(|id| id.parse())
            .collect::<Result<Vec<BlobId>>>()
            .map_err(|e| Error::Backend {
                backend: self.location.clone(),
                message: format!("MissingBlobs: the answer holds an invalid ID: {e}"),
            })?;
        Ok(Missing {
            artifact: answer.missing_artifact,
            blobs,
        })
    }

    /// `PutBlob`: a layer's result, as the reference's message.
    pub async fn put_blob(&self, id: &BlobId, info: &BlobInfo) -> Result<()> {
        let message = pc::BlobInfo::try_from(info).map_err(|e| self.unsendable(id.digest(), e))?;
        let request = pc::PutBlobRequest {
            diff_id: id.to_string(),
            blob_info: Some(message),
        };
        let _: pc::Empty = self.call(CACHE_SERVICE, "PutBlob", &request).await?;
        Ok(())
    }

    /// `PutArtifact`: the image record, as the reference's message.
    pub async fn put_artifact(&self, id: &ArtifactId, info: &ArtifactInfo) -> Result<()> {
        let message =
            pc::ArtifactInfo::try_from(info).map_err(|e| self.unsendable(id.digest(), e))?;
        let request = pc::PutArtifactRequest {
            artifact_id: id.to_string(),
            artifact_info: Some(message),
        };
        let _: pc::Empty = self.call(CACHE_SERVICE, "PutArtifact", &request).await?;
        Ok(())
    }

    /// `Scan`: the server applies the layers and reports.
    pub async fn scan(&self, request: &psc::ScanRequest) -> Result<psc::ScanResponse> {
        self.call(SCANNER_SERVICE, "Scan", request).await
    }

    fn unsendable(&self, id: &Digest, e: impl std::fmt::Display) -> Error {
        Error::Backend {
            backend: self.location.clone(),
            message: format!("the result {id} does not fit the protocol's message: {e}"),
        }
    }
}

/// The reference protocol seen as a cache that can only be asked what is missing and
/// be written to: what the reference client's flow needs (`MissingBlobs`, then `PutBlob`
/// of each layer analysed and `PutArtifact`), for `cache_scan::upload`. Reading, listing
/// and removing entries are not in that protocol and fail.
#[derive(Debug)]
pub struct UploadCache<'a> {
    client: &'a ReferenceClient,
    options: CacheOptions,
}

impl<'a> UploadCache<'a> {
    /// The upload view of `client`, refusing documents over `max_document_size` before
    /// they are sent (the server may have a cap of its own, and refuse them too).
    pub fn new(client: &'a ReferenceClient, max_document_size: Option<u64>) -> Self {
        UploadCache {
            client,
            options: CacheOptions {
                ttl: None,
                max_size: None,
                ttl_refresh: false,
                max_document_size,
            },
        }
    }

    fn unsupported(&self, what: &str) -> Error {
        Error::Backend {
            backend: self.client.location.clone(),
            message: format!("the reference protocol has no way to {what}"),
        }
    }
}

#[async_trait]
impl Cache for UploadCache<'_> {
    fn backend_name(&self) -> &'static str {
        "reference-server"
    }

    fn location(&self) -> String {
        self.client.location.clone()
    }

    /// Every write is a request to the server.
    fn groups_writes(&self) -> bool {
        true
    }

    fn options(&self) -> &CacheOptions {
        &self.options
    }

    async fn missing_blobs(&self, artifact: &ArtifactId, blobs: &[BlobId]) -> Result<Missing> {
        self.client.missing_blobs(artifact, blobs).await
    }

    async fn read(&self, kind: EntryKind, ids: &[&Digest]) -> Result<Vec<Option<Vec<u8>>>> {
        // The reference's server has no stored reports: every one is a miss.
        if kind == EntryKind::Report {
            return Ok(vec![None; ids.len()]);
        }
        Err(self.unsupported("read entries"))
    }

    async fn write(&self, _entries: &[RawEntry]) -> Result<()> {
        Err(self.unsupported("import entries"))
    }

    async fn delete(&self, _keys: &[EntryKey]) -> Result<u64> {
        Err(self.unsupported("remove entries"))
    }

    async fn walk(
        &self,
        _kind: Option<EntryKind>,
        _walk: Walk,
        _visit: Visitor<'_, Walked>,
    ) -> Result<()> {
        Err(self.unsupported("list entries"))
    }

    async fn clear(&self) -> Result<()> {
        Err(self.unsupported("clear the cache"))
    }

    async fn close(&self) -> Result<()> {
        Ok(())
    }

    /// Each document becomes its `PutBlob` or `PutArtifact` call (the protocol has one
    /// document per call), sent one after another: `put_blobs` of a batch of layers is as
    /// many `PutBlob` calls.
    async fn put_values(&self, entries: Vec<(EntryKey, Vec<u8>)>) -> Result<()> {
        for (key, value) in entries {
            let id = key.id.as_str();
            match key.kind {
                EntryKind::Blob => {
                    let info: BlobInfo = codec::decode(id, &value)?;
                    self.client.put_blob(&BlobId::from(key.id), &info).await?;
                }
                EntryKind::Artifact => {
                    let info: ArtifactInfo = codec::decode(id, &value)?;
                    self.client
                        .put_artifact(&ArtifactId::from(key.id), &info)
                        .await?;
                }
                // The reference's protocol has no stored reports: not stored.
                EntryKind::Report => {
                    tracing::debug!(%key, "the reference server stores no reports");
                }
            }
        }
        Ok(())
    }
}

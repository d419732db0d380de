//! Thin wrappers over the KV bucket (values with compare-and-set by revision) and the object
//! store (snapshots), with typed errors.

use async_nats::jetstream::{kv, object_store};
use bytes::Bytes;

use crate::cluster::Cluster;
use crate::error::{KvError, ObjectError};

/// The KV bucket. Revisions are stream sequences of the bucket's stream.
#[derive(Clone, Debug)]
pub struct Kv {
    store: kv::Store,
}

/// A present value and its revision (the value to pass to [`Kv::update`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvEntry {
    pub value: Bytes,
    pub revision: u64,
}

/// The object store.
#[derive(Clone)]
pub struct Objects {
    store: object_store::ObjectStore,
}

impl Cluster {
    /// The KV bucket (made by [`Cluster::ensure`]).
    pub async fn kv(&self) -> Result<Kv, KvError> {
        let bucket = &self.names.kv_bucket;
        let store = self
            .js
            .get_key_value(bucket)
            .await
            .map_err(|e| KvError::Engine {
                action: "open",
                key: bucket.clone(),
                source: e.into(),
            })?;
        Ok(Kv { store })
    }

    /// The object store (made by [`Cluster::ensure`]).
    pub async fn objects(&self) -> Result<Objects, ObjectError> {
        let bucket = &self.names.object_bucket;
        let store = self
            .js
            .get_object_store(bucket)
            .await
            .map_err(|e| ObjectError::Engine {
                action: "open",
                name: bucket.clone(),
                source: e.into(),
            })?;
        Ok(Objects { store })
    }
}

impl Kv {
    /// The value and revision of `key`; `None` when absent or deleted.
    pub async fn get(&self, key: &str) -> Result<Option<KvEntry>, KvError> {
        match self.store.entry(key).await {
            Ok(Some(entry)) if entry.operation == kv::Operation::Put => Ok(Some(KvEntry {
                value: entry.value,
                revision: entry.revision,
            })),
            Ok(_) => Ok(None),
            Err(e) => Err(match e.kind() {
                kv::EntryErrorKind::InvalidKey => KvError::InvalidKey {
                    key: key.to_owned(),
                },
                _ => KvError::Engine {
                    action: "get",
                    key: key.to_owned(),
                    source: e.into(),
                },
            }),
        }
    }

    /// Stores `value` only if `key` is absent (or deleted); returns the new revision.
    pub async fn create(&self, key: &str, value: Bytes) -> Result<u64, KvError> {
        self.store
            .create(key, value)
            .await
            .map_err(|e| match e.kind() {
                kv::CreateErrorKind::AlreadyExists => KvError::AlreadyExists {
                    key: key.to_owned(),
                },
                kv::CreateErrorKind::InvalidKey => KvError::InvalidKey {
                    key: key.to_owned(),
                },
                _ => KvError::Engine {
                    action: "create",
                    key: key.to_owned(),
                    source: e.into(),
                },
            })
    }

    /// Stores `value` only if `key` is still at `revision`; returns the new revision.
    pub async fn update(&self, key: &str, value: Bytes, revision: u64) -> Result<u64, KvError> {
        self.store
            .update(key, value, revision)
            .await
            .map_err(|e| match e.kind() {
                kv::UpdateErrorKind::WrongLastRevision => KvError::WrongRevision {
                    key: key.to_owned(),
                    expected: revision,
                },
                kv::UpdateErrorKind::InvalidKey => KvError::InvalidKey {
                    key: key.to_owned(),
                },
                _ => KvError::Engine {
                    action: "update",
                    key: key.to_owned(),
                    source: e.into(),
                },
            })
    }
}

impl Objects {
    /// Stores `data` under `name` (replacing an older object of that name); returns its size.
    pub async fn put(&self, name: &str, data: &[u8]) -> Result<u64, ObjectError> {
        let mut reader = data;
        self.put_reader(name, &mut reader).await
    }

    /// [`Objects::put`] from a reader (a file too large to hold in memory); returns its size.
    pub async fn put_reader(
        &self,
        name: &str,
        reader: &mut (impl tokio::io::AsyncRead + Unpin),
    ) -> Result<u64, ObjectError> {
        let info = self
            .store
            .put(name, reader)
            .await
            .map_err(|e| match e.kind() {
                object_store::PutErrorKind::InvalidName => ObjectError::InvalidName {
                    name: name.to_owned(),
                },
                _ => ObjectError::Engine {
                    action: "put",
                    name: name.to_owned(),
                    source: e.into(),
                },
            })?;
        Ok(info.size as u64)
    }

    /// The whole object `name` (its digest checked by the client as it reads).
    pub async fn get(&self, name: &str) -> Result<Bytes, ObjectError> {
        let mut data = Vec::new();
        self.get_into(name, &mut data).await?;
        Ok(Bytes::from(data))
    }

    /// [`Objects::get`] into a writer (a file too large to hold in memory); returns the bytes
    /// written. On an error the writer may hold part of the object.
    pub async fn get_into(
        &self,
        name: &str,
        out: &mut (impl tokio::io::AsyncWrite + Unpin),
    ) -> Result<u64, ObjectError> {
        let mut object = self.store.get(name).await.map_err(|e| match e.kind() {
            object_store::GetErrorKind::NotFound => ObjectError::NotFound {
                name: name.to_owned(),
            },
            object_store::GetErrorKind::InvalidName => ObjectError::InvalidName {
                name: name.to_owned(),
            },
            _ => ObjectError::Engine {
                action: "get",
                name: name.to_owned(),
                source: e.into(),
            },
        })?;
        tokio::io::copy(&mut object, out)
            .await
            .map_err(|e| ObjectError::Engine {
                action: "read",
                name: name.to_owned(),
                source: e.into(),
            })
    }
}
